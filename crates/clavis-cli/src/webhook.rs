//! `clavis webhook`: subscribe to secret expiry warnings (`POST
//! /v1.0/webhooks`, the one time the signing secret is shown), list and
//! remove subscriptions (by id, name or URL), pause and resume them, and
//! read one's delivery log.

use serde_json::{json, Value};
use zeroize::{Zeroize as _, Zeroizing};

use crate::confirm;
use crate::error::Error;
use crate::lookup;
use crate::odata::with_query;
use crate::output::{self, key_values, OutputFormat, Table};
use crate::Ctx;

/// `clavis webhook ...`
#[derive(clap::Subcommand, Debug)]
pub enum WebhookCommand {
    /// Subscribe URL to secret expiry warnings and print the signing
    /// secret, once.
    ///
    /// Clavis POSTs `secret.expiring` when a secret crosses a threshold and
    /// `secret.expired` when it ends, signed with the secret
    /// (`Clavis-Signature` header). URL must be https:// to a public
    /// address; internal ones (localhost, private and link-local networks)
    /// and http://localhost need a server started with
    /// --allow-internal-webhooks.
    Add {
        /// Where to POST the warnings: https://… (http://localhost… for
        /// development, on a server with --allow-internal-webhooks).
        url: String,
        /// Days before a secret's end to warn at, comma-separated.
        #[arg(
            long,
            value_name = "DAYS",
            value_delimiter = ',',
            default_value = "30,7,1"
        )]
        threshold_days: Vec<u32>,
        /// A name for the subscription.
        #[arg(long, value_name = "DISPLAY_NAME")]
        name: Option<String>,
    },
    /// List the tenant's webhook subscriptions (never their secrets).
    List,
    /// Remove a subscription and its delivery log.
    Remove {
        /// The webhook's id, name or URL, as shown by `clavis webhook list`.
        #[arg(value_name = "WEBHOOK")]
        webhook: String,
        /// Do not ask for confirmation (it is never asked when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Pause subscriptions: no warnings are sent to them (those that fall
    /// due meanwhile are recorded, not sent later); `clavis restore` pauses
    /// every webhook it restores.
    Pause(Targets),
    /// Resume paused subscriptions: warnings that fall due from now on are
    /// sent again (and deliveries left pending are retried).
    Resume(Targets),
    /// Send the webhook a signed `ping` now and say what the receiver
    /// answered (recorded in its delivery log; no retries). Exits non-zero
    /// when it was not delivered.
    Test {
        /// The webhook's id, name or URL, as shown by `clavis webhook list`.
        #[arg(value_name = "WEBHOOK")]
        webhook: String,
    },
    /// Show a webhook's delivery log, newest first.
    Deliveries {
        /// The webhook's id, name or URL, as shown by `clavis webhook list`.
        #[arg(value_name = "WEBHOOK")]
        webhook: String,
        /// At most this many deliveries.
        #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        top: u32,
    },
}

/// Which subscriptions `pause` and `resume` change.
#[derive(clap::Args, Debug)]
pub struct Targets {
    /// The webhooks' ids, names or URLs, as shown by `clavis webhook list`.
    #[arg(required_unless_present = "all", value_name = "WEBHOOK")]
    webhooks: Vec<String>,
    /// Every webhook of the tenant.
    #[arg(long, conflicts_with = "webhooks")]
    all: bool,
}

/// Pause (`true`) or resume every webhook `targets` names; one line each.
async fn set_paused(
    s: &crate::client::Session,
    format: OutputFormat,
    targets: Targets,
    paused: bool,
) -> Result<(), Error> {
    let ids: Vec<String> = if targets.all {
        s.list(s.url(&["webhooks"]), None)
            .await?
            .iter()
            .map(|h| text(&h["id"]))
            .collect()
    } else {
        let mut ids = Vec::new();
        for webhook in &targets.webhooks {
            ids.push(lookup::webhook(s, webhook).await?);
        }
        ids
    };
    let mut done = Vec::new();
    for id in &ids {
        s.patch(s.url(&["webhooks", id]), &json!({ "paused": paused }))
            .await?;
        done.push(s.get(s.url(&["webhooks", id])).await?);
    }
    output::emit(&match format {
        OutputFormat::Json => output::json(&Value::from(done)),
        OutputFormat::Table if ids.is_empty() => "The tenant has no webhooks.\n".to_owned(),
        OutputFormat::Table => ids
            .iter()
            .map(|id| {
                format!(
                    "{} webhook {id}.\n",
                    if paused { "Paused" } else { "Resumed" }
                )
            })
            .collect(),
    });
    Ok(())
}

