//! `clavis secret compromised APP SECRET` (key id or name): the one-step response to a leaked
//! secret (`POST .../reportCompromisedPassword`). Asks before acting on a
//! terminal; prints what was done, what the secret was used for (tokens,
//! failed attempts, management actions) and any replacement secrets, once.

use serde_json::{json, Value};
use zeroize::{Zeroize as _, Zeroizing};

use crate::client::Session;
use crate::error::Error;
use crate::lookup;
use crate::output::{self, key_values, OutputFormat, Table};

/// Arguments of `clavis secret compromised`.
#[derive(clap::Args, Debug)]
pub struct CompromisedArgs {
    /// Object id, appId, identifier URI or display name.
    pub app: String,
    /// The leaked secret's key id or name, as shown by `clavis secret list`.
    #[arg(value_name = "SECRET")]
    pub secret: String,
    /// Also replace every other valid secret of the application (same
    /// remaining lifetime); the new values are printed once.
    #[arg(long)]
    pub rotate_others: bool,
    /// Also revoke every token the application holds, whatever secret minted it.
    #[arg(long)]
    pub revoke_all_tokens: bool,
    /// Do not ask for confirmation (it is never asked when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub async fn run(s: &Session, format: OutputFormat, args: CompromisedArgs) -> Result<(), Error> {
    let found = lookup::application(s, &args.app).await?;
    let credential = lookup::secret(&found.view, &args.secret)?;
    let key_id = credential.key_id.clone();
    {
        let others = found.view.password_credentials.len().saturating_sub(1);
        let mut what = format!(
            "Revoke secret {key_id} (hint {}) of '{}' now",
            credential.hint, found.view.display_name
        );
        if args.revoke_all_tokens {
            what.push_str(", revoke all of its tokens");
        }
        if args.rotate_others && others > 0 {
            what.push_str(&format!(" and replace its {others} other secret(s)"));
        }
        crate::confirm::unless_yes(args.yes, &what)?;
    }
    let url = s.url(&["applications", &found.view.id, "reportCompromisedPassword"]);
    let body = json!({
        "keyId": key_id,
        "rotateOtherSecrets": args.rotate_others,
        "revokeAllTokens": args.revoke_all_tokens,
    });
    let mut answer = s
        .post(url, &body)
        .await?
        .ok_or_else(|| Error::new("the server revoked the secret but sent no report"))?;
    let text = match format {
        OutputFormat::Json => Zeroizing::new(output::json(&answer)),
        OutputFormat::Table => render(&answer),
    };
    forget_secret_texts(&mut answer);
    output::emit(&text);
    Ok(())
}

/// A field as text: strings as they are, numbers printed, anything else empty.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn time(v: &Value) -> String {
    match v.as_str() {
        Some(t) => output::time(t),
        None => "never".into(),
    }
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The people's view: what was done, the report, then new secret values.
fn render(answer: &Value) -> Zeroizing<String> {
    let app = &answer["application"];
    let mut out = Zeroizing::new(format!(
        "Revoked secret {} (hint {}) of '{}' at {}: it and every token it minted no longer work.\n",
        text(&answer["keyId"]),
        text(&answer["hint"]),
        text(&app["displayName"]),
        time(&answer["revokedDateTime"]),
    ));
    if answer["tokensRevoked"] == true {
        out.push_str("Every other token of the application was revoked too.\n");
    }
    out.push_str(
        "Resource servers that check tokens offline accept those already issued until they expire.\n",
    );
    let report = &answer["report"];
    if report.is_object() {
        out.push('\n');
        out.push_str(&report_text(report));
    } else {
        out.push_str(&format!("\nNo report: {}\n", text(&answer["reportError"])));
    }
    let new = list(&answer["newSecrets"]);
    if !new.is_empty() {
        out.push_str("\nNew secrets, replacing the application's other secrets:\n");
        for secret in new {
            out.push('\n');
            out.push_str(&key_values(&[
                ("keyId", text(&secret["keyId"])),
                ("displayName", text(&secret["displayName"])),
                ("replaces", text(&secret["replacesKeyId"])),
                ("expires", time(&secret["endDateTime"])),
                ("secret", text(&secret["secretText"])),
            ]));
        }
        out.push_str("\nCopy the new secrets now: they will not be shown again.\n");
    }
    out
}

