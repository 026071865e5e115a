-- The sign-in log: every token issued and every failed client
-- authentication, written in batches off the token path (see the server's
-- docs for how much a crash can lose). No foreign keys: the log outlives
-- the applications it names.
CREATE TABLE sign_ins (
    id         TEXT    NOT NULL,          -- not a key: appends stay at the end of the table
    tenant_id  TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    app_id     TEXT,             -- client id presented (when it was a GUID)
    key_id     TEXT,             -- credential used (successes)
    resource   TEXT,             -- resource appId (successes)
    client_ip  TEXT,
    user_agent TEXT,
    result     TEXT    NOT NULL, -- success | failure
    error_code INTEGER           -- Entra code of a failure
) STRICT;
CREATE INDEX sign_ins_by_time ON sign_ins (tenant_id, at DESC, id DESC);
CREATE INDEX sign_ins_by_app ON sign_ins (tenant_id, app_id, at DESC);
