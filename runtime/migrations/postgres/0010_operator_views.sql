-- What operators look at and are told: dead events, a record's timeline,
-- failure notifications.
--
-- Failed jobs by function: dead events (failed `junction.deliver` jobs)
-- are counted for /metrics and /api/v1/status, at the cost of the failed
-- jobs alone, whatever else the jobs table holds.
CREATE INDEX jobs_failed ON jobs (function, backend) WHERE state = 'failed';

-- A record's timeline (GET /api/v1/records/{model}/{id}/timeline): the
-- record a job's arguments name (set by the queue when it is enqueued, a
-- JSON array such as ["local","product","p1"] or
-- ["remote","shop","product","SKU-1"]), and the events about it, found
-- without a scan. Jobs enqueued before this migration name none.
ALTER TABLE jobs ADD COLUMN record TEXT;
CREATE INDEX jobs_record ON jobs (record) WHERE record IS NOT NULL;
CREATE INDEX outbox_record ON outbox (model, local_id) WHERE local_id IS NOT NULL;

-- Failure notifications waiting for their webhook call (queue::notify),
-- and per target how many were dropped over the cap since the last call.
CREATE TABLE notifications (
    id      BIGSERIAL PRIMARY KEY,
    target  TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    backend TEXT,
    subject TEXT    NOT NULL,
    message TEXT    NOT NULL,
    at      BIGINT  NOT NULL
);
CREATE INDEX notifications_target ON notifications (target, id);
CREATE TABLE notification_drops (
    target  TEXT    PRIMARY KEY,
    dropped BIGINT  NOT NULL
);