fn report_text(report: &Value) -> String {
    let credential = &report["credential"];
    let failed = &report["failedAttempts"];
    let actions = list(&report["managementActions"]);
    let with_it = actions
        .iter()
        .filter(|a| a["usedCompromisedCredential"] == true)
        .count();
    let ips: Vec<String> = list(&report["distinctClientIps"])
        .iter()
        .map(text)
        .collect();
    let mut out = key_values(&[
        ("secret", text(&credential["displayName"])),
        ("created", time(&credential["createdDateTime"])),
        (
            "valid",
            format!(
                "{} to {}",
                time(&credential["startDateTime"]),
                time(&credential["endDateTime"])
            ),
        ),
        ("first used", time(&report["firstUsedDateTime"])),
        ("last used", time(&report["lastUsedDateTime"])),
        ("tokens issued", text(&report["tokensIssuedCount"])),
        (
            "from",
            if ips.is_empty() {
                "-".into()
            } else {
                ips.join(", ")
            },
        ),
        ("failed attempts", text(&failed["count"])),
        (
            "management actions",
            format!("{} ({with_it} with this secret)", actions.len()),
        ),
    ]);

    out.push_str("\nTokens issued with this secret (newest first):\n");
    let tokens = list(&report["tokensIssued"]);
    if tokens.is_empty() {
        out.push_str("none\n");
    } else {
        let mut table = Table::new(&["TIME", "COUNT", "CLIENT IP", "USER AGENT", "RESOURCE"]);
        for t in tokens {
            let resource = match text(&t["resourceDisplayName"]) {
                name if name.is_empty() => text(&t["resource"]),
                name => name,
            };
            table.row(vec![
                time(&t["time"]),
                match t["count"].as_u64() {
                    Some(n) => n.to_string(),
                    None => "1".into(),
                },
                text(&t["clientIp"]),
                text(&t["userAgent"]),
                resource,
            ]);
        }
        out.push_str(&table.render());
        if report["truncated"] == true {
            out.push_str(&format!(
                "(only the newest {} entries of {} tokens are listed)\n",
                tokens.len(),
                text(&report["tokensIssuedCount"])
            ));
        }
    }

    out.push_str("\nFailed token requests of the application, by address:\n");
    let by_ip = list(&failed["byClientIp"]);
    if by_ip.is_empty() {
        out.push_str("none\n");
    } else {
        let mut table = Table::new(&["CLIENT IP", "COUNT"]);
        for f in by_ip {
            table.row(vec![text(&f["clientIp"]), text(&f["count"])]);
        }
        out.push_str(&table.render());
        out.push_str(&format!(
            "first {}, last {}\n",
            time(&failed["first"]),
            time(&failed["last"])
        ));
    }

    out.push_str("\nManagement actions of the application (newest first):\n");
    if actions.is_empty() {
        out.push_str("none\n");
    } else {
        let mut table = Table::new(&[
            "TIME",
            "ACTIVITY",
            "TARGET",
            "RESULT",
            "CLIENT IP",
            "KEY ID",
            "THIS SECRET",
        ]);
        for a in actions {
            let target = &a["target"];
            let name = match text(&target["displayName"]) {
                n if n.is_empty() => text(&target["id"]),
                n => n,
            };
            table.row(vec![
                time(&a["time"]),
                text(&a["activity"]),
                name,
                text(&a["result"]),
                text(&a["clientIp"]),
                text(&a["keyId"]),
                if a["usedCompromisedCredential"] == true {
                    "yes"
                } else {
                    ""
                }
                .to_owned(),
            ]);
        }
        out.push_str(&table.render());
        if report["managementActionsTruncated"] == true {
            out.push_str("(only the newest are listed)\n");
        }
    }
    out
}

