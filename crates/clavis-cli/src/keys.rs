//! `clavis keys`: the tenant's token-signing keys — list them with their
//! state, publish the next key ahead of its use (`rotate`), or remove one
//! in an emergency (`revoke`) — and the installation's key-encryption keys
//! (`kek`, `rewrap`). Talks to `/v1.0/policies/signingKeys` and
//! `/v1.0/policies/keyEncryptionKeys`; the server never sends key material,
//! so there is none to handle here.

use serde_json::{json, Value};

use crate::error::Error;
use crate::output::{self, key_values, OutputFormat, Table};
use crate::when::parse_interval;
use crate::Ctx;

/// `clavis keys ...`
#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// List the tenant's signing keys: pending (published, not signing
    /// yet), current, retired (published until their tokens expired) and
    /// revoked.
    List,
    /// Publish a new signing key now; it signs after --activate-after.
    ///
    /// Clients cache the JWKS (PyJWT for 5 minutes, jwks-rsa and jose for
    /// about 10): publishing ahead means no client ever sees a token whose
    /// key it has not fetched. The default is the server's
    /// --signing-key-prepublish-hours (24 h).
    Rotate {
        /// How long the new key is only published: e.g. 30m, 1h, 2d; 0
        /// signs at once (clients with a cached JWKS may refuse its tokens
        /// for a few minutes).
        #[arg(long, value_name = "DURATION", value_parser = activate_after)]
        activate_after: Option<i64>,
    },
    /// Emergency removal: the key leaves the JWKS at once, every token it
    /// signed is refused, and if it was the current key a new one signs at
    /// once.
    Revoke {
        /// The key's kid, as shown by `clavis keys list` (a kid may start
        /// with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Do not ask for confirmation (it is never asked when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Show the key provider, its key-encryption keys, how many sealed
    /// records (signing keys, the hash key, webhook secrets) each wraps, and
    /// which keys every node sharing the store holds.
    Kek,
    /// Rewrap every sealed record under one key-encryption key while the
    /// server runs (only each record's data key is re-encrypted); that key
    /// becomes the installation's, which every node seals new records under.
    ///
    /// Without options: this node's first key (kek.key's first line or
    /// CLAVIS_KEK). --key-id names a key every node already holds (the way
    /// to rotate a cluster: add the new key to every node's kek.key after
    /// the first line, or to CLAVIS_KEK_PREVIOUS, restart them, then rewrap
    /// to it). --new-key (key-file provider, one node only) makes a new key,
    /// saves it as the first line of kek.key and keeps the old ones after
    /// it. A rewrap under a key that a live node lacks is refused, naming
    /// the node. Once no record uses an old key (see `clavis keys kek`) and
    /// no backup you keep needs it, remove it from every node.
    Rewrap {
        /// Make a new active key-encryption key first (key-file provider; refused while other nodes are live).
        #[arg(long, conflicts_with = "key_id")]
        new_key: bool,
        /// Rewrap under this key (an id `clavis keys kek` lists), held by every node.
        #[arg(long, value_name = "KEK_ID")]
        key_id: Option<String>,
    },
}

/// `--activate-after`: `0` or a duration, in whole minutes.
fn activate_after(text: &str) -> Result<i64, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    let span = parse_interval(text)?;
    let minutes = span.whole_minutes();
    if minutes < 1 || span != time::Duration::minutes(minutes) {
        return Err(format!(
            "'{text}' is not a whole number of minutes: use e.g. 0, 30m, 1h or 2d"
        ));
    }
    Ok(minutes)
}

