-- Operator accounts for the console, and the console's server-side sessions.

ALTER TABLE users DROP CONSTRAINT users_kind_check;
ALTER TABLE users ADD CONSTRAINT users_kind_check
    CHECK (kind IN ('human', 'persona', 'system', 'operator'));

-- One row per signed-in browser. Only the SHA-256 of the session id is stored,
-- so a leaked table cannot be replayed as cookies. The CSRF token is the
-- synchronizer token of every state-changing console form of that session.
CREATE TABLE console_sessions (
    id_hash bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_user_idx ON console_sessions (user_id);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);
