-- Signing-key rotation. A key is published as soon as it is stored but signs
-- only from `activates_at` (pre-publication: JWKS caches of clients learn
-- it before the first token carries its kid). Keys stored before this
-- migration activated when they were made. `revoked_at` marks an emergency
-- removal: the key leaves the JWKS at once and its tokens stop verifying.
ALTER TABLE signing_keys ADD COLUMN activates_at INTEGER NOT NULL DEFAULT 0;
UPDATE signing_keys SET activates_at = created_at;
ALTER TABLE signing_keys ADD COLUMN revoked_at INTEGER;
