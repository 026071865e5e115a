-- Clavis on PostgreSQL: the first schema, the same tables, rules and
-- cascades as migrations/sqlite/0001_initial.sql in native types.
--
-- Conventions (the Rust side relies on them, see src/postgres/codec.rs):
-- * UUIDs are UUID. PostgreSQL orders them bytewise, as `Uuid`'s `Ord`
--   does, so `ORDER BY id` pages the same way.
-- * Timestamps are TIMESTAMPTZ (microsecond precision, UTC on the wire).
--   Nanoseconds are truncated (floored) on write, as in SQLite.
-- * Constraints are named, so that a violation can be turned into the rule
--   it broke (src/postgres/error.rs matches on these names).
-- * Text that is ordered (signing key ids) uses COLLATE "C": bytewise, like
--   SQLite, and independent of the database's locale.
-- * `position` columns keep list order (identifier URIs, owners) exactly as
--   the caller gave it.
-- * Secrets never appear here in the clear: a password credential keeps its
--   HMAC, a signing key its AEAD ciphertext.
--
-- Several nodes may start at once: sqlx's migrator holds a PostgreSQL
-- advisory lock while it applies this file (see src/postgres.rs).

-- Identifier URIs compare case-insensitively in ASCII only, exactly like
-- SQLite's NOCASE. `lower()` would follow the database's LC_CTYPE (folding
-- 'É' in one deployment and not in another); `translate` does not. The
-- function is inlined by the planner, so the expression index below serves
-- lookups written with it.
CREATE FUNCTION clavis_ascii_lower(value TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT translate(value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') $$;

-- tenants: the directories; every application, key and audit event belongs to one.
CREATE TABLE tenants (
    id                           UUID        NOT NULL,
    name                         TEXT        NOT NULL,
    signing_alg                  TEXT        NOT NULL,
    max_secret_lifetime_secs     BIGINT      NOT NULL,
    default_secret_lifetime_secs BIGINT      NOT NULL,
    created_at                   TIMESTAMPTZ NOT NULL,
    CONSTRAINT tenants_pkey PRIMARY KEY (id),
    CONSTRAINT tenants_name_unique UNIQUE (name)
);

-- applications: an app registration and its service principal (one row for
-- both: they are created and deleted together). App roles are a JSON array
-- because they are always read and replaced as a whole, in order.
CREATE TABLE applications (
    id                   UUID        NOT NULL,
    tenant_id            UUID        NOT NULL REFERENCES tenants (id),
    app_id               UUID        NOT NULL,
    service_principal_id UUID        NOT NULL,
    display_name         TEXT        NOT NULL,
    app_roles            JSONB       NOT NULL CHECK (jsonb_typeof(app_roles) = 'array'),
    builtin              BOOLEAN     NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    CONSTRAINT applications_pkey PRIMARY KEY (id),
    CONSTRAINT applications_app_id_unique UNIQUE (app_id),
    CONSTRAINT applications_service_principal_id_unique UNIQUE (service_principal_id),
    -- Targets of the tenant-scoped foreign keys below: a child row can only
    -- point at an application of its own tenant. The first also serves
    -- "a tenant's applications by id" (list pages).
    CONSTRAINT applications_tenant_id_unique UNIQUE (tenant_id, id),
    CONSTRAINT applications_tenant_service_principal_unique UNIQUE (tenant_id, service_principal_id)
);

-- application_identifier_uris: one row per URI, so the database itself keeps
-- a URI unique within a tenant (and frees it when the application goes).
CREATE TABLE application_identifier_uris (
    tenant_id      UUID    NOT NULL,
    application_id UUID    NOT NULL,
    position       INTEGER NOT NULL,
    uri            TEXT    NOT NULL,
    CONSTRAINT application_identifier_uris_pkey PRIMARY KEY (application_id, position),
    FOREIGN KEY (tenant_id, application_id)
        REFERENCES applications (tenant_id, id) ON DELETE CASCADE
);
-- URIs compare case-insensitively (ASCII), as in Entra and in SQLite.
CREATE UNIQUE INDEX application_identifier_uris_unique
    ON application_identifier_uris (tenant_id, clavis_ascii_lower(uri));

-- application_owners: who may manage an application under
-- `Application.ReadWrite.OwnedBy`, in the order the owners were given. An
-- owner is a principal id with no foreign key: portal users will be owners
-- too. Deleting an application also removes it from every owner list.
CREATE TABLE application_owners (
    application_id UUID    NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    owner_id       UUID    NOT NULL,
    CONSTRAINT application_owners_pkey PRIMARY KEY (application_id, owner_id),
    CONSTRAINT application_owners_position_unique UNIQUE (application_id, position)
);
CREATE INDEX application_owners_by_owner ON application_owners (owner_id);

-- password_credentials: client secrets as stored, i.e. their keyed hash
-- (HMAC-SHA256, 32 bytes), never their value. The hash is unique so that a
-- leaked secret reported by a scanner leads to exactly one credential.
CREATE TABLE password_credentials (
    key_id         UUID        NOT NULL,
    application_id UUID        NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    display_name   TEXT        NOT NULL,
    hint           TEXT        NOT NULL,
    secret_hash    BYTEA       NOT NULL CHECK (octet_length(secret_hash) = 32),
    start_at       TIMESTAMPTZ NOT NULL,
    end_at         TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT password_credentials_pkey PRIMARY KEY (key_id),
    CONSTRAINT password_credentials_secret_hash_unique UNIQUE (secret_hash)
);
CREATE INDEX password_credentials_by_application
    ON password_credentials (application_id, start_at, key_id);

-- app_role_assignments: app roles granted to a client service principal on a
-- resource service principal. Both ends cascade, so deleting an application
-- revokes what it held and what it granted.
CREATE TABLE app_role_assignments (
    id           UUID        NOT NULL,
    tenant_id    UUID        NOT NULL,
    principal_id UUID        NOT NULL,
    resource_id  UUID        NOT NULL,
    app_role_id  UUID        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT app_role_assignments_pkey PRIMARY KEY (id),
    CONSTRAINT app_role_assignments_unique UNIQUE (principal_id, resource_id, app_role_id),
    FOREIGN KEY (tenant_id, principal_id)
        REFERENCES applications (tenant_id, service_principal_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, resource_id)
        REFERENCES applications (tenant_id, service_principal_id) ON DELETE CASCADE
);
CREATE INDEX app_role_assignments_by_resource ON app_role_assignments (resource_id);

-- signing_keys: each tenant's token-signing keys; the private half is AEAD
-- ciphertext under the key-encryption key named by kek_id. "Newest" is
-- (created_at, kid) descending, kid compared bytewise.
CREATE TABLE signing_keys (
    kid                   TEXT COLLATE "C" NOT NULL,
    tenant_id             UUID        NOT NULL REFERENCES tenants (id),
    alg                   TEXT        NOT NULL,
    public_jwk            TEXT        NOT NULL,
    encrypted_private_key BYTEA       NOT NULL,
    kek_id                TEXT        NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    CONSTRAINT signing_keys_pkey PRIMARY KEY (kid)
);
CREATE INDEX signing_keys_by_tenant ON signing_keys (tenant_id, created_at DESC, kid DESC);

-- server_secrets: wrapped server-wide keys (e.g. the secret-hash key); the
-- first value inserted under a name wins for every node, forever.
CREATE TABLE server_secrets (
    name  TEXT  NOT NULL,
    value BYTEA NOT NULL,
    CONSTRAINT server_secrets_pkey PRIMARY KEY (name)
);

-- audit_events: who did what, to what, with which credential, and how it
-- ended. No foreign keys on purpose: the record outlives what it describes.
CREATE TABLE audit_events (
    id                         UUID        NOT NULL,
    tenant_id                  UUID        NOT NULL,
    at                         TIMESTAMPTZ NOT NULL,
    actor_app_id               UUID,
    actor_service_principal_id UUID,
    actor_display_name         TEXT        NOT NULL,
    actor_key_id               UUID,
    client_ip                  TEXT,
    activity                   TEXT        NOT NULL,
    category                   TEXT        NOT NULL,
    operation_type             TEXT        NOT NULL,
    target_type                TEXT        NOT NULL,
    target_id                  TEXT        NOT NULL,
    target_display_name        TEXT        NOT NULL,
    target_key_id              UUID,
    result                     TEXT        NOT NULL CHECK (result IN ('success', 'failure')),
    result_reason              TEXT        NOT NULL,
    correlation_id             UUID        NOT NULL,
    CONSTRAINT audit_events_pkey PRIMARY KEY (id)
);
CREATE INDEX audit_events_by_tenant_time ON audit_events (tenant_id, at DESC, id DESC);
