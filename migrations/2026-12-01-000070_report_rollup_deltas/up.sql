-- Report rollups without hot rows and without planning per write (issue 13).
--
-- 000050 kept one row per rollup key, upserted by statement triggers whose SQL was built
-- with `EXECUTE format` (planned anew on every write). Every tool call of every persona in
-- the same hour upserted the same (hour, module, version) row and held its lock through
-- commit, so concurrent persona days queued on it; with the planning, the rollups halved
-- persona days/s.
--
-- Now:
-- - Row triggers with static SQL (plans cached per connection) append signed delta rows:
--   plain INSERTs, no ON CONFLICT, so writers never wait for each other on a rollup row.
--   Updates that change no summed column never call a trigger (`WHEN`).
-- - A rollup key may have several rows. Readers sum them (every report query already
--   aggregates), so a report is exact at any moment.
-- - `report_compact()` folds each key's rows into one row marked `folded` (and drops keys
--   whose sums are all zero). auth-internal runs it every `reports.compact_interval_secs`;
--   one caller at a time (a transaction advisory lock), and rows a concurrent writer adds
--   meanwhile are not in its snapshot, so they stay for the next round.
-- - Kept from 000050: UTC hour and day buckets, a row's app version is its run's
--   (NULL while there is no run row), and a per-persona transaction advisory lock
--   (class 7423100) taken before reading a run's version, so a run and its rows written
--   at the same time see each other. Locks are now taken row by row: a statement that
--   writes several personas' rows takes them in its row order (only the per-persona
--   paths write here in production; a deadlock between two such statements would be
--   detected and fail one of them, never skew a sum).
-- - 000050's statement-trigger functions stay defined, unused, for this migration's down.

DROP TRIGGER report_feedback_rollup_insert ON persona_feedback;
DROP TRIGGER report_feedback_rollup_update ON persona_feedback;
DROP TRIGGER report_feedback_rollup_delete ON persona_feedback;
DROP TRIGGER report_actions_rollup_insert ON persona_actions;
DROP TRIGGER report_actions_rollup_update ON persona_actions;
DROP TRIGGER report_actions_rollup_delete ON persona_actions;
DROP TRIGGER report_runs_rollup_insert ON persona_runs;
DROP TRIGGER report_runs_rollup_update ON persona_runs;
DROP TRIGGER report_runs_rollup_delete ON persona_runs;
COMMENT ON FUNCTION report_feedback_rollup() IS 'unused since 000070 (kept for its down.sql)';
COMMENT ON FUNCTION report_actions_rollup() IS 'unused since 000070 (kept for its down.sql)';
COMMENT ON FUNCTION report_runs_rollup() IS 'unused since 000070 (kept for its down.sql)';

-- Several rows per key: the unique keys become plain indexes. Existing rows are one per
-- key already, so they start folded (a constant default: no table rewrite).
DROP INDEX report_ratings_hourly_key;
ALTER TABLE report_ratings_daily DROP CONSTRAINT report_ratings_daily_pkey;
DROP INDEX report_calls_hourly_key;
ALTER TABLE report_tokens_hourly DROP CONSTRAINT report_tokens_hourly_pkey;
ALTER TABLE report_ratings_hourly ADD COLUMN folded boolean NOT NULL DEFAULT true;
ALTER TABLE report_ratings_daily ADD COLUMN folded boolean NOT NULL DEFAULT true;
ALTER TABLE report_calls_hourly ADD COLUMN folded boolean NOT NULL DEFAULT true;
ALTER TABLE report_tokens_hourly ADD COLUMN folded boolean NOT NULL DEFAULT true;
ALTER TABLE report_ratings_hourly ALTER COLUMN folded SET DEFAULT false;
ALTER TABLE report_ratings_daily ALTER COLUMN folded SET DEFAULT false;
ALTER TABLE report_calls_hourly ALTER COLUMN folded SET DEFAULT false;
ALTER TABLE report_tokens_hourly ALTER COLUMN folded SET DEFAULT false;
CREATE INDEX report_ratings_hourly_key ON report_ratings_hourly (hour, module, app_version);
CREATE INDEX report_ratings_daily_key ON report_ratings_daily (module, day, persona_id);
CREATE INDEX report_calls_hourly_key ON report_calls_hourly (hour, module, app_version);
CREATE INDEX report_tokens_hourly_key ON report_tokens_hourly (hour, provider, model);
-- What the next compaction folds.
CREATE INDEX report_ratings_hourly_unfolded ON report_ratings_hourly (hour) WHERE NOT folded;
CREATE INDEX report_ratings_daily_unfolded ON report_ratings_daily (day) WHERE NOT folded;
CREATE INDEX report_calls_hourly_unfolded ON report_calls_hourly (hour) WHERE NOT folded;
CREATE INDEX report_tokens_hourly_unfolded ON report_tokens_hourly (hour) WHERE NOT folded;

