//! The Clavis client-secret format: `clavis_` + 43 base62 characters from the
//! OS CSPRNG (256 bits) + a 6-character base62 CRC-32 checksum.
//!
//! Only `[A-Za-z0-9_]` appear, so a secret needs no escaping in a URL, a form
//! body or a Basic header, and a scanner can recognise one offline by prefix
//! and checksum (a random 56-character string passes with probability 2⁻³²).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, Zeroizing};

/// Every Clavis client secret starts with this.
pub const SECRET_PREFIX: &str = "clavis_";
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters of randomness: 62^43 > 2^256.
const RANDOM_LEN: usize = 43;
/// Characters of checksum: 62^6 > 2^32.
const CHECKSUM_LEN: usize = 6;
/// Total length of a secret.
pub const SECRET_LEN: usize = SECRET_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

/// A client secret value. `Debug` prints `[redacted]`; memory is zeroed on
/// drop. The only way to read it is [`ClientSecret::expose`].
#[derive(Clone, Zeroize, zeroize::ZeroizeOnDrop)]
pub struct ClientSecret(String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

impl ClientSecret {
    /// A new secret from the OS CSPRNG.
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        let mut body = Zeroizing::new(String::with_capacity(SECRET_LEN));
        body.push_str(SECRET_PREFIX);
        let mut buf = Zeroizing::new([0u8; 64]);
        while body.len() < SECRET_PREFIX.len() + RANDOM_LEN {
            rng.fill(&mut buf[..]).expect("the OS random source failed");
            for &b in buf.iter() {
                // Rejection sampling keeps every character uniform: 248 = 4*62.
                if b < 248 && body.len() < SECRET_PREFIX.len() + RANDOM_LEN {
                    body.push(ALPHABET[(b % 62) as usize] as char);
                }
            }
        }
        let checksum = checksum(&body);
        body.push_str(&checksum);
        Self(std::mem::take(&mut *body))
    }

    /// Wrap a value received from a client (no format check: a wrong value
    /// simply fails to match).
    pub fn from_presented(value: String) -> Self {
        Self(value)
    }

    /// The value itself. Call sites are few and reviewed: hashing, and the
    /// one response that creates the secret.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// First three characters after the prefix (Graph's `hint`).
    pub fn hint(&self) -> String {
        self.0
            .get(SECRET_PREFIX.len()..SECRET_PREFIX.len() + 3)
            .unwrap_or("")
            .to_owned()
    }
}

/// True if `candidate` is a well-formed Clavis secret (prefix, length,
/// alphabet and checksum), with no other knowledge. This is what a scanner
/// runs over files.
pub fn looks_like_secret(candidate: &str) -> bool {
    if candidate.len() != SECRET_LEN
        || !candidate.is_ascii()
        || !candidate.starts_with(SECRET_PREFIX)
    {
        return false;
    }
    let (body, sum) = candidate.split_at(SECRET_LEN - CHECKSUM_LEN);
    body[SECRET_PREFIX.len()..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric())
        && checksum(body) == sum
}

/// Base62 of the CRC-32 of `body`, left-padded to six characters.
pub(crate) fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).expect("base62 is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_well_formed_and_unique() {
        let a = ClientSecret::generate();
        let b = ClientSecret::generate();
        assert_eq!(a.expose().len(), SECRET_LEN);
        assert!(a.expose().starts_with(SECRET_PREFIX));
        assert!(looks_like_secret(a.expose()));
        assert_ne!(a.expose(), b.expose());
        assert!(a
            .expose()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_'));
    }

    #[test]
    fn form_and_url_encoding_leave_a_secret_unchanged() {
        let s = ClientSecret::generate();
        let encoded: String = serde_urlencoded::to_string([("s", s.expose())]).expect("encodes");
        assert_eq!(encoded, format!("s={}", s.expose()));
    }

    #[test]
    fn checksum_catches_any_single_character_change() {
        let s = ClientSecret::generate();
        let value = s.expose().to_owned();
        for i in SECRET_PREFIX.len()..value.len() {
            let mut bytes = value.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).expect("ascii");
            assert!(!looks_like_secret(&changed), "position {i} not covered");
        }
    }

    #[test]
    fn rejects_wrong_prefix_length_and_alphabet() {
        let s = ClientSecret::generate();
        let v = s.expose();
        assert!(!looks_like_secret(&v.replacen("clavis_", "clavix_", 1)));
        assert!(!looks_like_secret(&v[..v.len() - 1]));
        assert!(!looks_like_secret(&format!("{v}0")));
        assert!(!looks_like_secret(&v.replacen('_', "-", 1)));
        assert!(!looks_like_secret(""));
        // Multi-byte characters where the checksum would start: no panic.
        assert!(!looks_like_secret(&format!("clavis_{}€€", "a".repeat(43))));
    }

    #[test]
    fn characters_are_roughly_uniform() {
        let mut counts = [0u32; 62];
        for _ in 0..2000 {
            let s = ClientSecret::generate();
            for b in s.expose()[SECRET_PREFIX.len()..SECRET_PREFIX.len() + RANDOM_LEN].bytes() {
                let i = ALPHABET.iter().position(|&a| a == b).expect("alphabet");
                counts[i] += 1;
            }
        }
        // 86,000 draws, 1,387 expected per character; a biased generator
        // (e.g. plain modulo over 256) would skew the first 8 by ~3%.
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 1200 && *max < 1580, "min {min} max {max}");
    }

    #[test]
    fn debug_is_redacted_and_hint_is_after_prefix() {
        let s = ClientSecret::generate();
        let dbg = format!("{s:?} {:?}", vec![s.clone()]);
        assert!(!dbg.contains(&s.expose()[SECRET_PREFIX.len()..]));
        assert!(dbg.contains("redacted"));
        assert_eq!(s.hint(), &s.expose()[7..10]);
    }
}
