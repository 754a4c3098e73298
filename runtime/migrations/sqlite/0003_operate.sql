-- Which version of each connector is in use, and since when. The newest
-- row of a name that is not rolled back is the active one; a rollback
-- marks that row and the one before it (with another digest, still
-- installed) becomes active again, so repeated rollbacks walk back.
CREATE TABLE connector_activations (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    rolled_back INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX connector_activations_name ON connector_activations (name, seq);

INSERT INTO connector_activations (name, digest, at)
    SELECT name, digest, installed_at FROM connectors WHERE active = 1 ORDER BY installed_at;

-- Bumped by every change to connectors or backends, so that each node
-- notices another node's install, activation or reconfiguration with one
-- cheap read and resolves its backends again.
CREATE TABLE registry_generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);

INSERT INTO registry_generation (id, value) VALUES (1, 0);
