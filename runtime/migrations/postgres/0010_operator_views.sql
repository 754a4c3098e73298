-- Indexes for what operators look at: dead events and a record's timeline.
--
-- Failed jobs by function: dead events (failed `junction.deliver` jobs)
-- are counted for /metrics and /api/v1/status, at the cost of the failed
-- jobs alone, whatever else the jobs table holds.
CREATE INDEX jobs_failed ON jobs (function, backend) WHERE state = 'failed';

-- A record's timeline (GET /api/v1/records/{model}/{id}/timeline): the
-- jobs naming it by local id (exports, deletes) or by a backend's external
-- id (imports), and the events about it, found without a scan. Job
-- arguments are always a JSON object (checked when enqueued).
CREATE INDEX jobs_local_record ON jobs (((args::jsonb) ->> 'model'), ((args::jsonb) ->> 'local_id'))
    WHERE ((args::jsonb) ->> 'local_id') IS NOT NULL;
CREATE INDEX jobs_external_record ON jobs (backend, ((args::jsonb) ->> 'model'), ((args::jsonb) ->> 'external_id'))
    WHERE ((args::jsonb) ->> 'external_id') IS NOT NULL;
CREATE INDEX outbox_record ON outbox (model, local_id) WHERE local_id IS NOT NULL;
