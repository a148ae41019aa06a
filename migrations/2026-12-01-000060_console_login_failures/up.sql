-- Failed console sign-ins, counted per client address and per email to refuse
-- guessing with 429 (see console::auth). Only one window's rows are kept.
CREATE TABLE console_login_failures (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ip text NOT NULL,
    -- Lower-cased as typed; need not be an account.
    email text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX console_login_failures_ip_idx ON console_login_failures (ip, at);
CREATE INDEX console_login_failures_email_idx ON console_login_failures (email, at);
CREATE INDEX console_login_failures_at_idx ON console_login_failures (at);
