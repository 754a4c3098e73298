-- Job counts by channel and state, kept by the database as jobs change, so
-- that status, metrics and `settle` read a few rows instead of counting
-- the whole jobs table (which grows with every finished job until the
-- retention purge). Several nodes write jobs at once here, so the
-- triggers append signed deltas (one row per channel and state a
-- statement changed, never an update of a shared row that concurrent
-- transactions would queue on, or deadlock over); readers sum them, and
-- the queue's maintenance folds them back into one row per channel and
-- state (`Storage::compact_counts`). The functions keep the schema they
-- were created in (`SET search_path FROM CURRENT`): a session whose
-- search path lacks it (psql, pgbench, another tool) can still write jobs.
CREATE TABLE job_counts (
    channel TEXT   NOT NULL,
    state   TEXT   NOT NULL,
    n       BIGINT NOT NULL
);

CREATE FUNCTION job_counts_inserted() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO job_counts (channel, state, n)
        SELECT channel, state, COUNT(*) FROM new_jobs GROUP BY channel, state;
    RETURN NULL;
END $$;

CREATE FUNCTION job_counts_updated() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO job_counts (channel, state, n)
        SELECT channel, state, SUM(n) FROM (
            SELECT channel, state, -1 AS n FROM old_jobs
            UNION ALL
            SELECT channel, state, 1 AS n FROM new_jobs
        ) AS moved
        GROUP BY channel, state
        HAVING SUM(n) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION job_counts_deleted() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO job_counts (channel, state, n)
        SELECT channel, state, -COUNT(*) FROM old_jobs GROUP BY channel, state;
    RETURN NULL;
END $$;

-- The triggers come first: creating them locks the jobs table against
-- writers until this migration commits, so the counts below are exact.
CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_inserted();
CREATE TRIGGER job_counts_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_updated();
CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_deleted();

INSERT INTO job_counts (channel, state, n)
    SELECT channel, state, COUNT(*) FROM jobs GROUP BY channel, state;
