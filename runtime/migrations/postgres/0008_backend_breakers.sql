-- Open circuit breakers: a backend whose calls kept failing at the
-- transport (connection refused or dropped, timeout) or with 5xx answers.
-- Its jobs wait, unclaimed by every node, until a probe (`check`) after
-- `retry_at` succeeds; a failed probe doubles `cool_down` up to the
-- backend's maximum. A closed breaker has no row.
CREATE TABLE backend_breakers (
    backend   TEXT    PRIMARY KEY,
    failures  BIGINT  NOT NULL,
    reason    TEXT    NOT NULL,
    opened_at BIGINT  NOT NULL,
    retry_at  BIGINT  NOT NULL,
    cool_down BIGINT  NOT NULL,
    probes    BIGINT  NOT NULL DEFAULT 0
);
