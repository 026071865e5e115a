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
mod notify;

use std::collections::HashSet;
use std::path::PathBuf;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use self::credentials_file::{Credentials, CredentialsFile, Retiring};
use self::notify::{Notifier, Pid, Signal};
use crate::client::{Connection, Session};
use crate::error::Error;
use crate::model::{view, Application};
use crate::rotation::{self, Target};
use crate::when::parse_interval;
use crate::Ctx;

/// How the agent names the secrets it adds: this, its id, the time.
const NAME_PREFIX: &str = "clavis-agent ";

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
        requires = "signal"
    )]
    pid: Option<u32>,

    /// A file holding the process id to signal (read at each signal).
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
    let file = CredentialsFile::new(&args.credentials)?;
    if let Some(app) = &args.init {
        return init(ctx, &file, app, &args).await;
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

/// `--init APP`: a first secret for APP, proven, in a new private file.
async fn init(ctx: &Ctx, file: &CredentialsFile, app: &str, args: &AgentArgs) -> Result<(), Error> {
    let path = file.path().display().to_string();
    if file.path().exists() {
        return Err(Error::new(format!("{path} already exists"))
            .hint("start the agent on it without --init, or choose another file"));
    }
    let _lock = file.lock()?;
    let profile = ctx.config()?.load(&ctx.global.profile)?;
    let s = Session::open(&profile).await?;
    let found = crate::lookup::application(&s, app).await?;
    let target = Target {
        object_id: found.view.id.clone(),
        app_id: Uuid::parse_str(&found.view.app_id)
            .map_err(|_| Error::new("the application's appId is not a GUID"))?,
    };
    let agent_id = Uuid::new_v4();
    let now = OffsetDateTime::now_utc();
    let name = format!(
        "{NAME_PREFIX}{} {}",
        agent_id.simple(),
        crate::output::rfc3339(now)
    );
    let new = rotation::add_proven(&s, &target, &name, args.lifetime.map(|l| now + l)).await?;
    let Some(end) = new.end else {
        let why = Error::new("the server's answer to addPassword has no endDateTime");
        return Err(rotation::undo(&s, &target, &new, &why).await);
    };
    let creds = Credentials {
        authority: profile.settings.authority.clone(),
        tenant: String::new(),
        client_id: target.app_id,
        secret: new.secret.clone(),
        key_id: new.key_id,
        end_date_time: end,
        start_date_time: new.start,
        object_id: Uuid::parse_str(&target.object_id).ok(),
        agent_id: Some(agent_id),
        ca_file: args.ca_file.clone().or(profile.settings.ca_file.clone()),
        retiring: Vec::new(),
        other: Default::default(),
    };
    let creds = Credentials {
        tenant: creds.tenant_name(),
        ..creds
    };
    if let Err(e) = file.store(&creds) {
        return Err(rotation::undo(&s, &target, &new, &e).await);
    }
    crate::output::emit(&format!(
        "Wrote {path} for application '{}' (secret {}, ends {}).\n\
         Grant it its role: clavis role grant --client {} --resource api://clavis --role Application.Credentials.RotateSelf\n\
         Then start the agent: clavis agent --credentials {path}\n",
        found.view.display_name,
        new.key_id,
        crate::output::rfc3339(end),
        target.app_id,
    ));
    Ok(())
}

/// 1 s (or the check interval, if shorter), doubling, at most a minute (or
/// the check interval, if longer).
fn backoff(failures: u32, check_interval: Duration) -> Duration {
    let first = check_interval.min(Duration::SECOND);
    let cap = check_interval.max(Duration::MINUTE);
    let factor = 1i32 << failures.saturating_sub(1).min(10);
    (first * factor).min(cap)
}

/// Is a secret valid from `start` to `end` due for rotation at `now`: less
/// than `rotate_before` left, by default a third of its lifetime? `None`
/// when that depends on an unknown start.
fn rotation_due(
    now: OffsetDateTime,
    start: Option<OffsetDateTime>,
    end: OffsetDateTime,
    rotate_before: Option<Duration>,
) -> Option<bool> {
    let before = match rotate_before {
        Some(before) => before,
        None => (end - start?) / 3,
    };
    Some(now + before >= end)
}

fn human(d: Duration) -> String {
    if d < Duration::SECOND {
        format!("{}ms", d.whole_milliseconds())
    } else {
        format!("{}s", d.whole_seconds())
    }
}

struct Agent {
    file: CredentialsFile,
    /// What the file holds now.
    creds: Credentials,
    conn: Connection,
    notifier: Notifier,
    rotate_before: Option<Duration>,
    lifetime: Option<Duration>,
    grace: Duration,
    orphan_min_age: Duration,
    /// The current secret's start, when the file does not say.
    start: Option<OffsetDateTime>,
    /// Look for unrecorded secrets at the next pass (at start-up, and while
    /// one is too young to remove).
    sweep_pending: bool,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("file", &self.file)
            .field("key_id", &self.creds.key_id)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// One pass; failures say what the agent's operator can do about them.
    async fn tick(&mut self) -> Result<(), Error> {
        let result = self.pass().await;
        result.map_err(|e| match e.http_status() {
            Some(401) => e.hint(format!(
                "the secret in {} is not accepted (expired, or removed?): put a working secret \
                 with its keyId and endDateTime in the file",
                self.file.path().display()
            )),
            Some(403) => e.hint(format!(
                "grant the application its role: `clavis role grant --client {} --resource \
                 api://clavis --role Application.Credentials.RotateSelf`",
                self.creds.client_id
            )),
            _ => e,
        })
    }

    /// Tell the application if it missed a replacement, then (only if
    /// something is due) sweep unrecorded secrets, remove old ones whose time
    /// has come, and rotate.
    async fn pass(&mut self) -> Result<(), Error> {
        self.tell_application().await?;
        let now = OffsetDateTime::now_utc();
        let removal_due = self
            .creds
            .retiring
            .iter()
            .any(|r| r.reloaded && r.remove_after <= now);
        let rotation_due = self.rotation_due(now);
        if !removal_due
            && rotation_due == Some(false)
            && !self.sweep_pending
            && self.creds.object_id.is_some()
        {
            return Ok(());
        }
        let session =
            Session::over(self.conn.clone(), self.creds.client_id, &self.creds.secret).await?;
        let target = self.target(&session).await?;
        let app: Application = view(
            &session
                .get(session.url(&["applications", &target.object_id]))
                .await?,
            "application",
        )?;
        if !app
            .app_id
            .eq_ignore_ascii_case(&self.creds.client_id.to_string())
        {
            return Err(Error::new(format!(
                "objectId {} in the file is not the application {}",
                target.object_id, self.creds.client_id
            ))
            .hint("fix objectId in the credentials file: it is the `id` of the application whose appId is clientId"));
        }
        self.learn_start(&app)?;
        self.sweep(&session, &target, &app).await?;
        self.remove_retired(&session, &target, &app).await?;
        if self.rotation_due(OffsetDateTime::now_utc()) == Some(true) {
            self.rotate(&session, &target).await?;
        }
        Ok(())
    }

    /// `Some(true)` when the secret has less than `--rotate-before` left;
    /// `None` when that depends on a start time not yet known.
    fn rotation_due(&self, now: OffsetDateTime) -> Option<bool> {
        rotation_due(
            now,
            self.creds.start_date_time.or(self.start),
            self.creds.end_date_time,
            self.rotate_before,
        )
    }

    /// The application's object id: from the file, else looked up once (which
    /// needs a role that may read applications) and written to the file.
    async fn target(&mut self, s: &Session) -> Result<Target, Error> {
        let app_id = self.creds.client_id;
        if let Some(id) = self.creds.object_id {
            return Ok(Target {
                object_id: id.to_string(),
                app_id,
            });
        }
        let found = crate::lookup::application(s, &app_id.to_string())
            .await
            .map_err(|e| {
                Error::new(format!(
                    "the credentials file has no objectId, and looking it up failed: {}",
                    e.reason()
                ))
                .hint(format!(
                    "add \"objectId\": \"<the application's id>\" to {} (`clavis app show {app_id}` shows it)",
                    self.file.path().display()
                ))
            })?;
        let id = Uuid::parse_str(&found.view.id)
            .map_err(|_| Error::new("the application's id is not a GUID"))?;
        let mut next = self.creds.clone();
        next.object_id = Some(id);
        self.file.store(&next)?;
        self.creds = next;
        Ok(Target {
            object_id: id.to_string(),
            app_id,
        })
    }

    /// The current secret's start time, from the server, if the file lacks it.
    fn learn_start(&mut self, app: &Application) -> Result<(), Error> {
        if self.creds.start_date_time.is_some() || self.start.is_some() {
            return Ok(());
        }
        let key = self.creds.key_id.to_string();
        let current = app
            .password_credentials
            .iter()
            .find(|c| c.key_id.eq_ignore_ascii_case(&key))
            .ok_or_else(|| {
                Error::new(format!(
                    "the application has no secret with the file's keyId {key}"
                ))
                .hint("set keyId in the credentials file to the key id of its secret (`clavis secret list APP`)")
            })?;
        self.start = OffsetDateTime::parse(&current.start_date_time, &Rfc3339).ok();
        Ok(())
    }

    /// Remove secrets this agent added but never recorded, once they are old
    /// enough that no rotation of ours can still be writing them down.
    async fn sweep(
        &mut self,
        s: &Session,
        target: &Target,
        app: &Application,
    ) -> Result<(), Error> {
        let Some(agent_id) = self.creds.agent_id else {
            return Ok(());
        };
        let ours = format!("{NAME_PREFIX}{}", agent_id.simple());
        let mut known: HashSet<Uuid> = self.creds.retiring.iter().map(|r| r.key_id).collect();
        known.insert(self.creds.key_id);
        let now = OffsetDateTime::now_utc();
        let mut young = false;
        for c in &app.password_credentials {
            let Ok(key) = Uuid::parse_str(&c.key_id) else {
                continue;
            };
            if !c.display_name.starts_with(&ours) || known.contains(&key) {
                continue;
            }
            let started = OffsetDateTime::parse(&c.start_date_time, &Rfc3339).ok();
            if started.is_some_and(|t| now - t < self.orphan_min_age) {
                young = true;
                continue;
            }
            rotation::remove(s, target, key).await?;
            log::info(format!(
                "removed secret {key}: added by this agent but never written to the file (an earlier run stopped in between)"
            ));
        }
        self.sweep_pending = young;
        Ok(())
    }

    /// Remove old secrets whose grace period has passed (and whose
    /// replacement the application has been told about).
    async fn remove_retired(
        &mut self,
        s: &Session,
        target: &Target,
        app: &Application,
    ) -> Result<(), Error> {
        let on_server: HashSet<Uuid> = app
            .password_credentials
            .iter()
            .filter_map(|c| Uuid::parse_str(&c.key_id).ok())
            .collect();
        let now = OffsetDateTime::now_utc();
        let mut next = self.creds.clone();
        next.retiring.clear();
        let mut result = Ok(());
        for r in &self.creds.retiring {
            if r.key_id == self.creds.key_id {
                // Never the secret the file holds.
                continue;
            }
            if !on_server.contains(&r.key_id) {
                log::info(format!("old secret {} is already gone", r.key_id));
                continue;
            }
            if result.is_ok() && r.reloaded && r.remove_after <= now {
                match rotation::remove(s, target, r.key_id).await {
                    Ok(_) => {
                        log::info(format!("removed old secret {}", r.key_id));
                        continue;
                    }
                    Err(e) => result = Err(e),
                }
            }
            next.retiring.push(r.clone());
        }
        if next.retiring != self.creds.retiring {
            self.file.store(&next)?;
            self.creds = next;
        }
        result
    }

    /// Add a secret, prove it, write the file, tell the application; the old
    /// secret joins `retiring`.
    async fn rotate(&mut self, s: &Session, target: &Target) -> Result<(), Error> {
        let now = OffsetDateTime::now_utc();
        let agent_id = self.creds.agent_id.unwrap_or_default();
        let name = format!(
            "{NAME_PREFIX}{} {}",
            agent_id.simple(),
            crate::output::rfc3339(now)
        );
        let new = rotation::add(s, target, &name, self.lifetime.map(|l| now + l)).await?;
        let Some(end) = new.end else {
            let why = Error::new("the server's answer to addPassword has no endDateTime");
            return Err(rotation::undo(s, target, &new, &why).await);
        };
        log::info(format!(
            "added secret {} (ends {})",
            new.key_id,
            crate::output::rfc3339(end)
        ));
        if let Err(why) = rotation::prove(&self.conn, target.app_id, &new.secret).await {
            return Err(rotation::undo(s, target, &new, &why).await);
        }
        log::info(format!("proved secret {}: it got a token", new.key_id));

        let old = self.creds.key_id;
        let mut next = self.creds.clone();
        next.secret = new.secret.clone();
        next.key_id = new.key_id;
        next.end_date_time = end;
        next.start_date_time = new.start.or(Some(now));
        next.retiring.push(Retiring {
            key_id: old,
            remove_after: OffsetDateTime::now_utc() + self.grace,
            reloaded: !self.notifier.is_set(),
        });
        if let Err(e) = self.file.store(&next) {
            return Err(rotation::undo(s, target, &new, &e).await);
        }
        self.creds = next;
        self.start = None;
        log::info(format!(
            "wrote {} (secret {}); old secret {old} goes in {}",
            self.file.path().display(),
            new.key_id,
            human(self.grace)
        ));
        self.tell_application().await
    }

    /// Run the reload command / send the signal if a replacement of the file
    /// has not been announced yet, then record that it has.
    async fn tell_application(&mut self) -> Result<(), Error> {
        if self.creds.retiring.iter().all(|r| r.reloaded) {
            return Ok(());
        }
        for done in self.notifier.notify().await? {
            log::info(done);
        }
        let mut next = self.creds.clone();
        for r in &mut next.retiring {
            r.reloaded = true;
        }
        self.file.store(&next)?;
        self.creds = next;
        Ok(())
    }
}

/// One line per step on stderr: time, level, message (key ids, never values).
mod log {
    use std::io::Write as _;

    fn line(level: &str, message: &str) {
        let at = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .unwrap_or_default();
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{at} {level} clavis agent: {message}");
    }

    pub fn info(message: impl AsRef<str>) {
        line("INFO", message.as_ref());
    }

    pub fn warn(message: impl AsRef<str>) {
        line("WARN", message.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn rotation_is_due_a_third_of_the_lifetime_before_the_end_by_default() {
        let start = datetime!(2026-01-01 0:00 UTC);
        let end = datetime!(2026-04-01 0:00 UTC); // 90 days
        let at = |t| rotation_due(t, Some(start), end, None);
        assert_eq!(at(datetime!(2026-03-01 23:00 UTC)), Some(false));
        assert_eq!(at(datetime!(2026-03-02 0:00 UTC)), Some(true));
        assert_eq!(rotation_due(start, None, end, None), None);
        let flag = Some(Duration::days(7));
        assert_eq!(
            rotation_due(datetime!(2026-03-24 0:00 UTC), None, end, flag),
            Some(false)
        );
        assert_eq!(
            rotation_due(datetime!(2026-03-25 0:00 UTC), None, end, flag),
            Some(true)
        );
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
