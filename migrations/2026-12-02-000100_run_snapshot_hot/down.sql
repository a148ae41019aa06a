CREATE OR REPLACE FUNCTION report_runs_row() RETURNS trigger LANGUAGE plpgsql AS $$
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

DROP INDEX persona_runs_started_idx;
CREATE INDEX persona_runs_started_idx ON persona_runs (started_at DESC, id DESC)
    INCLUDE (provider, model, tokens_input, tokens_output, tokens_cache_read, tokens_cache_write);

DROP INDEX persona_runs_transcript_idx;
ALTER TABLE persona_runs DROP COLUMN has_transcript;
CREATE INDEX persona_runs_transcript_idx ON persona_runs (started_at)
    WHERE transcript IS NOT NULL;
