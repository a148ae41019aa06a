-- Users, personas, and the persona audit rows (actions) and ratings (feedback).

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    password_hash text NOT NULL,
    kind text NOT NULL DEFAULT 'human' CHECK (kind IN ('human', 'persona', 'system')),
    display_name text,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Emails are unique case-insensitively; login looks up lower(email).
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

CREATE TABLE personas (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    slug text NOT NULL UNIQUE,
    archetype text NOT NULL,
    system_prompt text NOT NULL,
    module_mix jsonb NOT NULL,
    tick_cadence text NOT NULL CHECK (tick_cadence IN ('hourly', 'daily', 'weekdays')),
    locale text NOT NULL DEFAULT 'de',
    paused boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_active_at timestamptz,
    -- The lease: who runs this persona now, fenced by a token that changes on every claim.
    lease_owner text,
    lease_token uuid,
    lease_expires_at timestamptz,
    -- Claims so far (every claim), and failures in a row (reset by a `done` release).
    attempt integer NOT NULL DEFAULT 0,
    consecutive_failures integer NOT NULL DEFAULT 0,
    -- After a failed run the persona is not due before this time (capped, jittered backoff).
    retry_after timestamptz,
    last_error text
);
-- The claim reads each cadence's due personas in last_active_at order (never-run first,
-- as -infinity) and stops after `limit` rows: one bounded range scan per cadence,
-- independent of table size. The expression must match the claim query exactly.
CREATE INDEX personas_claim_idx
    ON personas (tick_cadence, (coalesce(last_active_at, '-infinity'::timestamptz)), user_id)
    WHERE NOT paused;

CREATE TABLE persona_actions (
    id text PRIMARY KEY,
    persona_id uuid NOT NULL REFERENCES personas (user_id) ON DELETE CASCADE,
    tick_id text NOT NULL,
    tool_name text NOT NULL,
    module text NOT NULL,
    input jsonb,
    input_hash text,
    result text NOT NULL CHECK (result IN ('ok', 'error')),
    error_message text,
    latency_ms integer CHECK (latency_ms >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX persona_actions_persona_idx ON persona_actions (persona_id, created_at DESC);
CREATE INDEX persona_actions_tick_idx ON persona_actions (tick_id);

CREATE TABLE persona_feedback (
    id text PRIMARY KEY,
    persona_id uuid NOT NULL REFERENCES personas (user_id) ON DELETE CASCADE,
    tick_id text NOT NULL,
    module text NOT NULL,
    rating smallint CHECK (rating BETWEEN 1 AND 5),
    notes text,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- NULL is the visible "the rating could not be parsed" row, and only that.
    CONSTRAINT persona_feedback_rating_null_only_for_parse CHECK (rating IS NOT NULL OR module = '__parse')
);
CREATE INDEX persona_feedback_persona_idx ON persona_feedback (persona_id, module, created_at DESC);
CREATE INDEX persona_feedback_module_idx ON persona_feedback (module, created_at);
CREATE INDEX persona_feedback_tick_idx ON persona_feedback (tick_id);
