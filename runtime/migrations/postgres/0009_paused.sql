-- Backends and channels an operator paused: no node starts their jobs
-- (they stay pending; running ones finish) until they are resumed. A
-- paused channel holds its whole subtree. Kept across restarts.
CREATE TABLE paused (
    kind      TEXT    NOT NULL CHECK (kind IN ('backend', 'channel')),
    name      TEXT    NOT NULL,
    paused_at BIGINT  NOT NULL,
    PRIMARY KEY (kind, name)
);
