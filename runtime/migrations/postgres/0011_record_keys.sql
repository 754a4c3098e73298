-- Natural keys of local records (an email, a SKU), as connectors' matchers
-- give them: an import or export finds the local record a backend record
-- is by key, and adopts it instead of creating a duplicate. A key may
-- name several records (that ambiguity is reported, not resolved), so the
-- key is not unique; values over 256 bytes are stored as their SHA-256.
CREATE TABLE record_keys (
    model TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    local_id TEXT NOT NULL,
    PRIMARY KEY (model, name, value, local_id)
);
-- A record's keys are replaced on every sync of it and go with it.
CREATE INDEX record_keys_of_record ON record_keys (model, local_id);
