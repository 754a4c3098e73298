-- The nodes running on this database: each writes its row at start and
-- every few seconds (its heartbeat), and marks it stopped on a clean stop.
-- A row whose heartbeat is old belongs to a node that died.
CREATE TABLE nodes (
    name         TEXT    PRIMARY KEY,
    version      TEXT    NOT NULL,
    host         TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    stopped_at   INTEGER
);
