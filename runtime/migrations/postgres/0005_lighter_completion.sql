-- Every completed job is a new row version, and each index it belongs to
-- takes an entry: the B-tree over finished jobs cost a tree insert per job
-- for the sake of one purge a minute. A BRIN index over finished_at costs
-- next to nothing to keep (finished rows are appended roughly in time
-- order) and still lets the purge skip the ranges that hold nothing old.
DROP INDEX IF EXISTS jobs_finished;
CREATE INDEX jobs_finished_at ON jobs USING brin (finished_at);
