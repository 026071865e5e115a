//! `clavis policy`: read and change the rules for client secrets — the
//! tenant's (`/v1.0/policies/tenantPolicy`) or one application's exceptions
//! to them (`/v1.0/applications/{id}/credentialPolicy`).

use serde_json::{Map, Value};

use crate::error::Error;
use crate::lookup;
use crate::output::{self, key_values, OutputFormat};
use crate::when;
use crate::Ctx;

/// `clavis policy ...`
#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    /// Show the tenant policy, or with --app the application's exceptions
    /// and the rules in force for it.
    Show {
        /// Object id, appId, identifier URI or display name.
        #[arg(long)]
        app: Option<String>,
    },
    /// Change the tenant policy, or with --app one application's exceptions.
    /// With --app, the value `tenant` returns a rule to the tenant's.
    Set {
        /// Object id, appId, identifier URI or display name.
        #[arg(long)]
        app: Option<String>,
        /// Longest lifetime of a new secret, in whole days (90d, 12w, 1y).
        #[arg(long, value_name = "DAYS")]
        max_secret_lifetime: Option<String>,
        /// Lifetime of a new secret when none is asked for (90d, 12w, 1y).
        #[arg(long, value_name = "DAYS")]
        default_secret_lifetime: Option<String>,
        /// The most secrets one application may hold at once.
        #[arg(long, value_name = "N")]
        max_secrets: Option<String>,
        /// Whether applications may have client secrets at all.
        #[arg(long, value_name = "allow|deny")]
        secrets: Option<String>,
        /// Algorithm of new token-signing keys: ES256, RS256 or EdDSA (tenant only).
        #[arg(long, value_name = "ALG", conflicts_with = "app")]
        signing_algorithm: Option<String>,
    },
}

/// What `--FLAG tenant` means on an application: back to the tenant's rule.
const INHERIT: &str = "tenant";

pub async fn run(ctx: &Ctx, cmd: PolicyCommand) -> Result<(), Error> {
    let (app, body) = match cmd {
        PolicyCommand::Show { app } => (app, None),
        PolicyCommand::Set {
            app,
            max_secret_lifetime,
            default_secret_lifetime,
            max_secrets,
            secrets,
            signing_algorithm,
        } => {
            let on_app = app.is_some();
            let mut body = Map::new();
            let mut put = |field: &str, value: Option<Value>| {
                if let Some(value) = value {
                    body.insert(field.into(), value);
                }
            };
            let days = |flag, text: Option<String>| {
                text.map(|t| rule(on_app, flag, &t, parse_days)).transpose()
            };
            put(
                "maxSecretLifetimeDays",
                days("--max-secret-lifetime", max_secret_lifetime)?,
            );
            put(
                "defaultSecretLifetimeDays",
                days("--default-secret-lifetime", default_secret_lifetime)?,
            );
            put(
                "maxSecretsPerApplication",
                max_secrets
                    .map(|t| rule(on_app, "--max-secrets", &t, parse_count))
                    .transpose()?,
            );
            put(
                "passwordCredentialsAllowed",
                secrets
                    .map(|t| rule(on_app, "--secrets", &t, parse_allow))
                    .transpose()?,
            );
            put("signingAlgorithm", signing_algorithm.map(Value::from));
            if body.is_empty() {
                return Err(Error::new("nothing to change").hint(
                    "name at least one rule, e.g. `clavis policy set --max-secret-lifetime 90d`",
                ));
            }
            (app, Some(Value::Object(body)))
        }
    };
    let s = ctx.session().await?;
    let (url, found) = match &app {
        Some(spec) => {
            let found = lookup::application(&s, spec).await?;
            let url = s.url(&["applications", &found.view.id, "credentialPolicy"]);
            (url, Some(found.view.display_name))
        }
        None => (s.url(&["policies", "tenantPolicy"]), None),
    };
    if let Some(body) = body {
        s.patch(url.clone(), &body).await?;
    }
    let policy = s.get(url).await?;
    output::emit(&match ctx.global.output {
        OutputFormat::Json => output::json(&policy),
        OutputFormat::Table => table(&policy, found.as_deref()),
    });
    Ok(())
}

/// A flag's value as JSON: `tenant` → `null` on an application, else parsed.
fn rule(
    on_app: bool,
    flag: &str,
    text: &str,
    parse: fn(&str) -> Option<Value>,
) -> Result<Value, Error> {
    if text.eq_ignore_ascii_case(INHERIT) {
        return if on_app {
            Ok(Value::Null)
        } else {
            Err(
                Error::new(format!("{flag} {INHERIT} only makes sense with --app"))
                    .hint("the tenant policy has a value for every rule"),
            )
        };
    }
    parse(text).ok_or_else(|| {
        Error::new(format!("{flag} {text} is not a valid value")).hint(match flag {
            "--max-secrets" => "use a whole number such as 5",
            "--secrets" => "use allow or deny",
            _ => "use whole days such as 90d, 12w or 1y",
        })
    })
}

fn parse_days(text: &str) -> Option<Value> {
    let d = when::parse_duration(text)?;
    (d.whole_hours() % 24 == 0 && d.whole_days() > 0).then(|| d.whole_days().into())
}

