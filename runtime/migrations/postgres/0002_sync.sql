-- Leases on a name (a record being synced, a batch import running); see
-- migrations/sqlite/0002_sync.sql.
CREATE TABLE sync_locks (
    key    TEXT   PRIMARY KEY,
    holder TEXT   NOT NULL,
    job    BIGINT,
    until  BIGINT NOT NULL
);

CREATE INDEX bindings_local ON bindings (backend, model, local_id);

ALTER TABLE bindings ADD COLUMN synced TEXT;
