//! AES-256-GCM inside the token, for envelope encryption: the key provider
//! seals per-record data keys under a wrapping key that never leaves the
//! token. Sealed form: nonce (12 bytes) || ciphertext || tag (16 bytes).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cryptoki::error::RvError;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};

use super::error::{code_of, rv_of};
use super::signing::handle_invalid;
use super::{lock, Pkcs11Error, Pkcs11Token};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const TAG_BITS: u64 = 128;
const AES_256_BYTES: u64 = 32;

impl Pkcs11Token {
    /// Find the AES-256 key labelled `key_label`, or generate it in the
    /// token (sensitive, never extractable, encrypt/decrypt only).
    pub fn ensure_wrapping_key(&self, key_label: &str) -> Result<(), Pkcs11Error> {
        let mut keys = lock(&self.wrapping_keys);
        if keys.contains_key(key_label) {
            return Ok(());
        }
        let handle = match self.find_wrapping_key(key_label)? {
            Some(handle) => handle,
            None => {
                let template = [
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(AES_256_BYTES.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Label(key_label.as_bytes().to_vec()),
                ];
                self.session()?.run("C_GenerateKey", |s| {
                    s.generate_key(&Mechanism::AesKeyGen, &template)
                })?
            }
        };
        keys.insert(key_label.to_owned(), handle);
        Ok(())
    }

    /// Seal `plaintext` bound to `aad` under the wrapping key `key_label`.
    pub fn encrypt(
        &self,
        key_label: &str,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Pkcs11Error> {
        let handle = self.wrapping_handle("C_Encrypt", key_label)?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Pkcs11Error::Malformed {
                operation: "C_Encrypt",
                label: self.label.clone(),
                what: "the OS random generator failed",
            })?;
        let mut iv = nonce;
        let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())
            .map_err(|e| self.fail("C_EncryptInit", &e))?;
        let session = self.session()?;
        let sealed = match session
            .get()
            .encrypt(&Mechanism::AesGcm(params), handle, plaintext)
        {
            Ok(sealed) => {
                session.release();
                sealed
            }
            Err(e) => {
                self.forget_stale(key_label, &e);
                return Err(self.fail("C_Encrypt", &e));
            }
        };
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Open what [`Pkcs11Token::encrypt`] sealed; fails unless `aad` and the
    /// key are the ones it was sealed with.
    pub fn decrypt(
        &self,
        key_label: &str,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, Pkcs11Error> {
        let handle = self.wrapping_handle("C_Decrypt", key_label)?;
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(Pkcs11Error::Malformed {
                operation: "C_Decrypt",
                label: self.label.clone(),
                what: "sealed data shorter than nonce and tag",
            });
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let mut iv = [0u8; NONCE_LEN];
        iv.copy_from_slice(nonce);
        let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())
            .map_err(|e| self.fail("C_DecryptInit", &e))?;
        let session = self.session()?;
        match session
            .get()
            .decrypt(&Mechanism::AesGcm(params), handle, body)
        {
            Ok(plain) => {
                session.release();
                Ok(plain)
            }
            // SoftHSM 2.6.1 reports a GCM tag mismatch as CKR_GENERAL_ERROR,
            // which a broken token may return too: it is a tag mismatch only
            // if the token still answers.
            Err(e) => Err(match rv_of(&e) {
                _ if handle_invalid(&e) => {
                    self.forget_stale(key_label, &e);
                    self.fail("C_Decrypt", &e)
                }
                Some(RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange) => {
                    self.unseal_error(key_label, &e)
                }
                Some(RvError::GeneralError | RvError::FunctionFailed)
                    if self.ctx.get_token_info(self.slot).is_ok() =>
                {
                    self.unseal_error(key_label, &e)
                }
                _ => self.fail("C_Decrypt", &e),
            }),
        }
    }

    /// Drop a cached handle the token no longer knows (the key was deleted,
    /// or the token logged out): the next call looks the key up again.
    fn forget_stale(&self, key_label: &str, err: &cryptoki::error::Error) {
        if handle_invalid(err) {
            lock(&self.wrapping_keys).remove(key_label);
        }
    }

    fn unseal_error(&self, key_label: &str, e: &cryptoki::error::Error) -> Pkcs11Error {
        Pkcs11Error::Unseal {
            key_label: crate::oauth::error::shorten(key_label),
            label: self.label.clone(),
            code: code_of(e),
        }
    }

    /// The handle of wrapping key `key_label`, cached or found (never made:
    /// only [`Pkcs11Token::ensure_wrapping_key`] makes keys).
    fn wrapping_handle(
        &self,
        operation: &'static str,
        key_label: &str,
    ) -> Result<ObjectHandle, Pkcs11Error> {
        let mut keys = lock(&self.wrapping_keys);
        if let Some(handle) = keys.get(key_label) {
            return Ok(*handle);
        }
        let handle = self
            .find_wrapping_key(key_label)?
            .ok_or_else(|| Pkcs11Error::NotFound {
                operation,
                what: "AES wrapping key",
                key_id: crate::oauth::error::shorten(key_label),
                label: self.label.clone(),
            })?;
        keys.insert(key_label.to_owned(), handle);
        Ok(handle)
    }

    fn find_wrapping_key(&self, key_label: &str) -> Result<Option<ObjectHandle>, Pkcs11Error> {
        let found = self.session()?.run("C_FindObjects", |s| {
            s.find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Label(key_label.as_bytes().to_vec()),
            ])
        })?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(Pkcs11Error::Ambiguous {
                key_label: crate::oauth::error::shorten(key_label),
                label: self.label.clone(),
                count: many.len(),
            }),
        }
    }
}
