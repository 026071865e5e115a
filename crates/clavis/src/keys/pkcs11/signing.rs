//! Signing keys inside the token: generated there (sensitive,
//! non-extractable), used there for every JWS signature, read back only as
//! public JWK fields, and destroyed there.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use cryptoki::error::RvError;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use serde_json::{json, Value};

use super::error::{code_of, rv_of};
use super::{lock, Pkcs11Error, Pkcs11Token};
use crate::keys::Algorithm;

/// DER OID of NIST P-256 (secp256r1), the CKA_EC_PARAMS of ES256 keys.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER OID id-Ed25519 (1.3.101.112, RFC 8410), the CKA_EC_PARAMS of EdDSA keys.
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// RSA public exponent 65537.
const RSA_EXPONENT: &[u8] = &[0x01, 0x00, 0x01];
const RSA_BITS: u64 = 2048;
/// Prefix of every signing key's CKA_LABEL, so an operator can tell them apart.
pub const SIGNING_LABEL_PREFIX: &str = "clavis-sign-";

/// A signing key made in a token: where to find it (`key_id`, the hex of
/// its CKA_ID) and its public JWK members (`kty`, `crv`/`x`/`y` or `n`/`e`;
/// no `kid`, no `alg`). Enough to build a
/// [`SigningKey`](crate::keys::SigningKey) again after a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenKey {
    pub key_id: String,
    pub alg: Algorithm,
    pub public_jwk: Value,
}

/// The protection attributes of a private key, as the token reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttributes {
    pub sensitive: bool,
    pub extractable: bool,
    pub always_sensitive: bool,
    pub never_extractable: bool,
    /// What C_GetAttributeValue says when asked for the private value
    /// (CKA_VALUE; CKA_PRIVATE_EXPONENT for RSA).
    pub secret_value: SecretValue,
}

/// The answer of C_GetAttributeValue for a private key's secret value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretValue {
    /// CKR_ATTRIBUTE_SENSITIVE: the token refuses to reveal it.
    Sensitive,
    /// The token would hand it out (a badly made key).
    Readable,
    /// The attribute is unavailable or not valid for this key type.
    Absent,
}

