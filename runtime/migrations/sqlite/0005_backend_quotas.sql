-- A backend's live jobs are counted before its connector may enqueue more
-- (limits.max_pending_jobs). Jobs of no backend (operators', benchmarks')
-- stay out of the index, so they pay nothing for it.
CREATE INDEX jobs_live_backend ON jobs (backend)
    WHERE backend IS NOT NULL AND state IN ('wait_dependencies', 'pending', 'enqueued', 'started');
