//! Client authentication with a client secret (RFC 6749 §2.3.1), shared by
//! the token, introspection and revocation endpoints: one HMAC of the
//! presented secret, compared in constant time with every credential of the
//! application, then the credential's validity window. Failures feed the
//! [`throttle`](super::throttle), which refuses a throttled caller before
//! the secret is hashed.

use std::net::IpAddr;
use std::sync::Arc;

use clavis_store::{PasswordCredential, Tenant};
use uuid::Uuid;

use super::client_credentials::Issuer;
use super::OAuthError;
use crate::directory::Client;
use crate::secret::{ClientSecret, SecretHasher};

/// The authenticated client and the key id of the credential it used.
/// `source` is the caller's address (what the throttle counts by).
pub async fn authenticate(
    issuer: &Issuer<'_>,
    tenant: &Tenant,
    tenant_segment: &str,
    client_id: Option<&str>,
    secret: Option<&ClientSecret>,
    source: Option<IpAddr>,
) -> Result<(Arc<Client>, Uuid), OAuthError> {
    let client_id = client_id.ok_or_else(|| OAuthError::missing("client_id"))?;
    let secret = secret.ok_or_else(OAuthError::no_credential)?;
    let app_id = Uuid::try_parse(client_id).map_err(|_| OAuthError::malformed_client_id())?;
    let now = issuer.clock.now();
    let throttle = issuer.throttle;
    throttle
        .check(tenant.id, source, Some(app_id), now)
        .map_err(|t| OAuthError::throttled(t.retry_after))?;
    let Some(client) = issuer.directory.client(tenant.id, app_id).await? else {
        // The same work as a wrong secret (one HMAC), so the answer's time
        // says no more than its error code.
        std::hint::black_box(issuer.hasher.hash_presented(secret));
        throttle.failed(tenant.id, source, None, now);
        return Err(OAuthError::unknown_client(client_id, tenant_segment));
    };

    let presented = issuer.hasher.hash_presented(secret);
    let mut matched = None;
    for credential in &client.app.password_credentials {
        if SecretHasher::matches(&presented, &credential.secret_hash) {
            matched = Some(credential);
        }
    }
    let failed = |error: OAuthError| {
        throttle.failed(tenant.id, source, Some(app_id), now);
        error
    };
    let credential: &PasswordCredential =
        matched.ok_or_else(|| failed(OAuthError::wrong_secret(client_id)))?;
    if now >= credential.end_at {
        return Err(failed(OAuthError::expired_secret(
            client_id,
            &credential.key_id.to_string(),
        )));
    }
    if now < credential.start_at {
        return Err(failed(OAuthError::wrong_secret(client_id)));
    }
    throttle.succeeded(tenant.id, app_id, source, now);
    let key_id = credential.key_id;
    Ok((client, key_id))
}
