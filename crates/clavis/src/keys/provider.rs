//! The key provider, chosen at start-up: where the key-encryption keys live
//! and who makes and holds private signing keys. With the key file and the
//! environment (software providers) signing keys are generated in memory and
//! stored sealed ([`envelope`](super::envelope)); with a PKCS#11 token the
//! data keys are wrapped by an AES key inside the token and signing keys are
//! made in the token, which makes every signature. Every provider error
//! fails closed: the caller answers 503, it never falls back to another key
//! or to plaintext.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use clavis_store::SigningKeyRecord;
use zeroize::Zeroizing;

use super::envelope::{self, Sealed};
use super::kek::{KekError, KekSet, KekSource, KeyEncryptionKey};
use super::pkcs11::{Pkcs11Error, Pkcs11Token, TokenKey};
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
    Pkcs11,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::File => "file",
            ProviderKind::Env => "env",
            ProviderKind::Pkcs11 => "pkcs11",
        }
    }
}

/// A signing key held by a PKCS#11 token is stored as this prefix and its
/// object id (not secret: the key never leaves the token).
pub const TOKEN_KEY_REF: &[u8] = b"pkcs11-key:";

/// The id recorded for records whose key lives in a token.
const IN_TOKEN: &str = "pkcs11-token";

#[derive(Debug)]
enum Backend {
    /// KEKs in memory (from the key file or the environment).
    Software {
        keks: RwLock<KekSet>,
        /// The key file (file provider), where a new active KEK is saved.
        file: Option<PathBuf>,
    },
    /// A PKCS#11 token: AES wrapping keys and signing keys inside it.
    Token {
        token: Arc<Pkcs11Token>,
        /// The label of the AES key that wraps new data keys.
        wrapping_label: String,
    },
}

/// The installation's key provider. Shared by everything that seals.
#[derive(Debug)]
pub struct KeyProvider {
    kind: ProviderKind,
    backend: Backend,
    /// The installation's key-encryption key, when a software provider
    /// holds it: new records are sealed under it rather than under the
    /// configured first key, so that every node of a cluster seals under a
    /// key every node holds ([`crate::node`]).
    installation: RwLock<Option<String>>,
}

fn unavailable(err: Pkcs11Error) -> ProviderError {
    ProviderError::Unavailable(err.to_string())
}

impl KeyProvider {
    /// Open the provider `source` names. The file provider creates
    /// `{data_dir}/kek.key` on first start; the second value says whether it
    /// did (so the caller can refuse a fresh key for an existing database).
    /// A PKCS#11 token that cannot be opened stops the start.
    pub fn start(source: &KekSource, data_dir: &Path) -> Result<(Self, bool), ProviderError> {
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
            KekSource::Pkcs11(config) => {
                let pin = config.pin.clone().ok_or_else(|| {
                    ProviderError::Unsupported(format!(
                        "--key-provider pkcs11 needs the token's user PIN in {}",
                        crate::config::PKCS11_PIN_ENV
                    ))
                })?;
                let token = Pkcs11Token::open(&config.module, &config.token_label, pin)
                    .map_err(unavailable)?;
                token
                    .ensure_wrapping_key(&config.wrapping_label)
                    .map_err(unavailable)?;
                Ok((
                    Self::in_token(Arc::new(token), config.wrapping_label.clone()),
                    false,
                ))
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
            backend: Backend::Software {
                keks: RwLock::new(set),
                file,
            },
            installation: RwLock::new(None),
        }
    }

    /// A provider over a PKCS#11 token whose AES key `wrapping_label` wraps
    /// data keys (it must exist: see [`Pkcs11Token::ensure_wrapping_key`]).
    pub fn in_token(token: Arc<Pkcs11Token>, wrapping_label: String) -> Self {
        Self {
            kind: ProviderKind::Pkcs11,
            backend: Backend::Token {
                token,
                wrapping_label,
            },
            installation: RwLock::new(None),
        }
    }

    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The PKCS#11 token, for the PKCS#11 provider.
    pub fn token(&self) -> Option<&Arc<Pkcs11Token>> {
        match &self.backend {
            Backend::Token { token, .. } => Some(token),
            Backend::Software { .. } => None,
        }
    }

    /// The id of the KEK that wraps new data keys: the installation's key
    /// when this provider holds it, else the configured first key.
    pub fn active_kek_id(&self) -> String {
        match &self.backend {
            Backend::Software { keks, .. } => sealing_key(&current(keks), &self.installation)
                .id()
                .to_owned(),
            Backend::Token { .. } => self.configured_active_kek_id(),
        }
    }

