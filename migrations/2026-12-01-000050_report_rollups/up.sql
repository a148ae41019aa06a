-- Rollups of the reports, so each report reads a few thousand pre-aggregated rows
-- instead of a period's raw feedback, actions and runs (issue 11: p95 ≤ 100 ms at 1M rows).
--
-- Invariants (kept by the statement-level triggers below, in the writing transaction):
-- - Every rollup row is the exact sum over the raw rows of its key: inserts add, deletes
--   subtract, updates subtract the old row and add the new one. An idempotent insert that
--   inserted nothing (ON CONFLICT DO NOTHING) has nothing in its transition table, so a
--   retry never counts twice.
-- - Buckets are UTC hours (`date_trunc('hour', t, 'UTC')`; the persona breakdown UTC days):
--   a report adds the whole hours of its period from here and reads the partial hours at
--   its edges from the raw tables, so results are exact for any bounds.
-- - A rating's or tool call's app version is its run's (`persona_runs.app_version`), the
--   run being the row's tick id up to a `~k` batch suffix; NULL while no run row exists.
--   Writing a run (insert, app version change, delete) moves its rows to the new version.
--   The triggers of all three tables take a transaction advisory lock per persona before
--   they read, so a run written concurrently with its rows cannot miss them.
-- - Rows whose sums fell to zero stay (readers skip them); nothing else deletes rollups.

-- No writes between the back-fill below and the triggers that keep it up to date.
LOCK TABLE persona_runs, persona_feedback, persona_actions IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE report_ratings_hourly (
    hour timestamptz NOT NULL,
    module text NOT NULL,
    app_version text,
    -- Ratings (rating NOT NULL): count, sum, sum of squares (mean and interval from these).
    n bigint NOT NULL,
    sum bigint NOT NULL,
    sum_sq bigint NOT NULL,
    -- Rows without a rating (`__parse`).
    unparsed bigint NOT NULL
);
CREATE UNIQUE INDEX report_ratings_hourly_key
    ON report_ratings_hourly (hour, module, app_version) NULLS NOT DISTINCT;
-- A module's trend.
CREATE INDEX report_ratings_hourly_module_idx ON report_ratings_hourly (module, hour);
-- The scoreboard of one app version.
CREATE INDEX report_ratings_hourly_version_idx ON report_ratings_hourly (app_version, hour);

-- A module's per-persona breakdown (trend page).
CREATE TABLE report_ratings_daily (
    day timestamptz NOT NULL,
    module text NOT NULL,
    persona_id uuid NOT NULL,
    n bigint NOT NULL,
    sum bigint NOT NULL,
    sum_sq bigint NOT NULL,
    PRIMARY KEY (module, day, persona_id)
);

-- Tool calls and errors per module (scoreboard error share).
CREATE TABLE report_calls_hourly (
    hour timestamptz NOT NULL,
    module text NOT NULL,
    app_version text,
    calls bigint NOT NULL,
    errors bigint NOT NULL
);
CREATE UNIQUE INDEX report_calls_hourly_key
    ON report_calls_hourly (hour, module, app_version) NULLS NOT DISTINCT;
CREATE INDEX report_calls_hourly_version_idx ON report_calls_hourly (app_version, hour);

-- Runs and tokens by provider and model, on `started_at` (tokens report).
CREATE TABLE report_tokens_hourly (
    hour timestamptz NOT NULL,
    provider text NOT NULL,
    model text NOT NULL,
    runs bigint NOT NULL,
    input bigint NOT NULL,
    output bigint NOT NULL,
    cache_read bigint NOT NULL,
    cache_write bigint NOT NULL,
    PRIMARY KEY (hour, provider, model)
);

-- The actions of a run, batches (`{runId}~k`) included.
CREATE INDEX persona_actions_run_idx ON persona_actions (split_part(tick_id, '~', 1));

-- `q` of the runs list searches rating notes.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX persona_feedback_notes_trgm_idx ON persona_feedback USING gin (notes gin_trgm_ops);


