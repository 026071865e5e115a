-- Credential policies (Entra's app management policy) and last-used times.
--
-- * tenants: the two rules the tenant policy did not have yet. Existing
--   tenants get the defaults new tenants get (10 secrets, secrets allowed).
-- * applications: an application's exceptions to its tenant's rules; NULL
--   means "as the tenant".
-- * password_credentials.last_used_at: the latest token issued with the
--   credential, moved forward by the sign-in log's batches.
ALTER TABLE tenants ADD COLUMN max_secrets_per_application BIGINT NOT NULL DEFAULT 10;
ALTER TABLE tenants ADD COLUMN password_credentials_allowed BOOLEAN NOT NULL DEFAULT TRUE;

ALTER TABLE applications ADD COLUMN policy_max_lifetime_secs BIGINT;
ALTER TABLE applications ADD COLUMN policy_default_lifetime_secs BIGINT;
ALTER TABLE applications ADD COLUMN policy_max_secrets BIGINT;
ALTER TABLE applications ADD COLUMN policy_password_credentials_allowed BOOLEAN;

ALTER TABLE password_credentials ADD COLUMN last_used_at TIMESTAMPTZ;