fn parse_count(text: &str) -> Option<Value> {
    text.parse::<u32>().ok().map(Value::from)
}

fn parse_allow(text: &str) -> Option<Value> {
    match text.to_ascii_lowercase().as_str() {
        "allow" | "allowed" | "true" | "yes" => Some(true.into()),
        "deny" | "denied" | "false" | "no" => Some(false.into()),
        _ => None,
    }
}

/// One rule for people: `30 days`, `10`, `allowed`; an application's
/// unset exception reads `(tenant)`.
fn shown(value: Option<&Value>, unit: &str) -> String {
    match value {
        None | Some(Value::Null) => "(tenant)".into(),
        Some(Value::Bool(true)) => "allowed".into(),
        Some(Value::Bool(false)) => "denied".into(),
        Some(v) if unit.is_empty() => v.to_string(),
        Some(v) => format!("{v} {unit}"),
    }
}

fn table(policy: &Value, app: Option<&str>) -> String {
    const RULES: [(&str, &str, &str); 4] = [
        ("max secret lifetime", "maxSecretLifetimeDays", "days"),
        (
            "default secret lifetime",
            "defaultSecretLifetimeDays",
            "days",
        ),
        ("max secrets per app", "maxSecretsPerApplication", ""),
        ("client secrets", "passwordCredentialsAllowed", ""),
    ];
    let mut pairs = Vec::new();
    match app {
        None => {
            pairs.push((
                "signing algorithm",
                policy["signingAlgorithm"].as_str().unwrap_or("").to_owned(),
            ));
            for (label, field, unit) in RULES {
                let mut line = shown(policy.get(field), unit);
                let effective = &policy["effectiveDefaultSecretLifetimeDays"];
                if field == "defaultSecretLifetimeDays"
                    && effective.is_i64()
                    && policy.get(field) != Some(effective)
                {
                    // Kept as configured; the maximum caps it for now.
                    line = format!(
                        "{line} as set; {} in effect (capped by the max secret lifetime)",
                        shown(Some(effective), unit)
                    );
                }
                pairs.push((label, line));
            }
        }
        Some(name) => {
            pairs.push(("application", name.to_owned()));
            for (label, field, unit) in RULES {
                let effective = shown(policy["effective"].get(field), unit);
                let line = match policy.get(field) {
                    None | Some(Value::Null) => format!("{effective} (tenant)"),
                    Some(_) => format!("{effective} (this application)"),
                };
                pairs.push((label, line));
            }
        }
    }
    key_values(&pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_tenant() {
        assert_eq!(
            rule(true, "--max-secret-lifetime", "90d", parse_days).unwrap(),
            json!(90)
        );
        assert_eq!(
            rule(true, "--max-secret-lifetime", "1y", parse_days).unwrap(),
            json!(365)
        );
        assert!(rule(true, "--max-secret-lifetime", "36h", parse_days).is_err());
        assert_eq!(
            rule(true, "--max-secrets", "tenant", parse_count).unwrap(),
            Value::Null
        );
        let err = rule(false, "--max-secrets", "tenant", parse_count).unwrap_err();
        assert!(err.to_string().contains("--app"), "{err}");
        assert_eq!(
            rule(false, "--secrets", "deny", parse_allow).unwrap(),
            json!(false)
        );
        assert!(rule(false, "--secrets", "maybe", parse_allow).is_err());
    }

    #[test]
    fn tenant_table_shows_a_default_capped_by_the_maximum() {
        let policy = json!({
            "signingAlgorithm": "ES256", "maxSecretLifetimeDays": 30,
            "defaultSecretLifetimeDays": 180, "effectiveDefaultSecretLifetimeDays": 30,
            "maxSecretsPerApplication": 10, "passwordCredentialsAllowed": true
        });
        let text = table(&policy, None);
        assert!(text.contains("max secret lifetime:      30 days"), "{text}");
        assert!(
            text.contains(
                "default secret lifetime:  180 days as set; 30 days in effect (capped by the max secret lifetime)"
            ),
            "{text}"
        );
        let uncapped = json!({
            "maxSecretLifetimeDays": 730, "defaultSecretLifetimeDays": 180,
            "effectiveDefaultSecretLifetimeDays": 180
        });
        assert!(table(&uncapped, None).contains("default secret lifetime:  180 days\n"));
    }

    #[test]
    fn application_table_says_where_each_rule_comes_from() {
        let policy = json!({
            "maxSecretLifetimeDays": 30, "defaultSecretLifetimeDays": null,
            "maxSecretsPerApplication": null, "passwordCredentialsAllowed": false,
            "effective": {"maxSecretLifetimeDays": 30, "defaultSecretLifetimeDays": 30,
                          "maxSecretsPerApplication": 10, "passwordCredentialsAllowed": false}
        });
        let text = table(&policy, Some("orders"));
        assert!(
            text.contains("max secret lifetime:      30 days (this application)"),
            "{text}"
        );
        assert!(
            text.contains("max secrets per app:      10 (tenant)"),
            "{text}"
        );
        assert!(
            text.contains("client secrets:           denied (this application)"),
            "{text}"
        );
    }
}