-- Writers wait for each other per persona before they read a run's app version, so a
-- run and its rows written at the same time see each other (class id 7423100).
CREATE FUNCTION report_lock_personas(ids uuid[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- In one order, so two writers never wait for each other in a circle.
    PERFORM pg_advisory_xact_lock(7423100, hashtext(p::text))
       FROM (SELECT DISTINCT p FROM unnest(ids) AS u(p) ORDER BY 1) AS s;
END
$$;

CREATE FUNCTION report_feedback_rollup() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    changed constant text := '(o.tick_id, o.module, o.rating, o.created_at, o.persona_id)
        IS DISTINCT FROM (n.tick_id, n.module, n.rating, n.created_at, n.persona_id)';
    -- The statement's rows, signed: old ones subtracted, new ones added.
    src text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1::int8 AS sign, n.* FROM new_rows n'
        WHEN 'DELETE' THEN 'SELECT -1::int8 AS sign, o.* FROM old_rows o'
        ELSE format('SELECT -1::int8 AS sign, o.* FROM old_rows o JOIN new_rows n USING (id) WHERE %1$s
                     UNION ALL SELECT 1::int8, n.* FROM old_rows o JOIN new_rows n USING (id) WHERE %1$s',
                    changed)
        END;
BEGIN
    EXECUTE format('SELECT report_lock_personas(array(SELECT persona_id FROM (%s) d))', src);
    EXECUTE format($q$
        WITH d AS MATERIALIZED (%s),
        hourly AS (
            INSERT INTO report_ratings_hourly AS t (hour, module, app_version, n, sum, sum_sq, unparsed)
            SELECT date_trunc('hour', d.created_at, 'UTC'), d.module, r.app_version,
                   coalesce(sum(d.sign) FILTER (WHERE d.rating IS NOT NULL), 0),
                   coalesce(sum(d.sign * d.rating), 0),
                   coalesce(sum(d.sign * d.rating * d.rating), 0),
                   coalesce(sum(d.sign) FILTER (WHERE d.rating IS NULL), 0)
              FROM d LEFT JOIN persona_runs r ON r.id = d.tick_id
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (hour, module, app_version) DO UPDATE SET
                n = t.n + EXCLUDED.n, sum = t.sum + EXCLUDED.sum,
                sum_sq = t.sum_sq + EXCLUDED.sum_sq, unparsed = t.unparsed + EXCLUDED.unparsed
            RETURNING 1)
        INSERT INTO report_ratings_daily AS t (day, module, persona_id, n, sum, sum_sq)
        SELECT date_trunc('day', d.created_at, 'UTC'), d.module, d.persona_id,
               sum(d.sign), sum(d.sign * d.rating), sum(d.sign * d.rating * d.rating)
          FROM d WHERE d.rating IS NOT NULL
         GROUP BY 1, 2, 3 ORDER BY 2, 1, 3
        ON CONFLICT (module, day, persona_id) DO UPDATE SET
            n = t.n + EXCLUDED.n, sum = t.sum + EXCLUDED.sum, sum_sq = t.sum_sq + EXCLUDED.sum_sq
    $q$, src);
    RETURN NULL;
END
$fn$;

CREATE FUNCTION report_actions_rollup() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    changed constant text := '(o.tick_id, o.module, o.result, o.created_at, o.persona_id)
        IS DISTINCT FROM (n.tick_id, n.module, n.result, n.created_at, n.persona_id)';
    src text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1::int8 AS sign, n.* FROM new_rows n'
        WHEN 'DELETE' THEN 'SELECT -1::int8 AS sign, o.* FROM old_rows o'
        ELSE format('SELECT -1::int8 AS sign, o.* FROM old_rows o JOIN new_rows n USING (id) WHERE %1$s
                     UNION ALL SELECT 1::int8, n.* FROM old_rows o JOIN new_rows n USING (id) WHERE %1$s',
                    changed)
        END;
BEGIN
    EXECUTE format('SELECT report_lock_personas(array(SELECT persona_id FROM (%s) d))', src);
    EXECUTE format($q$
        WITH d AS (%s)
        INSERT INTO report_calls_hourly AS t (hour, module, app_version, calls, errors)
        SELECT date_trunc('hour', d.created_at, 'UTC'), d.module, r.app_version,
               sum(d.sign), coalesce(sum(d.sign) FILTER (WHERE d.result = 'error'), 0)
          FROM d LEFT JOIN persona_runs r ON r.id = split_part(d.tick_id, '~', 1)
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (hour, module, app_version) DO UPDATE SET
            calls = t.calls + EXCLUDED.calls, errors = t.errors + EXCLUDED.errors
    $q$, src);
    RETURN NULL;
END
$fn$;

CREATE FUNCTION report_runs_rollup() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    changed constant text := '(o.started_at, o.provider, o.model, o.tokens_input, o.tokens_output,
            o.tokens_cache_read, o.tokens_cache_write)
        IS DISTINCT FROM (n.started_at, n.provider, n.model, n.tokens_input, n.tokens_output,
            n.tokens_cache_read, n.tokens_cache_write)';
    src text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1::int8 AS sign, n.* FROM new_rows n'
        WHEN 'DELETE' THEN 'SELECT -1::int8 AS sign, o.* FROM old_rows o'
        ELSE format('SELECT -1::int8 AS sign, o.* FROM old_rows o JOIN new_rows n USING (id) WHERE %1$s
                     UNION ALL SELECT 1::int8, n.* FROM old_rows o JOIN new_rows n USING (id) WHERE %1$s',
                    changed)
        END;
    -- Runs whose app version changed (NULL: no run row), with the persona.
    moved text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT n.id, n.persona_id, NULL::text AS old_v, n.app_version AS new_v FROM new_rows n'
        WHEN 'DELETE' THEN 'SELECT o.id, o.persona_id, o.app_version AS old_v, NULL::text AS new_v FROM old_rows o'
        ELSE 'SELECT n.id, n.persona_id, o.app_version AS old_v, n.app_version AS new_v
                FROM old_rows o JOIN new_rows n USING (id) WHERE o.app_version IS DISTINCT FROM n.app_version'
        END;
BEGIN
    EXECUTE format('SELECT report_lock_personas(array(SELECT persona_id FROM (%s) d UNION ALL SELECT persona_id FROM (%s) m))',
                   src, moved);
    EXECUTE format($q$
        WITH d AS (%s)
        INSERT INTO report_tokens_hourly AS t (hour, provider, model, runs, input, output, cache_read, cache_write)
        SELECT date_trunc('hour', d.started_at, 'UTC'), d.provider, d.model, sum(d.sign),
               sum(d.sign * d.tokens_input), sum(d.sign * d.tokens_output),
               sum(d.sign * d.tokens_cache_read), sum(d.sign * d.tokens_cache_write)
          FROM d GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (hour, provider, model) DO UPDATE SET
            runs = t.runs + EXCLUDED.runs, input = t.input + EXCLUDED.input,
            output = t.output + EXCLUDED.output, cache_read = t.cache_read + EXCLUDED.cache_read,
            cache_write = t.cache_write + EXCLUDED.cache_write
    $q$, src);
    -- Move the run's ratings and tool calls from its old app version to its new one.
    EXECUTE format($q$
        WITH m AS MATERIALIZED (%s),
        f AS (
            SELECT s.sign, s.v, x.module, x.rating, x.created_at
              FROM m JOIN persona_feedback x ON x.tick_id = m.id
              CROSS JOIN LATERAL (VALUES (-1::int8, m.old_v), (1::int8, m.new_v)) AS s(sign, v)),
        hourly AS (
            INSERT INTO report_ratings_hourly AS t (hour, module, app_version, n, sum, sum_sq, unparsed)
            SELECT date_trunc('hour', f.created_at, 'UTC'), f.module, f.v,
                   coalesce(sum(f.sign) FILTER (WHERE f.rating IS NOT NULL), 0),
                   coalesce(sum(f.sign * f.rating), 0),
                   coalesce(sum(f.sign * f.rating * f.rating), 0),
                   coalesce(sum(f.sign) FILTER (WHERE f.rating IS NULL), 0)
              FROM f GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (hour, module, app_version) DO UPDATE SET
                n = t.n + EXCLUDED.n, sum = t.sum + EXCLUDED.sum,
                sum_sq = t.sum_sq + EXCLUDED.sum_sq, unparsed = t.unparsed + EXCLUDED.unparsed
            RETURNING 1),
        a AS (
            SELECT s.sign, s.v, x.module, x.result, x.created_at
              FROM m JOIN persona_actions x ON split_part(x.tick_id, '~', 1) = m.id
              CROSS JOIN LATERAL (VALUES (-1::int8, m.old_v), (1::int8, m.new_v)) AS s(sign, v))
        INSERT INTO report_calls_hourly AS t (hour, module, app_version, calls, errors)
        SELECT date_trunc('hour', a.created_at, 'UTC'), a.module, a.v,
               sum(a.sign), coalesce(sum(a.sign) FILTER (WHERE a.result = 'error'), 0)
          FROM a GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (hour, module, app_version) DO UPDATE SET
            calls = t.calls + EXCLUDED.calls, errors = t.errors + EXCLUDED.errors
    $q$, moved);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER report_feedback_rollup_insert AFTER INSERT ON persona_feedback
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_feedback_rollup();
CREATE TRIGGER report_feedback_rollup_update AFTER UPDATE ON persona_feedback
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_feedback_rollup();
CREATE TRIGGER report_feedback_rollup_delete AFTER DELETE ON persona_feedback
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_feedback_rollup();
CREATE TRIGGER report_actions_rollup_insert AFTER INSERT ON persona_actions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_actions_rollup();
CREATE TRIGGER report_actions_rollup_update AFTER UPDATE ON persona_actions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_actions_rollup();
CREATE TRIGGER report_actions_rollup_delete AFTER DELETE ON persona_actions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_actions_rollup();
CREATE TRIGGER report_runs_rollup_insert AFTER INSERT ON persona_runs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_runs_rollup();
CREATE TRIGGER report_runs_rollup_update AFTER UPDATE ON persona_runs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION report_runs_rollup();
CREATE TRIGGER report_runs_rollup_delete AFTER DELETE ON persona_runs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_runs_rollup();

-- Deleting a persona deletes its rows one table at a time, feedback and actions before
-- runs, so each statement's trigger still sees the run that gives their app version
-- (the foreign keys' cascade would delete all three before any statement trigger runs).
CREATE FUNCTION report_persona_delete() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM persona_feedback WHERE persona_id = OLD.user_id;
    DELETE FROM persona_actions WHERE persona_id = OLD.user_id;
    DELETE FROM persona_runs WHERE persona_id = OLD.user_id;
    RETURN OLD;
END
$fn$;
CREATE TRIGGER report_persona_delete BEFORE DELETE ON personas
    FOR EACH ROW EXECUTE FUNCTION report_persona_delete();

-- Back-fill from the raw tables (the same sums the triggers keep).
INSERT INTO report_ratings_hourly (hour, module, app_version, n, sum, sum_sq, unparsed)
SELECT date_trunc('hour', f.created_at, 'UTC'), f.module, r.app_version, count(f.rating),
       coalesce(sum(f.rating), 0), coalesce(sum(f.rating * f.rating), 0), count(*) - count(f.rating)
  FROM persona_feedback f LEFT JOIN persona_runs r ON r.id = f.tick_id
 GROUP BY 1, 2, 3;
INSERT INTO report_ratings_daily (day, module, persona_id, n, sum, sum_sq)
SELECT date_trunc('day', created_at, 'UTC'), module, persona_id, count(*), sum(rating),
       sum(rating * rating)
  FROM persona_feedback WHERE rating IS NOT NULL
 GROUP BY 1, 2, 3;
INSERT INTO report_calls_hourly (hour, module, app_version, calls, errors)
SELECT date_trunc('hour', a.created_at, 'UTC'), a.module, r.app_version, count(*),
       count(*) FILTER (WHERE a.result = 'error')
  FROM persona_actions a LEFT JOIN persona_runs r ON r.id = split_part(a.tick_id, '~', 1)
 GROUP BY 1, 2, 3;
INSERT INTO report_tokens_hourly (hour, provider, model, runs, input, output, cache_read, cache_write)
SELECT date_trunc('hour', started_at, 'UTC'), provider, model, count(*), sum(tokens_input),
       sum(tokens_output), sum(tokens_cache_read), sum(tokens_cache_write)
  FROM persona_runs
 GROUP BY 1, 2, 3;
