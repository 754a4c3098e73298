-- The nodes running on this database; see migrations/sqlite/0004_nodes.sql.
CREATE TABLE nodes (
    name         TEXT   PRIMARY KEY,
    version      TEXT   NOT NULL,
    host         TEXT   NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at   BIGINT
);
