//! The keyed hash stored in place of a client secret: HMAC-SHA256 under the
//! server's hash key, compared in constant time.
//!
//! A slow password hash buys nothing for 256-bit random secrets and would cap
//! the token endpoint; the HMAC key (held encrypted by the key provider)
//! means a stolen database alone cannot even confirm a guess.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_lc_rs::hmac;
use subtle::ConstantTimeEq;

use super::ClientSecret;

/// The stored form of a secret.
pub type SecretHash = [u8; 32];

/// Computes and checks secret hashes. `Debug` does not print the key.
#[derive(Clone)]
pub struct SecretHasher {
    key: hmac::Key,
    /// Hashes computed (for `/metrics`: one per secret checked, throttled
    /// or not, since the secret is always checked first).
    computed: Arc<AtomicU64>,
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHasher([redacted])")
    }
}

impl SecretHasher {
    /// A hasher under `key_bytes` (32 random bytes from the key provider).
    pub fn new(key_bytes: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key_bytes),
            computed: Arc::default(),
        }
    }

    /// The keyed hash of `secret`.
    pub fn hash(&self, secret: &ClientSecret) -> SecretHash {
        self.sign(secret.expose().as_bytes())
    }

    /// The keyed hash of a secret a client presented, computed over exactly
    /// [`SECRET_LEN`](super::format::SECRET_LEN) bytes whatever was sent: a
    /// value of another length (which no generated secret has, so it can
    /// never match) is replaced by a fixed filler of the right length, and
    /// the answer's time does not depend on the length an attacker chose.
    pub fn hash_presented(&self, secret: &ClientSecret) -> SecretHash {
        const FILLER: [u8; super::format::SECRET_LEN] = [0; super::format::SECRET_LEN];
        let bytes = secret.expose().as_bytes();
        if bytes.len() == super::format::SECRET_LEN {
            self.sign(bytes)
        } else {
            self.sign(&FILLER)
        }
    }

    /// The HMAC of `input`, counted.
    fn sign(&self, input: &[u8]) -> SecretHash {
        self.computed.fetch_add(1, Ordering::Relaxed);
        let tag = hmac::sign(&self.key, input);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// How many hashes this hasher (and its clones) computed.
    pub fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// Constant-time equality of two hashes.
    pub fn matches(computed: &SecretHash, stored: &SecretHash) -> bool {
        computed.ct_eq(stored).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_same_hash_other_key_other_hash() {
        let s = ClientSecret::generate();
        let a = SecretHasher::new(&[1u8; 32]);
        let b = SecretHasher::new(&[2u8; 32]);
        assert!(SecretHasher::matches(&a.hash(&s), &a.hash(&s)));
        assert!(!SecretHasher::matches(&a.hash(&s), &b.hash(&s)));
        let other = ClientSecret::generate();
        assert!(!SecretHasher::matches(&a.hash(&s), &a.hash(&other)));
    }

    #[test]
    fn hash_does_not_contain_the_secret() {
        let s = ClientSecret::generate();
        let h = SecretHasher::new(&[7u8; 32]).hash(&s);
        assert!(!h
            .windows(8)
            .any(|w| s.expose().as_bytes().windows(8).any(|x| x == w)));
        assert!(!format!("{:?}", SecretHasher::new(&[7u8; 32])).contains('7'));
    }

    #[test]
    fn presented_secrets_hash_like_stored_ones_and_odd_lengths_never_match() {
        let h = SecretHasher::new(&[3u8; 32]);
        let s = ClientSecret::generate();
        assert_eq!(h.hash_presented(&s), h.hash(&s));
        let short = ClientSecret::from_presented("clavis_x".into());
        let long = ClientSecret::from_presented("x".repeat(512));
        assert_eq!(h.hash_presented(&short), h.hash_presented(&long));
        assert!(!SecretHasher::matches(
            &h.hash_presented(&short),
            &h.hash(&s)
        ));
    }
}
