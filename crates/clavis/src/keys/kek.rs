//! Key-encryption keys (KEKs) held in software: the key file (the
//! development default, `{data-dir}/kek.key`, 0600, created on first start)
//! and the environment (`CLAVIS_KEK`, never created). A KEK only wraps data
//! keys ([`envelope`](super::envelope)); records are never sealed under it
//! directly.
//!
//! Either source holds a *set*: the active key, which wraps every new data
//! key, and older keys that still open records not yet rewrapped (`clavis
//! keys rewrap`). In the key file the active key is the first line and older
//! keys follow; in the environment the older keys are in
//! `CLAVIS_KEK_PREVIOUS`, comma-separated. A key's id is a fingerprint of
//! the key, the same whichever source holds it, so a key can move from the
//! file to the environment.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::digest;
use zeroize::Zeroizing;

use super::aead::{AeadKey, OpenError};

/// Why a key set could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("cannot read or write the key file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the key file {0} is readable by other users; run `chmod 600 {0}`")]
    Permissions(String),
    #[error("the key file {0} is malformed: each line must hold 64 hexadecimal characters (the active key first)")]
    Malformed(String),
    #[error("--key-provider env needs the key-encryption key in {0}: 64 hexadecimal characters (e.g. the content of a kek.key file, or `openssl rand -hex 32` for a new installation)")]
    EnvMissing(String),
    #[error("{0} is malformed: it must hold 64 hexadecimal characters (comma-separated in CLAVIS_KEK_PREVIOUS; the value is not shown)")]
    EnvMalformed(String),
}

/// Where the key-encryption keys come from.
#[derive(Clone, Default)]
pub enum KekSource {
    /// `{data-dir}/kek.key`, created on first start.
    #[default]
    File,
    /// Environment variables read at start-up: `var` names the active key's
    /// variable (for messages) and `value` is what it held; `previous` is
    /// what `CLAVIS_KEK_PREVIOUS` held.
    Env {
        var: String,
        value: Option<Zeroizing<String>>,
        previous: Option<Zeroizing<String>>,
    },
    /// A PKCS#11 token (an HSM): the KEK is an AES key inside it and
    /// signing keys are made and used there.
    Pkcs11(Pkcs11Config),
}

/// Where the PKCS#11 token is and how to log in. `Debug` hides the PIN.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    pub module: std::path::PathBuf,
    /// The label of the token to use.
    pub token_label: String,
    /// The user PIN (from `CLAVIS_PKCS11_PIN`, never a flag).
    pub pin: Option<Zeroizing<String>>,
    /// The label of the AES key that wraps data keys (made if missing).
    pub wrapping_label: String,
}

impl std::fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &self.pin.as_ref().map(|_| "[redacted]"))
            .field("wrapping_label", &self.wrapping_label)
            .finish()
    }
}

impl std::fmt::Debug for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KekSource::File => f.write_str("File"),
            KekSource::Env {
                var,
                value,
                previous,
            } => f
                .debug_struct("Env")
                .field("var", var)
                .field("value", &value.as_ref().map(|_| "[redacted]"))
                .field("previous", &previous.as_ref().map(|_| "[redacted]"))
                .finish(),
            KekSource::Pkcs11(config) => config.fmt(f),
        }
    }
}

/// One key-encryption key. `Debug` shows only its id.
pub struct KeyEncryptionKey {
    id: String,
    key: AeadKey,
    /// The key's hex form, kept only to write the key file back.
    hex: Zeroizing<String>,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEncryptionKey")
            .field("id", &self.id)
            .finish()
    }
}

impl KeyEncryptionKey {
    /// A KEK from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let mut input = b"clavis-kek-id:".to_vec();
        input.extend_from_slice(bytes);
        let fingerprint = digest::digest(&digest::SHA256, &input);
        input.iter_mut().for_each(|b| *b = 0);
        Self {
            id: format!("kek-{}", hex_encode(&fingerprint.as_ref()[..8])),
            key: AeadKey::new(bytes),
            hex: Zeroizing::new(hex_encode(bytes)),
        }
    }

    /// A fresh random KEK.
    pub fn generate() -> Self {
        Self::from_bytes(&super::aead::random_key())
    }

    fn from_hex(text: &str) -> Option<Self> {
        let bytes = Zeroizing::new(hex_decode(text.trim())?);
        let array: &[u8; 32] = bytes.as_slice().try_into().ok()?;
        Some(Self::from_bytes(array))
    }

    /// Stored beside every record it wraps, so the right key opens it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Wrap a data key (or any short secret) bound to `aad`.
    pub fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.key.seal(aad, plaintext)
    }

    /// Unwrap what [`wrap`](Self::wrap) produced with the same `aad`.
    pub fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        self.key.open(aad, wrapped)
    }
}

/// The active KEK and the older ones that still open records.
#[derive(Debug, Clone)]
pub struct KekSet {
    /// `keys[0]` is active.
    keys: Vec<Arc<KeyEncryptionKey>>,
}

impl KekSet {
    /// A set of one key.
    pub fn single(key: KeyEncryptionKey) -> Self {
        Self {
            keys: vec![Arc::new(key)],
        }
    }

    /// The key that wraps new data keys.
    pub fn active(&self) -> &Arc<KeyEncryptionKey> {
        &self.keys[0]
    }

    /// The key with id `id`, active or older.
    pub fn get(&self, id: &str) -> Option<&Arc<KeyEncryptionKey>> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Every key's id, the active one first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// This set with `key` made active (the old active key kept as older).
    pub fn with_active(&self, key: KeyEncryptionKey) -> Self {
        let mut keys = vec![Arc::new(key)];
        keys.extend(self.keys.iter().cloned());
        Self { keys }
    }

