-- One row per persona run (id = `<tickId>.<personaId>`, the tick_id of its action and
-- feedback rows), written as the day goes and kept after its transcript expires.

CREATE TABLE persona_runs (
    id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 300),
    persona_id uuid NOT NULL REFERENCES personas (user_id) ON DELETE CASCADE,
    tick_id text NOT NULL,
    -- Grows with every snapshot of the run; an upsert never lowers it (no going back).
    revision integer NOT NULL CHECK (revision >= 0),
    worker text NOT NULL,
    provider text NOT NULL,
    model text NOT NULL,
    app_version text NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    -- NULL while the run is in progress.
    outcome text CHECK (outcome IN ('ok', 'simulator_failure', 'failed')),
    error text,
    error_class text,
    turns integer NOT NULL DEFAULT 0 CHECK (turns >= 0),
    tool_calls integer NOT NULL DEFAULT 0 CHECK (tool_calls >= 0),
    tool_errors integer NOT NULL DEFAULT 0 CHECK (tool_errors >= 0),
    tokens_input bigint NOT NULL DEFAULT 0 CHECK (tokens_input >= 0),
    tokens_output bigint NOT NULL DEFAULT 0 CHECK (tokens_output >= 0),
    tokens_cache_read bigint NOT NULL DEFAULT 0 CHECK (tokens_cache_read >= 0),
    tokens_cache_write bigint NOT NULL DEFAULT 0 CHECK (tokens_cache_write >= 0),
    first_prompt_tokens bigint CHECK (first_prompt_tokens >= 0),
    -- Capped by the server; NULL once retention dropped it (the summary stays).
    transcript jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Runs list (newest first, keyset on (started_at, id)) and the tokens report, served from
-- the index alone.
CREATE INDEX persona_runs_started_idx ON persona_runs (started_at DESC, id DESC)
    INCLUDE (provider, model, tokens_input, tokens_output, tokens_cache_read, tokens_cache_write);
-- Runs of a persona, newest first.
CREATE INDEX persona_runs_persona_idx ON persona_runs (persona_id, started_at DESC, id DESC);
-- Runs by outcome and time (runs list filter).
CREATE INDEX persona_runs_outcome_idx ON persona_runs (outcome, started_at DESC, id DESC);
-- Runs of a tick.
CREATE INDEX persona_runs_tick_idx ON persona_runs (tick_id);
-- Failures report and the errorClass filter: only the failed runs, by time.
CREATE INDEX persona_runs_failures_idx ON persona_runs (started_at DESC, id DESC)
    INCLUDE (error_class, persona_id)
    WHERE outcome IN ('failed', 'simulator_failure');
-- Retention: the runs that still hold a transcript, oldest first.
CREATE INDEX persona_runs_transcript_idx ON persona_runs (started_at)
    WHERE transcript IS NOT NULL;

-- Reports: the scoreboard aggregates a period's ratings per module, and its error share a
-- period's tool calls per module, from these indexes alone (index-only scans).
CREATE INDEX persona_feedback_created_idx ON persona_feedback (created_at)
    INCLUDE (module, rating, tick_id);
CREATE INDEX persona_actions_created_idx ON persona_actions (created_at)
    INCLUDE (module, result, tick_id);
-- A module's trend and per-persona breakdown.
CREATE INDEX persona_feedback_module_trend_idx ON persona_feedback (module, created_at)
    INCLUDE (rating, persona_id, tick_id);
-- The newest low-rated notes of a module.
CREATE INDEX persona_feedback_low_idx ON persona_feedback (module, created_at DESC)
    WHERE rating <= 2;
