-- Mission scheduling: one row per mission record (app `ai`, table `aiMissions`),
-- maintained in the same transaction as every change to that record, so that
-- claiming the due missions costs O(due), never O(change log).

CREATE TABLE mission_schedule (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mission_id text NOT NULL,
    -- active = state 'active', not deleted, and a parseable mission
    active boolean NOT NULL,
    next_run_at timestamptz,
    lease_owner text,
    lease_token uuid,
    lease_expires_at timestamptz,
    -- the slot (next_run_at) the current lease plans
    leased_slot timestamptz,
    -- after a released (failed) attempt, not due before this
    retry_after timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, mission_id)
);
CREATE INDEX mission_schedule_due_idx ON mission_schedule (next_run_at, user_id, mission_id)
    WHERE active AND next_run_at IS NOT NULL;

-- LLM tokens spent planning a user's missions, per UTC day (the daily budget).
CREATE TABLE mission_token_usage (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day date NOT NULL,
    tokens bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);