/// Zero the new secret values in the answer once they have been rendered.
fn forget_secret_texts(answer: &mut Value) {
    if let Some(Value::Array(new)) = answer.get_mut("newSecrets") {
        for secret in new {
            if let Some(Value::String(text)) = secret.get_mut("secretText") {
                text.zeroize();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Value {
        json!({
            "application": {"id": "o-1", "appId": "a-1", "displayName": "Billing worker"},
            "keyId": "k-1", "hint": "AbC", "revokedDateTime": "2026-03-01T12:00:00Z",
            "tokensRevoked": true,
            "newSecrets": [{"keyId": "k-2", "displayName": "ci (rotated)", "hint": "XyZ",
                            "startDateTime": "2026-03-01T12:00:00Z", "endDateTime": "2026-06-01T00:00:00Z",
                            "secretText": "clavis_NewValue", "replacesKeyId": "k-0"}],
            "report": {
                "credential": {"keyId": "k-1", "displayName": "ci", "hint": "AbC",
                               "startDateTime": "2026-01-01T00:00:00Z", "endDateTime": "2026-07-01T00:00:00Z",
                               "createdDateTime": "2026-01-01T00:00:00Z"},
                "firstUsedDateTime": "2026-02-01T00:00:00Z", "lastUsedDateTime": "2026-03-01T11:59:00Z",
                "tokensIssuedCount": 2,
                "tokensIssued": [
                    {"time": "2026-03-01T11:59:00Z", "clientIp": "192.0.2.7", "userAgent": "curl/8",
                     "resource": "r-1", "resourceDisplayName": "Orders API"},
                    {"time": "2026-02-01T00:00:00Z", "clientIp": "192.0.2.1", "userAgent": null,
                     "resource": "r-2", "resourceDisplayName": null}],
                "truncated": false,
                "distinctClientIps": ["192.0.2.7", "192.0.2.1"],
                "failedAttempts": {"count": 3, "first": "2026-02-15T00:00:00Z", "last": "2026-02-16T00:00:00Z",
                                   "byClientIp": [{"clientIp": "198.51.100.4", "count": 3}]},
                "managementActions": [{"time": "2026-02-20T00:00:00Z", "activity": "Add password credential",
                                       "target": {"type": "Application", "id": "o-9", "displayName": "", "keyId": null},
                                       "result": "success", "clientIp": "192.0.2.7", "keyId": "k-1",
                                       "usedCompromisedCredential": true}],
                "managementActionsTruncated": false
            }
        })
    }

    #[test]
    fn the_table_tells_what_was_done_what_was_seen_and_the_new_values_once() {
        let out = render(&answer());
        assert!(
            out.starts_with(
                "Revoked secret k-1 (hint AbC) of 'Billing worker' at 2026-03-01T12:00:00Z"
            ),
            "{}",
            *out
        );
        assert!(out.contains("Every other token of the application was revoked too."));
        assert!(out.contains("tokens issued:       2\n"), "{}", *out);
        assert!(out.contains("from:                192.0.2.7, 192.0.2.1\n"));
        assert!(out.contains("management actions:  1 (1 with this secret)\n"));
        assert!(
            out.contains("2026-03-01T11:59:00Z  1      192.0.2.7  curl/8      Orders API\n"),
            "{}",
            *out
        );
        assert!(out.contains("192.0.2.1              r-2\n"), "{}", *out);
        assert!(out.contains("198.51.100.4  3\n"));
        assert!(out.contains("Add password credential  o-9"));
        assert!(out.contains("secret:       clavis_NewValue\n"), "{}", *out);
        assert_eq!(out.matches("clavis_NewValue").count(), 1);
        assert!(out.ends_with("they will not be shown again.\n"));

        let mut a = answer();
        forget_secret_texts(&mut a);
        assert_eq!(a["newSecrets"][0]["secretText"], "");
    }

    #[test]
    fn an_unused_secret_and_a_missing_report_read_plainly() {
        let mut a = answer();
        a["newSecrets"] = json!([]);
        a["tokensRevoked"] = json!(false);
        a["report"]["tokensIssued"] = json!([]);
        a["report"]["firstUsedDateTime"] = Value::Null;
        let out = render(&a);
        assert!(out.contains("first used:          never\n"), "{}", *out);
        assert!(out.contains("(newest first):\nnone\n"));
        assert!(!out.contains("New secrets") && !out.contains("revoked too"));

        a["report"] = Value::Null;
        a["reportError"] = json!("the logs could not be read");
        assert!(render(&a).contains("No report: the logs could not be read\n"));
    }
}
