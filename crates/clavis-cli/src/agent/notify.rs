//! Telling the application its credentials file changed: run a reload
//! command (through `sh -c`), and/or send a signal to a process named by
//! `--pid` or `--pid-file` (through `kill`, as the agent has no unsafe code).
//! Only one real other process is ever signalled: `kill` reads 0 as "my
//! process group", -1 as "every process I may signal" and 1 is init, so a
//! process id below 2, above the largest a kernel hands out, or the agent's
//! own is refused, whether it comes from the flag or from the file.

use std::path::PathBuf;

use crate::error::Error;

/// A signal name as `kill -s` takes it: `HUP`, `USR1`, … (`SIG` prefix optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal(String);

impl Signal {
    /// clap's value parser for `--signal`.
    pub fn parse(text: &str) -> Result<Signal, String> {
        let upper = text.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        const KNOWN: [&str; 7] = ["HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "WINCH"];
        if KNOWN.contains(&name) {
            Ok(Signal(name.to_owned()))
        } else {
            Err(format!(
                "'{text}' is not a signal the agent sends: use one of {}",
                KNOWN.join(", ")
            ))
        }
    }
}

/// The largest process id any kernel hands out (Linux: 2^22; above
/// `i32::MAX` a `pid_t` would wrap to a negative number).
const MAX_PID: i64 = 1 << 22;

/// A process id the agent may signal: one process, not the agent itself.
pub fn check_pid(pid: i64) -> Result<u32, String> {
    let why = match pid {
        i64::MIN..=-1 => "a negative process id signals a whole process group (-1: every process)",
        0 => "process id 0 signals the agent's own process group",
        1 => "process id 1 is init",
        p if p > MAX_PID => "it is larger than any process id",
        p if p == i64::from(std::process::id()) => "it is the agent's own process id",
        _ => return Ok(pid as u32),
    };
    Err(format!("{pid} is not a process to signal: {why}"))
}

/// clap's value parser for `--pid`.
pub fn parse_pid(text: &str) -> Result<u32, String> {
    let pid: i64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a process id"))?;
    check_pid(pid)
}

/// Where the signal goes.
#[derive(Debug, Clone)]
pub enum Pid {
    Fixed(u32),
    /// Read at each send, so a restarted application is found.
    File(PathBuf),
}

/// What to do after each replacement of the file.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    pub command: Option<String>,
    pub signal: Option<(Signal, Pid)>,
}

impl Notifier {
    /// Is there anyone to tell?
    pub fn is_set(&self) -> bool {
        self.command.is_some() || self.signal.is_some()
    }

    /// Run the command, then send the signal; what was done, for the log.
    pub async fn notify(&self) -> Result<Vec<String>, Error> {
        let mut done = Vec::new();
        if let Some(command) = &self.command {
            let status = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .stdin(std::process::Stdio::null())
                .status()
                .await
                .map_err(|e| Error::new(format!("cannot run the reload command: {e}")))?;
            if !status.success() {
                return Err(Error::new(format!("the reload command failed ({status})"))
                    .hint("the old secret is kept until the reload command succeeds"));
            }
            done.push("reload command ran".to_owned());
        }
        if let Some((signal, pid)) = &self.signal {
            let pid = match pid {
                Pid::Fixed(pid) => check_pid(i64::from(*pid)).map_err(Error::new)?,
                Pid::File(path) => {
                    let pid: i64 = std::fs::read_to_string(path)
                        .ok()
                        .and_then(|t| t.trim().parse().ok())
                        .ok_or_else(|| {
                            Error::new(format!("{} holds no process id", path.display()))
                        })?;
                    check_pid(pid).map_err(|why| {
                        Error::new(format!("{} holds {why}", path.display())).hint(
                            "the file must hold the application's process id; nothing was signalled",
                        )
                    })?
                }
            };
            let status = tokio::process::Command::new("kill")
                .args(["-s", &signal.0, &pid.to_string()])
                .stdin(std::process::Stdio::null())
                .status()
                .await
                .map_err(|e| Error::new(format!("cannot run kill: {e}")))?;
            if !status.success() {
                return Err(Error::new(format!(
                    "could not send SIG{} to process {pid} ({status})",
                    signal.0
                )));
            }
            done.push(format!("sent SIG{} to process {pid}", signal.0));
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(Signal::parse("hup"), Ok(Signal("HUP".into())));
        assert_eq!(Signal::parse("SIGUSR1"), Ok(Signal("USR1".into())));
        assert!(Signal::parse("KILL").is_err());
        assert!(Signal::parse("9").is_err());
    }

    #[test]
    fn only_one_other_real_process_may_be_signalled() {
        for bad in [
            -1,
            -42,
            0,
            1,
            MAX_PID + 1,
            i64::from(u32::MAX),
            i64::from(std::process::id()),
        ] {
            assert!(check_pid(bad).is_err(), "{bad}");
        }
        assert_eq!(check_pid(2), Ok(2));
        assert_eq!(check_pid(4242), Ok(4242));
        assert!(parse_pid("0").unwrap_err().contains("process group"));
        assert!(parse_pid("-1").unwrap_err().contains("every process"));
        assert!(parse_pid("1").unwrap_err().contains("init"));
        assert!(parse_pid("x").is_err());
        assert_eq!(parse_pid("77"), Ok(77));
    }

    /// A pid file holding 0, 1, a negative number or the agent's own pid
    /// signals nothing and says why. (WINCH: were it sent to the agent's
    /// process group, as `kill -s WINCH 0` did before, nothing would die.)
    #[tokio::test]
    async fn a_pid_file_naming_no_single_other_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.pid");
        for held in [
            "0".to_owned(),
            "1".to_owned(),
            "-1".to_owned(),
            std::process::id().to_string(),
        ] {
            std::fs::write(&file, format!("{held}\n")).unwrap();
            let notifier = Notifier {
                command: None,
                signal: Some((Signal("WINCH".into()), Pid::File(file.clone()))),
            };
            let err = notifier.notify().await.unwrap_err();
            assert!(
                err.reason().contains("is not a process to signal"),
                "{held}: {}",
                err.reason()
            );
        }
    }

    #[tokio::test]
    async fn command_runs_and_failure_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let ok = Notifier {
            command: Some(format!("touch '{}'", marker.display())),
            signal: None,
        };
        assert_eq!(ok.notify().await.unwrap(), ["reload command ran"]);
        assert!(marker.exists());
        let failing = Notifier {
            command: Some("exit 3".into()),
            signal: None,
        };
        assert!(failing.notify().await.is_err());
    }
}
