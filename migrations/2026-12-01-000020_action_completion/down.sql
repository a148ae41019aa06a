ALTER TABLE persona_actions DROP COLUMN completed_at;