impl Pkcs11Token {
    /// Generate a key pair for `alg` inside the token: the private key is a
    /// token object, private, sensitive, never extractable, for signing only.
    pub fn generate_signing_key(&self, alg: Algorithm) -> Result<TokenKey, Pkcs11Error> {
        let mut id = [0u8; 16];
        SystemRandom::new()
            .fill(&mut id)
            .map_err(|_| Pkcs11Error::Malformed {
                operation: "generate_signing_key",
                label: self.label.clone(),
                what: "the OS random generator failed",
            })?;
        let key_id = hex(&id);
        let label = format!("{SIGNING_LABEL_PREFIX}{key_id}");
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Id(id.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
            ]
        };
        let mut public = common(false);
        public.push(Attribute::Verify(true));
        let mut private = common(true);
        private.extend([
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Derive(false),
        ]);
        let mechanism = match alg {
            Algorithm::Es256 => {
                public.push(Attribute::EcParams(P256_OID.to_vec()));
                Mechanism::EccKeyPairGen
            }
            Algorithm::EdDsa => {
                public.push(Attribute::EcParams(ED25519_OID.to_vec()));
                Mechanism::EccEdwardsKeyPairGen
            }
            Algorithm::Rs256 => {
                public.push(Attribute::ModulusBits(RSA_BITS.into()));
                public.push(Attribute::PublicExponent(RSA_EXPONENT.to_vec()));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        let session = self.session()?;
        let generated = session
            .get()
            .generate_key_pair(&mechanism, &public, &private);
        let (public_handle, private_handle) = match generated {
            Ok(pair) => pair,
            Err(e) => {
                return Err(match rv_of(&e) {
                    Some(RvError::MechanismInvalid | RvError::CurveNotSupported) => {
                        Pkcs11Error::Unsupported {
                            what: match alg {
                                Algorithm::Es256 => "P-256 key generation (ES256)",
                                Algorithm::Rs256 => "RSA-2048 key generation (RS256)",
                                Algorithm::EdDsa => "Ed25519 key generation (EdDSA)",
                            },
                            label: self.label.clone(),
                            code: code_of(&e),
                        }
                    }
                    _ => self.fail("C_GenerateKeyPair", &e),
                });
            }
        };
        let read = self.public_jwk(session.get(), alg, public_handle);
        let public_jwk = match read {
            Ok(jwk) => jwk,
            Err(e) => {
                // Do not leave a key behind that nobody can publish.
                let _ = session.get().destroy_object(private_handle);
                let _ = session.get().destroy_object(public_handle);
                return Err(e);
            }
        };
        session.release();
        lock(&self.signing_keys).insert(key_id.clone(), private_handle);
        Ok(TokenKey {
            key_id,
            alg,
            public_jwk,
        })
    }

    /// The public JWK members of a freshly made public key.
    fn public_jwk(
        &self,
        session: &cryptoki::session::Session,
        alg: Algorithm,
        handle: ObjectHandle,
    ) -> Result<Value, Pkcs11Error> {
        let malformed = |what| Pkcs11Error::Malformed {
            operation: "C_GetAttributeValue",
            label: self.label.clone(),
            what,
        };
        let wanted = match alg {
            Algorithm::Rs256 => vec![AttributeType::Modulus, AttributeType::PublicExponent],
            _ => vec![AttributeType::EcPoint],
        };
        let attrs = session
            .get_attributes(handle, &wanted)
            .map_err(|e| self.fail("C_GetAttributeValue", &e))?;
        let mut modulus = None;
        let mut exponent = None;
        let mut point = None;
        for attr in attrs {
            match attr {
                Attribute::Modulus(v) => modulus = Some(v),
                Attribute::PublicExponent(v) => exponent = Some(v),
                Attribute::EcPoint(v) => point = Some(v),
                _ => {}
            }
        }
        Ok(match alg {
            Algorithm::Es256 => {
                let point = point.ok_or_else(|| malformed("no CKA_EC_POINT"))?;
                let raw = unwrap_octet_string(&point, 65)
                    .filter(|p| p[0] == 4)
                    .ok_or_else(|| malformed("CKA_EC_POINT is not an uncompressed P-256 point"))?;
                json!({"kty":"EC","crv":"P-256",
                    "x": B64.encode(&raw[1..33]), "y": B64.encode(&raw[33..65])})
            }
            Algorithm::EdDsa => {
                let point = point.ok_or_else(|| malformed("no CKA_EC_POINT"))?;
                let raw = unwrap_octet_string(&point, 32)
                    .ok_or_else(|| malformed("CKA_EC_POINT is not a 32-byte Ed25519 key"))?;
                json!({"kty":"OKP","crv":"Ed25519","x": B64.encode(raw)})
            }
            Algorithm::Rs256 => {
                let n = modulus.ok_or_else(|| malformed("no CKA_MODULUS"))?;
                let e = exponent.ok_or_else(|| malformed("no CKA_PUBLIC_EXPONENT"))?;
                json!({"kty":"RSA",
                    "n": B64.encode(strip_zeros(&n)), "e": B64.encode(strip_zeros(&e))})
            }
        })
    }

    /// Sign a JWS signing input with the key `key_id`, in the token. The
    /// result is JWS-ready: ES256 is r||s (64 bytes), RS256 PKCS#1 v1.5,
    /// EdDSA the 64-byte Ed25519 signature.
    pub fn sign(
        &self,
        key_id: &str,
        alg: Algorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, Pkcs11Error> {
        // SoftHSM 2.6 has no CKM_ECDSA_SHA256: hash here, sign the digest.
        let digest;
        let (mechanism, input) = match alg {
            Algorithm::Es256 => {
                digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
                (Mechanism::Ecdsa, digest.as_ref())
            }
            Algorithm::Rs256 => (Mechanism::Sha256RsaPkcs, message),
            Algorithm::EdDsa => (
                Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                message,
            ),
        };
        let mut retried = false;
        loop {
            let handle = self.signing_handle(key_id)?;
            let session = self.session()?;
            let err = match session.get().sign(&mechanism, handle, input) {
                Ok(sig) => {
                    session.release();
                    return Ok(sig);
                }
                Err(e) => e,
            };
            if !handle_invalid(&err) {
                return Err(self.fail("C_Sign", &err));
            }
            // The cached handle went stale (the token logged out and in
            // again, or the key was deleted): find the key once more.
            lock(&self.signing_keys).remove(key_id);
            if retried {
                return Err(self.fail("C_Sign", &err));
            }
            retried = true;
        }
    }

    /// Destroy both objects of a signing key (emergency removal).
    pub fn destroy_signing_key(&self, key_id: &str) -> Result<(), Pkcs11Error> {
        let id = self.parse_key_id("C_DestroyObject", key_id)?;
        lock(&self.signing_keys).remove(key_id);
        let session = self.session()?;
        let objects = session
            .get()
            .find_objects(&[Attribute::Id(id)])
            .map_err(|e| self.fail("C_FindObjects", &e))?;
        if objects.is_empty() {
            return Err(self.not_found("C_DestroyObject", key_id));
        }
        session.run("C_DestroyObject", |s| {
            objects.into_iter().try_for_each(|o| s.destroy_object(o))
        })
    }

    /// The protection attributes of the private key `key_id`.
    pub fn key_attributes(&self, key_id: &str) -> Result<KeyAttributes, Pkcs11Error> {
        let handle = self.signing_handle(key_id)?;
        let session = self.session()?;
        let flags = session
            .get()
            .get_attributes(
                handle,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::KeyType,
                ],
            )
            .map_err(|e| self.fail("C_GetAttributeValue", &e))?;
        let mut out = KeyAttributes {
            sensitive: false,
            extractable: true,
            always_sensitive: false,
            never_extractable: false,
            secret_value: SecretValue::Absent,
        };
        let mut key_type = None;
        for attr in flags {
            match attr {
                Attribute::Sensitive(v) => out.sensitive = v,
                Attribute::Extractable(v) => out.extractable = v,
                Attribute::AlwaysSensitive(v) => out.always_sensitive = v,
                Attribute::NeverExtractable(v) => out.never_extractable = v,
                Attribute::KeyType(t) => key_type = Some(t),
                _ => {}
            }
        }
        let secret = if key_type == Some(KeyType::RSA) {
            AttributeType::PrivateExponent
        } else {
            AttributeType::Value
        };
        // get_attribute_info makes the C_GetAttributeValue call and reports
        // CKR_ATTRIBUTE_SENSITIVE as `Sensitive`.
        let info = session
            .get()
            .get_attribute_info(handle, &[secret])
            .map_err(|e| self.fail("C_GetAttributeValue", &e))?;
        out.secret_value = match info.first() {
            Some(AttributeInfo::Sensitive) => SecretValue::Sensitive,
            Some(AttributeInfo::Available(_)) => SecretValue::Readable,
            _ => SecretValue::Absent,
        };
        session.release();
        Ok(out)
    }

    /// The private-key handle of `key_id`: cached, or found once.
    fn signing_handle(&self, key_id: &str) -> Result<ObjectHandle, Pkcs11Error> {
        if let Some(handle) = lock(&self.signing_keys).get(key_id) {
            return Ok(*handle);
        }
        let id = self.parse_key_id("C_FindObjects", key_id)?;
        let session = self.session()?;
        let found = session.run("C_FindObjects", |s| {
            s.find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(id),
            ])
        })?;
        let handle = *found
            .first()
            .ok_or_else(|| self.not_found("C_FindObjects", key_id))?;
        lock(&self.signing_keys).insert(key_id.to_owned(), handle);
        Ok(handle)
    }

    fn parse_key_id(&self, operation: &'static str, key_id: &str) -> Result<Vec<u8>, Pkcs11Error> {
        unhex(key_id).ok_or_else(|| self.not_found(operation, key_id))
    }

    fn not_found(&self, operation: &'static str, key_id: &str) -> Pkcs11Error {
        Pkcs11Error::NotFound {
            operation,
            what: "signing key",
            key_id: crate::oauth::error::shorten(key_id),
            label: self.label.clone(),
        }
    }
}

/// The token no longer knows this object handle.
pub(super) fn handle_invalid(err: &cryptoki::error::Error) -> bool {
    matches!(
        rv_of(err),
        Some(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid)
    )
}

/// The content of a DER OCTET STRING of `len` bytes, or the raw value if
/// the token returned it unwrapped (some do).
fn unwrap_octet_string(der: &[u8], len: usize) -> Option<&[u8]> {
    match der {
        [0x04, l, rest @ ..] if usize::from(*l) == len && rest.len() == len => Some(rest),
        raw if raw.len() == len => Some(raw),
        _ => None,
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
