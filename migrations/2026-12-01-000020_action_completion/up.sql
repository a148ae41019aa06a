-- A persona's tool call is recorded by auth-internal in the same transaction as the
-- tool's effect (MCP `_meta` carries the action id); the runner's later write of the
-- same id completes the row (latency and result as the model saw them). Rows the
-- runner has completed carry `completed_at`; server-recorded rows not yet completed
-- (the runner died) have it NULL.
ALTER TABLE persona_actions ADD COLUMN completed_at timestamptz;
UPDATE persona_actions SET completed_at = created_at;
