//! Telling the application its credentials file changed: run a reload
//! command (through `sh -c`), and/or send a signal to a process named by
//! `--pid` or `--pid-file` (through `kill`, as the agent has no unsafe code).

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
                Pid::Fixed(pid) => *pid,
                Pid::File(path) => std::fs::read_to_string(path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .ok_or_else(|| Error::new(format!("{} holds no process id", path.display())))?,
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
