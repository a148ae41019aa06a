ALTER TABLE persona_runs ALTER COLUMN transcript SET COMPRESSION default;
