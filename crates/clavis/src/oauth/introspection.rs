//! Token introspection (RFC 7662) and revocation (RFC 7009): is an access
//! token Clavis issued still active — signed by the tenant, unexpired, its
//! application and the credential it was issued for still there, and not
//! revoked one by one or with all of its application's tokens?

use clavis_store::Tenant;
use serde::Serialize;
use uuid::Uuid;

use super::claims::AccessTokenClaims;
use super::client_credentials::Issuer;
use super::OAuthError;
use crate::builtin::{Role, MANAGEMENT_API_URI};
use crate::directory::Client;
use crate::keys::jws;

/// The introspection response (RFC 7662 §2.2).
#[derive(Debug, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub token: Option<ActiveToken>,
}

/// What an active token says, for the caller.
#[derive(Debug, Serialize)]
pub struct ActiveToken {
    pub token_type: &'static str,
    pub client_id: Uuid,
    pub sub: Uuid,
    pub aud: Uuid,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: Uuid,
    pub tid: Uuid,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    pub credential_id: Uuid,
}

impl Introspection {
    pub fn inactive() -> Self {
        Self {
            active: false,
            token: None,
        }
    }
}

/// The claims of `token` if it is active now; `None` for anything else
/// (malformed, foreign, expired, revoked...). Errors only when the store
/// cannot answer.
pub async fn active_claims(
    issuer: &Issuer<'_>,
    tenant: &Tenant,
    token: &str,
) -> Result<Option<AccessTokenClaims>, OAuthError> {
    if token.len() > 16 * 1024 {
        return Ok(None);
    }
    let keys = issuer.keyring.for_tenant(tenant).await.map_err(|e| {
        if e.is_unavailable() {
            OAuthError::unavailable()
        } else {
            tracing::error!(error = %e, "cannot load signing keys");
            OAuthError::internal()
        }
    })?;
    let Ok(header) = jws::peek_header(token) else {
        return Ok(None);
    };
    let Some(verifier) = keys.verifiers.get(&header.kid) else {
        return Ok(None);
    };
    let Ok(claims) = jws::decode::<AccessTokenClaims>(token, verifier) else {
        return Ok(None);
    };
    let now = issuer.clock.now().unix_timestamp();
    if claims.tid != tenant.id
        || claims.exp <= now
        || claims.nbf > now + 60
        || claims.iss != format!("{}/{}/v2.0", issuer.base_url, tenant.id)
    {
        return Ok(None);
    }
    // The application and the credential the token was issued for must
    // still exist: removing a secret or deleting an app ends its tokens.
    let Some(client) = issuer.directory.client(tenant.id, claims.azp).await? else {
        return Ok(None);
    };
    if !client
        .app
        .password_credentials
        .iter()
        .any(|c| c.key_id == claims.credential_id)
    {
        return Ok(None);
    }
    let store = issuer.directory.store();
    if store.token_revoked(tenant.id, claims.jti).await? {
        return Ok(None);
    }
    if let Some(until) = store.tokens_revoked_until(tenant.id, client.app.id).await? {
        if claims.iat <= until.unix_timestamp() {
            return Ok(None);
        }
    }
    Ok(Some(claims))
}

/// May `caller` learn about (or revoke) this token? Its holder, its
/// audience (the resource server), or a tenant admin
/// (`Application.ReadWrite.All`) may.
pub async fn may_see(
    issuer: &Issuer<'_>,
    tenant: &Tenant,
    caller: &Client,
    claims: &AccessTokenClaims,
) -> Result<bool, OAuthError> {
    if claims.azp == caller.app.app_id || claims.aud == caller.app.app_id {
        return Ok(true);
    }
    let Some(management) = issuer
        .directory
        .resource(tenant.id, MANAGEMENT_API_URI)
        .await?
    else {
        return Ok(false);
    };
    let admin = Role::ApplicationReadWriteAll.id();
    Ok(caller
        .grants
        .iter()
        .any(|g| g.resource_id == management.service_principal_id && g.app_role_id == admin))
}

/// The response for an active token.
pub fn describe(claims: AccessTokenClaims) -> Introspection {
    Introspection {
        active: true,
        token: Some(ActiveToken {
            token_type: "Bearer",
            client_id: claims.azp,
            sub: claims.sub,
            aud: claims.aud,
            iss: claims.iss,
            iat: claims.iat,
            nbf: claims.nbf,
            exp: claims.exp,
            jti: claims.jti,
            tid: claims.tid,
            roles: claims.roles,
            credential_id: claims.credential_id,
        }),
    }
}
