//! Access-token claims, shaped like an Entra ID v2.0 app-only token (plus
//! RFC 9068's `jti` and `client_id`, and the credential that was used).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The claims of a Clavis access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessTokenClaims {
    /// `{base}/{tenant-guid}/v2.0`.
    pub iss: String,
    /// Resource application's appId.
    pub aud: Uuid,
    /// Client service principal's object id.
    pub sub: Uuid,
    /// Same as `sub` (Entra's object id claim).
    pub oid: Uuid,
    /// Client appId.
    pub azp: Uuid,
    /// RFC 9068 client id (same as `azp`).
    pub client_id: Uuid,
    /// How the client authenticated: `1` = client secret (Entra).
    pub azpacr: Cow<'static, str>,
    /// Tenant GUID.
    pub tid: Uuid,
    /// App roles the client holds on the resource; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// `app`: an application token, not a user's.
    pub idtyp: Cow<'static, str>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Unique token id.
    pub jti: Uuid,
    pub ver: Cow<'static, str>,
    /// keyId of the client credential used, so revoking it can reach its tokens.
    pub credential_id: Uuid,
}
