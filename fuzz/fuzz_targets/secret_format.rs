//! The client-secret format (secret/format.rs): `looks_like_secret` never
//! panics and accepts only prefix + 43 base62 + the right checksum; a secret
//! finished around any 43 base62 characters is accepted, re-formats to
//! itself, has its hint after the prefix, and no single changed character
//! passes; the keyed hash of a presented value of any length never panics
//! and equals the stored hash exactly when the value is a whole secret.
#![no_main]

use clavis::fuzzing::secret_around;
use clavis::secret::format::{looks_like_secret, SECRET_LEN};
use clavis::secret::{ClientSecret, SecretHasher, SECRET_PREFIX};
use libfuzzer_sys::fuzz_target;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if looks_like_secret(&text) {
        assert_eq!(text.len(), SECRET_LEN);
        assert!(text.starts_with(SECRET_PREFIX));
        assert!(text[SECRET_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric()));
        let random = &text[SECRET_PREFIX.len()..SECRET_PREFIX.len() + 43];
        assert_eq!(
            secret_around(random),
            text,
            "accepted secret does not re-format to itself"
        );
    }
    // Hints and hashes of whatever a client presents.
    let presented = ClientSecret::from_presented(text.clone().into_owned());
    let hint = presented.hint();
    assert!(hint.is_empty() || text[SECRET_PREFIX.len()..].starts_with(&hint));
    let hasher = SecretHasher::new(&[7u8; 32]);
    let hash = hasher.hash_presented(&presented);
    if text.len() == SECRET_LEN {
        assert_eq!(hash, hasher.hash(&presented));
    }

    // A secret around 43 characters taken from the input.
    if data.len() >= 43 {
        let random: String = data[..43]
            .iter()
            .map(|b| BASE62[usize::from(*b) % 62] as char)
            .collect();
        let secret = secret_around(&random);
        assert!(looks_like_secret(&secret));
        assert_eq!(&secret[..SECRET_PREFIX.len()], SECRET_PREFIX);
        assert_eq!(
            ClientSecret::from_presented(secret.clone()).hint(),
            random[..3]
        );
        // One changed character, at a position and to a value from the input.
        let at = SECRET_PREFIX.len()
            + usize::from(data.get(43).copied().unwrap_or(0)) % (SECRET_LEN - SECRET_PREFIX.len());
        let to = BASE62[usize::from(data.get(44).copied().unwrap_or(1)) % 62];
        let mut changed = secret.clone().into_bytes();
        if changed[at] != to {
            changed[at] = to;
            let changed = String::from_utf8(changed).expect("ascii");
            assert!(
                !looks_like_secret(&changed),
                "a changed character passed the checksum"
            );
        }
        // Not base62: refused.
        let with_dash = format!("{}-{}", &secret[..20], &secret[21..]);
        assert!(!looks_like_secret(&with_dash));
    }
});
