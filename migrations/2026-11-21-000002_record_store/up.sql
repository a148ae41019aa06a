-- The app's record store: an append-only change log and, updated in the same
-- transaction as each appended change, the merged current state per record.
-- No reader ever replays the log.

CREATE TABLE sync_changes (
    id bigserial PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    app_id text NOT NULL,
    table_name text NOT NULL,
    record_id text NOT NULL,
    op text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    data jsonb,
    -- field → hybrid-logical-clock stamp (lww::Stamp canonical string) of this write
    field_timestamps jsonb NOT NULL DEFAULT '{}',
    -- the change's own stamp (insert/delete marker)
    stamp text NOT NULL,
    client_id text NOT NULL,
    origin text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Pull reads one user's changes after a cursor: its cost never depends on other users' history.
CREATE INDEX sync_changes_user_cursor_idx ON sync_changes (user_id, id);

CREATE TABLE records (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    app_id text NOT NULL,
    table_name text NOT NULL,
    record_id text NOT NULL,
    -- merged field values (the winners) and their stamps
    data jsonb NOT NULL DEFAULT '{}',
    field_timestamps jsonb NOT NULL DEFAULT '{}',
    created_stamp text,
    tombstone text,
    -- not visible: deleted (tombstone ≥ latest insert) or never written
    deleted boolean NOT NULL DEFAULT false,
    last_change_id bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, app_id, table_name, record_id)
);
-- List tools: a user's live records of one table, newest first.
CREATE INDEX records_live_idx ON records (user_id, app_id, table_name, created_at DESC, record_id)
    WHERE NOT deleted;