    /// The configured first key: the first line of `kek.key`,
    /// `CLAVIS_KEK`, or the token's wrapping key.
    pub fn configured_active_kek_id(&self) -> String {
        match &self.backend {
            Backend::Software { keks, .. } => current(keks).active().id().to_owned(),
            Backend::Token {
                token,
                wrapping_label,
            } => token_kek_id(token.label(), wrapping_label),
        }
    }

    /// Whether this provider holds the KEK `kek_id`.
    pub fn holds(&self, kek_id: &str) -> bool {
        self.kek_ids().iter().any(|id| id == kek_id)
    }

    /// Follow the installation's key-encryption key: seal new records under
    /// `kek_id` from now on if this provider holds it (software providers;
    /// a token always seals under its configured wrapping key). Returns
    /// whether it is held; if not, new records are sealed under the
    /// configured first key.
    pub fn follow_installation_kek(&self, kek_id: &str) -> bool {
        let held = self.holds(kek_id);
        let mut installation = self.installation.write().unwrap_or_else(|e| e.into_inner());
        *installation = held.then(|| kek_id.to_owned());
        held
    }

    /// Every configured KEK id, the active one first.
    pub fn kek_ids(&self) -> Vec<String> {
        match &self.backend {
            Backend::Software { keks, .. } => current(keks).ids(),
            Backend::Token { .. } => vec![self.active_kek_id()],
        }
    }

    /// Wrap a data key under the active KEK: its id and the wrapped bytes.
    pub fn wrap(&self, aad: &[u8], dek: &[u8]) -> Result<(String, Vec<u8>), ProviderError> {
        match &self.backend {
            Backend::Software { keks, .. } => {
                let keks = current(keks);
                let active = sealing_key(&keks, &self.installation);
                Ok((active.id().to_owned(), active.wrap(aad, dek)))
            }
            Backend::Token {
                token,
                wrapping_label,
            } => {
                let wrapped = token
                    .encrypt(wrapping_label, aad, dek)
                    .map_err(unavailable)?;
                Ok((self.active_kek_id(), wrapped))
            }
        }
    }

    /// Unwrap a data key wrapped by the KEK `kek_id`.
    pub fn unwrap(
        &self,
        kek_id: &str,
        aad: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        match &self.backend {
            Backend::Software { keks, .. } => {
                let keks = current(keks);
                let kek = keks
                    .get(kek_id)
                    .ok_or_else(|| ProviderError::UnknownKek(kek_id.to_owned()))?;
                kek.unwrap(aad, wrapped).map_err(|_| ProviderError::Open)
            }
            Backend::Token { token, .. } => {
                let label = kek_id
                    .strip_prefix(&format!("pkcs11:{}/", token.label()))
                    .ok_or_else(|| ProviderError::UnknownKek(kek_id.to_owned()))?;
                token
                    .decrypt(label, aad, wrapped)
                    .map(Zeroizing::new)
                    .map_err(|e| match e {
                        Pkcs11Error::Malformed { .. } | Pkcs11Error::Unseal { .. } => {
                            ProviderError::Open
                        }
                        other => unavailable(other),
                    })
            }
        }
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
        let (keks, path) = match &self.backend {
            Backend::Software {
                keks,
                file: Some(path),
            } => (keks, path),
            Backend::Software { file: None, .. } => {
                return Err(ProviderError::Unsupported(
                    "the env key provider's keys come from the environment: put a new key in CLAVIS_KEK and the current one in CLAVIS_KEK_PREVIOUS, restart, then run `clavis keys rewrap`".into(),
                ))
            }
            Backend::Token { .. } => {
                return Err(ProviderError::Unsupported(
                    "the PKCS#11 provider's wrapping key lives in the token: start with a new --pkcs11-wrapping-key-label (Clavis creates the key in the token), then run `clavis keys rewrap`".into(),
                ))
            }
        };
        let mut keks = keks.write().unwrap_or_else(|e| e.into_inner());
        let key = KeyEncryptionKey::generate();
        let id = key.id().to_owned();
        let next = keks.with_active(key);
        next.save(path)?;
        *keks = next;
        drop(keks);
        self.follow_installation_kek(&id);
        tracing::info!(kek_id = %id, file = %path.display(), "new active key-encryption key");
        Ok(id)
    }

