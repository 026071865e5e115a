//! `clavis agent`: runs beside an application (as Vault Agent does) and keeps
//! the client secret in its credentials file fresh, with nothing but the
//! `Application.Credentials.RotateSelf` role.
//!
//! When the secret's remaining life falls under `--rotate-before`, the agent
//! adds a new secret, proves it by getting a token with it, replaces the file
//! durably, tells the application (`--reload-command`, `--signal`), and
//! removes the old secret after `--grace`. The application is never left
//! without a working secret, whenever the agent dies:
//! - the file is only ever replaced whole (see `credentials_file`), and only
//!   with a secret that has just got a token;
//! - an old secret goes only once the new file is on disk, the application
//!   has been told, and the grace period has passed; the pending removals
//!   are in the file (`retiring`), so a restarted agent finishes them, and
//!   tells the application again first if it had not been told;
//! - a secret added but never recorded (a crash between `addPassword` and the
//!   file write) carries this agent's id in its name: a later pass removes it
//!   once it is a minute old, and never the secret in the file;
//! - while the server is down the agent keeps the file and retries with
//!   backoff (`--once` exits non-zero instead).
//!
//! It logs one line per step to stderr, with key ids, never values.

mod credentials_file;
mod cycle;
mod init;
mod log;
mod notify;

use std::path::PathBuf;

use time::Duration;
use uuid::Uuid;

use self::credentials_file::CredentialsFile;
use self::cycle::Agent;
use self::notify::{Notifier, Pid, Signal};
use crate::client::Connection;
use crate::error::Error;
use crate::when::parse_interval;
use crate::Ctx;

/// How the agent names the secrets it adds: this, its id, the time.
pub(super) const NAME_PREFIX: &str = "clavis-agent ";

/// `clavis agent ...`
#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// The credentials file the application reads: JSON with authority,
    /// tenant, clientId, secret, keyId, endDateTime and objectId. It must be
    /// private to the user running the agent (chmod 600).
    #[arg(long, env = "CLAVIS_AGENT_CREDENTIALS", value_name = "FILE")]
    credentials: PathBuf,

    /// Rotate when the secret has less than this left (e.g. 30d).
    /// Default: a third of the secret's lifetime.
    #[arg(long, env = "CLAVIS_AGENT_ROTATE_BEFORE", value_name = "DURATION", value_parser = parse_interval)]
    rotate_before: Option<Duration>,

    /// Lifetime of each new secret (e.g. 90d). Default: the tenant's default.
    #[arg(long, env = "CLAVIS_AGENT_LIFETIME", value_name = "DURATION", value_parser = parse_interval)]
    lifetime: Option<Duration>,

    /// How long the old secret keeps working after the new file is written
    /// (and the application told), for requests already under way.
    #[arg(long, env = "CLAVIS_AGENT_GRACE", value_name = "DURATION", default_value = "10m", value_parser = parse_interval)]
    grace: Duration,

    /// Run this (with `sh -c`) after each replacement of the file; the old
    /// secret stays until it succeeds.
    #[arg(long, env = "CLAVIS_AGENT_RELOAD_COMMAND", value_name = "COMMAND")]
    reload_command: Option<String>,

    /// Send this signal (HUP, USR1, ...) after each replacement of the file,
    /// to --pid or the process in --pid-file.
    #[arg(long, env = "CLAVIS_AGENT_SIGNAL", value_name = "SIGNAL", value_parser = Signal::parse, requires = "target")]
    signal: Option<Signal>,

    /// The process to signal.
    #[arg(
        long,
        env = "CLAVIS_AGENT_PID",
        value_name = "PID",
        group = "target",
        requires = "signal",
        value_parser = notify::parse_pid
    )]
    pid: Option<u32>,

    /// A file holding the process id to signal (read at each signal; 0, 1,
    /// negative ids and the agent's own are refused).
    #[arg(
        long,
        env = "CLAVIS_AGENT_PID_FILE",
        value_name = "FILE",
        group = "target",
        requires = "signal"
    )]
    pid_file: Option<PathBuf>,

    /// Rotate if due, finish removals that are due, and exit (for cron);
    /// exits non-zero if the server could not be reached.
    #[arg(long)]
    once: bool,

    /// How often to look at the secret's remaining life.
    #[arg(long, env = "CLAVIS_AGENT_CHECK_INTERVAL", value_name = "DURATION", default_value = "1m", value_parser = parse_interval)]
    check_interval: Duration,

    /// The CA certificate (PEM) to trust for the server; default: the file's
    /// caFile, else the system's roots.
    #[arg(long, env = "CLAVIS_AGENT_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,

    /// Create FILE for the application APP and exit: a new secret of APP
    /// (added as the logged-in profile, see `clavis login`), proven with a
    /// token and written to a new private file the agent can then look after.
    #[arg(long, value_name = "APP")]
    init: Option<String>,

    /// How old a secret this agent added but never recorded must be before it
    /// is removed (a crash between adding it and writing the file).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_interval, hide = true)]
    orphan_min_age: Duration,
}

