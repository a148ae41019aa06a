DROP TRIGGER report_runs_rollup_update ON persona_runs;
DROP TRIGGER report_runs_rollup ON persona_runs;
DROP TRIGGER report_actions_rollup_update ON persona_actions;
DROP TRIGGER report_actions_rollup ON persona_actions;
DROP TRIGGER report_feedback_rollup_update ON persona_feedback;
DROP TRIGGER report_feedback_rollup ON persona_feedback;
DROP FUNCTION report_runs_row();
DROP FUNCTION report_actions_row();
DROP FUNCTION report_feedback_row();
DROP FUNCTION report_run_moved(text, uuid, text, text);
DROP FUNCTION report_run_add(int8, persona_runs);
DROP FUNCTION report_call_add(int8, persona_actions);
DROP FUNCTION report_rating_add(int8, persona_feedback);
DROP FUNCTION report_lock_persona(uuid);

-- One row per key again.
SELECT report_compact();
DROP FUNCTION report_compact();
DROP INDEX report_tokens_hourly_unfolded;
DROP INDEX report_calls_hourly_unfolded;
DROP INDEX report_ratings_daily_unfolded;
DROP INDEX report_ratings_hourly_unfolded;
DROP INDEX report_tokens_hourly_key;
DROP INDEX report_calls_hourly_key;
DROP INDEX report_ratings_daily_key;
DROP INDEX report_ratings_hourly_key;
ALTER TABLE report_tokens_hourly DROP COLUMN folded;
ALTER TABLE report_calls_hourly DROP COLUMN folded;
ALTER TABLE report_ratings_daily DROP COLUMN folded;
ALTER TABLE report_ratings_hourly DROP COLUMN folded;
CREATE UNIQUE INDEX report_ratings_hourly_key
    ON report_ratings_hourly (hour, module, app_version) NULLS NOT DISTINCT;
ALTER TABLE report_ratings_daily ADD PRIMARY KEY (module, day, persona_id);
CREATE UNIQUE INDEX report_calls_hourly_key
    ON report_calls_hourly (hour, module, app_version) NULLS NOT DISTINCT;
ALTER TABLE report_tokens_hourly ADD PRIMARY KEY (hour, provider, model);

COMMENT ON FUNCTION report_feedback_rollup() IS NULL;
COMMENT ON FUNCTION report_actions_rollup() IS NULL;
COMMENT ON FUNCTION report_runs_rollup() IS NULL;
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
