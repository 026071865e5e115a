//! The key-encryption key (KEK) and AEAD sealing: private signing keys and
//! the secret-hash key are stored only as AES-256-GCM ciphertext under it.
//!
//! Where the KEK comes from is the key provider, chosen at start-up
//! ([`KekSource`]): a key file (the development default: 32 random bytes in
//! `{data-dir}/kek.key`, created with mode 0600 on first start) or an
//! environment variable (64 hex characters, never created: a missing or
//! malformed value stops the server). A PKCS#11 provider will implement the
//! same seal/open pair.

use std::io::Write;
use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Why the KEK could not be loaded or a record could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("cannot read or create the key file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the key file {0} is readable by other users; run `chmod 600 {0}`")]
    Permissions(String),
    #[error("the key file {0} is malformed: it must hold 64 hexadecimal characters")]
    Malformed(String),
    #[error("a sealed record could not be opened: wrong key-encryption key or corrupt data")]
    Open,
    #[error("--key-provider env needs the key-encryption key in {0}: 64 hexadecimal characters (e.g. the content of a kek.key file, or `openssl rand -hex 32` for a new installation)")]
    EnvMissing(String),
    #[error("{0} is malformed: it must hold 64 hexadecimal characters (its value is not shown)")]
    EnvMalformed(String),
}

/// Where the key-encryption key comes from.
#[derive(Clone, Default)]
pub enum KekSource {
    /// `{data-dir}/kek.key`, created on first start.
    #[default]
    File,
    /// The value of an environment variable, read at start-up (`var` names
    /// it for messages; `value` is what it held, if anything).
    Env {
        var: String,
        value: Option<Zeroizing<String>>,
    },
}

impl std::fmt::Debug for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KekSource::File => f.write_str("File"),
            KekSource::Env { var, value } => f
                .debug_struct("Env")
                .field("var", var)
                .field("value", &value.as_ref().map(|_| "[redacted]"))
                .finish(),
        }
    }
}

/// The key-encryption key. `Debug` shows only its id.
pub struct KeyEncryptionKey {
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEncryptionKey")
            .field("id", &self.id)
            .finish()
    }
}

impl KeyEncryptionKey {
    /// Load `path`, or create it (0600) with 32 fresh random bytes.
    pub fn load_or_create(path: &Path) -> Result<Self, KekError> {
        let io = |source| KekError::Io {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            let mut bytes = Zeroizing::new([0u8; 32]);
            SystemRandom::new()
                .fill(&mut bytes[..])
                .map_err(|_| io(std::io::Error::other("OS random source failed")))?;
            let hex = Zeroizing::new(hex_encode(&bytes[..]));
            let mut file = create_private(path).map_err(io)?;
            file.write_all(hex.as_bytes()).map_err(io)?;
            file.write_all(b"\n").map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        check_private(path)?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        let bytes = Zeroizing::new(
            hex_decode(text.trim())
                .filter(|b| b.len() == 32)
                .ok_or_else(|| KekError::Malformed(path.display().to_string()))?,
        );
        Ok(Self::from_bytes(&bytes))
    }

    /// The KEK held by the environment variable `var` (`value` is what it
    /// held). Never created: a missing or malformed value is an error that
    /// does not show it.
    pub fn from_env(var: &str, value: Option<&str>) -> Result<Self, KekError> {
        let value = value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| KekError::EnvMissing(var.to_owned()))?;
        let bytes = Zeroizing::new(
            hex_decode(value)
                .filter(|b| b.len() == 32)
                .ok_or_else(|| KekError::EnvMalformed(var.to_owned()))?,
        );
        Ok(Self::with_id_prefix("env", &bytes))
    }

    /// A KEK from raw bytes (tests, future providers).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self::with_id_prefix("file", bytes)
    }

    fn with_id_prefix(provider: &str, bytes: &[u8]) -> Self {
        let fingerprint = digest::digest(&digest::SHA256, bytes);
        let id = format!("{provider}:{}", hex_encode(&fingerprint.as_ref()[..8]));
        let key = UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key");
        Self {
            id,
            key: LessSafeKey::new(key),
        }
    }

    /// Stored beside every sealed record, so a later key rotation can tell
    /// which KEK opens it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypt `plaintext`, bound to `context` (e.g. `signing-key:{kid}`) so
    /// a ciphertext moved to another record fails to open.
    /// Output: nonce || ciphertext || tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the OS random source failed");
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut body,
            )
            .expect("AES-GCM sealing cannot fail for in-memory buffers");
        out.extend_from_slice(&body);
        body.iter_mut().for_each(|b| *b = 0);
        out
    }

    /// Decrypt what [`seal`](Self::seal) produced under the same context.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KekError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(KekError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KekError::Open)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| KekError::Open)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// Create a new file readable and writable by the owner only.
pub(crate) fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn check_private(path: &Path) -> Result<(), KekError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(path).map_err(|source| KekError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if !meta.is_file() {
            return Err(KekError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other("not a regular file (a symbolic link is refused)"),
            });
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(KekError::Permissions(path.display().to_string()));
        }
    }
    Ok(())
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_provider_reads_hex_and_never_shows_the_value() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let kek = KeyEncryptionKey::from_env("CLAVIS_KEK", Some(hex)).unwrap();
        assert!(kek.id().starts_with("env:"));
        let same = KeyEncryptionKey::from_bytes(&hex_decode(hex).unwrap());
        let sealed = same.seal("ctx", b"data");
        assert_eq!(
            &kek.open("ctx", &sealed).unwrap()[..],
            b"data",
            "same key, either provider"
        );
        let missing = KeyEncryptionKey::from_env("CLAVIS_KEK", None).unwrap_err();
        assert!(missing.to_string().contains("CLAVIS_KEK"), "{missing}");
        let short = "00112233";
        let bad = KeyEncryptionKey::from_env("CLAVIS_KEK", Some(short)).unwrap_err();
        assert!(!bad.to_string().contains(short), "{bad}");
        let source = KekSource::Env {
            var: "CLAVIS_KEK".into(),
            value: Some(Zeroizing::new(hex.into())),
        };
        assert!(!format!("{source:?}").contains(hex));
    }

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let kek = KeyEncryptionKey::from_bytes(&[9u8; 32]);
        let sealed = kek.seal("signing-key:a", b"private bytes");
        assert!(!sealed.windows(13).any(|w| w == b"private bytes"));
        assert_eq!(
            &kek.open("signing-key:a", &sealed).unwrap()[..],
            b"private bytes"
        );
        assert!(kek.open("signing-key:b", &sealed).is_err());
        let other = KeyEncryptionKey::from_bytes(&[8u8; 32]);
        assert!(other.open("signing-key:a", &sealed).is_err());
        assert!(kek.open("signing-key:a", &sealed[..10]).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.key");
        let a = KeyEncryptionKey::load_or_create(&path).unwrap();
        let b = KeyEncryptionKey::load_or_create(&path).unwrap();
        assert_eq!(a.id(), b.id());
        let sealed = a.seal("x", b"y");
        assert_eq!(&b.open("x", &sealed).unwrap()[..], b"y");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = KeyEncryptionKey::load_or_create(&path).unwrap_err();
            assert!(err.to_string().contains("chmod 600"));
        }
        assert!(!format!("{a:?}").contains("09"));
    }

    #[test]
    fn malformed_key_file_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.key");
        let mut f = create_private(&path).unwrap();
        f.write_all(b"not-hex-at-all").unwrap();
        let err = KeyEncryptionKey::load_or_create(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("malformed") && !err.contains("not-hex"));
    }
}
