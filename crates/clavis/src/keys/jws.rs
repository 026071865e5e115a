//! Compact JWS (RFC 7515) for access tokens: encode with a [`SigningKey`],
//! and decode + verify tokens Clavis issued (the management API's bearer
//! tokens).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::signing::SignError;
use super::{Algorithm, SigningKey, VerifyingKey};

/// The protected header of a Clavis token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    pub kid: String,
    pub typ: String,
    /// The SHA-1 thumbprint of the key's certificate (as Entra sends it;
    /// `None` for a key without one yet and for tokens issued before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5t: Option<String>,
}

/// The base64url JWS protected header for a key:
/// `{"alg":..,"kid":..,"typ":"JWT","x5t":..}` (`x5t` when the key has a
/// certificate). [`SigningKey`] keeps it, so signing does not serialize it again.
pub(crate) fn encoded_header(alg: Algorithm, kid: &str, x5t: Option<&str>) -> String {
    let header = Header {
        alg: alg.as_str().to_owned(),
        kid: kid.to_owned(),
        typ: "JWT".to_owned(),
        x5t: x5t.map(str::to_owned),
    };
    B64.encode(serde_json::to_vec(&header).expect("header serializes"))
}

/// Room for the JSON claims of a typical access token, so serializing them
/// does not grow the buffer several times.
const CLAIMS_CAPACITY: usize = 1024;

/// Sign `claims` into a compact JWS. Fails only when the key's provider
/// (a PKCS#11 token) cannot sign.
pub fn encode<C: Serialize>(key: &SigningKey, claims: &C) -> Result<String, SignError> {
    let mut json = Vec::with_capacity(CLAIMS_CAPACITY);
    serde_json::to_writer(&mut json, claims).expect("claims serialize");
    let header = key.jws_header();
    let encoded = |len: usize| base64::encoded_len(len, false).expect("token length fits");
    let mut token = String::with_capacity(
        header.len() + 1 + encoded(json.len()) + 1 + encoded(key.signature_len()),
    );
    token.push_str(header);
    token.push('.');
    B64.encode_string(&json, &mut token);
    let sig = key.sign(token.as_bytes())?;
    token.push('.');
    B64.encode_string(sig, &mut token);
    Ok(token)
}

/// Why a presented token was not accepted. Deliberately coarse: callers
/// answer "invalid token" whatever the reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwsError {
    #[error("token is not a compact JWS")]
    Malformed,
    #[error("token was signed by a key this tenant does not know")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
}

/// The header of a compact JWS, without verifying anything (to find `kid`).
pub fn peek_header(token: &str) -> Result<Header, JwsError> {
    let head = token.split('.').next().ok_or(JwsError::Malformed)?;
    let bytes = B64.decode(head).map_err(|_| JwsError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwsError::Malformed)
}

/// Verify a compact JWS with `key` and decode its claims. The header's
/// `alg` must be the key's own algorithm (no `none`, no algorithm swap).
pub fn decode<C: DeserializeOwned>(token: &str, key: &VerifyingKey) -> Result<C, JwsError> {
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let header = peek_header(token)?;
    if header.alg != key.alg().as_str() {
        return Err(JwsError::BadSignature);
    }
    let sig = B64.decode(sig).map_err(|_| JwsError::Malformed)?;
    let signing_input = &token[..head.len() + 1 + body.len()];
    if !key.verify(signing_input.as_bytes(), &sig) {
        return Err(JwsError::BadSignature);
    }
    let claims = B64.decode(body).map_err(|_| JwsError::Malformed)?;
    serde_json::from_slice(&claims).map_err(|_| JwsError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn round_trip_and_tampering() {
        for alg in Algorithm::ALL {
            let (key, _) = SigningKey::generate(alg).unwrap();
            let verifier = VerifyingKey::from_jwk(key.public_jwk()).unwrap();
            let token = encode(&key, &json!({"sub":"a"})).unwrap();
            let header = peek_header(&token).unwrap();
            assert_eq!(header.kid, key.kid());
            let claims: Value = decode(&token, &verifier).unwrap();
            assert_eq!(claims["sub"], "a");
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = B64.encode(br#"{"sub":"b"}"#);
            parts[1] = &forged;
            assert_eq!(
                decode::<Value>(&parts.join("."), &verifier).unwrap_err(),
                JwsError::BadSignature
            );
            assert_eq!(
                decode::<Value>("a.b", &verifier).unwrap_err(),
                JwsError::Malformed
            );
        }
    }

    #[test]
    fn header_is_alg_kid_typ_x5t_in_that_order() {
        for alg in Algorithm::ALL {
            let (key, _) = SigningKey::generate(alg).unwrap();
            let bare = encode(&key, &json!({"sub":"a"})).unwrap();
            let head = B64.decode(bare.split('.').next().unwrap()).unwrap();
            let expected = format!(
                r#"{{"alg":"{}","kid":"{}","typ":"JWT"}}"#,
                alg.as_str(),
                key.kid()
            );
            assert_eq!(String::from_utf8(head).unwrap(), expected);
            let key = key.with_certificate(b"certificate");
            let token = encode(&key, &json!({"sub":"a"})).unwrap();
            let head = B64.decode(token.split('.').next().unwrap()).unwrap();
            let expected = format!(
                r#"{{"alg":"{}","kid":"{}","typ":"JWT","x5t":"{}"}}"#,
                alg.as_str(),
                key.kid(),
                crate::keys::certificate::x5t(b"certificate")
            );
            assert_eq!(String::from_utf8(head).unwrap(), expected);
            let x5t = crate::keys::certificate::x5t(b"certificate");
            assert_eq!(peek_header(&token).unwrap().x5t, Some(x5t));
            let sig = B64.decode(token.rsplit('.').next().unwrap()).unwrap();
            assert_eq!(sig.len(), key.signature_len(), "{alg:?}");
            assert_eq!(token.len(), token.capacity(), "{alg:?}: one allocation");
        }
    }

    #[test]
    fn alg_none_and_alg_swap_are_refused() {
        let (key, _) = SigningKey::generate(Algorithm::Es256).unwrap();
        let verifier = VerifyingKey::from_jwk(key.public_jwk()).unwrap();
        let head = B64.encode(format!(
            r#"{{"alg":"none","kid":"{}","typ":"JWT"}}"#,
            key.kid()
        ));
        let body = B64.encode(br#"{"sub":"a"}"#);
        let token = format!("{head}.{body}.");
        assert!(decode::<Value>(&token, &verifier).is_err());
    }
}
