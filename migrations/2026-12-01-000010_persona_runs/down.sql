DROP INDEX IF EXISTS persona_feedback_low_idx;
DROP INDEX IF EXISTS persona_feedback_module_trend_idx;
DROP INDEX IF EXISTS persona_actions_created_idx;
DROP INDEX IF EXISTS persona_feedback_created_idx;
DROP TABLE IF EXISTS persona_runs;
