//! `clavis login` (prove an application's credentials by acquiring a token for
//! the management API, then save them as a profile) and `clavis logout`.
//! The secret comes from stdin (never echoed) or the server's bootstrap file.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::authority::Authority;
use crate::client::{Connection, Session, MANAGEMENT_SCOPE};
use crate::error::{self, Error};
use crate::lookup;
use crate::output::{self, OutputFormat};
use crate::profile::{ClientSecret, Profile, ProfileName, Settings};
use crate::{Ctx, GlobalArgs};

/// The bootstrap admin's credentials, written by the server on first start.
const BOOTSTRAP_FILE: &str = "bootstrap-admin.json";

/// Arguments of `clavis login`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    clavis login --bootstrap /var/lib/clavis\n  \
    clavis login --authority https://id.example:8443/contoso --client-id APP_ID < secret.txt")]
pub struct LoginArgs {
    /// The server and tenant: https://HOST:PORT/TENANT (the tenant's name or id).
    /// With --bootstrap, it replaces the file's authority (e.g. the server's
    /// public URL, when you log in through it).
    #[arg(long, value_name = "URL", required_unless_present = "bootstrap")]
    authority: Option<String>,

    /// The application's client id (its appId), or its name: a name is
    /// looked up with this profile or the default one, when saved for the
    /// same authority. The secret is read from stdin.
    #[arg(
        long,
        value_name = "APP",
        required_unless_present = "bootstrap",
        conflicts_with = "bootstrap"
    )]
    client_id: Option<String>,

    /// PEM file of the CA to trust for this server, and only it (e.g. DATA_DIR/tls/ca.pem);
    /// without it, the system's root certificates are trusted.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,

    /// Log in as the bootstrap admin, reading DATA_DIR/bootstrap-admin.json
    /// (authority, client id, secret and CA file) instead of stdin.
    #[arg(long, value_name = "DATA_DIR")]
    bootstrap: Option<PathBuf>,

    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Arguments of `clavis logout`.
#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `DATA_DIR/bootstrap-admin.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapFile {
    client_id: Uuid,
    client_secret: ClientSecret,
    authority: String,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

pub async fn login(ctx: &Ctx, args: LoginArgs) -> Result<(), Error> {
    let config = ctx.config()?;
    let (authority, client_id, ca_file, secret) =
        match (&args.bootstrap, &args.authority, &args.client_id) {
            (Some(dir), authority, _) => {
                let file = read_bootstrap(dir)?;
                let authority = Authority::parse(authority.as_deref().unwrap_or(&file.authority))?;
                (
                    authority,
                    file.client_id,
                    args.ca_file.or(file.ca_file),
                    file.client_secret,
                )
            }
            (None, Some(authority), Some(client)) => {
                let authority = Authority::parse(authority)?;
                let client_id = client_id(ctx, &authority, client).await?;
                (authority, client_id, args.ca_file, read_secret(client_id)?)
            }
            // clap already requires these; kept as an error rather than a panic.
            _ => {
                return Err(Error::new(
                    "pass --authority and --client-id, or --bootstrap DATA_DIR",
                ))
            }
        };
    let ca_file = match ca_file {
        Some(path) => Some(std::path::absolute(&path).map_err(|e| {
            Error::new(format!(
                "cannot resolve CA file path {}: {e}",
                path.display()
            ))
        })?),
        None => None,
    };
    let conn = Connection::new(authority.clone(), ca_file.as_deref())?;
    conn.token(client_id, &secret, MANAGEMENT_SCOPE)
        .await
        .map_err(|e| match e.hint_text() {
            // "Log in again" is no advice while logging in.
            Some(error::LOGIN_AGAIN) => {
                e.hint("check the client id and the secret; it may have been removed or expired")
            }
            _ => e,
        })?;

    let name = ctx.global.profile.clone();
    let done = format!("Logged in to {authority} as {client_id}; saved as profile '{name}'.\n");
    let settings = Settings {
        authority,
        client_id,
        ca_file,
    };
    let summary =
        json!({ "profile": name.as_str(), "configDir": config.path(), "settings": &settings });
    config.save(&Profile {
        name: name.clone(),
        settings,
        secret,
    })?;
    output::emit(&match ctx.global.output {
        OutputFormat::Json => output::json(&summary),
        OutputFormat::Table => done,
    });
    Ok(())
}

