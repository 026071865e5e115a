//! Each signing key's self-signed X.509 certificate, as Entra publishes one
//! per key: made once with the key (signed by the key itself, in software or
//! in the PKCS#11 token that holds it) and stored with it, so every node
//! publishes the same `x5c` and `x5t` (RFC 7517 §4.7-4.8) in the JWKS.

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, KeyUsagePurpose, RemoteKeyPair,
    SignatureAlgorithm,
};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::{Algorithm, SigningKey};

/// How long a key's certificate is valid, as Entra's: far beyond the key's
/// signing life (keys rotate every 90 days by default), so no resource
/// server that checks the dates sees it expire while the key is published.
const VALIDITY: Duration = Duration::days(5 * 365);

/// The certificate's subject and issuer common name.
const COMMON_NAME: &str = "Clavis token signing key";

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("signing key certificate: {0}")]
pub struct CertificateError(String);

/// A self-signed certificate (DER) for `key`, valid from `not_before` (the
/// key's creation) for five years. One signature by the key itself.
pub fn self_signed(
    key: Arc<SigningKey>,
    not_before: OffsetDateTime,
) -> Result<Vec<u8>, CertificateError> {
    let fail = |e: rcgen::Error| CertificateError(e.to_string());
    let remote = KeySigner::new(key)?;
    let pair = KeyPair::from_remote(Box::new(remote)).map_err(fail)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, COMMON_NAME);
    params.distinguished_name = name;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = not_before;
    params.not_after = not_before + VALIDITY;
    let cert = params.self_signed(&pair).map_err(fail)?;
    Ok(cert.der().to_vec())
}

/// `x5t`: the base64url SHA-1 thumbprint of the DER certificate (what
/// Entra's JWKS and token headers carry).
pub fn x5t(der: &[u8]) -> String {
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        der,
    ))
}

/// Add `x5t` and `x5c` (standard base64 DER, RFC 7517 §4.7: not url-safe)
/// to a published JWK.
pub fn publish(jwk: &mut Value, der: &[u8]) {
    jwk["x5t"] = json!(x5t(der));
    jwk["x5c"] = json!([STANDARD.encode(der)]);
}

/// rcgen's view of a [`SigningKey`]: its public key in X.509's encoding and
/// signatures in X.509's (DER ECDSA values rather than JWS's r||s).
struct KeySigner {
    key: Arc<SigningKey>,
    public: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl KeySigner {
    fn new(key: Arc<SigningKey>) -> Result<Self, CertificateError> {
        let jwk = key.public_jwk();
        let field = |name: &str| {
            jwk[name]
                .as_str()
                .and_then(|v| B64.decode(v).ok())
                .ok_or_else(|| CertificateError(format!("public JWK lacks {name}")))
        };
        let (public, alg) = match key.alg() {
            Algorithm::Es256 => {
                let mut point = vec![4u8];
                point.extend(field("x")?);
                point.extend(field("y")?);
                (point, &rcgen::PKCS_ECDSA_P256_SHA256)
            }
            Algorithm::EdDsa => (field("x")?, &rcgen::PKCS_ED25519),
            // RFC 8017 A.1.1 RSAPublicKey.
            Algorithm::Rs256 => (
                der_sequence(&[der_integer(&field("n")?), der_integer(&field("e")?)]),
                &rcgen::PKCS_RSA_SHA256,
            ),
        };
        Ok(Self { key, public, alg })
    }
}

impl RemoteKeyPair for KeySigner {
    fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig = self
            .key
            .sign(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        Ok(match self.key.alg() {
            // RFC 3279 §2.2.3 Ecdsa-Sig-Value from JWS's fixed r||s.
            Algorithm::Es256 if sig.len() == 64 => {
                der_sequence(&[der_integer(&sig[..32]), der_integer(&sig[32..])])
            }
            Algorithm::Es256 => return Err(rcgen::Error::RemoteKeyError),
            Algorithm::Rs256 | Algorithm::EdDsa => sig,
        })
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// DER length octets.
fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend(&bytes[skip..]);
    }
}

/// A DER INTEGER of the unsigned big-endian `value`.
fn der_integer(value: &[u8]) -> Vec<u8> {
    let skip = value.iter().take_while(|b| **b == 0).count();
    let digits = &value[skip.min(value.len().saturating_sub(1))..];
    let pad = digits.first().is_some_and(|b| b & 0x80 != 0);
    let mut out = vec![0x02];
    der_len(digits.len() + usize::from(pad), &mut out);
    if pad {
        out.push(0);
    }
    out.extend(digits);
    out
}

/// A DER SEQUENCE of already encoded `items`.
fn der_sequence(items: &[Vec<u8>]) -> Vec<u8> {
    let body = items.concat();
    let mut out = vec![0x30];
    der_len(body.len(), &mut out);
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::VerifyingKey;

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(der_integer(&[0, 0, 1]), [2, 1, 1]);
        assert_eq!(der_integer(&[0x80]), [2, 2, 0, 0x80]);
        assert_eq!(der_integer(&[0, 0]), [2, 1, 0]);
        let long = der_sequence(&[vec![0u8; 300]]);
        assert_eq!(&long[..4], [0x30, 0x82, 0x01, 0x2c]);
    }

