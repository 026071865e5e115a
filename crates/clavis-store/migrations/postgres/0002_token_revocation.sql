-- Token revocation (RFC 7009 and "revoke every token this application holds").
-- Access tokens are JWTs that resource servers check offline; these tables are
-- what introspection (RFC 7662) and the management API consult to answer
-- "is this token still active?".

-- revoked_tokens: access tokens revoked one by one, kept until they would
-- have expired anyway (after that they are inactive without help).
CREATE TABLE revoked_tokens (
    tenant_id  UUID        NOT NULL REFERENCES tenants (id),
    jti        UUID        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, jti)
);

-- token_cutoffs: every token issued to the application at or before
-- `revoked_until` is revoked. Goes with the application.
CREATE TABLE token_cutoffs (
    tenant_id      UUID        NOT NULL,
    application_id UUID        NOT NULL PRIMARY KEY,
    revoked_until  TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (tenant_id, application_id)
        REFERENCES applications (tenant_id, id) ON DELETE CASCADE
);
