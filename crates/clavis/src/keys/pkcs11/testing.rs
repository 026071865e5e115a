//! Test fixture: a fresh SoftHSM2 token per test (unit tests, the api
//! integration tests and the bench share it). Not for production use.
//!
//! SoftHSM reads `SOFTHSM2_CONF` once, at `C_Initialize`, and a process
//! initialises a module once; so the process gets one configuration whose
//! token directory holds every token the fixture makes, each under its own
//! random label. SoftHSM reads its token directory at `C_Initialize` and
//! never again, so the tokens are made through the process's own module
//! (`C_InitToken` on the free slot), not with `softhsm2-util`. The first call sets `SOFTHSM2_CONF` for the
//! process; nothing else in a test process may set it. Linux only (stale
//! directories are recognised by `/proc/<pid>`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::{signing::hex, Pkcs11Error, Pkcs11Token};

/// Where Debian's `softhsm2` package puts the module.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The process's SoftHSM directory: `<tmp>/clavis-softhsm-<pid>/` with
/// `softhsm2.conf` and `tokens/`. Kept until the process exits, and removed
/// by the first fixture of a later process: a token directory deleted while
/// the module runs makes every later `C_GetSlotList` in the process fail
/// with CKR_GENERAL_ERROR, so tokens are never deleted one by one.
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        assert!(
            Path::new(SOFTHSM_MODULE).is_file(),
            "{SOFTHSM_MODULE} is missing: install SoftHSM2 (`apt-get install softhsm2`; scripts/test does)"
        );
        remove_stale_roots();
        let dir = std::env::temp_dir().join(format!("{ROOT_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).expect("SoftHSM token directory");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
                 slots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        std::env::set_var("SOFTHSM2_CONF", &conf);
        dir
    })
}

const ROOT_PREFIX: &str = "clavis-softhsm-";

/// Remove the directories of earlier test processes that have exited.
fn remove_stale_roots() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(ROOT_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Held while a token is being made: two at once could pick the same free
/// slot, and another process scanning the directory meanwhile could read a
/// half-written token.
static INIT: Mutex<()> = Mutex::new(());

/// One initialised SoftHSM token, made for one test. Its files stay until
/// the process exits (see [`root`]). `Debug` leaves out the PINs.
pub struct SoftHsm {
    pub module: PathBuf,
    pub label: String,
    pub pin: String,
    pub so_pin: String,
    token_dir: PathBuf,
}

impl SoftHsm {
    /// A new token with a random label (panics with the reason if SoftHSM2
    /// is missing or will not make a token: this is a test fixture).
    pub fn new() -> Self {
        let root = root();
        let random = || {
            let mut bytes = [0u8; 8];
            aws_lc_rs::rand::fill(&mut bytes).expect("OS random");
            hex(&bytes)
        };
        let label = format!("clavis-test-{}", random());
        let (pin, so_pin) = (random(), random());
        let _guard = super::lock(&INIT);
        init_token(&label, &pin, &so_pin);
        let token_dir =
            find_token_dir(&root.join("tokens"), &label).expect("SoftHSM made a token directory");
        Self {
            module: PathBuf::from(SOFTHSM_MODULE),
            label,
            pin,
            so_pin,
            token_dir,
        }
    }

    /// Open the token through the PKCS#11 module, logged in.
    pub fn open(&self) -> Result<Pkcs11Token, Pkcs11Error> {
        Pkcs11Token::open(&self.module, &self.label, Zeroizing::new(self.pin.clone()))
    }

    /// The directory holding this token's object files (to break it on
    /// purpose in failure tests).
    pub fn token_dir(&self) -> &Path {
        &self.token_dir
    }

    /// Run `pkcs11-tool` (OpenSC) on this token, logged in as the user, as
    /// another process would (e.g. to delete a key behind Clavis's back).
    /// Panics unless it succeeds.
    pub fn pkcs11_tool(&self, args: &[&str]) -> String {
        let _guard = super::lock(&INIT);
        let output = std::process::Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", Self::conf())
            .args(["--module", SOFTHSM_MODULE, "--token-label", &self.label])
            .args(["--login", "--pin", &self.pin])
            .args(args)
            .output()
            .expect("pkcs11-tool runs (apt-get install opensc; scripts/test does)");
        assert!(
            output.status.success(),
            "pkcs11-tool {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The `SOFTHSM2_CONF` this process uses (for child processes such as
    /// `pkcs11-tool` in tests; they see tokens made before they start).
    pub fn conf() -> PathBuf {
        root().join("softhsm2.conf")
    }
}

impl std::fmt::Debug for SoftHsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftHsm")
            .field("module", &self.module)
            .field("label", &self.label)
            .field("token_dir", &self.token_dir)
            .finish_non_exhaustive()
    }
}

impl Default for SoftHsm {
    fn default() -> Self {
        Self::new()
    }
}

/// Initialise SoftHSM's free slot as token `label` (C_InitToken as the
/// security officer, then C_InitPIN for the user), through this process's
/// module: a token made by another process (`softhsm2-util`) after this
/// process's `C_Initialize` is never seen by it.
fn init_token(label: &str, pin: &str, so_pin: &str) {
    let ctx = super::module(Path::new(SOFTHSM_MODULE)).expect("SoftHSM module loads");
    let slots = ctx.get_all_slots().expect("C_GetSlotList");
    let free = slots
        .into_iter()
        .find(|slot| {
            ctx.get_token_info(*slot)
                .is_ok_and(|info| !info.token_initialized())
        })
        .expect("SoftHSM always offers one free slot");
    let so_pin = AuthPin::from(so_pin);
    ctx.init_token(free, &so_pin, label).expect("C_InitToken");
    let slot = ctx
        .get_slots_with_initialized_token()
        .expect("C_GetSlotList")
        .into_iter()
        .find(|slot| {
            ctx.get_token_info(*slot)
                .is_ok_and(|info| info.label().trim_end() == label)
        })
        .expect("the new token is listed");
    let session = ctx.open_rw_session(slot).expect("C_OpenSession");
    session
        .login(UserType::So, Some(&so_pin))
        .expect("C_Login as SO");
    session.init_pin(&AuthPin::from(pin)).expect("C_InitPIN");
    session.logout().expect("C_Logout");
}

/// The token directory whose `token.object` carries `label` (SoftHSM names
/// the directories by a UUID, not by label).
fn find_token_dir(tokens: &Path, label: &str) -> Option<PathBuf> {
    let mut padded = label.as_bytes().to_vec();
    padded.resize(32, b' ');
    std::fs::read_dir(tokens).ok()?.flatten().find_map(|entry| {
        let object = std::fs::read(entry.path().join("token.object")).ok()?;
        object
            .windows(padded.len())
            .any(|w| w == padded.as_slice())
            .then(|| entry.path())
    })
}
