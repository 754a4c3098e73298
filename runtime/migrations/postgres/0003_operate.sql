-- Connector activations and the registry generation; see
-- migrations/sqlite/0003_operate.sql.
CREATE TABLE connector_activations (
    seq         BIGSERIAL PRIMARY KEY,
    name        TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    rolled_back BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX connector_activations_name ON connector_activations (name, seq);

CREATE TABLE registry_generation (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);

INSERT INTO registry_generation (id, value) VALUES (1, 0);