    /// A new signing key for a tenant and its stored form: sealed PKCS#8
    /// (software providers) or a reference to the key made in the token.
    pub fn generate_signing_key(
        &self,
        alg: Algorithm,
    ) -> Result<(SigningKey, Sealed), ProviderError> {
        match &self.backend {
            Backend::Software { .. } => {
                let (key, pkcs8) = SigningKey::generate(alg)
                    .map_err(|e| ProviderError::Unsupported(e.to_string()))?;
                let sealed = self.seal(&signing_key_context(key.kid()), &pkcs8)?;
                Ok((key, sealed))
            }
            Backend::Token { token, .. } => {
                let made = token.generate_signing_key(alg).map_err(unavailable)?;
                let blob = [TOKEN_KEY_REF, made.key_id.as_bytes()].concat();
                let key = SigningKey::in_token(token.clone(), made)
                    .map_err(|e| ProviderError::Unsupported(e.to_string()))?;
                Ok((
                    key,
                    Sealed {
                        blob,
                        kek_id: IN_TOKEN.into(),
                    },
                ))
            }
        }
    }

    /// The signing key of `record` from its stored form.
    pub fn load_signing_key(&self, record: &SigningKeyRecord) -> Result<SigningKey, ProviderError> {
        let alg = Algorithm::parse(&record.alg).ok_or(ProviderError::Open)?;
        let stored = &record.encrypted_private_key;
        let key = match (&self.backend, stored.strip_prefix(TOKEN_KEY_REF)) {
            (Backend::Token { token, .. }, Some(id)) => {
                let public_jwk: serde_json::Value =
                    serde_json::from_str(&record.public_jwk).map_err(|_| ProviderError::Open)?;
                let key_id = std::str::from_utf8(id).map_err(|_| ProviderError::Open)?;
                let made = TokenKey {
                    key_id: key_id.to_owned(),
                    alg,
                    public_jwk,
                };
                SigningKey::in_token(token.clone(), made).map_err(|_| ProviderError::Open)?
            }
            (Backend::Software { .. }, Some(_)) => {
                return Err(ProviderError::Unsupported(format!(
                    "signing key {} is held by a PKCS#11 token: start with --key-provider pkcs11 and that token",
                    record.kid
                )))
            }
            (_, None) => {
                let pkcs8 = self.open(&signing_key_context(&record.kid), stored)?;
                SigningKey::from_pkcs8(alg, &pkcs8).map_err(|_| ProviderError::Open)?
            }
        };
        if key.kid() != record.kid {
            return Err(ProviderError::Open);
        }
        Ok(key)
    }
}

impl KeyProvider {
    /// After an emergency removal: destroy the revoked key's private object
    /// in the token, so no node (even one whose cache has not caught up)
    /// can sign with it again. Software keys have nothing to destroy (their
    /// sealed record stays for the audit trail). Errors are logged: the
    /// revocation itself already stands.
    pub fn destroy_revoked(&self, record: &SigningKeyRecord) {
        let (Backend::Token { token, .. }, Some(id)) = (
            &self.backend,
            record.encrypted_private_key.strip_prefix(TOKEN_KEY_REF),
        ) else {
            return;
        };
        let Ok(key_id) = std::str::from_utf8(id) else {
            return;
        };
        match token.destroy_signing_key(key_id) {
            Ok(()) => tracing::warn!(kid = %record.kid, token = token.label(),
                "revoked signing key destroyed in the token"),
            Err(e) => tracing::error!(kid = %record.kid, error = %e,
                "revoked signing key could not be destroyed in the token; it is no longer used or published"),
        }
    }
}

/// A snapshot of a software provider's key set (a few `Arc`s), so no lock
/// is held while sealing.
fn current(keks: &RwLock<KekSet>) -> KekSet {
    keks.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The key new records are sealed under: the installation's if the set
/// holds it, else the set's first.
fn sealing_key(keks: &KekSet, installation: &RwLock<Option<String>>) -> Arc<KeyEncryptionKey> {
    let installation = installation.read().unwrap_or_else(|e| e.into_inner());
    installation
        .as_deref()
        .and_then(|id| keks.get(id))
        .unwrap_or_else(|| keks.active())
        .clone()
}

/// The KEK id of a token's AES wrapping key.
fn token_kek_id(token: &str, wrapping_label: &str) -> String {
    format!("pkcs11:{token}/{wrapping_label}")
}

/// True if `stored` names a key held by a token (nothing to rewrap).
pub fn is_token_key(stored: &[u8]) -> bool {
    stored.starts_with(TOKEN_KEY_REF)
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