/// Run the agent until killed (or once, with `--once`); or, with `--init`,
/// create its credentials file.
pub async fn run(ctx: &Ctx, args: AgentArgs) -> Result<(), Error> {
    check_timing(args.rotate_before, args.lifetime)?;
    let file = CredentialsFile::new(&args.credentials)?;
    if let Some(app) = &args.init {
        return init::init(ctx, &file, app, &args).await;
    }
    if std::fs::symlink_metadata(file.path()).is_err() {
        return Err(
            Error::new(format!("{} does not exist", file.path().display())).hint(format!(
                "create it with `clavis agent --credentials {} --init APP`",
                file.path().display()
            )),
        );
    }
    let _lock = file.lock()?;
    let stale = file.remove_stale_temporaries()?;
    if stale > 0 {
        log::info(format!(
            "removed {stale} half-written replacement(s) of the file left by an earlier run"
        ));
    }
    let mut creds = file.load()?;
    let ca_file = args.ca_file.clone().or_else(|| creds.ca_file.clone());
    let conn = Connection::new(creds.authority.clone(), ca_file.as_deref())?;
    if creds.agent_id.is_none() || creds.tenant.is_empty() {
        // The id is recorded before any secret is added, so every secret
        // this agent adds can be told apart from other agents' (replicas of
        // the same application) and from people's.
        creds.agent_id = creds.agent_id.or_else(|| Some(Uuid::new_v4()));
        creds.tenant = creds.tenant_name();
        file.store(&creds)?;
    }
    log::info(format!(
        "looking after {} for application {} (secret {}, ends {})",
        file.path().display(),
        creds.client_id,
        creds.key_id,
        crate::output::rfc3339(creds.end_date_time)
    ));
    if !creds.retiring.is_empty() {
        log::info(format!(
            "resuming: {} old secret(s) still to remove",
            creds.retiring.len()
        ));
    }
    let notifier = Notifier {
        command: args.reload_command.clone(),
        signal: args.signal.clone().and_then(|signal| {
            let pid = match (&args.pid, &args.pid_file) {
                (Some(pid), _) => Pid::Fixed(*pid),
                (None, Some(path)) => Pid::File(path.clone()),
                (None, None) => return None,
            };
            Some((signal, pid))
        }),
    };
    let mut agent = Agent {
        file,
        creds,
        conn,
        notifier,
        rotate_before: args.rotate_before,
        lifetime: args.lifetime,
        grace: args.grace,
        orphan_min_age: args.orphan_min_age,
        start: None,
        sweep_pending: true,
        done: Vec::new(),
    };
    let mut failures = 0u32;
    loop {
        match agent.tick().await {
            Ok(()) => {
                if failures > 0 {
                    log::info("the server answers again");
                }
                failures = 0;
                if args.once {
                    crate::output::emit(&agent.once_summary(time::OffsetDateTime::now_utc()));
                    return Ok(());
                }
            }
            Err(e) if args.once => return Err(e),
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = backoff(failures, args.check_interval);
                log::warn(format!(
                    "{}{}; the file is unchanged; trying again in {}",
                    e.reason(),
                    e.hint_text().map(|h| format!(" ({h})")).unwrap_or_default(),
                    human(delay)
                ));
                tokio::time::sleep(delay.unsigned_abs()).await;
                continue;
            }
        }
        tokio::time::sleep(args.check_interval.unsigned_abs()).await;
    }
}

/// `--rotate-before` must leave a new secret some life before its own
/// rotation: at or past `--lifetime`, every new secret would be due at once
/// and the agent would rotate on every check.
fn check_timing(rotate_before: Option<Duration>, lifetime: Option<Duration>) -> Result<(), Error> {
    match (rotate_before, lifetime) {
        (Some(before), Some(lifetime)) if before >= lifetime => Err(Error::new(format!(
            "--rotate-before ({}) must be shorter than --lifetime ({}): each new secret would \
             be due for rotation as soon as it was made",
            cycle::roughly(before),
            cycle::roughly(lifetime)
        ))
        .hint("leave it out (a third of the lifetime) or choose e.g. --lifetime 90d --rotate-before 30d")),
        _ => Ok(()),
    }
}

/// 1 s (or the check interval, if shorter), doubling, at most a minute (or
/// the check interval, if longer).
fn backoff(failures: u32, check_interval: Duration) -> Duration {
    let first = check_interval.min(Duration::SECOND);
    let cap = check_interval.max(Duration::MINUTE);
    let factor = 1i32 << failures.saturating_sub(1).min(10);
    (first * factor).min(cap)
}

pub(super) fn human(d: Duration) -> String {
    if d < Duration::SECOND {
        format!("{}ms", d.whole_milliseconds())
    } else {
        format!("{}s", d.whole_seconds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_before_must_be_shorter_than_the_lifetime() {
        let d = Duration::days;
        assert!(check_timing(Some(d(30)), Some(d(90))).is_ok());
        assert!(check_timing(Some(d(30)), None).is_ok());
        assert!(check_timing(None, Some(d(1))).is_ok());
        for (before, lifetime) in [(d(7), d(7)), (d(30), d(7))] {
            let err = check_timing(Some(before), Some(lifetime)).unwrap_err();
            assert!(err.reason().contains("--rotate-before"), "{err}");
            assert!(err.reason().contains("--lifetime"), "{err}");
        }
    }

    #[test]
    fn backoff_doubles_from_a_second_up_to_a_minute() {
        let minute = Duration::MINUTE;
        assert_eq!(backoff(1, minute), Duration::SECOND);
        assert_eq!(backoff(2, minute), Duration::seconds(2));
        assert_eq!(backoff(7, minute), Duration::MINUTE);
        assert_eq!(backoff(1000, minute), Duration::MINUTE);
        let fast = Duration::milliseconds(200);
        assert_eq!(backoff(1, fast), fast);
        assert_eq!(backoff(3, fast), Duration::milliseconds(800));
    }
}
