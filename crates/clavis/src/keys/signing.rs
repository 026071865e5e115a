//! Token-signing keys (RS256 by default, as Entra; ES256 and EdDSA per tenant): key
//! generation, signing (in software, or by a PKCS#11 token that holds the
//! private key), public JWKs with RFC 7638 thumbprint key ids, and
//! verification of tokens Clavis itself issued.

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::pkcs11::{Pkcs11Error, Pkcs11Token, TokenKey};

/// A JWS signing algorithm Clavis supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Es256,
    Rs256,
    EdDsa,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 3] = [Algorithm::Es256, Algorithm::Rs256, Algorithm::EdDsa];

    /// What new tenants sign with: RS256, as Entra does, because much code
    /// written for Entra accepts nothing else. Existing tenants keep theirs.
    pub const DEFAULT: Algorithm = Algorithm::Rs256;

    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// Parse a JWS `alg` name (exact, case-sensitive as in RFC 7518).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// Why a key could not be made or loaded.
#[derive(Debug, thiserror::Error)]
#[error("signing key error: {0}")]
pub struct KeyError(&'static str);

/// Why a signature could not be made: the key provider failed. Callers
/// answer 503 and never sign with another key instead.
#[derive(Debug, thiserror::Error)]
#[error("signing with key {kid} failed in {provider}: {source}")]
pub struct SignError {
    pub kid: String,
    /// The key provider, for the log line ("PKCS#11 token 'clavis'").
    pub provider: String,
    #[source]
    pub source: Box<Pkcs11Error>,
}

enum PrivateKey {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
    /// Held by a PKCS#11 token; every signature is made there.
    Token {
        token: Arc<Pkcs11Token>,
        key_id: String,
    },
}

/// A private signing key with its public JWK. `Debug` shows only the kid.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    key: PrivateKey,
    public_jwk: Value,
    /// The base64url JWS protected header, fixed per key (see [`jws::encode`]).
    ///
    /// [`jws::encode`]: super::jws::encode
    jws_header: String,
    signature_len: usize,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key; returns it and its PKCS#8 encoding (to be sealed).
    pub fn generate(alg: Algorithm) -> Result<(Self, Zeroizing<Vec<u8>>), KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Algorithm::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError("P-256 key generation failed"))?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError("Ed25519 key generation failed"))?
                .as_ref()
                .to_vec(),
            Algorithm::Rs256 => {
                let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| KeyError("RSA key generation failed"))?;
                let der = pair
                    .as_der()
                    .map_err(|_| KeyError("RSA key encoding failed"))?;
                der.as_ref().to_vec()
            }
        };
        let pkcs8 = Zeroizing::new(pkcs8);
        let key = Self::from_pkcs8(alg, &pkcs8)?;
        Ok((key, pkcs8))
    }

    /// Load a key from its PKCS#8 encoding.
    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let (key, public_jwk) = match alg {
            Algorithm::Es256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                        .map_err(|_| KeyError("not a P-256 PKCS#8 key"))?;
                let point = pair.public_key().as_ref();
                let jwk = json!({"kty":"EC","crv":"P-256",
                    "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])});
                (PrivateKey::Ec(pair), jwk)
            }
            Algorithm::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
                    .map_err(|_| KeyError("not an Ed25519 PKCS#8 key"))?;
                let jwk = json!({"kty":"OKP","crv":"Ed25519",
                    "x": B64.encode(pair.public_key().as_ref())});
                (PrivateKey::Ed(pair), jwk)
            }
            Algorithm::Rs256 => {
                let pair =
                    RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError("not an RSA PKCS#8 key"))?;
                let public = pair.public_key();
                let jwk = json!({"kty":"RSA",
                    "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": B64.encode(public.exponent().big_endian_without_leading_zero())});
                (PrivateKey::Rsa(pair), jwk)
            }
        };
        Ok(Self::assemble(alg, key, public_jwk))
    }

    /// A key held by a PKCS#11 token (made by
    /// [`Pkcs11Token::generate_signing_key`]): same kid, JWK and JWS header
    /// as a software key with that public key; signing happens in the token.
    pub fn in_token(token: Arc<Pkcs11Token>, key: TokenKey) -> Result<Self, KeyError> {
        let mut checked = key.public_jwk.clone();
        checked["alg"] = json!(key.alg.as_str());
        VerifyingKey::from_jwk(&checked)?;
        let public_jwk = match (&key.public_jwk, key.alg) {
            (jwk, Algorithm::Es256) if jwk["kty"] == "EC" && jwk["crv"] == "P-256" => {
                json!({"kty":"EC","crv":"P-256","x": jwk["x"],"y": jwk["y"]})
            }
            (jwk, Algorithm::EdDsa) if jwk["kty"] == "OKP" && jwk["crv"] == "Ed25519" => {
                json!({"kty":"OKP","crv":"Ed25519","x": jwk["x"]})
            }
            (jwk, Algorithm::Rs256) if jwk["kty"] == "RSA" => {
                json!({"kty":"RSA","n": jwk["n"],"e": jwk["e"]})
            }
            _ => return Err(KeyError("token key JWK does not match its algorithm")),
        };
        let private = PrivateKey::Token {
            token,
            key_id: key.key_id,
        };
        Ok(Self::assemble(key.alg, private, public_jwk))
    }

    /// Kid, published JWK and JWS header from the public JWK members.
    fn assemble(alg: Algorithm, key: PrivateKey, public_jwk: Value) -> Self {
        let signature_len = match alg {
            Algorithm::Es256 | Algorithm::EdDsa => 64,
            Algorithm::Rs256 => public_jwk["n"]
                .as_str()
                .and_then(|n| B64.decode(n).ok())
                .map_or(0, |n| n.len()),
        };
        let kid = thumbprint(&public_jwk);
        let mut public_jwk = public_jwk;
        public_jwk["kid"] = json!(kid);
        public_jwk["use"] = json!("sig");
        public_jwk["alg"] = json!(alg.as_str());
        let jws_header = super::jws::encoded_header(alg, &kid, None);
        Self {
            kid,
            alg,
            key,
            public_jwk,
            jws_header,
            signature_len,
            rng: SystemRandom::new(),
        }
    }

    /// This key with its certificate (DER): every token it signs names the
    /// certificate's thumbprint as `x5t` in its header, as Entra's do.
    pub fn with_certificate(mut self, der: &[u8]) -> Self {
        let x5t = super::certificate::x5t(der);
        self.jws_header = super::jws::encoded_header(self.alg, &self.kid, Some(&x5t));
        self
    }

    /// Key id (RFC 7638 thumbprint of the public key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK as published in the JWKS.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// The base64url-encoded JWS protected header of every token this key
    /// signs: computed once, as it depends only on `alg` and `kid`.
    pub fn jws_header(&self) -> &str {
        &self.jws_header
    }

    /// Length in bytes of this key's signatures.
    pub fn signature_len(&self) -> usize {
        self.signature_len
    }

    /// True if a PKCS#11 token holds the private key.
    pub fn is_in_token(&self) -> bool {
        matches!(self.key, PrivateKey::Token { .. })
    }

    /// Sign `message` (the JWS signing input). Software keys do not fail;
    /// a token key fails when its token does, and then there is no token.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(match &self.key {
            PrivateKey::Ec(pair) => pair
                .sign(&self.rng, message)
                .expect("ECDSA signing does not fail for a valid key")
                .as_ref()
                .to_vec(),
            PrivateKey::Ed(pair) => pair.sign(message).as_ref().to_vec(),
            PrivateKey::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .expect("RSA signing does not fail for a valid key");
                sig
            }
            PrivateKey::Token { token, key_id } => {
                token
                    .sign(key_id, self.alg, message)
                    .map_err(|source| SignError {
                        kid: self.kid.clone(),
                        provider: format!("PKCS#11 token '{}'", token.label()),
                        source: Box::new(source),
                    })?
            }
        })
    }
}

