-- The record store's rows still go with their user, but without a foreign-key check
-- per row (issue 13). The `user_id` foreign keys of `records` and `sync_changes` ran
-- `SELECT 1 FROM users … FOR KEY SHARE` once per inserted row: a 1,000-change push
-- ran it 2,000 times, about a quarter of the push's database time (measured here:
-- the bench's raw 1,000 + 1,000-row insert 0.65–0.81× as long without them).
--
-- In their place:
-- - every write of the store (`db::records`) takes that lock once, on its user's row,
--   before it writes, and writes nothing when the row is gone (the account was
--   deleted while its token was still valid);
-- - deleting a user deletes its records and log rows, from a BEFORE DELETE row
--   trigger. Such a trigger runs after the delete has locked the user's row, that is
--   after every write holding the lock has committed or rolled back, and its
--   statements see what those writes committed; a write that starts later waits for
--   the delete and then finds no user. So, as with the foreign keys, no row of a
--   deleted user is left behind and none is written after.
ALTER TABLE records DROP CONSTRAINT records_user_id_fkey;
ALTER TABLE sync_changes DROP CONSTRAINT sync_changes_user_id_fkey;

CREATE FUNCTION delete_user_records() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM records WHERE user_id = OLD.id;
    DELETE FROM sync_changes WHERE user_id = OLD.id;
    RETURN OLD;
END
$$;

CREATE TRIGGER users_delete_records BEFORE DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION delete_user_records();
