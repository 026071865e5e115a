//! A PKCS#11 token (an HSM; SoftHSM2 in tests) as Clavis's key store:
//! signing keys generated inside it as sensitive, non-extractable objects
//! ([`signing`](self::signing)), AES-GCM wrapping keys for envelope
//! encryption ([`wrapping`](self::wrapping)), and the session pool and login
//! they share (here). Every failure is a [`Pkcs11Error`]; nothing here ever
//! falls back to software keys.
//!
//! PKCS#11 initialises a module once per process (`C_Initialize`), so the
//! loaded modules live in a process-wide table keyed by path; each
//! [`Pkcs11Token`] is one token (by label) of such a module, with its own
//! login and sessions.

mod error;
mod signing;
#[doc(hidden)]
pub mod testing;
mod wrapping;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

pub use error::Pkcs11Error;
pub use signing::{KeyAttributes, SecretValue, TokenKey};

use error::{code_of, rv_of};

/// Idle sessions kept open for reuse. A session serves one call at a time,
/// so this is roughly how many threads sign at once without opening more.
const MAX_IDLE_SESSIONS: usize = 16;

/// One token of a PKCS#11 module, logged in as the user. `Send + Sync`:
/// each call borrows a session of its own from a small pool, so signing
/// from several threads does not queue on one session. `Debug` shows the
/// module and label, never the PIN.
pub struct Pkcs11Token {
    ctx: Pkcs11,
    module: PathBuf,
    slot: Slot,
    label: String,
    pin: Zeroizing<String>,
    /// The session that logged in, kept open for the token's life: when an
    /// application's last session on a token closes, PKCS#11 logs it out
    /// and SoftHSM invalidates the handles of private objects.
    _login: Mutex<Session>,
    idle: Mutex<Vec<Session>>,
    /// Private-key handles by key id (hex CKA_ID), found once.
    signing_keys: Mutex<HashMap<String, ObjectHandle>>,
    /// AES key handles by label.
    wrapping_keys: Mutex<HashMap<String, ObjectHandle>>,
}

impl std::fmt::Debug for Pkcs11Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Token")
            .field("module", &self.module)
            .field("label", &self.label)
            .field("slot", &self.slot.id())
            .finish_non_exhaustive()
    }
}

/// Loaded modules, initialised once each (PKCS#11 allows one
/// `C_Initialize` per process and module; they are never finalised).
fn module(path: &Path) -> Result<Pkcs11, Pkcs11Error> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = lock(MODULES.get_or_init(Default::default));
    if let Some(ctx) = modules.get(path) {
        return Ok(ctx.clone());
    }
    let not_loaded = |reason: String| Pkcs11Error::ModuleNotLoaded {
        path: path.to_owned(),
        reason,
    };
    if !path.is_file() {
        return Err(not_loaded("no such file".into()));
    }
    let ctx = Pkcs11::new(path).map_err(|e| not_loaded(code_of(&e)))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(not_loaded(format!("C_Initialize: {}", code_of(&e)))),
    }
    modules.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

/// Lock a mutex; a panic elsewhere while it was held leaves plain data
/// (handles, sessions) that is still fine to use.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pkcs11Token {
    /// Load `module` (once per process), find the token labelled
    /// `token_label` and log in with the user PIN.
    pub fn open(
        module_path: &Path,
        token_label: &str,
        pin: Zeroizing<String>,
    ) -> Result<Self, Pkcs11Error> {
        let ctx = module(module_path)?;
        let call = |op, e: CkError| Pkcs11Error::call(op, token_label, &e);
        let slots = ctx
            .get_slots_with_initialized_token()
            .map_err(|e| call("C_GetSlotList", e))?;
        let mut present = Vec::new();
        let mut found = None;
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(|e| call("C_GetTokenInfo", e))?;
            let label = info.label().trim_end().to_owned();
            if label == token_label {
                found = Some(slot);
                break;
            }
            present.push(format!("'{label}'"));
        }
        let Some(slot) = found else {
            return Err(Pkcs11Error::NoSuchToken {
                label: token_label.to_owned(),
                module: module_path.to_owned(),
                present: present.join(", "),
            });
        };
        let login = Self::login(&ctx, slot, token_label, &pin)?;
        Ok(Self {
            ctx,
            module: module_path.to_owned(),
            slot,
            label: token_label.to_owned(),
            pin,
            _login: Mutex::new(login),
            idle: Mutex::new(Vec::new()),
            signing_keys: Mutex::new(HashMap::new()),
            wrapping_keys: Mutex::new(HashMap::new()),
        })
    }

    /// A new session, logged in as the user (login is per application and
    /// token: once done, every new session is logged in too).
    fn login(ctx: &Pkcs11, slot: Slot, label: &str, pin: &str) -> Result<Session, Pkcs11Error> {
        let fail = |op, e: &CkError| Pkcs11Error::call(op, label, e);
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| fail("C_OpenSession", &e))?;
        let state = session
            .get_session_info()
            .map_err(|e| fail("C_GetSessionInfo", &e))?
            .session_state();
        if matches!(state, SessionState::RwUser | SessionState::RoUser) {
            return Ok(session);
        }
        match session.login(UserType::User, Some(&AuthPin::from(pin))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(match rv_of(&e) {
                Some(
                    RvError::PinIncorrect
                    | RvError::PinLocked
                    | RvError::PinInvalid
                    | RvError::PinLenRange
                    | RvError::PinExpired,
                ) => Pkcs11Error::Login {
                    label: label.to_owned(),
                    code: code_of(&e),
                },
                _ => fail("C_Login", &e),
            }),
        }
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A failed call on this token.
    fn fail(&self, operation: &'static str, err: &CkError) -> Pkcs11Error {
        Pkcs11Error::call(operation, &self.label, err)
    }

    /// An idle session, or a new one logged in as the user.
    fn session(&self) -> Result<Pooled<'_>, Pkcs11Error> {
        if let Some(session) = lock(&self.idle).pop() {
            return Ok(Pooled {
                token: self,
                session: Some(session),
            });
        }
        // Normally already logged in (the login session stays open); this
        // logs in again if the token dropped every session.
        let session = Self::login(&self.ctx, self.slot, &self.label, &self.pin)?;
        Ok(Pooled {
            token: self,
            session: Some(session),
        })
    }
}

/// A session borrowed from the pool. [`Pooled::release`] gives it back;
/// dropping it closes it (used after an error, when it may be broken).
struct Pooled<'a> {
    token: &'a Pkcs11Token,
    session: Option<Session>,
}

impl Pooled<'_> {
    fn get(&self) -> &Session {
        self.session
            .as_ref()
            .expect("session present until released")
    }

    /// Back to the pool, for the next call.
    fn release(mut self) {
        if let Some(session) = self.session.take() {
            let mut idle = lock(&self.token.idle);
            if idle.len() < MAX_IDLE_SESSIONS {
                idle.push(session);
            }
        }
    }

    /// Run `f` on the session: on success the session goes back to the
    /// pool, on failure it is closed (it may be what broke).
    fn run<T>(
        self,
        operation: &'static str,
        f: impl FnOnce(&Session) -> Result<T, CkError>,
    ) -> Result<T, Pkcs11Error> {
        match f(self.get()) {
            Ok(v) => {
                self.release();
                Ok(v)
            }
            Err(e) => Err(self.token.fail(operation, &e)),
        }
    }
}

impl std::fmt::Debug for Pooled<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled").finish_non_exhaustive()
    }
}
