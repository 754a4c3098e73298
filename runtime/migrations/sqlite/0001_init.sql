-- Junction's schema on SQLite. Times are Unix milliseconds (INTEGER) so the
-- same values work on PostgreSQL (BIGINT). JSON is stored as TEXT.

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    function         TEXT    NOT NULL,
    args             TEXT    NOT NULL,
    backend          TEXT,
    state            TEXT    NOT NULL CHECK (state IN ('wait_dependencies', 'pending', 'enqueued', 'started', 'done', 'cancelled', 'failed')),
    priority         INTEGER NOT NULL,
    eta              INTEGER NOT NULL,
    channel          TEXT    NOT NULL,
    identity_key     TEXT,
    max_retries      INTEGER NOT NULL,
    tries            INTEGER NOT NULL DEFAULT 0,
    description      TEXT,
    result           TEXT,
    error_kind       TEXT,
    error_message    TEXT,
    pending_parents  INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    lease_until      INTEGER,
    node             TEXT,
    worker           TEXT,
    connector_digest TEXT
);

-- Race-free dedup: one live job per identity key, enforced by the database.
CREATE UNIQUE INDEX jobs_identity_live ON jobs (identity_key)
    WHERE identity_key IS NOT NULL AND state IN ('wait_dependencies', 'pending', 'enqueued');
CREATE INDEX jobs_ready ON jobs (priority, eta, id) WHERE state = 'pending';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state IN ('enqueued', 'started');
CREATE INDEX jobs_finished ON jobs (state, finished_at) WHERE state IN ('done', 'cancelled');

CREATE TABLE job_dependencies (
    parent INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    child  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (parent, child)
);
CREATE INDEX job_dependencies_child ON job_dependencies (child);

CREATE TABLE job_logs (
    job_id  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    try     INTEGER NOT NULL,
    level   TEXT    NOT NULL,
    source  TEXT    NOT NULL,
    message TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE job_http_audit (
    job_id         INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    try            INTEGER NOT NULL,
    method         TEXT    NOT NULL,
    scheme         TEXT    NOT NULL,
    host           TEXT    NOT NULL,
    port           INTEGER NOT NULL,
    path           TEXT    NOT NULL,
    status         INTEGER,
    denied         TEXT,
    error          TEXT,
    request_bytes  INTEGER NOT NULL,
    response_bytes INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE records (
    model      TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (model, id)
);

CREATE TABLE bindings (
    backend     TEXT    NOT NULL,
    model       TEXT    NOT NULL,
    external_id TEXT    NOT NULL,
    local_id    TEXT    NOT NULL,
    sync_date   INTEGER NOT NULL,
    PRIMARY KEY (backend, model, external_id),
    UNIQUE (backend, model, local_id)
);

CREATE TABLE backends (
    name       TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    config     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE connectors (
    digest           TEXT    PRIMARY KEY,
    name             TEXT    NOT NULL,
    version          TEXT    NOT NULL,
    backend_kind     TEXT    NOT NULL,
    backend_versions TEXT    NOT NULL,
    manifest         TEXT    NOT NULL,
    component        BLOB    NOT NULL,
    active           INTEGER NOT NULL DEFAULT 0,
    installed_at     INTEGER NOT NULL
);

CREATE TABLE stream_state (
    backend    TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (backend, key)
);

CREATE TABLE outbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL,
    model          TEXT    NOT NULL,
    local_id       TEXT,
    changed_fields TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    origin_backend TEXT,
    created_at     INTEGER NOT NULL,
    processed_at   INTEGER
);
CREATE INDEX outbox_unprocessed ON outbox (id) WHERE processed_at IS NULL;
