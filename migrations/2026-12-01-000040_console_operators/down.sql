DROP TABLE console_sessions;
DELETE FROM users WHERE kind = 'operator';
ALTER TABLE users DROP CONSTRAINT users_kind_check;
ALTER TABLE users ADD CONSTRAINT users_kind_check
    CHECK (kind IN ('human', 'persona', 'system'));