    /// The certificate carries the key's own public key (the JWK's) and its
    /// signature verifies with that key; `x5t` is its SHA-1.
    #[test]
    fn every_algorithm_gets_a_certificate_of_its_own_key() {
        let now = OffsetDateTime::now_utc();
        for alg in Algorithm::ALL {
            let (key, _) = SigningKey::generate(alg).unwrap();
            let key = Arc::new(key);
            let der = self_signed(key.clone(), now).unwrap();
            let signer = KeySigner::new(key.clone()).unwrap();
            let public = signer.public_key().to_vec();
            assert!(
                der.windows(public.len()).any(|w| w == public),
                "{alg:?}: the certificate holds the JWK's public key"
            );
            let mut jwk = key.public_jwk().clone();
            publish(&mut jwk, &der);
            assert_eq!(jwk["x5t"].as_str().unwrap().len(), 27, "{alg:?}");
            assert_eq!(
                STANDARD.decode(jwk["x5c"][0].as_str().unwrap()).unwrap(),
                der
            );
            // Still a valid JWK for verification.
            VerifyingKey::from_jwk(&jwk).unwrap();
        }
    }

    /// The first DER element of `der`: (its encoding, its content, what follows).
    fn split(der: &[u8]) -> (&[u8], &[u8], &[u8]) {
        let (len, head) = match der[1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let count = (n & 0x7f) as usize;
                let len = der[2..2 + count]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | *b as usize);
                (len, 2 + count)
            }
        };
        (
            &der[..head + len],
            &der[head..head + len],
            &der[head + len..],
        )
    }

    /// The certificate's signature (RFC 5280 §4.1) verifies over its
    /// to-be-signed part with the key's own public key, as X.509 encodes them.
    fn assert_self_signed(der: &[u8], key: Arc<SigningKey>) {
        use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
        let (_, certificate, _) = split(der);
        let (tbs, _, rest) = split(certificate);
        let (_, _, rest) = split(rest);
        let (_, bits, _) = split(rest);
        let alg: &'static dyn VerificationAlgorithm = match key.alg() {
            Algorithm::Es256 => &signature::ECDSA_P256_SHA256_ASN1,
            Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::EdDsa => &signature::ED25519,
        };
        let signer = KeySigner::new(key).unwrap();
        UnparsedPublicKey::new(alg, signer.public_key())
            .verify(tbs, &bits[1..])
            .expect("the certificate is signed by its own key");
    }

    #[test]
    fn certificates_are_signed_by_their_key_in_software_and_in_a_token() {
        use crate::keys::pkcs11::testing::SoftHsm;
        let now = OffsetDateTime::now_utc();
        let hsm = SoftHsm::new();
        let token = Arc::new(hsm.open().unwrap());
        for alg in Algorithm::ALL {
            let (software, _) = SigningKey::generate(alg).unwrap();
            let made = token.generate_signing_key(alg).unwrap();
            let in_token = SigningKey::in_token(token.clone(), made).unwrap();
            for key in [Arc::new(software), Arc::new(in_token)] {
                let der = self_signed(key.clone(), now).unwrap();
                assert_self_signed(&der, key);
            }
        }
    }

    #[test]
    fn x5t_is_the_sha1_thumbprint() {
        // SHA-1("abc") = a9993e364706816aba3e25717850c26c9cd0d89d.
        assert_eq!(x5t(b"abc"), "qZk-NkcGgWq6PiVxeFDCbJzQ2J0");
    }
}
