//! Client authentication with a client secret (RFC 6749 §2.3.1), shared by
//! the token, introspection and revocation endpoints: one HMAC of the
//! presented secret, compared in constant time with every credential of the
//! application, then the credential's validity window.
//!
//! The secret is checked first, always: a secret that matches one of the
//! application's credentials is answered on its merits (a token, or
//! 7000222 when it has expired) whatever anyone else sent, so no flood can
//! lock the real client out. Only a secret that matches nothing, or an
//! unknown client id, goes to the [`throttle`](super::throttle), which
//! counts it and turns its 401 into a 429 once its address or application
//! is over the limit (the flood then learns nothing more).

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
    // A failure the throttle may turn into a 429 (`app`: `None` for an
    // unknown client id, which only its address pays for).
    let refuse = |app: Option<Uuid>, error: OAuthError| match issuer
        .throttle
        .failed(tenant.id, source, app, now)
    {
        Ok(()) => error,
        Err(throttled) => OAuthError::throttled(throttled.retry_after),
    };
    let Some(client) = issuer.directory.client(tenant.id, app_id).await? else {
        // The same work as a wrong secret (one HMAC, one throttle count), so
        // the answer's time says no more than its error code.
        std::hint::black_box(issuer.hasher.hash_presented(secret));
        return Err(refuse(
            None,
            OAuthError::unknown_client(client_id, tenant_segment),
        ));
    };

    let presented = issuer.hasher.hash_presented(secret);
    let mut matched = None;
    for credential in &client.app.password_credentials {
        if SecretHasher::matches(&presented, &credential.secret_hash) {
            matched = Some(credential);
        }
    }
    let Some(credential): Option<&PasswordCredential> = matched else {
        return Err(refuse(Some(app_id), OAuthError::wrong_secret(client_id)));
    };
    // The caller holds a real secret of this application: it is answered
    // on its merits, never throttled.
    if now >= credential.end_at {
        return Err(OAuthError::expired_secret(
            client_id,
            &credential.key_id.to_string(),
        ));
    }
    if now < credential.start_at {
        return Err(OAuthError::wrong_secret(client_id));
    }
    let key_id = credential.key_id;
    Ok((client, key_id))
}
