-- OAuth 2.1 authorization server for /mcp, and personal access tokens.
-- Secrets (codes, refresh tokens, personal access tokens) are stored only as
-- SHA-256 digests of 256-bit random values: a leaked table grants nothing.

-- RFC 7591 dynamic registrations: public clients only (no secret).
CREATE TABLE oauth_clients (
    id text PRIMARY KEY,
    client_name text NOT NULL,
    redirect_uris text[] NOT NULL,
    client_uri text,
    registered_ip text NOT NULL,
    created_at timestamptz NOT NULL
);
-- The per-IP registration rate limit counts recent rows of one address.
CREATE INDEX oauth_clients_ip_created ON oauth_clients (registered_ip, created_at);

-- One user's approval of one client: the root of a refresh-token chain.
-- Revoking it (disconnect, RFC 7009, refresh-token reuse) kills every token of
-- the chain, access tokens included: /mcp checks `revoked_at` by primary key.
CREATE TABLE oauth_grants (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id text NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    scope text NOT NULL,
    resource text NOT NULL,
    created_at timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at timestamptz,
    revoked_reason text
);
CREATE INDEX oauth_grants_user ON oauth_grants (user_id, created_at DESC);

-- Authorization codes: single use, short-lived, bound to client, redirect URI
-- and the PKCE S256 challenge. `grant_id` is set on exchange, so a replayed
-- code can revoke what the first exchange issued (RFC 6749 §4.1.2).
CREATE TABLE oauth_codes (
    code_hash bytea PRIMARY KEY,
    client_id text NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri text NOT NULL,
    code_challenge text NOT NULL,
    scope text NOT NULL,
    resource text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    grant_id uuid REFERENCES oauth_grants (id) ON DELETE CASCADE
);
-- Issuing a code sweeps codes that expired a day ago (bounded table).
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);

-- Refresh tokens: rotated on every use; a row with `rotated_at` set that is
-- presented again is a replay and revokes its grant.
CREATE TABLE oauth_refresh_tokens (
    token_hash bytea PRIMARY KEY,
    grant_id uuid NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz
);
CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens (grant_id);

-- Personal access tokens for CLIs and scripts (bearer on /mcp).
CREATE TABLE personal_access_tokens (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name text NOT NULL,
    scope text NOT NULL,
    token_hash bytea NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    last_used_at timestamptz
);
CREATE UNIQUE INDEX personal_access_tokens_hash ON personal_access_tokens (token_hash);
CREATE INDEX personal_access_tokens_user ON personal_access_tokens (user_id, created_at DESC);
