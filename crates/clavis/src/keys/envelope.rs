//! Envelope encryption: every recoverable secret at rest (a private signing
//! key, the secrets' hash key, a webhook signing secret) is sealed under its
//! own random data key, and only the data key is wrapped by the provider's
//! key-encryption key. The record carries the KEK's id, so rewrapping under a
//! new KEK rewrites a few dozen bytes and never touches the ciphertext.
//!
//! Layout (all lengths in bytes):
//! `0x01 | id_len (1) | kek_id | wrapped_len (2, big-endian) | wrapped data key | nonce || ciphertext || tag`.
//! The wrapped data key is bound to the record's context
//! (`clavis-dek:{context}`) and the ciphertext to `clavis-data:{context}`,
//! so a blob copied onto another record fails to open.

use zeroize::Zeroizing;

use super::aead::{random_key, AeadKey};
use super::provider::{KeyProvider, ProviderError};

const VERSION: u8 = 1;

/// A sealed record and the id of the key-encryption key that wraps its data key.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub blob: Vec<u8>,
    pub kek_id: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("kek_id", &self.kek_id)
            .field("len", &self.blob.len())
            .finish()
    }
}

/// The parts of a blob, borrowed.
struct Parts<'a> {
    kek_id: &'a str,
    wrapped: &'a [u8],
    data: &'a [u8],
}

fn parse(blob: &[u8]) -> Option<Parts<'_>> {
    let (&version, rest) = blob.split_first()?;
    if version != VERSION {
        return None;
    }
    let (&id_len, rest) = rest.split_first()?;
    let (kek_id, rest) = rest.split_at_checked(usize::from(id_len))?;
    let kek_id = std::str::from_utf8(kek_id).ok()?;
    let (len, rest) = rest.split_at_checked(2)?;
    let (wrapped, data) =
        rest.split_at_checked(usize::from(u16::from_be_bytes([len[0], len[1]])))?;
    Some(Parts {
        kek_id,
        wrapped,
        data,
    })
}

fn assemble(kek_id: &str, wrapped: &[u8], data: &[u8]) -> Result<Sealed, ProviderError> {
    let id_len = u8::try_from(kek_id.len())
        .map_err(|_| ProviderError::Unsupported("key-encryption key id too long".into()))?;
    let wrapped_len = u16::try_from(wrapped.len())
        .map_err(|_| ProviderError::Unsupported("wrapped data key too long".into()))?;
    let mut blob = Vec::with_capacity(4 + kek_id.len() + wrapped.len() + data.len());
    blob.push(VERSION);
    blob.push(id_len);
    blob.extend_from_slice(kek_id.as_bytes());
    blob.extend_from_slice(&wrapped_len.to_be_bytes());
    blob.extend_from_slice(wrapped);
    blob.extend_from_slice(data);
    Ok(Sealed {
        blob,
        kek_id: kek_id.to_owned(),
    })
}

fn dek_aad(context: &str) -> Vec<u8> {
    format!("clavis-dek:{context}").into_bytes()
}

fn data_aad(context: &str) -> Vec<u8> {
    format!("clavis-data:{context}").into_bytes()
}

/// Seal `plaintext` for the record named by `context` under a fresh data key
/// wrapped by the provider's active KEK.
pub fn seal(
    provider: &KeyProvider,
    context: &str,
    plaintext: &[u8],
) -> Result<Sealed, ProviderError> {
    let dek = random_key();
    let data = AeadKey::new(&dek).seal(&data_aad(context), plaintext);
    let (kek_id, wrapped) = provider.wrap(&dek_aad(context), &dek[..])?;
    assemble(&kek_id, &wrapped, &data)
}

/// Open what [`seal`] made for `context`.
pub fn open(
    provider: &KeyProvider,
    context: &str,
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    let parts = parse(blob).ok_or(ProviderError::Open)?;
    unwrap_and_open(provider, context, &parts).map(|(_, plaintext)| plaintext)
}

/// The record's data key, unwrapped by the provider, and its plaintext.
type Opened = (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>);

fn unwrap_and_open(
    provider: &KeyProvider,
    context: &str,
    parts: &Parts<'_>,
) -> Result<Opened, ProviderError> {
    let dek = provider.unwrap(parts.kek_id, &dek_aad(context), parts.wrapped)?;
    let key: &[u8; 32] = dek[..].try_into().map_err(|_| ProviderError::Open)?;
    let plaintext = AeadKey::new(key)
        .open(&data_aad(context), parts.data)
        .map_err(|_| ProviderError::Open)?;
    Ok((dek, plaintext))
}

