-- Junction's schema on PostgreSQL: the same tables and meanings as the
-- SQLite schema (migrations/sqlite), with BIGINT for times (Unix ms) and
-- ids, TEXT for JSON, BYTEA for components.

CREATE TABLE jobs (
    id               BIGSERIAL PRIMARY KEY,
    function         TEXT    NOT NULL,
    args             TEXT    NOT NULL,
    backend          TEXT,
    state            TEXT    NOT NULL CHECK (state IN ('wait_dependencies', 'pending', 'enqueued', 'started', 'done', 'cancelled', 'failed')),
    priority         BIGINT  NOT NULL,
    eta              BIGINT  NOT NULL,
    channel          TEXT    NOT NULL,
    identity_key     TEXT,
    max_retries      BIGINT  NOT NULL,
    tries            BIGINT  NOT NULL DEFAULT 0,
    description      TEXT,
    result           TEXT,
    error_kind       TEXT,
    error_message    TEXT,
    pending_parents  BIGINT  NOT NULL DEFAULT 0,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    lease_until      BIGINT,
    node             TEXT,
    worker           TEXT,
    connector_digest TEXT
);

CREATE UNIQUE INDEX jobs_identity_live ON jobs (identity_key)
    WHERE identity_key IS NOT NULL AND state IN ('wait_dependencies', 'pending', 'enqueued');
CREATE INDEX jobs_ready ON jobs (priority, eta, id) WHERE state = 'pending';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state IN ('enqueued', 'started');
CREATE INDEX jobs_finished ON jobs (state, finished_at) WHERE state IN ('done', 'cancelled');

CREATE TABLE job_dependencies (
    parent BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    child  BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (parent, child)
);
CREATE INDEX job_dependencies_child ON job_dependencies (child);

CREATE TABLE job_logs (
    job_id  BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    try     BIGINT NOT NULL,
    level   TEXT   NOT NULL,
    source  TEXT   NOT NULL,
    message TEXT   NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE job_http_audit (
    job_id         BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    try            BIGINT NOT NULL,
    method         TEXT   NOT NULL,
    scheme         TEXT   NOT NULL,
    host           TEXT   NOT NULL,
    port           BIGINT NOT NULL,
    path           TEXT   NOT NULL,
    status         BIGINT,
    denied         TEXT,
    error          TEXT,
    request_bytes  BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE records (
    model      TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    data       TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (model, id)
);

CREATE TABLE bindings (
    backend     TEXT   NOT NULL,
    model       TEXT   NOT NULL,
    external_id TEXT   NOT NULL,
    local_id    TEXT   NOT NULL,
    sync_date   BIGINT NOT NULL,
    PRIMARY KEY (backend, model, external_id),
    UNIQUE (backend, model, local_id)
);

CREATE TABLE backends (
    name       TEXT   PRIMARY KEY,
    kind       TEXT   NOT NULL,
    version    TEXT   NOT NULL,
    config     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE connectors (
    digest           TEXT    PRIMARY KEY,
    name             TEXT    NOT NULL,
    version          TEXT    NOT NULL,
    backend_kind     TEXT    NOT NULL,
    backend_versions TEXT    NOT NULL,
    manifest         TEXT    NOT NULL,
    component        BYTEA   NOT NULL,
    active           BOOLEAN NOT NULL DEFAULT FALSE,
    installed_at     BIGINT  NOT NULL
);

CREATE TABLE stream_state (
    backend    TEXT   NOT NULL,
    key        TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (backend, key)
);

CREATE TABLE outbox (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT   NOT NULL,
    model          TEXT   NOT NULL,
    local_id       TEXT,
    changed_fields TEXT   NOT NULL,
    payload        TEXT   NOT NULL,
    origin_backend TEXT,
    created_at     BIGINT NOT NULL,
    processed_at   BIGINT
);
CREATE INDEX outbox_unprocessed ON outbox (id) WHERE processed_at IS NULL;
