-- Expiry warnings: webhook subscriptions, the notices already given (one
-- row per credential and threshold, so each is given once, by one node),
-- and the delivery log / retry queue. The same tables as
-- migrations/sqlite/0005_expiry_notifications.sql in native types.

-- webhook_subscriptions: where a tenant wants expiry warnings, and at which
-- thresholds. The signing secret is stored only as AES-256-GCM ciphertext
-- under the key-encryption key (context `webhook-secret:{id}`).
CREATE TABLE webhook_subscriptions (
    id             UUID        NOT NULL,
    tenant_id      UUID        NOT NULL REFERENCES tenants (id),
    url            TEXT        NOT NULL,
    display_name   TEXT        NOT NULL,
    threshold_days TEXT        NOT NULL, -- whole days, comma-separated, largest first: 30,7,1
    sealed_secret  BYTEA       NOT NULL,
    kek_id         TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT webhook_subscriptions_pkey PRIMARY KEY (id)
);
CREATE INDEX webhook_subscriptions_by_tenant ON webhook_subscriptions (tenant_id, created_at, id);

-- expiry_notices: "this threshold of this credential was announced" (0 =
-- "it has expired"). The primary key is the idempotence: the node whose
-- INSERT ... ON CONFLICT DO NOTHING inserts the row sends the warning; a
-- racing node waits on the key, then inserts nothing. Removing the
-- credential removes its notices.
CREATE TABLE expiry_notices (
    tenant_id      UUID        NOT NULL,
    application_id UUID        NOT NULL,
    key_id         UUID        NOT NULL REFERENCES password_credentials (key_id) ON DELETE CASCADE,
    threshold_days INTEGER     NOT NULL CHECK (threshold_days >= 0),
    noticed_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT expiry_notices_pkey PRIMARY KEY (tenant_id, application_id, key_id, threshold_days)
);
CREATE INDEX expiry_notices_by_key ON expiry_notices (key_id);

-- webhook_deliveries: one POST to one subscription (the delivery log), with
-- its retry state. `payload` is the exact JSON body (never a secret value).
-- A pending row is due at next_attempt_at; a node takes due rows with
-- FOR UPDATE SKIP LOCKED and pushes next_attempt_at forward (a lease), so
-- no other node sends them meanwhile.
CREATE TABLE webhook_deliveries (
    id              UUID        NOT NULL,
    tenant_id       UUID        NOT NULL,
    subscription_id UUID        NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_type      TEXT        NOT NULL,
    key_id          UUID        NOT NULL,
    payload         TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER     NOT NULL,
    last_status     INTEGER,          -- HTTP status of the last attempt
    last_error      TEXT,             -- why the last attempt failed without a status
    created_at      TIMESTAMPTZ NOT NULL,
    last_attempt_at TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ,      -- NULL once delivered or failed
    CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (subscription_id, created_at DESC, id DESC);
