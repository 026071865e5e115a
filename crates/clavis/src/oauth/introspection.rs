//! Token introspection (RFC 7662) and revocation (RFC 7009): is an access
//! token Clavis issued still active — signed by the tenant, unexpired, its
//! application and the credential it was issued for still there, and not
//! revoked one by one or with all of its application's tokens?

use std::sync::Arc;

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

/// Why a token Clavis was shown is not active (for the caller's error text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inactive {
    TooLong,
    Malformed,
    UnknownKey,
    KeyRevoked,
    BadSignature,
    OtherTenant,
    Expired,
    NotYetValid,
    OtherIssuer,
    OtherAudience,
    ClientGone,
    CredentialGone,
    Revoked,
    ApplicationRevoked,
}

impl Inactive {
    /// A sentence saying why.
    pub fn reason(self) -> &'static str {
        match self {
            Inactive::TooLong => "the token is too long",
            Inactive::Malformed => "the token is not a JWT",
            Inactive::UnknownKey => "the token was not signed by this tenant",
            Inactive::KeyRevoked => "the key that signed the token was revoked",
            Inactive::BadSignature => "the token signature is invalid",
            Inactive::OtherTenant => "the token belongs to another tenant",
            Inactive::Expired => "the token has expired",
            Inactive::NotYetValid => "the token is not valid yet",
            Inactive::OtherIssuer => "the token was issued for another address of this server",
            Inactive::OtherAudience => "the token is for another audience",
            Inactive::ClientGone => "the calling application was deleted",
            Inactive::CredentialGone => "the credential this token was issued for was removed",
            Inactive::Revoked => "the token was revoked",
            Inactive::ApplicationRevoked => "the application's tokens were revoked",
        }
    }
}

/// Longest token looked at.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Clock skew tolerated on `nbf` (and, where asked, on `exp`).
pub const LEEWAY_SECS: i64 = 60;

/// What a check of a presented token requires beyond the common rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect {
    /// Only tokens for this audience (appId) are active.
    pub audience: Option<Uuid>,
    /// Tolerate `exp` this many seconds in the past.
    pub exp_leeway: i64,
}

/// Check a token Clavis issued, the one set of rules for introspection,
/// revocation and the management API: [`verify`] then [`still_active`].
/// `Ok(Err(why))` for an inactive token; `Err` only when the store or keys
/// cannot answer.
pub async fn check(
    issuer: &Issuer<'_>,
    tenant: &Tenant,
    token: &str,
    expect: Expect,
) -> Result<Result<(AccessTokenClaims, Arc<Client>), Inactive>, OAuthError> {
    let claims = match verify(issuer, tenant, token, expect).await? {
        Ok(claims) => claims,
        Err(why) => return Ok(Err(why)),
    };
    Ok(still_active(issuer, tenant, &claims)
        .await?
        .map(|client| (claims, client)))
}

/// What a token says about itself, checked without the store: signed by
/// one of the tenant's keys, in its validity window, from this issuer (and
/// `expect`'s audience). The same work for any token of the tenant,
/// whether it was revoked since or not.
pub async fn verify(
    issuer: &Issuer<'_>,
    tenant: &Tenant,
    token: &str,
    expect: Expect,
) -> Result<Result<AccessTokenClaims, Inactive>, OAuthError> {
    if token.len() > MAX_TOKEN_LEN {
        return Ok(Err(Inactive::TooLong));
    }
    let keys = issuer.keyring.for_tenant(tenant).await?;
    let Ok(header) = jws::peek_header(token) else {
        return Ok(Err(Inactive::Malformed));
    };
    let Some(verifier) = keys.verifiers.get(&header.kid) else {
        if keys.revoked.contains(&header.kid) {
            return Ok(Err(Inactive::KeyRevoked));
        }
        return Ok(Err(Inactive::UnknownKey));
    };
    let Ok(claims) = jws::decode::<AccessTokenClaims>(token, verifier) else {
        return Ok(Err(Inactive::BadSignature));
    };
    let now = issuer.clock.now().unix_timestamp();
    if let Some(why) = claims_inactive(&claims, tenant.id, issuer.base_url, now, expect) {
        return Ok(Err(why));
    }
    Ok(Ok(claims))
}

/// Whether a [`verify`]d token still stands: its application and the
/// credential it was issued for still there, and not revoked one by one or
/// with all of its application's tokens (precise to the millisecond, see
/// [`AccessTokenClaims::issued_by`]).
pub async fn still_active(
    issuer: &Issuer<'_>,
    tenant: &Tenant,
    claims: &AccessTokenClaims,
) -> Result<Result<Arc<Client>, Inactive>, OAuthError> {
    // The application and the credential the token was issued for must
    // still exist: removing a secret or deleting an app ends its tokens.
    let Some(client) = issuer.directory.client(tenant.id, claims.azp).await? else {
        return Ok(Err(Inactive::ClientGone));
    };
    if !client
        .app
        .password_credentials
        .iter()
        .any(|c| c.key_id == claims.credential_id)
    {
        return Ok(Err(Inactive::CredentialGone));
    }
    let store = issuer.directory.store();
    if store.token_revoked(tenant.id, claims.jti).await? {
        return Ok(Err(Inactive::Revoked));
    }
    if let Some(until) = store.tokens_revoked_until(tenant.id, client.app.id).await? {
        if claims.issued_by(until) {
            return Ok(Err(Inactive::ApplicationRevoked));
        }
    }
    Ok(Ok(client))
}