pub async fn run(ctx: &Ctx, cmd: WebhookCommand) -> Result<(), Error> {
    let s = ctx.session().await?;
    let format = ctx.global.output;
    match cmd {
        WebhookCommand::Add {
            url,
            threshold_days,
            name,
        } => {
            let mut body = json!({ "url": url, "thresholdDays": threshold_days });
            if let Some(name) = name {
                body["displayName"] = name.into();
            }
            let mut added = s
                .post(s.url(&["webhooks"]), &body)
                .await?
                .ok_or_else(|| Error::new("the server added the webhook but did not return it"))?;
            let text = added_text(format, &added);
            if let Some(Value::String(secret)) = added.get_mut("signingSecret") {
                secret.zeroize();
            }
            output::emit(&text?);
        }
        WebhookCommand::List => {
            let hooks = s.list(s.url(&["webhooks"]), None).await?;
            output::emit(&match format {
                OutputFormat::Json => output::json(&Value::from(hooks)),
                OutputFormat::Table => list_table(&hooks),
            });
        }
        WebhookCommand::Remove { webhook, yes } => {
            let id = lookup::webhook(&s, &webhook).await?;
            confirm::unless_yes(
                yes,
                &format!("Remove webhook {id} and its delivery log; no more warnings go to it"),
            )?;
            s.delete(s.url(&["webhooks", &id])).await?;
            if format == OutputFormat::Table {
                output::emit(&format!("Removed webhook {id}.\n"));
            }
        }
        WebhookCommand::Pause(targets) => set_paused(&s, format, targets, true).await?,
        WebhookCommand::Resume(targets) => set_paused(&s, format, targets, false).await?,
        WebhookCommand::Test { webhook } => {
            let id = lookup::webhook(&s, &webhook).await?;
            let delivery = s
                .post(s.url(&["webhooks", &id, "test"]), &json!({}))
                .await?
                .ok_or_else(|| {
                    Error::new("the server sent the ping but did not say how it went")
                })?;
            if format == OutputFormat::Json {
                output::emit(&output::json(&delivery));
            }
            let status = &delivery["lastHttpStatus"];
            if delivery["status"] == "delivered" {
                if format == OutputFormat::Table {
                    output::emit(&format!(
                        "Sent a signed ping to webhook {id}: delivered (the receiver answered HTTP {status}).\n"
                    ));
                }
            } else {
                let why = match (&delivery["lastError"], status) {
                    (_, Value::Number(n)) => format!("the receiver answered HTTP {n}"),
                    (Value::String(e), _) => e.clone(),
                    _ => "no answer".to_owned(),
                };
                return Err(Error::new(format!(
                    "the ping to webhook {id} was not delivered: {why}"
                ))
                .hint(format!(
                    "the attempt is in `clavis webhook deliveries {id}`"
                )));
            }
        }
        WebhookCommand::Deliveries { webhook, top } => {
            let id = lookup::webhook(&s, &webhook).await?;
            let page = top.min(999).to_string();
            let url = with_query(s.url(&["webhooks", &id, "deliveries"]), &[("$top", &page)]);
            let rows = s.list(url, Some(top as usize)).await?;
            output::emit(&match format {
                OutputFormat::Json => output::json(&Value::from(rows)),
                OutputFormat::Table => deliveries_table(&rows),
            });
        }
    }
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn days(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

/// What `webhook add` prints: the response (json), or a block with the
/// signing secret and a warning that it is shown only this once (table).
fn added_text(format: OutputFormat, added: &Value) -> Result<Zeroizing<String>, Error> {
    if format == OutputFormat::Json {
        return Ok(Zeroizing::new(output::json(added)));
    }
    let secret = added["signingSecret"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::new("the server's answer has no signingSecret"))?;
    let mut out = Zeroizing::new(key_values(&[
        ("id", text(&added["id"])),
        ("url", text(&added["url"])),
        ("thresholdDays", days(&added["thresholdDays"])),
        ("displayName", text(&added["displayName"])),
        ("signingSecret", secret.to_owned()),
    ]));
    out.push_str(
        "\nCopy the signing secret now: it will not be shown again. Verify each request's \
         Clavis-Signature header with it.\n",
    );
    Ok(out)
}

fn list_table(hooks: &[Value]) -> String {
    let mut table = Table::new(&["ID", "NAME", "URL", "THRESHOLD DAYS", "CREATED", "STATUS"]);
    for h in hooks {
        table.row(vec![
            text(&h["id"]),
            text(&h["displayName"]),
            text(&h["url"]),
            days(&h["thresholdDays"]),
            output::time(&text(&h["createdDateTime"])),
            if h["paused"] == true {
                format!("paused since {}", output::time(&text(&h["pausedDateTime"])))
            } else {
                "active".to_owned()
            },
        ]);
    }
    table.render()
}

fn deliveries_table(rows: &[Value]) -> String {
    let mut table = Table::new(&[
        "CREATED",
        "EVENT",
        "KEY ID",
        "STATUS",
        "ATTEMPTS",
        "LAST RESULT",
        "NEXT ATTEMPT",
    ]);
    for d in rows {
        let last = match (&d["lastHttpStatus"], &d["lastError"]) {
            (Value::Number(n), _) => format!("HTTP {n}"),
            (_, Value::String(e)) => e.clone(),
            _ => String::new(),
        };
        table.row(vec![
            output::time(&text(&d["createdDateTime"])),
            text(&d["eventType"]),
            text(&d["keyId"]),
            text(&d["status"]),
            text(&d["attempts"]),
            last,
            output::time(&text(&d["nextAttemptDateTime"])),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_shows_the_secret_once_with_a_warning() {
        let added = json!({"id": "w1", "url": "https://h/x", "thresholdDays": [30, 7],
                           "displayName": "ops", "createdDateTime": "2026-01-01T00:00:00Z",
                           "signingSecret": "whsec_abc"});
        let out = added_text(OutputFormat::Table, &added).unwrap();
        assert!(out.contains("signingSecret:  whsec_abc"), "{}", *out);
        assert!(out.contains("thresholdDays:  30,7"));
        assert!(out.contains("will not be shown again"));
        let mut no_secret = added.clone();
        no_secret.as_object_mut().unwrap().remove("signingSecret");
        assert!(added_text(OutputFormat::Table, &no_secret).is_err());
    }

    #[test]
    fn tables_have_a_row_per_item() {
        let hooks = [
            json!({"id": "w1", "url": "https://h/x", "thresholdDays": [30, 7, 1],
                            "displayName": "ops", "createdDateTime": "2026-01-01T00:00:00.5Z"}),
            json!({"id": "w2", "url": "https://h/y", "thresholdDays": [1],
                   "displayName": "", "createdDateTime": "2026-01-01T00:00:00Z",
                   "paused": true, "pausedDateTime": "2026-01-02T00:00:00Z"}),
        ];
        assert_eq!(
            list_table(&hooks),
            "ID  NAME  URL          THRESHOLD DAYS  CREATED               STATUS\n\
             w1  ops   https://h/x  30,7,1          2026-01-01T00:00:00Z  active\n\
             w2        https://h/y  1               2026-01-01T00:00:00Z  paused since 2026-01-02T00:00:00Z\n"
        );
        let rows = [
            json!({"createdDateTime": "2026-01-01T00:00:00Z", "eventType": "secret.expiring",
                   "keyId": "k1", "status": "pending", "attempts": 2, "lastHttpStatus": 500,
                   "lastError": null, "nextAttemptDateTime": "2026-01-01T00:02:00Z"}),
            json!({"createdDateTime": "2026-01-01T00:00:00Z", "eventType": "secret.expired",
                   "keyId": "k1", "status": "failed", "attempts": 8, "lastHttpStatus": null,
                   "lastError": "could not connect", "nextAttemptDateTime": null}),
        ];
        let table = deliveries_table(&rows);
        assert!(table.contains("pending  2         HTTP 500"), "{table}");
        assert!(
            table.contains("failed   8         could not connect"),
            "{table}"
        );
    }
}