pub async fn run(ctx: &Ctx, cmd: KeysCommand) -> Result<(), Error> {
    let s = ctx.session().await?;
    let format = ctx.global.output;
    let keys_url = |extra: &[&str]| {
        let mut segments = vec!["policies", "signingKeys"];
        segments.extend_from_slice(extra);
        s.url(&segments)
    };
    match cmd {
        KeysCommand::List => {
            let keys = s.list(keys_url(&[]), None).await?;
            output::emit(&match format {
                OutputFormat::Json => output::json(&Value::from(keys)),
                OutputFormat::Table => list_table(&keys),
            });
        }
        KeysCommand::Rotate { activate_after } => {
            let body = match activate_after {
                Some(minutes) => json!({ "activateAfterMinutes": minutes }),
                None => json!({}),
            };
            let key = s
                .post(keys_url(&["rotate"]), &body)
                .await?
                .ok_or_else(|| Error::new("the server made the key but did not return it"))?;
            output::emit(&match format {
                OutputFormat::Json => output::json(&key),
                OutputFormat::Table => rotated_text(&key),
            });
        }
        KeysCommand::Revoke { kid, yes } => {
            crate::confirm::unless_yes(
                yes,
                &format!(
                    "Revoke signing key {kid} now: it leaves the JWKS and every token it signed is refused"
                ),
            )?;
            let answer = s
                .post(keys_url(&[&kid, "revoke"]), &json!({}))
                .await?
                .ok_or_else(|| Error::new("the server revoked the key but sent no answer"))?;
            output::emit(&match format {
                OutputFormat::Json => output::json(&answer),
                OutputFormat::Table => revoked_text(&answer),
            });
        }
        KeysCommand::Kek => {
            let keks = s.get(s.url(&["policies", "keyEncryptionKeys"])).await?;
            output::emit(&match format {
                OutputFormat::Json => output::json(&keks),
                OutputFormat::Table => kek_table(&keks),
            });
        }
        KeysCommand::Rewrap { new_key, key_id } => {
            let body = match key_id {
                Some(id) => json!({ "keyId": id }),
                None => json!({ "newKey": new_key }),
            };
            let answer = s
                .post(s.url(&["policies", "keyEncryptionKeys", "rewrap"]), &body)
                .await?
                .ok_or_else(|| Error::new("the server rewrapped but sent no report"))?;
            output::emit(&match format {
                OutputFormat::Json => output::json(&answer),
                OutputFormat::Table => rewrap_text(&answer),
            });
            let failed = answer["failed"].as_array().map_or(0, Vec::len);
            if failed > 0 {
                return Err(Error::new(format!(
                    "{failed} sealed record(s) could not be opened and were left unchanged: give the server the key that sealed them (see the server log), then run `clavis keys rewrap` again"
                )));
            }
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

fn list_table(keys: &[Value]) -> String {
    let mut table = Table::new(&[
        "KID",
        "ALG",
        "STATE",
        "PUBLISHED",
        "CREATED",
        "ACTIVATES",
        "RETIRED",
        "UNPUBLISHED",
    ]);
    for k in keys {
        // A retired key leaves the JWKS by itself; a revoked one left at once.
        let unpublished = match &k["revokedDateTime"] {
            Value::String(at) => at.clone(),
            _ => text(&k["publishedUntilDateTime"]),
        };
        table.row(vec![
            text(&k["kid"]),
            text(&k["algorithm"]),
            text(&k["state"]),
            if k["published"] == true { "yes" } else { "no" }.into(),
            output::time(&text(&k["createdDateTime"])),
            output::time(&text(&k["activatesDateTime"])),
            output::time(&text(&k["retiredDateTime"])),
            output::time(&unpublished),
        ]);
    }
    table.render()
}

fn rotated_text(key: &Value) -> String {
    let mut out = key_values(&[
        ("kid", text(&key["kid"])),
        ("algorithm", text(&key["algorithm"])),
        ("state", text(&key["state"])),
        ("activates", output::time(&text(&key["activatesDateTime"]))),
    ]);
    if key["state"] == "pending" {
        out.push_str(
            "\nThe key is in the JWKS now and signs from 'activates' on; the current key keeps \
             signing until then.\n",
        );
    }
    out
}

fn kek_table(keks: &Value) -> String {
    let mut out = format!(
        "provider: {}\ninstallation key: {}\nthis node seals under: {}\n\n",
        text(&keks["provider"]),
        text(&keks["installationKeyId"]),
        text(&keks["activeKeyId"])
    );
    let yes_no = |v: &Value| if *v == true { "yes" } else { "no" }.to_owned();
    let mut table = Table::new(&[
        "KEY ID",
        "ACTIVE",
        "CONFIGURED",
        "ON EVERY LIVE NODE",
        "SEALED RECORDS",
    ]);
    for k in keks["keys"].as_array().into_iter().flatten() {
        table.row(vec![
            text(&k["keyId"]),
            yes_no(&k["active"]),
            yes_no(&k["configured"]),
            yes_no(&k["heldByEveryLiveNode"]),
            text(&k["sealedRecords"]),
        ]);
    }
    out.push_str(&table.render());
    let nodes = keks["nodes"].as_array().cloned().unwrap_or_default();
    if !nodes.is_empty() {
        out.push('\n');
        let mut table = Table::new(&["NODE", "HOST", "LISTEN", "LIVE", "LAST SEEN", "KEYS HELD"]);
        for n in &nodes {
            let id = text(&n["nodeId"]);
            let mut name: String = id.chars().take(8).collect();
            if n["thisNode"] == true {
                name.push_str(" (this)");
            }
            let held: Vec<String> = n["keyIds"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            table.row(vec![
                name,
                text(&n["host"]),
                text(&n["listen"]),
                yes_no(&n["live"]),
                output::time(&text(&n["lastSeenDateTime"])),
                held.join(", "),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

fn rewrap_text(answer: &Value) -> String {
    let mut out = String::new();
    if answer["newKey"] == true {
        out.push_str(&format!(
            "New active key-encryption key {} (saved first in kek.key; older keys kept after it).\n",
            text(&answer["keyEncryptionKeys"]["activeKeyId"])
        ));
    }
    out.push_str(&format!(
        "Rewrapped {} sealed record(s) under {}; {} already under it; {} failed.\n\n",
        text(&answer["rewrapped"]),
        text(&answer["keyId"]),
        text(&answer["alreadyCurrent"]),
        answer["failed"].as_array().map_or(0, Vec::len)
    ));
    out.push_str(&kek_table(&answer["keyEncryptionKeys"]));
    out
}

fn revoked_text(answer: &Value) -> String {
    let revoked = &answer["revoked"];
    let mut out = format!(
        "Revoked signing key {} ({}): removed from the JWKS; its tokens are refused.\n",
        text(&revoked["kid"]),
        text(&revoked["algorithm"])
    );
    if let Value::Object(_) = &answer["replacement"] {
        out.push_str(&format!(
            "New tokens are signed by {} from now on.\n",
            text(&answer["replacement"]["kid"])
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activate_after_takes_zero_or_whole_minutes() {
        assert_eq!(activate_after("0"), Ok(0));
        assert_eq!(activate_after("30m"), Ok(30));
        assert_eq!(activate_after("1h"), Ok(60));
        assert_eq!(activate_after("2d"), Ok(2880));
        assert!(activate_after("90s").is_err());
        assert!(activate_after("30s").is_err());
        assert!(activate_after("soon").is_err());
        assert!(activate_after("-5m").is_err());
    }

    #[test]
    fn the_list_shows_one_row_per_key_and_when_it_leaves_the_jwks() {
        let keys = [
            json!({"kid": "k2", "algorithm": "ES256", "state": "current", "published": true,
                   "createdDateTime": "2026-01-01T00:00:00Z",
                   "activatesDateTime": "2026-01-02T00:00:00Z",
                   "retiredDateTime": null, "publishedUntilDateTime": null, "revokedDateTime": null}),
            json!({"kid": "k1", "algorithm": "ES256", "state": "retired", "published": true,
                   "createdDateTime": "2025-10-01T00:00:00Z",
                   "activatesDateTime": "2025-10-01T00:00:00Z",
                   "retiredDateTime": "2026-01-02T00:00:00Z",
                   "publishedUntilDateTime": "2026-01-02T01:10:00Z", "revokedDateTime": null}),
        ];
        let table = list_table(&keys);
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(table.contains("k1   ES256  retired  yes"), "{table}");
        assert!(table.contains("2026-01-02T01:10:00Z"), "{table}");
    }

    #[test]
    fn the_kek_table_shows_which_keys_every_node_holds() {
        let keks = json!({"provider": "file", "installationKeyId": "kek-a", "activeKeyId": "kek-a",
            "keys": [{"keyId": "kek-a", "active": true, "configured": true, "heldByEveryLiveNode": true, "sealedRecords": 6},
                     {"keyId": "kek-b", "active": false, "configured": true, "heldByEveryLiveNode": false, "sealedRecords": 0}],
            "nodes": [{"nodeId": "1b2c3d4e-0000-0000-0000-000000000000", "host": "web-1", "listen": "10.0.0.1:8443",
                       "live": true, "thisNode": true, "lastSeenDateTime": "2026-01-01T00:00:00Z", "keyIds": ["kek-a", "kek-b"]},
                      {"nodeId": "9f8e7d6c-0000-0000-0000-000000000000", "host": "web-2", "listen": "10.0.0.2:8443",
                       "live": true, "thisNode": false, "lastSeenDateTime": "2026-01-01T00:00:01Z", "keyIds": ["kek-a"]}]});
        let out = kek_table(&keks);
        assert!(out.contains("installation key: kek-a"), "{out}");
        assert!(out.contains("1b2c3d4e (this)"), "{out}");
        assert!(out.contains("kek-a, kek-b"), "{out}");
        let b_row = out.lines().find(|l| l.starts_with("kek-b")).unwrap();
        assert!(b_row.contains("no"), "{out}");
    }

    #[test]
    fn revoke_names_the_replacement() {
        let answer = json!({"revoked": {"kid": "k1", "algorithm": "ES256"},
                            "replacement": {"kid": "k2"}});
        let out = revoked_text(&answer);
        assert!(out.contains("Revoked signing key k1"), "{out}");
        assert!(out.contains("signed by k2"), "{out}");
        let out = revoked_text(&json!({"revoked": {"kid": "k1"}, "replacement": null}));
        assert!(!out.contains("signed by"), "{out}");
    }
}