    /// Load the key file at `path`, or create it (0600) with one fresh key.
    /// The second value is true when the file was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KekError> {
        let created = !path.exists();
        if created {
            Self::single(KeyEncryptionKey::generate()).write_new(path)?;
        }
        check_private(path)?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| io(path, e))?);
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| KeyEncryptionKey::from_hex(l).map(Arc::new))
            .collect::<Option<Vec<_>>>()
            .filter(|keys| !keys.is_empty())
            .ok_or_else(|| KekError::Malformed(path.display().to_string()))?;
        Ok((Self { keys }, created))
    }

    /// The keys in the environment: `value` (active, required) and
    /// `previous` (comma-separated, optional). Messages name `var`, never a
    /// value.
    pub fn from_env(
        var: &str,
        value: Option<&str>,
        previous: Option<&str>,
    ) -> Result<Self, KekError> {
        let value = value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| KekError::EnvMissing(var.to_owned()))?;
        let active =
            KeyEncryptionKey::from_hex(value).ok_or_else(|| KekError::EnvMalformed(var.into()))?;
        let mut keys = vec![Arc::new(active)];
        for item in previous.unwrap_or("").split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let key = KeyEncryptionKey::from_hex(item)
                .ok_or_else(|| KekError::EnvMalformed(format!("{var}_PREVIOUS")))?;
            keys.push(Arc::new(key));
        }
        Ok(Self { keys })
    }

    /// Replace the key file at `path` with this set, atomically (a new file
    /// renamed over the old one) so a crash leaves the old set or the new.
    pub fn save(&self, path: &Path) -> Result<(), KekError> {
        let tmp = path.with_extension("key.new");
        let _ = std::fs::remove_file(&tmp);
        self.write_new(&tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
        if let Some(dir) = path.parent() {
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }

    fn write_new(&self, path: &Path) -> Result<(), KekError> {
        let mut text = Zeroizing::new(String::new());
        if self.keys.len() > 1 {
            text.push_str("# Clavis key-encryption keys: the first wraps new records; the others\n# open records not yet rewrapped (`clavis keys rewrap`). Keep this file private.\n");
        }
        for key in &self.keys {
            text.push_str(&key.hex);
            text.push('\n');
        }
        let mut file = create_private(path).map_err(|e| io(path, e))?;
        file.write_all(text.as_bytes()).map_err(|e| io(path, e))?;
        file.sync_all().map_err(|e| io(path, e))
    }
}

fn io(path: &Path, source: std::io::Error) -> KekError {
    KekError::Io {
        path: path.display().to_string(),
        source,
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
        let meta = std::fs::symlink_metadata(path).map_err(|e| io(path, e))?;
        if !meta.is_file() {
            return Err(io(
                path,
                std::io::Error::other("not a regular file (a symbolic link is refused)"),
            ));
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

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn environment_keys_match_file_keys_and_are_never_shown() {
        let previous = "ff".repeat(32);
        let set =
            KekSet::from_env("CLAVIS_KEK", Some(HEX), Some(&format!(" {previous} ,"))).unwrap();
        let same = KeyEncryptionKey::from_hex(HEX).unwrap();
        assert_eq!(
            set.active().id(),
            same.id(),
            "an id names the key, not its source"
        );
        assert_eq!(set.ids().len(), 2);
        let wrapped = same.wrap(b"ctx", b"data");
        assert_eq!(&set.active().unwrap(b"ctx", &wrapped).unwrap()[..], b"data");

        let missing = KekSet::from_env("CLAVIS_KEK", None, None).unwrap_err();
        assert!(missing.to_string().contains("CLAVIS_KEK"), "{missing}");
        let bad = KekSet::from_env("CLAVIS_KEK", Some("00112233"), None).unwrap_err();
        assert!(!bad.to_string().contains("00112233"), "{bad}");
        let bad_previous = KekSet::from_env("CLAVIS_KEK", Some(HEX), Some("abc")).unwrap_err();
        assert!(bad_previous.to_string().contains("CLAVIS_KEK_PREVIOUS"));
        let source = KekSource::Env {
            var: "CLAVIS_KEK".into(),
            value: Some(Zeroizing::new(HEX.into())),
            previous: Some(Zeroizing::new(previous.clone())),
        };
        let shown = format!("{source:?} {set:?}");
        assert!(
            !shown.contains(HEX) && !shown.contains(&previous),
            "{shown}"
        );
    }

    #[test]
    fn key_file_is_created_private_reloads_and_keeps_older_keys_after_the_active_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.key");
        let (a, created) = KekSet::load_or_create(&path).unwrap();
        assert!(created);
        let (b, created) = KekSet::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.ids(), b.ids());

        let rotated = b.with_active(KeyEncryptionKey::generate());
        rotated.save(&path).unwrap();
        let (c, _) = KekSet::load_or_create(&path).unwrap();
        assert_eq!(c.ids(), rotated.ids());
        assert_eq!(
            c.ids()[1],
            a.active().id(),
            "the old key is kept, after the new"
        );
        assert!(c.get(a.active().id()).is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = KekSet::load_or_create(&path).unwrap_err();
            assert!(err.to_string().contains("chmod 600"));
        }
    }

    #[test]
    fn malformed_key_file_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.key");
        let mut f = create_private(&path).unwrap();
        f.write_all(b"not-hex-at-all").unwrap();
        let err = KekSet::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("malformed") && !err.contains("not-hex"));
    }
}
