-- Leases on a name (a record being synced, a batch import running), so that
-- two workers — on this node or another — never run the same sync at once.
-- A lease held by a job lapses as soon as that job is no longer claimed or
-- running (a crashed node's jobs go back to pending); any lease lapses at
-- `until`.
CREATE TABLE sync_locks (
    key    TEXT    PRIMARY KEY,
    holder TEXT    NOT NULL,
    job    INTEGER,
    until  INTEGER NOT NULL
);

CREATE INDEX bindings_local ON bindings (backend, model, local_id);

-- The mapped values of each record as last synced (JSON), so that an
-- import applies only the fields the backend changed since — a local change
-- waiting for export is not overwritten — and an export knows which
-- fields the backend changed meanwhile (those win).
ALTER TABLE bindings ADD COLUMN synced TEXT;
