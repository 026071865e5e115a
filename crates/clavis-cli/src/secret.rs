//! `clavis secret`: add (`POST .../addPassword`, the one time a value is
//! shown), list (the application's `passwordCredentials`, never with values)
//! and remove (`POST .../removePassword`) an application's client secrets, and
//! rotate them once (the steps shared with `clavis agent` are in `rotation`);
//! `compromised` is in [`crate::compromise`].

use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::confirm;
use crate::error::Error;
use crate::lookup;
use crate::model::{view, PasswordCredential};
use crate::output::{self, key_values, OutputFormat, Table};
use crate::rotation::{self, forget_secret_text};
use crate::when;
use crate::Ctx;

/// `clavis secret ...`
#[derive(clap::Subcommand, Debug)]
pub enum SecretCommand {
    /// Create a client secret and print its value, once.
    Add {
        /// Object id, appId, identifier URI or display name.
        app: String,
        /// A name for the secret, to tell it apart later (e.g. "ci 2026-01").
        #[arg(long, value_name = "DISPLAY_NAME")]
        name: Option<String>,
        /// When it expires: a duration from now (30m, 12h, 90d, 2w, 1y) or an RFC 3339 time.
        /// Without it the tenant's default lifetime applies.
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
    },
    /// List an application's secrets (key id, name, hint, validity; never
    /// the value); with --expiring and no APP, every application's secrets
    /// that end within that time (or have ended).
    List {
        /// Object id, appId, identifier URI or display name.
        #[arg(required_unless_present = "expiring")]
        app: Option<String>,
        /// Only secrets that end within this time from now (e.g. 30d, 12h).
        #[arg(long, value_name = "DURATION")]
        expiring: Option<String>,
    },
    /// Rotate: add a new secret, prove it works (the application gets a
    /// token with it), then remove the old ones named with --remove (or all
    /// others with --remove-others). Without either, old secrets are kept
    /// until you have deployed the new one.
    Rotate {
        /// Object id, appId, identifier URI or display name.
        app: String,
        /// A name for the new secret.
        #[arg(long, value_name = "DISPLAY_NAME")]
        name: Option<String>,
        /// When the new secret expires: a duration (30m, 12h, 90d) or an RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// Remove this old secret (key id or name) once the new one works (repeatable).
        #[arg(long, value_name = "SECRET")]
        remove: Vec<String>,
        /// Remove every other secret of the application once the new one works.
        #[arg(long, conflicts_with = "remove")]
        remove_others: bool,
        /// Do not ask before removing old secrets (it is never asked when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// A secret leaked: revoke it and every token it minted at once,
    /// optionally revoke all of the application's tokens and replace its
    /// other secrets, and report what it was used for (tokens, failed
    /// attempts, management actions).
    Compromised(crate::compromise::CompromisedArgs),
    /// Remove a secret: it stops working at once.
    Remove {
        /// Object id, appId, identifier URI or display name.
        app: String,
        /// The secret's key id or name, as shown by `clavis secret list`.
        #[arg(value_name = "SECRET")]
        secret: String,
        /// Do not ask for confirmation (it is never asked when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

pub async fn run(ctx: &Ctx, cmd: SecretCommand) -> Result<(), Error> {
    let now = OffsetDateTime::now_utc();
    // Check what we can before any network round-trip.
    let expires = match &cmd {
        SecretCommand::Add {
            expires: Some(text),
            ..
        }
        | SecretCommand::Rotate {
            expires: Some(text),
            ..
        } => Some(when::parse_expiry(text, now)?),
        _ => None,
    };
    let s = ctx.session().await?;
    let format = ctx.global.output;
    match cmd {
        SecretCommand::Add { app, name, .. } => {
            let found = lookup::application(&s, &app).await?;
            let mut credential = serde_json::Map::new();
            if let Some(name) = name {
                credential.insert("displayName".into(), name.into());
            }
            if let Some(at) = expires {
                credential.insert("endDateTime".into(), output::rfc3339(at).into());
            }
            let url = s.url(&["applications", &found.view.id, "addPassword"]);
            let mut added = s
                .post(url, &json!({ "passwordCredential": credential }))
                .await?
                .ok_or_else(|| Error::new("the server added a secret but did not return it"))?;
            let text = added_text(format, &added, &found.view.display_name);
            forget_secret_text(&mut added);
            output::emit(&text?);
        }
        SecretCommand::List {
            app: Some(app),
            expiring: None,
        } => {
            let found = lookup::application(&s, &app).await?;
            output::emit(&match format {
                OutputFormat::Json => {
                    output::json(&output::list_field(&found.raw, "passwordCredentials"))
                }
                OutputFormat::Table => list_table(&found.view.password_credentials, now),
            });
        }
        SecretCommand::List { app, expiring } => {
            let within = match expiring.as_deref() {
                Some(text) => when::parse_duration(text).ok_or_else(|| {
                    Error::new(format!("--expiring {text}: not a duration"))
                        .hint("use e.g. 30d, 12h or 2w")
                })?,
                None => time::Duration::MAX,
            };
            let apps = match app {
                Some(app) => vec![lookup::application(&s, &app).await?.raw],
                None => s.list(s.url(&["applications"]), None).await?,
            };
            let rows = expiring_secrets(&apps, now, within)?;
            output::emit(&match format {
                OutputFormat::Json => {
                    output::json(&Value::Array(rows.iter().map(|r| r.json()).collect()))
                }
                OutputFormat::Table => expiring_table(&rows, now),
            });
        }
        SecretCommand::Rotate {
            app,
            name,
            remove,
            remove_others,
            yes,
            ..
        } => {
            let found = lookup::application(&s, &app).await?;
            let target = rotation::Target {
                object_id: found.view.id.clone(),
                app_id: found
                    .view
                    .app_id
                    .parse()
                    .map_err(|_| Error::new("the application's appId is not a GUID"))?,
            };
            // Name the secrets to remove before anything changes.
            let mut remove_ids = Vec::new();
            for spec in &remove {
                let key_id = &lookup::secret(&found.view, spec)?.key_id;
                remove_ids.push(Uuid::parse_str(key_id).map_err(|_| {
                    Error::new(format!(
                        "the server sent a key id that is not a GUID: {key_id}"
                    ))
                })?);
            }
            let removing = if remove_others {
                found.view.password_credentials.len()
            } else {
                remove_ids.len()
            };
            if removing > 0 {
                confirm::unless_yes(
                    yes,
                    &format!(
                        "Rotate '{}': add a new secret, then remove {removing} old one(s)",
                        found.view.display_name
                    ),
                )?;
            }
            let name = name.unwrap_or_else(|| format!("rotated {}", output::rfc3339(now)));
            // Prove the new secret works before anything old goes away.
            let new = rotation::add_proven(&s, &target, &name, expires).await?;
            let old: Vec<Uuid> = if remove_others {
                found
                    .view
                    .password_credentials
                    .iter()
                    .filter_map(|c| Uuid::parse_str(&c.key_id).ok())
                    .filter(|k| *k != new.key_id)
                    .collect()
            } else {
                remove_ids
            };
            let mut removed = Vec::new();
            for key in old {
                rotation::remove(&s, &target, key).await?;
                removed.push(key.to_string());
            }
            let added = &new.raw;
            let text = match format {
                OutputFormat::Json => Ok(Zeroizing::new(output::json(
                    &json!({ "added": added, "removed": removed }),
                ))),
                OutputFormat::Table => added_text(format, added, &found.view.display_name).map(|mut t| {
                    if removed.is_empty() {
                        t.push_str("Old secrets were kept: deploy the new one, then remove them with `clavis secret remove`.\n");
                    } else {
                        t.push_str(&format!("Removed old secrets: {}.\n", removed.join(", ")));
                    }
                    t
                }),
            };
            output::emit(&text?);
        }
        SecretCommand::Compromised(args) => crate::compromise::run(&s, format, args).await?,
        SecretCommand::Remove { app, secret, yes } => {
            let found = lookup::application(&s, &app).await?;
            let credential = lookup::secret(&found.view, &secret)?;
            let key_id = credential.key_id.clone();
            confirm::unless_yes(
                yes,
                &format!(
                    "Remove secret '{}' ({key_id}, hint {}) of '{}' now",
                    credential.display_name, credential.hint, found.view.display_name
                ),
            )?;
            let url = s.url(&["applications", &found.view.id, "removePassword"]);
            s.post(url, &json!({ "keyId": key_id })).await?;
            if format == OutputFormat::Table {
                output::emit(&format!(
                    "Removed secret {key_id} from application '{}'.\n",
                    found.view.display_name
                ));
            }
        }
    }
    Ok(())
}

/// What `secret add` prints: the response object (json), or a short block with
/// the value and a warning that it is shown only this once (table).
fn added_text(
    format: OutputFormat,
    added: &Value,
    app_name: &str,
) -> Result<Zeroizing<String>, Error> {
    if format == OutputFormat::Json {
        return Ok(Zeroizing::new(output::json(added)));
    }
    let secret = added["secretText"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::new("the server's answer to addPassword has no secretText"))?;
    let c: PasswordCredential = view(&without_secret_text(added), "password credential")?;
    let mut text = Zeroizing::new(key_values(&[
        ("application", app_name.to_owned()),
        ("keyId", c.key_id),
        ("displayName", c.display_name),
        ("expires", output::time(&c.end_date_time)),
        ("secret", secret.to_owned()),
    ]));
    text.push_str("\nCopy the secret now: it will not be shown again.\n");
    Ok(text)
}

fn without_secret_text(added: &Value) -> Value {
    let mut copy = added.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("secretText");
    }
    copy
}

fn list_table(credentials: &[PasswordCredential], now: OffsetDateTime) -> String {
    let mut table = Table::new(&[
        "KEY ID",
        "DISPLAY NAME",
        "HINT",
        "START",
        "END",
        "LAST USED",
        "STATUS",
    ]);
    for c in credentials {
        let expired = time::OffsetDateTime::parse(
            &c.end_date_time,
            &time::format_description::well_known::Rfc3339,
        )
        .is_ok_and(|end| end <= now);
        table.row(vec![
            c.key_id.clone(),
            c.display_name.clone(),
            c.hint.clone(),
            output::time(&c.start_date_time),
            output::time(&c.end_date_time),
            if c.last_used_date_time.is_empty() {
                "never".to_owned()
            } else {
                output::time(&c.last_used_date_time)
            },
            if expired { "expired" } else { "valid" }.to_owned(),
        ]);
    }
    table.render()
}

/// A secret that ends soon, with its application.
struct Expiring {
    app_name: String,
    app_id: String,
    credential: PasswordCredential,
    end: OffsetDateTime,
}

impl Expiring {
    fn json(&self) -> Value {
        json!({
            "application": self.app_name,
            "appId": self.app_id,
            "keyId": self.credential.key_id,
            "displayName": self.credential.display_name,
            "hint": self.credential.hint,
            "endDateTime": self.credential.end_date_time,
        })
    }
}

/// Every secret of `apps` that ends before `now + within`, soonest first.
fn expiring_secrets(
    apps: &[Value],
    now: OffsetDateTime,
    within: time::Duration,
) -> Result<Vec<Expiring>, Error> {
    let horizon = now
        .checked_add(within)
        .unwrap_or(time::macros::datetime!(9999-12-31 0:00 UTC));
    let mut rows = Vec::new();
    for raw in apps {
        let app: crate::model::Application = view(raw, "application")?;
        for c in app.password_credentials {
            let Ok(end) = OffsetDateTime::parse(
                &c.end_date_time,
                &time::format_description::well_known::Rfc3339,
            ) else {
                continue;
            };
            if end <= horizon {
                rows.push(Expiring {
                    app_name: app.display_name.clone(),
                    app_id: app.app_id.clone(),
                    credential: c,
                    end,
                });
            }
        }
    }
    rows.sort_by_key(|r| r.end);
    Ok(rows)
}

fn expiring_table(rows: &[Expiring], now: OffsetDateTime) -> String {
    if rows.is_empty() {
        return "No secret ends in that time.\n".into();
    }
    let mut table = Table::new(&[
        "APPLICATION",
        "APP ID",
        "KEY ID",
        "DISPLAY NAME",
        "HINT",
        "END",
        "STATUS",
    ]);
    for r in rows {
        let left = r.end - now;
        let status = if left <= time::Duration::ZERO {
            "expired".to_owned()
        } else if left < time::Duration::days(1) {
            format!("ends in {}h", left.whole_hours())
        } else {
            format!("ends in {}d", left.whole_days())
        };
        table.row(vec![
            r.app_name.clone(),
            r.app_id.clone(),
            r.credential.key_id.clone(),
            r.credential.display_name.clone(),
            r.credential.hint.clone(),
            output::time(&r.credential.end_date_time),
            status,
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn expiring_keeps_only_secrets_ending_within_the_window_soonest_first() {
        let apps = vec![
            json!({"id":"a","appId":"A","displayName":"one","passwordCredentials":[
                {"keyId":"k1","displayName":"far","hint":"abc","startDateTime":"2026-01-01T00:00:00Z","endDateTime":"2027-01-01T00:00:00Z"},
                {"keyId":"k2","displayName":"soon","hint":"def","startDateTime":"2026-01-01T00:00:00Z","endDateTime":"2026-01-20T00:00:00Z"}]}),
            json!({"id":"b","appId":"B","displayName":"two","passwordCredentials":[
                {"keyId":"k3","displayName":"gone","hint":"ghi","startDateTime":"2025-01-01T00:00:00Z","endDateTime":"2025-12-01T00:00:00Z"}]}),
        ];
        let now = datetime!(2026-01-01 0:00 UTC);
        let rows = expiring_secrets(&apps, now, time::Duration::days(30)).unwrap();
        let keys: Vec<_> = rows.iter().map(|r| r.credential.key_id.as_str()).collect();
        assert_eq!(keys, ["k3", "k2"]);
        let table = expiring_table(&rows, now);
        assert!(
            table.contains("expired") && table.contains("ends in 19d"),
            "{table}"
        );
        assert!(
            expiring_secrets(&apps, now, time::Duration::MAX)
                .unwrap()
                .len()
                == 3
        );
    }

    fn added() -> Value {
        json!({"keyId":"k-1","displayName":"ci","hint":"AbC","startDateTime":"2026-01-01T00:00:00Z",
               "endDateTime":"2026-04-01T00:00:00Z","secretText":"clv_AbCsecretvalue"})
    }

    #[test]
    fn add_shows_the_value_once_with_a_warning() {
        let text = added_text(OutputFormat::Table, &added(), "orders").unwrap();
        assert!(
            text.contains("secret:       clv_AbCsecretvalue\n"),
            "{}",
            *text
        );
        assert!(text.contains("expires:      2026-04-01T00:00:00Z\n"));
        assert!(text.ends_with("it will not be shown again.\n"));
        assert_eq!(text.matches("clv_AbCsecretvalue").count(), 1);

        let json: Value =
            serde_json::from_str(&added_text(OutputFormat::Json, &added(), "orders").unwrap())
                .unwrap();
        assert_eq!(json, added());

        let mut response = added();
        forget_secret_text(&mut response);
        assert_eq!(response["secretText"], "");
    }

    #[test]
    fn list_marks_expired_secrets() {
        let creds: Vec<PasswordCredential> = vec![
            view(
                &json!({"keyId":"a","hint":"x","endDateTime":"2026-01-01T00:00:00Z"}),
                "c",
            )
            .unwrap(),
            view(
                &json!({"keyId":"b","hint":"y","endDateTime":"2027-01-01T00:00:00Z",
                        "lastUsedDateTime":"2026-05-31T10:00:00.5Z"}),
                "c",
            )
            .unwrap(),
        ];
        let table = list_table(&creds, datetime!(2026-06-01 0:00 UTC));
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[1].starts_with("a ") && lines[1].ends_with("expired"),
            "{table}"
        );
        assert!(lines[1].contains(" never "), "{table}");
        assert!(lines[2].ends_with("valid"));
        assert!(lines[2].contains(" 2026-05-31T10:00:00Z "), "{table}");
    }
}
