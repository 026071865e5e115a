-- The sign-in log: every token issued and every failed client
-- authentication, written in batches off the token path (see the server's
-- docs for how much a crash can lose). No foreign keys: the log outlives
-- the applications it names.
CREATE TABLE sign_ins (
    id         UUID        NOT NULL,      -- not a key: appends stay at the end of the table
    tenant_id  UUID        NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    app_id     UUID,             -- client id presented (when it was a GUID)
    key_id     UUID,             -- credential used (successes)
    resource   UUID,             -- resource appId (successes)
    client_ip  TEXT,
    user_agent TEXT,
    result     TEXT        NOT NULL, -- success | failure
    error_code INTEGER           -- Entra code of a failure
);
CREATE INDEX sign_ins_by_time ON sign_ins (tenant_id, at DESC, id DESC);
CREATE INDEX sign_ins_by_app ON sign_ins (tenant_id, app_id, at DESC);
