//! The key provider, chosen at start-up: where the key-encryption keys live
//! and who makes and holds private signing keys. With the key file and the
//! environment (software providers) signing keys are generated in memory and
//! stored sealed ([`envelope`](super::envelope)); every provider error fails
//! closed: the caller answers 503, it never falls back to another key or to
//! plaintext.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use zeroize::Zeroizing;

use super::envelope::{self, Sealed};
use super::kek::{KekError, KekSet, KekSource, KeyEncryptionKey};
use super::{Algorithm, SigningKey};

/// Why the provider could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no key-encryption key with id {0} is configured: give the server the key that sealed this record (an older line in kek.key, or CLAVIS_KEK_PREVIOUS)")]
    UnknownKek(String),
    #[error("a sealed record could not be opened: wrong key-encryption key or corrupt data")]
    Open,
    #[error("the key provider is unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Kek(#[from] KekError),
}

/// Which provider holds the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    File,
    Env,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::File => "file",
            ProviderKind::Env => "env",
        }
    }
}

/// The installation's key provider. Shared by everything that seals.
#[derive(Debug)]
pub struct KeyProvider {
    kind: ProviderKind,
    keks: RwLock<KekSet>,
    /// The key file (file provider), where a new active KEK is saved.
    file: Option<PathBuf>,
}

impl KeyProvider {
    /// Open the provider `source` names. The file provider creates
    /// `{data_dir}/kek.key` on first start; the second value says whether it
    /// did (so the caller can refuse a fresh key for an existing database).
    pub fn start(source: &KekSource, data_dir: &Path) -> Result<(Self, bool), KekError> {
        match source {
            KekSource::File => {
                let path = data_dir.join("kek.key");
                let (set, created) = KekSet::load_or_create(&path)?;
                Ok((Self::software(set, Some(path)), created))
            }
            KekSource::Env {
                var,
                value,
                previous,
            } => {
                let set = KekSet::from_env(
                    var,
                    value.as_ref().map(|v| v.as_str()),
                    previous.as_ref().map(|v| v.as_str()),
                )?;
                Ok((Self::software(set, None), false))
            }
        }
    }

    /// A software provider over `set`; `file` is where it saves a new
    /// active key (`None`: the keys come from elsewhere and cannot change).
    pub fn software(set: KekSet, file: Option<PathBuf>) -> Self {
        Self {
            kind: if file.is_some() {
                ProviderKind::File
            } else {
                ProviderKind::Env
            },
            keks: RwLock::new(set),
            file,
        }
    }

    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    fn keks(&self) -> KekSet {
        self.keks.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The id of the KEK that wraps new data keys.
    pub fn active_kek_id(&self) -> String {
        self.keks().active().id().to_owned()
    }

    /// Every configured KEK id, the active one first.
    pub fn kek_ids(&self) -> Vec<String> {
        self.keks().ids()
    }

    /// Wrap a data key under the active KEK: its id and the wrapped bytes.
    pub fn wrap(&self, aad: &[u8], dek: &[u8]) -> Result<(String, Vec<u8>), ProviderError> {
        let keks = self.keks();
        let active = keks.active();
        Ok((active.id().to_owned(), active.wrap(aad, dek)))
    }

    /// Unwrap a data key wrapped by the KEK `kek_id`.
    pub fn unwrap(
        &self,
        kek_id: &str,
        aad: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let keks = self.keks();
        let kek = keks
            .get(kek_id)
            .ok_or_else(|| ProviderError::UnknownKek(kek_id.to_owned()))?;
        kek.unwrap(aad, wrapped).map_err(|_| ProviderError::Open)
    }

    /// Seal `plaintext` for the record `context` (see [`envelope::seal`]).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Sealed, ProviderError> {
        envelope::seal(self, context, plaintext)
    }

    /// Open a sealed record (see [`envelope::open`]).
    pub fn open(&self, context: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        envelope::open(self, context, blob)
    }

    /// Make a fresh KEK the active one, keeping the old ones for records not
    /// yet rewrapped. Only the file provider can: it saves the new set to
    /// its key file before using it, so a restart finds both. Returns the
    /// new key's id.
    pub fn add_active_kek(&self) -> Result<String, ProviderError> {
        let Some(path) = &self.file else {
            return Err(ProviderError::Unsupported(
                "the env key provider's keys come from the environment: put a new key in CLAVIS_KEK and the current one in CLAVIS_KEK_PREVIOUS, restart, then run `clavis keys rewrap`".into(),
            ));
        };
        let mut keks = self.keks.write().unwrap_or_else(|e| e.into_inner());
        let key = KeyEncryptionKey::generate();
        let id = key.id().to_owned();
        let next = keks.with_active(key);
        next.save(path)?;
        *keks = next;
        tracing::info!(kek_id = %id, file = %path.display(), "new active key-encryption key");
        Ok(id)
    }

    /// A new signing key for a tenant and its stored form.
    pub fn generate_signing_key(
        &self,
        alg: Algorithm,
    ) -> Result<(SigningKey, Sealed), ProviderError> {
        let (key, pkcs8) =
            SigningKey::generate(alg).map_err(|e| ProviderError::Unsupported(e.to_string()))?;
        let sealed = self.seal(&signing_key_context(key.kid()), &pkcs8)?;
        Ok((key, sealed))
    }

    /// The signing key `kid` from its stored form.
    pub fn load_signing_key(
        &self,
        alg: Algorithm,
        kid: &str,
        stored: &[u8],
    ) -> Result<SigningKey, ProviderError> {
        let pkcs8 = self.open(&signing_key_context(kid), stored)?;
        let key = SigningKey::from_pkcs8(alg, &pkcs8).map_err(|_| ProviderError::Open)?;
        if key.kid() != kid {
            return Err(ProviderError::Open);
        }
        Ok(key)
    }
}

/// The name of the server secret behind the client secrets' keyed hash.
pub const SECRET_HASH_KEY: &str = "secret-hash-key";

/// The sealing context of a server secret.
pub fn server_secret_context(name: &str) -> String {
    format!("server-secret:{name}")
}

/// The sealing context of a webhook subscription's signing secret.
pub fn webhook_secret_context(subscription: &str) -> String {
    format!("webhook-secret:{subscription}")
}

/// The sealing context of a signing key's stored private key.
pub fn signing_key_context(kid: &str) -> String {
    format!("signing-key:{kid}")
}
