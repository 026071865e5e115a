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

/// A token id that carries its issue time: a UUIDv7 (RFC 9562 §5.7) whose
/// first 48 bits are `now` in unix milliseconds, the other 74 random. Its
/// shape is any GUID's; it gives revocation a precise cut-off where `iat`
/// has whole seconds.
pub fn token_id(now: time::OffsetDateTime) -> Uuid {
    let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let random = Uuid::new_v4();
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&random.as_bytes()[6..]);
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
}

impl AccessTokenClaims {
    /// When the token was issued, in unix milliseconds: from a [`token_id`]
    /// `jti`, else (tokens issued before `jti` carried it) the start of
    /// `iat`'s second.
    pub fn issued_at_millis(&self) -> i128 {
        if self.jti.get_version_num() == 7 {
            let b = self.jti.as_bytes();
            let millis = b[..6]
                .iter()
                .fold(0u64, |m, byte| m << 8 | u64::from(*byte));
            i128::from(millis)
        } else {
            i128::from(self.iat) * 1000
        }
    }

    /// Whether the token was issued at or before `cutoff` (a revocation of
    /// every token of its application), to the millisecond. A token issued
    /// in the very millisecond of the cut-off counts as before it (the safe
    /// side: its client asks again a millisecond later). A token whose
    /// `jti` carries no time (issued before it did) counts by its `iat`
    /// second: one issued in the cut-off's second counts as before it.
    pub fn issued_by(&self, cutoff: time::OffsetDateTime) -> bool {
        if self.jti.get_version_num() == 7 {
            self.issued_at_millis() <= cutoff.unix_timestamp_nanos().div_euclid(1_000_000)
        } else {
            self.iat <= cutoff.unix_timestamp()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: Uuid, iat: i64) -> AccessTokenClaims {
        let id = Uuid::from_u128(7);
        AccessTokenClaims {
            iss: String::new(),
            aud: id,
            sub: id,
            oid: id,
            azp: id,
            client_id: id,
            azpacr: Cow::Borrowed("1"),
            tid: id,
            roles: vec![],
            idtyp: Cow::Borrowed("app"),
            iat,
            nbf: iat,
            exp: iat + 3600,
            jti,
            ver: Cow::Borrowed("2.0"),
            credential_id: id,
        }
    }

    #[test]
    fn a_token_id_carries_its_millisecond_and_is_unique() {
        let now = time::macros::datetime!(2026-03-01 12:00:00.123_456 UTC);
        let (a, b) = (token_id(now), token_id(now));
        assert_ne!(a, b);
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        let c = claims(a, now.unix_timestamp());
        assert_eq!(c.issued_at_millis(), now.unix_timestamp_nanos() / 1_000_000);
    }

    #[test]
    fn the_cut_off_is_precise_to_the_millisecond() {
        let cut = time::macros::datetime!(2026-03-01 12:00:00.500 UTC);
        let ms = time::Duration::milliseconds;
        let at = |t: time::OffsetDateTime| claims(token_id(t), t.unix_timestamp());
        // Before, in the same second: revoked.
        assert!(at(cut - ms(400)).issued_by(cut));
        // The same millisecond (even a few microseconds later): revoked.
        assert!(at(cut).issued_by(cut));
        assert!(at(cut + time::Duration::microseconds(900)).issued_by(cut));
        // The next millisecond, the same second: not revoked.
        assert!(!at(cut + ms(1)).issued_by(cut));
        assert!(!at(cut + ms(499)).issued_by(cut));
        // A token with a random jti (issued before jti carried the time):
        // by its second, as before.
        let old = claims(Uuid::new_v4(), cut.unix_timestamp());
        assert!(old.issued_by(cut));
        assert!(!claims(Uuid::new_v4(), cut.unix_timestamp() + 1).issued_by(cut));
    }
}