-- Waits for the persona's writers before a run's app version is read (see above).
CREATE FUNCTION report_lock_persona(p uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7423100, hashtext(p::text));
END
$$;

-- One rating row's share (sign ±1) of both rating rollups.
CREATE FUNCTION report_rating_add(sign int8, f persona_feedback) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_lock_persona(f.persona_id);
    INSERT INTO report_ratings_hourly (hour, module, app_version, n, sum, sum_sq, unparsed)
    SELECT date_trunc('hour', f.created_at, 'UTC'), f.module,
           (SELECT r.app_version FROM persona_runs r WHERE r.id = f.tick_id),
           CASE WHEN f.rating IS NULL THEN 0 ELSE sign END,
           coalesce(sign * f.rating, 0), coalesce(sign * f.rating * f.rating, 0),
           CASE WHEN f.rating IS NULL THEN sign ELSE 0 END;
    IF f.rating IS NOT NULL THEN
        INSERT INTO report_ratings_daily (day, module, persona_id, n, sum, sum_sq)
        VALUES (date_trunc('day', f.created_at, 'UTC'), f.module, f.persona_id, sign,
                sign * f.rating, sign * f.rating * f.rating);
    END IF;
END
$$;

-- One tool call's share; a batch's tick id `{runId}~k` belongs to run `runId`.
CREATE FUNCTION report_call_add(sign int8, a persona_actions) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_lock_persona(a.persona_id);
    INSERT INTO report_calls_hourly (hour, module, app_version, calls, errors)
    SELECT date_trunc('hour', a.created_at, 'UTC'), a.module,
           (SELECT r.app_version FROM persona_runs r WHERE r.id = split_part(a.tick_id, '~', 1)),
           sign, CASE WHEN a.result = 'error' THEN sign ELSE 0 END;
END
$$;

-- One run's share of the tokens rollup.
CREATE FUNCTION report_run_add(sign int8, r persona_runs) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_tokens_hourly (hour, provider, model, runs, input, output, cache_read,
                                      cache_write)
    VALUES (date_trunc('hour', r.started_at, 'UTC'), r.provider, r.model, sign,
            sign * r.tokens_input, sign * r.tokens_output, sign * r.tokens_cache_read,
            sign * r.tokens_cache_write);
END
$$;

