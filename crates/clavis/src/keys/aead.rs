//! AES-256-GCM with a fresh random nonce per message: the one AEAD that seals
//! everything Clavis keeps recoverable (data keys under a key-encryption key,
//! records under their data key). Output is `nonce || ciphertext || tag`.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Bytes an AEAD message adds to its plaintext (nonce and tag).
pub const OVERHEAD: usize = NONCE_LEN + 16;

/// An AES-256-GCM key. `Debug` shows nothing of it.
pub struct AeadKey(LessSafeKey);

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey([redacted])")
    }
}

/// The message was not sealed under this key with this associated data, or
/// it was changed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("AEAD open failed: wrong key, wrong context or corrupt data")]
pub struct OpenError;

impl AeadKey {
    /// From 32 key bytes.
    pub fn new(bytes: &[u8; 32]) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key");
        Self(LessSafeKey::new(key))
    }

    /// Encrypt `plaintext` bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the OS random source failed");
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[NONCE_LEN..],
            )
            .expect("AES-GCM sealing cannot fail for in-memory buffers");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Decrypt what [`seal`](Self::seal) produced with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if sealed.len() < OVERHEAD {
            return Err(OpenError);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| OpenError)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// 32 fresh random bytes (a new key).
pub fn random_key() -> Zeroizing<[u8; 32]> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(&mut bytes[..])
        .expect("the OS random source failed");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_binds_the_associated_data_and_the_key() {
        let key = AeadKey::new(&[7u8; 32]);
        let sealed = key.seal(b"ctx", b"private bytes");
        assert_eq!(sealed.len(), OVERHEAD + 13);
        assert!(!sealed.windows(13).any(|w| w == b"private bytes"));
        assert_eq!(&key.open(b"ctx", &sealed).unwrap()[..], b"private bytes");
        assert!(key.open(b"ctY", &sealed).is_err());
        assert!(AeadKey::new(&[8u8; 32]).open(b"ctx", &sealed).is_err());
        assert!(key.open(b"ctx", &sealed[..OVERHEAD - 1]).is_err());
        let mut flipped = sealed.clone();
        flipped[OVERHEAD] ^= 1;
        assert!(key.open(b"ctx", &flipped).is_err());
        assert_ne!(
            key.seal(b"ctx", b"x"),
            key.seal(b"ctx", b"x"),
            "fresh nonce"
        );
        assert_eq!(format!("{key:?}"), "AeadKey([redacted])");
    }
}
