-- Job counts by channel and state, kept by the database as jobs change, so
-- that status, metrics and `settle` read a few rows instead of counting
-- the whole jobs table (which grows with every finished job until the
-- retention purge). SQLite has one writer at a time, so one row per
-- (channel, state) is updated in place.
CREATE TABLE job_counts (
    channel TEXT    NOT NULL,
    state   TEXT    NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (channel, state)
);

INSERT INTO job_counts (channel, state, n)
    SELECT channel, state, COUNT(*) FROM jobs GROUP BY channel, state;

CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_counts (channel, state, n) VALUES (NEW.channel, NEW.state, 1)
        ON CONFLICT (channel, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER job_counts_update AFTER UPDATE OF state, channel ON jobs
    WHEN OLD.state IS NOT NEW.state OR OLD.channel IS NOT NEW.channel
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE channel = OLD.channel AND state = OLD.state;
    INSERT INTO job_counts (channel, state, n) VALUES (NEW.channel, NEW.state, 1)
        ON CONFLICT (channel, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE channel = OLD.channel AND state = OLD.state;
END;