-- A run's ratings and tool calls move from app version `old_v` to `new_v` (NULL: no run).
CREATE FUNCTION report_run_moved(run text, persona uuid, old_v text, new_v text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_lock_persona(persona);
    INSERT INTO report_ratings_hourly (hour, module, app_version, n, sum, sum_sq, unparsed)
    SELECT date_trunc('hour', x.created_at, 'UTC'), x.module, s.v,
           coalesce(sum(s.sign) FILTER (WHERE x.rating IS NOT NULL), 0),
           coalesce(sum(s.sign * x.rating), 0), coalesce(sum(s.sign * x.rating * x.rating), 0),
           coalesce(sum(s.sign) FILTER (WHERE x.rating IS NULL), 0)
      FROM persona_feedback x
     CROSS JOIN (VALUES (-1::int8, old_v), (1::int8, new_v)) AS s(sign, v)
     WHERE x.tick_id = run
     GROUP BY 1, 2, 3;
    INSERT INTO report_calls_hourly (hour, module, app_version, calls, errors)
    SELECT date_trunc('hour', x.created_at, 'UTC'), x.module, s.v, sum(s.sign),
           coalesce(sum(s.sign) FILTER (WHERE x.result = 'error'), 0)
      FROM persona_actions x
     CROSS JOIN (VALUES (-1::int8, old_v), (1::int8, new_v)) AS s(sign, v)
     WHERE split_part(x.tick_id, '~', 1) = run
     GROUP BY 1, 2, 3;
END
$$;

CREATE FUNCTION report_feedback_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN PERFORM report_rating_add(-1, OLD); END IF;
    IF TG_OP <> 'DELETE' THEN PERFORM report_rating_add(1, NEW); END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION report_actions_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN PERFORM report_call_add(-1, OLD); END IF;
    IF TG_OP <> 'DELETE' THEN PERFORM report_call_add(1, NEW); END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION report_runs_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM report_run_add(1, NEW);
        PERFORM report_run_moved(NEW.id, NEW.persona_id, NULL, NEW.app_version);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM report_run_add(-1, OLD);
        PERFORM report_run_moved(OLD.id, OLD.persona_id, OLD.app_version, NULL);
    ELSE
        IF (OLD.started_at, OLD.provider, OLD.model, OLD.tokens_input, OLD.tokens_output,
            OLD.tokens_cache_read, OLD.tokens_cache_write)
           IS DISTINCT FROM (NEW.started_at, NEW.provider, NEW.model, NEW.tokens_input,
            NEW.tokens_output, NEW.tokens_cache_read, NEW.tokens_cache_write) THEN
            PERFORM report_run_add(-1, OLD);
            PERFORM report_run_add(1, NEW);
        END IF;
        IF OLD.app_version IS DISTINCT FROM NEW.app_version THEN
            PERFORM report_run_moved(NEW.id, NEW.persona_id, OLD.app_version, NEW.app_version);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER report_feedback_rollup AFTER INSERT OR DELETE ON persona_feedback
    FOR EACH ROW EXECUTE FUNCTION report_feedback_row();
CREATE TRIGGER report_feedback_rollup_update AFTER UPDATE ON persona_feedback
    FOR EACH ROW
    WHEN ((OLD.tick_id, OLD.module, OLD.rating, OLD.created_at, OLD.persona_id)
          IS DISTINCT FROM (NEW.tick_id, NEW.module, NEW.rating, NEW.created_at, NEW.persona_id))
    EXECUTE FUNCTION report_feedback_row();
CREATE TRIGGER report_actions_rollup AFTER INSERT OR DELETE ON persona_actions
    FOR EACH ROW EXECUTE FUNCTION report_actions_row();
CREATE TRIGGER report_actions_rollup_update AFTER UPDATE ON persona_actions
    FOR EACH ROW
    WHEN ((OLD.tick_id, OLD.module, OLD.result, OLD.created_at, OLD.persona_id)
          IS DISTINCT FROM (NEW.tick_id, NEW.module, NEW.result, NEW.created_at, NEW.persona_id))
    EXECUTE FUNCTION report_actions_row();
CREATE TRIGGER report_runs_rollup AFTER INSERT OR DELETE ON persona_runs
    FOR EACH ROW EXECUTE FUNCTION report_runs_row();
CREATE TRIGGER report_runs_rollup_update AFTER UPDATE ON persona_runs
    FOR EACH ROW
    WHEN ((OLD.started_at, OLD.provider, OLD.model, OLD.tokens_input, OLD.tokens_output,
           OLD.tokens_cache_read, OLD.tokens_cache_write, OLD.app_version)
          IS DISTINCT FROM (NEW.started_at, NEW.provider, NEW.model, NEW.tokens_input,
           NEW.tokens_output, NEW.tokens_cache_read, NEW.tokens_cache_write, NEW.app_version))
    EXECUTE FUNCTION report_runs_row();

-- Folds every key that has unfolded rows into one folded row; keys whose sums are all
-- zero disappear. Returns the folded rows written (0 when another caller is compacting).
CREATE FUNCTION report_compact() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    total bigint := 0;
    k bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(7423101, 0) THEN
        RETURN 0;
    END IF;

    WITH keys AS MATERIALIZED (
        SELECT DISTINCT hour, module, app_version FROM report_ratings_hourly WHERE NOT folded),
    gone AS (
        DELETE FROM report_ratings_hourly t
         WHERE t.hour IN (SELECT hour FROM keys)
           AND EXISTS (SELECT 1 FROM keys k WHERE k.hour = t.hour AND k.module = t.module
                          AND k.app_version IS NOT DISTINCT FROM t.app_version)
        RETURNING t.*)
    INSERT INTO report_ratings_hourly (hour, module, app_version, n, sum, sum_sq, unparsed, folded)
    SELECT hour, module, app_version, sum(n), sum(sum), sum(sum_sq), sum(unparsed), true
      FROM gone GROUP BY 1, 2, 3
    HAVING sum(n) <> 0 OR sum(sum) <> 0 OR sum(sum_sq) <> 0 OR sum(unparsed) <> 0;
    GET DIAGNOSTICS k = ROW_COUNT;
    total := total + k;

    WITH keys AS MATERIALIZED (
        SELECT DISTINCT day, module, persona_id FROM report_ratings_daily WHERE NOT folded),
    gone AS (
        DELETE FROM report_ratings_daily t USING keys k
         WHERE k.module = t.module AND k.day = t.day AND k.persona_id = t.persona_id
        RETURNING t.*)
    INSERT INTO report_ratings_daily (day, module, persona_id, n, sum, sum_sq, folded)
    SELECT day, module, persona_id, sum(n), sum(sum), sum(sum_sq), true
      FROM gone GROUP BY 1, 2, 3
    HAVING sum(n) <> 0 OR sum(sum) <> 0 OR sum(sum_sq) <> 0;
    GET DIAGNOSTICS k = ROW_COUNT;
    total := total + k;

    WITH keys AS MATERIALIZED (
        SELECT DISTINCT hour, module, app_version FROM report_calls_hourly WHERE NOT folded),
    gone AS (
        DELETE FROM report_calls_hourly t
         WHERE t.hour IN (SELECT hour FROM keys)
           AND EXISTS (SELECT 1 FROM keys k WHERE k.hour = t.hour AND k.module = t.module
                          AND k.app_version IS NOT DISTINCT FROM t.app_version)
        RETURNING t.*)
    INSERT INTO report_calls_hourly (hour, module, app_version, calls, errors, folded)
    SELECT hour, module, app_version, sum(calls), sum(errors), true
      FROM gone GROUP BY 1, 2, 3
    HAVING sum(calls) <> 0 OR sum(errors) <> 0;
    GET DIAGNOSTICS k = ROW_COUNT;
    total := total + k;

    WITH keys AS MATERIALIZED (
        SELECT DISTINCT hour, provider, model FROM report_tokens_hourly WHERE NOT folded),
    gone AS (
        DELETE FROM report_tokens_hourly t USING keys k
         WHERE k.hour = t.hour AND k.provider = t.provider AND k.model = t.model
        RETURNING t.*)
    INSERT INTO report_tokens_hourly (hour, provider, model, runs, input, output, cache_read,
                                      cache_write, folded)
    SELECT hour, provider, model, sum(runs), sum(input), sum(output), sum(cache_read),
           sum(cache_write), true
      FROM gone GROUP BY 1, 2, 3
    HAVING sum(runs) <> 0 OR sum(input) <> 0 OR sum(output) <> 0 OR sum(cache_read) <> 0
        OR sum(cache_write) <> 0;
    GET DIAGNOSTICS k = ROW_COUNT;
    total := total + k;

    RETURN total;
END
$$;
