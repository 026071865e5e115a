//! One pass of the agent: tell the application about a replacement it
//! missed, sweep secrets an earlier run added but never recorded, remove old
//! secrets whose grace period has passed, and rotate when the secret's
//! remaining life is under the threshold (see the crash rules in `agent`).

use std::collections::HashSet;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::credentials_file::{Credentials, CredentialsFile, Retiring};
use super::notify::Notifier;
use super::{human, log, NAME_PREFIX};
use crate::client::{Connection, Session};
use crate::error::Error;
use crate::model::{view, Application};
use crate::rotation::{self, Target};

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

pub struct Agent {
    pub file: CredentialsFile,
    /// What the file holds now.
    pub creds: Credentials,
    pub conn: Connection,
    pub notifier: Notifier,
    pub rotate_before: Option<Duration>,
    pub lifetime: Option<Duration>,
    pub grace: Duration,
    pub orphan_min_age: Duration,
    /// The current secret's start, when the file does not say.
    pub start: Option<OffsetDateTime>,
    /// Look for unrecorded secrets at the next pass (at start-up, and while
    /// one is too young to remove).
    pub sweep_pending: bool,
    /// What the passes so far changed, for `--once`'s summary.
    pub done: Vec<String>,
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
    pub async fn tick(&mut self) -> Result<(), Error> {
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

    /// When the current secret falls due for rotation (`None` while its
    /// start, which the default rotation point needs, is unknown).
    pub fn next_rotation(&self) -> Option<OffsetDateTime> {
        let end = self.creds.end_date_time;
        let before = match self.rotate_before {
            Some(before) => before,
            None => (end - self.creds.start_date_time.or(self.start)?) / 3,
        };
        Some(end - before)
    }

    /// What `--once` did and what comes next, in one line for people (and
    /// cron mail).
    pub fn once_summary(&self, now: OffsetDateTime) -> String {
        let did = if self.done.is_empty() {
            "nothing was due".to_owned()
        } else {
            self.done.join("; ")
        };
        let next = match self.next_rotation() {
            Some(at) if at <= now => "the next rotation is due now".to_owned(),
            Some(at) => format!(
                "next rotation due {} (in {})",
                crate::output::rfc3339(at),
                roughly(at - now)
            ),
            None => "next rotation: when a third of the secret's life is left".to_owned(),
        };
        let pending = match self.creds.retiring.iter().map(|r| r.remove_after).max() {
            Some(last) => format!(
                "; {} old secret(s) to remove from {}",
                self.creds.retiring.len(),
                crate::output::rfc3339(last)
            ),
            None => String::new(),
        };
        format!(
            "{did}. Secret {} ends {}; {next}{pending}.\n",
            self.creds.key_id,
            crate::output::rfc3339(self.creds.end_date_time)
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

    /// The current secret's start time, from the server, if the file lacks it
    /// and the default rotation point (a third of the lifetime) needs it.
    fn learn_start(&mut self, app: &Application) -> Result<(), Error> {
        if self.rotate_before.is_some()
            || self.creds.start_date_time.is_some()
            || self.start.is_some()
        {
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
            self.done
                .push(format!("removed unrecorded secret {key} of an earlier run"));
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
                        self.done.push(format!("removed old secret {}", r.key_id));
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
        self.done.push(format!(
            "rotated: secret {old} replaced by {} (ends {})",
            new.key_id,
            crate::output::rfc3339(end)
        ));
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

/// A wait for people: whole days, else hours, else minutes.
pub(super) fn roughly(d: Duration) -> String {
    if d >= Duration::days(2) {
        format!("{} days", d.whole_days())
    } else if d >= Duration::hours(2) {
        format!("{} hours", d.whole_hours())
    } else {
        match d.whole_minutes().max(1) {
            1 => "1 minute".to_owned(),
            n => format!("{n} minutes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn waits_read_in_the_largest_whole_unit() {
        assert_eq!(roughly(Duration::days(59) + Duration::hours(5)), "59 days");
        assert_eq!(roughly(Duration::hours(30)), "30 hours");
        assert_eq!(roughly(Duration::seconds(20)), "1 minute");
        assert_eq!(roughly(Duration::hours(1)), "60 minutes");
    }

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
}