/// The id of the KEK that wraps `blob`'s data key, if it is a sealed blob.
pub fn kek_id(blob: &[u8]) -> Option<&str> {
    parse(blob).map(|p| p.kek_id)
}

/// `blob` with its data key rewrapped under the provider's active KEK;
/// `None` if it already is. The record must open (data key and ciphertext)
/// before it is rewritten, so a damaged record is reported, not preserved.
pub fn rewrap(
    provider: &KeyProvider,
    context: &str,
    blob: &[u8],
) -> Result<Option<Sealed>, ProviderError> {
    let parts = parse(blob).ok_or(ProviderError::Open)?;
    if parts.kek_id == provider.active_kek_id() {
        return Ok(None);
    }
    let (dek, _) = unwrap_and_open(provider, context, &parts)?;
    let (kek_id, wrapped) = provider.wrap(&dek_aad(context), &dek)?;
    assemble(&kek_id, &wrapped, parts.data).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::kek::{KekSet, KeyEncryptionKey};

    fn provider(set: KekSet) -> KeyProvider {
        KeyProvider::software(set, None)
    }

    #[test]
    fn each_record_has_its_own_data_key_bound_to_its_context() {
        let p = provider(KekSet::single(KeyEncryptionKey::generate()));
        let a = seal(&p, "signing-key:a", b"private bytes").unwrap();
        let b = seal(&p, "signing-key:a", b"private bytes").unwrap();
        assert_ne!(a.blob, b.blob);
        assert_eq!(a.kek_id, p.active_kek_id());
        assert_eq!(kek_id(&a.blob), Some(a.kek_id.as_str()));
        assert!(!a.blob.windows(13).any(|w| w == b"private bytes"));
        assert_eq!(
            &open(&p, "signing-key:a", &a.blob).unwrap()[..],
            b"private bytes"
        );
        assert!(open(&p, "signing-key:b", &a.blob).is_err());
        for cut in [0, 1, 5, a.blob.len() - 1] {
            assert!(open(&p, "signing-key:a", &a.blob[..cut]).is_err(), "{cut}");
        }
        let mut flipped = a.blob.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open(&p, "signing-key:a", &flipped).is_err());
    }

    #[test]
    fn rewrap_moves_the_data_key_to_the_active_kek_and_keeps_the_ciphertext() {
        let old = KekSet::single(KeyEncryptionKey::generate());
        let sealed = seal(&provider(old.clone()), "ctx", b"value").unwrap();
        let rotated = provider(old.with_active(KeyEncryptionKey::generate()));
        let moved = rewrap(&rotated, "ctx", &sealed.blob).unwrap().unwrap();
        assert_eq!(moved.kek_id, rotated.active_kek_id());
        assert!(moved.blob.ends_with(&sealed.blob[sealed.blob.len() - 20..]));
        assert!(rewrap(&rotated, "ctx", &moved.blob).unwrap().is_none());
        assert_eq!(&open(&rotated, "ctx", &moved.blob).unwrap()[..], b"value");
        // Without the key that wrapped it, a record does not open.
        let new_only = provider(KekSet::single(KeyEncryptionKey::generate()));
        assert!(matches!(
            open(&new_only, "ctx", &sealed.blob),
            Err(ProviderError::UnknownKek(_))
        ));
        assert!(rewrap(&rotated, "other", &sealed.blob).is_err());
    }

    #[test]
    fn new_records_follow_the_installation_kek_when_it_is_held() {
        let (first, second) = (KeyEncryptionKey::generate(), KeyEncryptionKey::generate());
        let (first_id, second_id) = (first.id().to_owned(), second.id().to_owned());
        // `second` is held as an older key: the configured first key seals.
        let p = provider(KekSet::single(second).with_active(first));
        assert_eq!(seal(&p, "ctx", b"v").unwrap().kek_id, first_id);
        // The installation moved to `second`: new records and rewraps follow.
        assert!(p.follow_installation_kek(&second_id));
        assert_eq!(p.active_kek_id(), second_id);
        assert_eq!(p.configured_active_kek_id(), first_id);
        let sealed = seal(&p, "ctx", b"v").unwrap();
        assert_eq!(sealed.kek_id, second_id);
        assert_eq!(&open(&p, "ctx", &sealed.blob).unwrap()[..], b"v");
        // A key this node lacks cannot be followed: the configured first key seals.
        assert!(!p.follow_installation_kek("kek-0000000000000000"));
        assert_eq!(seal(&p, "ctx", b"v").unwrap().kek_id, first_id);
    }
}