/// The checks of a verified token's claims that need neither store nor
/// keys: its tenant, validity window (at unix time `now`), issuer (under
/// `base_url`) and `expect`'s audience. `None` when they all pass.
pub fn claims_inactive(
    claims: &AccessTokenClaims,
    tenant_id: Uuid,
    base_url: &str,
    now: i64,
    expect: Expect,
) -> Option<Inactive> {
    // In i128: `exp` and `nbf` are whatever the token says, and adding the
    // leeway must not overflow.
    let (exp, nbf, now) = (
        i128::from(claims.exp),
        i128::from(claims.nbf),
        i128::from(now),
    );
    if claims.tid != tenant_id {
        Some(Inactive::OtherTenant)
    } else if exp + i128::from(expect.exp_leeway) <= now {
        Some(Inactive::Expired)
    } else if nbf - i128::from(LEEWAY_SECS) > now {
        Some(Inactive::NotYetValid)
    } else if claims.iss != format!("{base_url}/{tenant_id}/v2.0") {
        Some(Inactive::OtherIssuer)
    } else if expect.audience.is_some_and(|aud| aud != claims.aud) {
        Some(Inactive::OtherAudience)
    } else {
        None
    }
}

/// The claims of `token` if it is active now (no leeway on `exp`) and
/// `caller` may know about it ([`may_see`]); `None` for anything else.
/// Whether the caller may see it is decided before the store is asked
/// whether it was revoked: for a token that is not the caller's business,
/// a live one and a revoked one cost the same work and get the same answer.
pub async fn visible_active_claims(
    issuer: &Issuer<'_>,
    tenant: &Tenant,
    caller: &Client,
    token: &str,
) -> Result<Option<AccessTokenClaims>, OAuthError> {
    let Ok(claims) = verify(issuer, tenant, token, Expect::default()).await? else {
        return Ok(None);
    };
    if !may_see(issuer, tenant, caller, &claims).await? {
        return Ok(None);
    }
    Ok(still_active(issuer, tenant, &claims)
        .await?
        .ok()
        .map(|_| claims))
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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    const BASE: &str = "https://clavis.example";

    fn claims(tid: Uuid, nbf: i64, exp: i64) -> AccessTokenClaims {
        let id = Uuid::from_u128(7);
        AccessTokenClaims {
            iss: format!("{BASE}/{tid}/v2.0"),
            aud: id,
            sub: id,
            oid: id,
            azp: id,
            client_id: id,
            azpacr: Cow::Borrowed("1"),
            tid,
            roles: vec![],
            idtyp: Cow::Borrowed("app"),
            iat: nbf,
            nbf,
            exp,
            jti: id,
            ver: Cow::Borrowed("2.0"),
            credential_id: id,
        }
    }

    #[test]
    fn the_window_tenant_issuer_and_audience_are_checked() {
        let tid = Uuid::from_u128(1);
        let now = 1_800_000_000;
        let ok = claims(tid, now - 10, now + 3600);
        let leeway = Expect {
            audience: None,
            exp_leeway: LEEWAY_SECS,
        };
        assert_eq!(
            claims_inactive(&ok, tid, BASE, now, Expect::default()),
            None
        );
        let other = Uuid::from_u128(2);
        let check = |c: &AccessTokenClaims, e| claims_inactive(c, tid, BASE, now, e);
        assert_eq!(
            claims_inactive(&ok, other, BASE, now, Expect::default()),
            Some(Inactive::OtherTenant)
        );
        let expired = claims(tid, now - 3600, now - 30);
        assert_eq!(check(&expired, Expect::default()), Some(Inactive::Expired));
        assert_eq!(check(&expired, leeway), None);
        let early = claims(tid, now + 61, now + 3600);
        assert_eq!(check(&early, leeway), Some(Inactive::NotYetValid));
        assert_eq!(check(&claims(tid, now + 60, now + 3600), leeway), None);
        assert_eq!(
            claims_inactive(&ok, tid, "https://other.example", now, leeway),
            Some(Inactive::OtherIssuer)
        );
        let audience = Expect {
            audience: Some(other),
            exp_leeway: 0,
        };
        assert_eq!(check(&ok, audience), Some(Inactive::OtherAudience));
    }

    /// Found by `fuzz/run` (token_claims): `exp + leeway` and `nbf - 60`
    /// overflowed (a panic with overflow checks) on extreme claims.
    #[test]
    fn extreme_exp_and_nbf_do_not_overflow() {
        let tid = Uuid::from_u128(1);
        let leeway = Expect {
            audience: None,
            exp_leeway: LEEWAY_SECS,
        };
        let far = claims(tid, i64::MIN, i64::MAX);
        assert_eq!(claims_inactive(&far, tid, BASE, 0, leeway), None);
        assert_eq!(claims_inactive(&far, tid, BASE, i64::MAX, leeway), None);
        assert_eq!(claims_inactive(&far, tid, BASE, i64::MIN, leeway), None);
        let never = claims(tid, i64::MAX, i64::MAX);
        assert_eq!(
            claims_inactive(&never, tid, BASE, 0, leeway),
            Some(Inactive::NotYetValid)
        );
        let long_gone = claims(tid, i64::MIN, i64::MIN);
        assert_eq!(
            claims_inactive(&long_gone, tid, BASE, 0, leeway),
            Some(Inactive::Expired)
        );
    }
}
