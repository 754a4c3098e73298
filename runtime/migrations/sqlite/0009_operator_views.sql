-- What operators look at and are told: dead events, a record's timeline,
-- failure notifications.
--
-- Failed jobs by function: dead events (failed `junction.deliver` jobs)
-- are counted for /metrics and /api/v1/status, at the cost of the failed
-- jobs alone, whatever else the jobs table holds.
CREATE INDEX jobs_failed ON jobs (function, backend) WHERE state = 'failed';

-- A record's timeline (GET /api/v1/records/{model}/{id}/timeline): the
-- jobs naming it by local id (exports, deletes) or by a backend's external
-- id (imports), and the events about it, found without a scan.
CREATE INDEX jobs_local_record ON jobs (json_extract(args, '$.model'), json_extract(args, '$.local_id'))
    WHERE json_extract(args, '$.local_id') IS NOT NULL;
CREATE INDEX jobs_external_record ON jobs (backend, json_extract(args, '$.model'), json_extract(args, '$.external_id'))
    WHERE json_extract(args, '$.external_id') IS NOT NULL;
CREATE INDEX outbox_record ON outbox (model, local_id) WHERE local_id IS NOT NULL;

-- Failure notifications waiting for their webhook call (queue::notify),
-- and per target how many were dropped over the cap since the last call.
CREATE TABLE notifications (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    target  TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    backend TEXT,
    subject TEXT    NOT NULL,
    message TEXT    NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX notifications_target ON notifications (target, id);
CREATE TABLE notification_drops (
    target  TEXT    PRIMARY KEY,
    dropped INTEGER NOT NULL
);
