//! The client credentials grant (RFC 6749 §4.4) with client secrets: check
//! the client, pick the resource from `{resource}/.default`, collect the
//! roles granted on it, and sign a token. No database access when the client
//! and resource are cached; never a database write.

use std::borrow::Cow;

use serde::Serialize;
use time::Duration;
use uuid::Uuid;

use super::claims::AccessTokenClaims;
use super::request::TokenRequest;
use super::{scope, OAuthError};
use crate::clock::Clock;
use crate::directory::Directory;
use crate::keys::{jws, Keyring};
use crate::secret::SecretHasher;

/// The successful response body (RFC 6749 §5.1 plus Entra's `ext_expires_in`).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub token_type: &'static str,
    pub expires_in: i64,
    pub ext_expires_in: i64,
    pub access_token: String,
}

/// What the grant needs from the running service.
#[derive(Debug)]
pub struct Issuer<'a> {
    pub directory: &'a Directory,
    pub keyring: &'a Keyring,
    pub hasher: &'a SecretHasher,
    /// Throttling of failed client authentication.
    pub throttle: &'a super::throttle::Throttle,
    pub clock: &'a dyn Clock,
    /// Public base URL, without a trailing slash.
    pub base_url: &'a str,
    pub token_lifetime: Duration,
}

/// Who got a token (for logs; no secret).
#[derive(Debug, Clone, Copy)]
pub struct Issued {
    pub tenant_id: Uuid,
    pub client_app_id: Uuid,
    pub credential_id: Uuid,
    pub resource_app_id: Uuid,
}

/// Run the grant for `tenant_segment` (GUID or name), asked from `source`.
pub async fn grant(
    issuer: &Issuer<'_>,
    tenant_segment: &str,
    request: TokenRequest,
    source: Option<std::net::IpAddr>,
) -> Result<(TokenResponse, Issued), OAuthError> {
    if request.grant_type != "client_credentials" {
        return Err(OAuthError::unsupported_grant(&request.grant_type));
    }
    let tenant = issuer
        .directory
        .tenant(tenant_segment)
        .ok_or_else(|| OAuthError::unknown_tenant(tenant_segment))?;
    let (client, credential_id) = super::client_auth::authenticate(
        issuer,
        &tenant,
        tenant_segment,
        request.client_id.as_deref(),
        request.client_secret.as_ref(),
        source,
    )
    .await?;
    let now = issuer.clock.now();

    let scope = request
        .scope
        .as_deref()
        .ok_or_else(|| OAuthError::missing("scope"))?;
    let resource_key = scope::resource_of(scope)?;
    let resource = issuer
        .directory
        .resource(tenant.id, crate::builtin::canonical_resource(resource_key))
        .await?
        .ok_or_else(|| OAuthError::unknown_resource(resource_key, tenant_segment))?;

    let roles = client
        .grants
        .iter()
        .filter(|g| g.resource_id == resource.service_principal_id)
        .filter_map(|g| {
            resource
                .app_roles
                .iter()
                .find(|r| r.id == g.app_role_id && r.is_enabled)
        })
        .map(|r| r.value.clone())
        .collect();

    let keys = issuer.keyring.for_tenant(&tenant).await?;
    let iat = now.unix_timestamp();
    let lifetime = issuer.token_lifetime.whole_seconds();
    let claims = AccessTokenClaims {
        iss: format!("{}/{}/v2.0", issuer.base_url, tenant.id),
        aud: resource.app_id,
        sub: client.app.service_principal_id,
        oid: client.app.service_principal_id,
        azp: client.app.app_id,
        client_id: client.app.app_id,
        azpacr: Cow::Borrowed("1"),
        tid: tenant.id,
        roles,
        idtyp: Cow::Borrowed("app"),
        iat,
        nbf: iat,
        exp: iat + lifetime,
        jti: super::claims::token_id(now),
        ver: Cow::Borrowed("2.0"),
        credential_id,
    };
    let access_token = jws::encode(keys.signer()?, &claims)?;
    Ok((
        TokenResponse {
            token_type: "Bearer",
            expires_in: lifetime,
            ext_expires_in: lifetime,
            access_token,
        },
        Issued {
            tenant_id: tenant.id,
            client_app_id: client.app.app_id,
            credential_id,
            resource_app_id: resource.app_id,
        },
    ))
}