/// A public key that checks signatures on tokens Clavis issued.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    alg: Algorithm,
    material: Material,
}

#[derive(Debug, Clone)]
enum Material {
    Raw(Vec<u8>),
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl VerifyingKey {
    /// From a published JWK (as produced by [`SigningKey::public_jwk`]).
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        let field = |name: &str| -> Result<Vec<u8>, KeyError> {
            jwk.get(name)
                .and_then(Value::as_str)
                .and_then(|s| B64.decode(s).ok())
                .ok_or(KeyError("JWK field missing or not base64url"))
        };
        let alg = jwk
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Algorithm::parse)
            .ok_or(KeyError("JWK alg missing or unsupported"))?;
        let material = match alg {
            Algorithm::Es256 => {
                let mut point = vec![4u8];
                point.extend(field("x")?);
                point.extend(field("y")?);
                Material::Raw(point)
            }
            Algorithm::EdDsa => Material::Raw(field("x")?),
            Algorithm::Rs256 => Material::Rsa {
                n: field("n")?,
                e: field("e")?,
            },
        };
        Ok(Self { alg, material })
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// True if `sig` is a valid signature of `message` by this key.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match (&self.material, self.alg) {
            (Material::Raw(point), Algorithm::Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            (Material::Raw(x), Algorithm::EdDsa) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
            (Material::Rsa { n, e }, Algorithm::Rs256) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            _ => false,
        }
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) over the required members in
/// lexicographic order.
fn thumbprint(jwk: &Value) -> String {
    let s = |k: &str| jwk[k].as_str().unwrap_or_default().to_owned();
    let canonical = match s("kty").as_str() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv"),
            s("x"),
            s("y")
        ),
        "OKP" => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, s("crv"), s("x")),
        _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e"), s("n")),
    };
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_and_verifies_and_reloads() {
        for alg in Algorithm::ALL {
            let (key, pkcs8) = SigningKey::generate(alg).unwrap();
            let sig = key.sign(b"header.payload").unwrap();
            let verifier = VerifyingKey::from_jwk(key.public_jwk()).unwrap();
            assert!(verifier.verify(b"header.payload", &sig), "{alg:?}");
            assert!(!verifier.verify(b"header.payloaD", &sig), "{alg:?}");
            let again = SigningKey::from_pkcs8(alg, &pkcs8).unwrap();
            assert_eq!(again.kid(), key.kid());
            assert_eq!(key.public_jwk()["kid"], key.kid());
            assert_eq!(key.public_jwk()["alg"], alg.as_str());
            assert!(!format!("{key:?}").contains("Pair"));
        }
    }

    #[test]
    fn es256_signatures_are_fixed_length_for_jws() {
        let (key, _) = SigningKey::generate(Algorithm::Es256).unwrap();
        assert_eq!(key.sign(b"x").unwrap().len(), 64);
    }

    #[test]
    fn token_keys_publish_and_sign_like_software_keys() {
        use crate::keys::jws;
        use crate::keys::pkcs11::testing::SoftHsm;
        let hsm = SoftHsm::new();
        let token = Arc::new(hsm.open().unwrap());
        for alg in Algorithm::ALL {
            let made = token.generate_signing_key(alg).unwrap();
            let key = SigningKey::in_token(token.clone(), made.clone()).unwrap();
            assert!(key.is_in_token());
            assert_eq!(key.kid(), thumbprint(&made.public_jwk), "{alg:?}");
            let (software, _) = SigningKey::generate(alg).unwrap();
            let members = |k: &SigningKey| {
                let mut m: Vec<String> = k
                    .public_jwk()
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect();
                m.sort();
                m
            };
            assert_eq!(members(&key), members(&software), "{alg:?}");
            assert_eq!(key.signature_len(), software.signature_len(), "{alg:?}");

            let verifier = VerifyingKey::from_jwk(key.public_jwk()).unwrap();
            let token_jws = jws::encode(&key, &json!({"sub":"a"})).unwrap();
            assert_eq!(jws::peek_header(&token_jws).unwrap().kid, key.kid());
            let claims: Value = jws::decode(&token_jws, &verifier).unwrap();
            assert_eq!(claims["sub"], "a");
            assert!(!format!("{key:?}").contains(&hsm.pin));
        }
    }

    #[test]
    fn a_token_key_that_cannot_sign_is_a_503_never_a_fallback() {
        use crate::keys::jws;
        use crate::keys::pkcs11::testing::SoftHsm;
        use crate::oauth::error::{OAuthError, OAuthErrorKind};
        let hsm = SoftHsm::new();
        let token = Arc::new(hsm.open().unwrap());
        let made = token.generate_signing_key(Algorithm::Es256).unwrap();
        let key = SigningKey::in_token(token.clone(), made.clone()).unwrap();
        token.destroy_signing_key(&made.key_id).unwrap();
        let err = jws::encode(&key, &json!({"sub":"a"})).unwrap_err();
        assert_eq!(err.kid, key.kid());
        assert_eq!(err.provider, format!("PKCS#11 token '{}'", hsm.label));
        assert!(err.to_string().contains(&made.key_id), "{err}");
        let oauth = OAuthError::from(err);
        assert_eq!(oauth.kind, OAuthErrorKind::TemporarilyUnavailable);
        assert_eq!(oauth.kind.status(), 503);
        assert_eq!(oauth.kind.as_str(), "temporarily_unavailable");
    }

    #[test]
    fn a_token_key_jwk_must_match_its_algorithm() {
        use crate::keys::pkcs11::testing::SoftHsm;
        let hsm = SoftHsm::new();
        let token = Arc::new(hsm.open().unwrap());
        let mut made = token.generate_signing_key(Algorithm::Es256).unwrap();
        made.alg = Algorithm::EdDsa;
        assert!(SigningKey::in_token(token, made).is_err());
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let jwk = json!({"kty":"RSA","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
