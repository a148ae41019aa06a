DROP TRIGGER users_delete_records ON users;
DROP FUNCTION delete_user_records();

ALTER TABLE sync_changes ADD CONSTRAINT sync_changes_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE records ADD CONSTRAINT records_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
