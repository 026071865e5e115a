-- Clavis on SQLite: the first schema.
--
-- Conventions (the Rust side relies on them, see src/sqlite/codec.rs):
-- * UUIDs are TEXT, hyphenated lowercase, so text order is UUID order and
--   `ORDER BY id` pages the same way `Uuid`'s `Ord` does.
-- * Timestamps are INTEGER unix microseconds, UTC. Nanoseconds are truncated
--   (floored) on write.
-- * Tables are STRICT: a value of the wrong type is an error, not a surprise.
-- * `position` columns keep list order (identifier URIs, owners) exactly as
--   the caller gave it.
-- * Secrets never appear here in the clear: a password credential keeps its
--   HMAC, a signing key its AEAD ciphertext.

-- tenants: the directories; every application, key and audit event belongs to one.
CREATE TABLE tenants (
    id                           TEXT    NOT NULL PRIMARY KEY,
    name                         TEXT    NOT NULL UNIQUE,
    signing_alg                  TEXT    NOT NULL,
    max_secret_lifetime_secs     INTEGER NOT NULL,
    default_secret_lifetime_secs INTEGER NOT NULL,
    created_at                   INTEGER NOT NULL
) STRICT;

-- applications: an app registration and its service principal (one row for
-- both: they are created and deleted together). App roles are a JSON array
-- because they are always read and replaced as a whole, in order.
CREATE TABLE applications (
    id                   TEXT    NOT NULL PRIMARY KEY,
    tenant_id            TEXT    NOT NULL REFERENCES tenants (id),
    app_id               TEXT    NOT NULL UNIQUE,
    service_principal_id TEXT    NOT NULL UNIQUE,
    display_name         TEXT    NOT NULL,
    app_roles            TEXT    NOT NULL CHECK (json_valid(app_roles)),
    builtin              INTEGER NOT NULL CHECK (builtin IN (0, 1)),
    created_at           INTEGER NOT NULL,
    -- Targets of the tenant-scoped foreign keys below: a child row can only
    -- point at an application of its own tenant.
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, service_principal_id)
) STRICT;

-- application_identifier_uris: one row per URI, so the database itself keeps
-- a URI unique within a tenant (and frees it when the application goes).
CREATE TABLE application_identifier_uris (
    tenant_id      TEXT    NOT NULL,
    application_id TEXT    NOT NULL,
    position       INTEGER NOT NULL,
    uri            TEXT    NOT NULL COLLATE NOCASE, -- URIs compare case-insensitively, as in Entra
    PRIMARY KEY (application_id, position),
    UNIQUE (tenant_id, uri),
    FOREIGN KEY (tenant_id, application_id)
        REFERENCES applications (tenant_id, id) ON DELETE CASCADE
) STRICT;

-- application_owners: who may manage an application under
-- `Application.ReadWrite.OwnedBy`, in the order the owners were given. An
-- owner is a principal id with no foreign key: portal users will be owners
-- too. Deleting an application also removes it from every owner list.
CREATE TABLE application_owners (
    application_id TEXT    NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    owner_id       TEXT    NOT NULL,
    PRIMARY KEY (application_id, owner_id),
    UNIQUE (application_id, position)
) STRICT;
CREATE INDEX application_owners_by_owner ON application_owners (owner_id);

-- password_credentials: client secrets as stored, i.e. their keyed hash
-- (HMAC-SHA256, 32 bytes), never their value. The hash is unique so that a
-- leaked secret reported by a scanner leads to exactly one credential.
CREATE TABLE password_credentials (
    key_id         TEXT    NOT NULL PRIMARY KEY,
    application_id TEXT    NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    display_name   TEXT    NOT NULL,
    hint           TEXT    NOT NULL,
    secret_hash    BLOB    NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    start_at       INTEGER NOT NULL,
    end_at         INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX password_credentials_by_application
    ON password_credentials (application_id, start_at, key_id);

-- app_role_assignments: app roles granted to a client service principal on a
-- resource service principal. Both ends cascade, so deleting an application
-- revokes what it held and what it granted.
CREATE TABLE app_role_assignments (
    id           TEXT    NOT NULL PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    principal_id TEXT    NOT NULL,
    resource_id  TEXT    NOT NULL,
    app_role_id  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (principal_id, resource_id, app_role_id),
    FOREIGN KEY (tenant_id, principal_id)
        REFERENCES applications (tenant_id, service_principal_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, resource_id)
        REFERENCES applications (tenant_id, service_principal_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX app_role_assignments_by_resource ON app_role_assignments (resource_id);

-- signing_keys: each tenant's token-signing keys; the private half is AEAD
-- ciphertext under the key-encryption key named by kek_id.
CREATE TABLE signing_keys (
    kid                   TEXT    NOT NULL PRIMARY KEY,
    tenant_id             TEXT    NOT NULL REFERENCES tenants (id),
    alg                   TEXT    NOT NULL,
    public_jwk            TEXT    NOT NULL,
    encrypted_private_key BLOB    NOT NULL,
    kek_id                TEXT    NOT NULL,
    created_at            INTEGER NOT NULL
) STRICT;
CREATE INDEX signing_keys_by_tenant ON signing_keys (tenant_id, created_at DESC, kid DESC);

-- server_secrets: wrapped server-wide keys (e.g. the secret-hash key); the
-- first value inserted under a name wins for every node, forever.
CREATE TABLE server_secrets (
    name  TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

-- audit_events: who did what, to what, with which credential, and how it
-- ended. No foreign keys on purpose: the record outlives what it describes.
CREATE TABLE audit_events (
    id                         TEXT    NOT NULL PRIMARY KEY,
    tenant_id                  TEXT    NOT NULL,
    at                         INTEGER NOT NULL,
    actor_app_id               TEXT,
    actor_service_principal_id TEXT,
    actor_display_name         TEXT    NOT NULL,
    actor_key_id               TEXT,
    client_ip                  TEXT,
    activity                   TEXT    NOT NULL,
    category                   TEXT    NOT NULL,
    operation_type             TEXT    NOT NULL,
    target_type                TEXT    NOT NULL,
    target_id                  TEXT    NOT NULL,
    target_display_name        TEXT    NOT NULL,
    target_key_id              TEXT,
    result                     TEXT    NOT NULL CHECK (result IN ('success', 'failure')),
    result_reason              TEXT    NOT NULL,
    correlation_id             TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_events_by_tenant_time ON audit_events (tenant_id, at DESC, id DESC);