/// `--client-id`: an appId as given, or a name looked up as the profile
/// being replaced or else the default profile: the first saved for
/// `authority` whose application may read applications.
async fn client_id(ctx: &Ctx, authority: &Authority, spec: &str) -> Result<Uuid, Error> {
    if let Ok(id) = Uuid::parse_str(spec.trim()) {
        return Ok(id);
    }
    let config = ctx.config()?;
    let mut names = vec![ctx.global.profile.clone()];
    let default = ProfileName::parse("default").expect("a valid name");
    if !names.contains(&default) {
        names.push(default);
    }
    let mut refused = None;
    for name in names {
        let Ok(profile) = config.load(&name) else {
            continue;
        };
        if profile.settings.authority != *authority {
            continue;
        }
        let found = match Session::open(&profile).await {
            Ok(s) => lookup::application(&s, spec).await,
            Err(e) => Err(e),
        };
        match found {
            Ok(app) => {
                return Uuid::parse_str(&app.view.app_id)
                    .map_err(|_| Error::new(format!("application '{spec}' has no valid appId")))
            }
            // This profile may not look (an expired secret, no role): try the next.
            Err(e) if matches!(e.http_status(), Some(400 | 401 | 403)) => refused = Some(e),
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = refused {
        return Err(e);
    }
    Err(Error::new(format!(
        "--client-id '{spec}' is not an appId, and no saved profile for {authority} can look the name up"
    ))
    .hint("pass its appId (`clavis app show NAME` shows it), or first log in to that authority as an administrator"))
}

pub fn logout(ctx: &Ctx) -> Result<(), Error> {
    let name = &ctx.global.profile;
    if !ctx.config()?.remove(name)? {
        return Err(Error::new(format!("there is no profile '{name}'"))
            .hint("pass --profile NAME to pick another"));
    }
    if ctx.global.output == OutputFormat::Table {
        output::emit(&format!("Removed profile '{name}'.\n"));
    }
    Ok(())
}

fn read_bootstrap(dir: &Path) -> Result<BootstrapFile, Error> {
    let path = dir.join(BOOTSTRAP_FILE);
    let bytes = Zeroizing::new(std::fs::read(&path).map_err(|e| {
        let err = Error::new(format!("cannot read {}: {e}", path.display()));
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                err.hint("run this as the user that runs `clavis serve`")
            }
            std::io::ErrorKind::NotFound => {
                err.hint("pass the data dir that `clavis serve` printed on its first start")
            }
            _ => err,
        }
    })?);
    // serde_json's messages may quote the file's content: report only where it went wrong.
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(format!(
            "{} is not a valid bootstrap file (line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// Read one line from stdin; on a terminal, prompt on stderr and turn echo off.
fn read_secret(client_id: Uuid) -> Result<ClientSecret, Error> {
    let stdin = std::io::stdin();
    let _echo = if stdin.is_terminal() {
        eprint!("Client secret for {client_id} (input hidden): ");
        let _ = std::io::stderr().flush();
        Some(EchoOff::new()?)
    } else {
        None
    };
    // Room for any real secret up front, so growing never leaves copies behind.
    let mut line = Zeroizing::new(String::with_capacity(1024));
    let read = stdin.lock().read_line(&mut line);
    if _echo.is_some() {
        eprintln!();
    }
    read.map_err(|e| Error::new(format!("cannot read the client secret from stdin: {e}")))?;
    let secret = ClientSecret::new(line);
    if secret.is_empty() {
        return Err(Error::new("no client secret on stdin")
            .hint("pipe it in, e.g. printf '%s\\n' \"$SECRET\" | clavis login ..., or use --bootstrap DATA_DIR"));
    }
    Ok(secret)
}

/// Terminal echo switched off with `stty` (no unsafe termios calls), and back on when dropped.
struct EchoOff;

impl EchoOff {
    fn new() -> Result<Self, Error> {
        if stty("-echo") {
            Ok(EchoOff)
        } else {
            Err(Error::new("cannot hide input on this terminal")
                .hint("pipe the secret in instead: printf '%s\\n' \"$SECRET\" | clavis login ..."))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        stty("echo");
    }
}

fn stty(arg: &str) -> bool {
    std::process::Command::new("stty")
        .arg(arg)
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}
