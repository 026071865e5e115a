//! `clavis app`: register (`POST /v1.0/applications`; a name already in use
//! is allowed, as in Entra, with a warning), list, show and delete
//! applications, and define their app roles (`PATCH` of the full `appRoles`
//! list; removing one disables it first, as Graph requires).

use serde_json::{json, Value};
use uuid::Uuid;

use crate::app_role;
use crate::confirm;
use crate::error::Error;
use crate::lookup;
use crate::model::{view, AppRole, Application};
use crate::output::{self, key_values, OutputFormat, Table};
use crate::Ctx;

/// `clavis app ...`
#[derive(clap::Subcommand, Debug)]
pub enum AppCommand {
    /// Register an application (it gets an appId and a service principal).
    Create {
        /// Display name of the new application.
        name: String,
        /// Identifier URI clients use in scopes (`URI/.default`), e.g. api://billing; repeatable.
        #[arg(long = "identifier-uri", value_name = "URI")]
        identifier_uris: Vec<String>,
    },
    /// List the tenant's applications.
    List,
    /// Show one application.
    Show {
        /// Object id, appId, identifier URI or display name.
        app: String,
    },
    /// Delete an application, its service principal, secrets and role assignments.
    Delete {
        /// Object id, appId, identifier URI or display name.
        app: String,
        /// Do not ask for confirmation (it is never asked when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Define the app roles an application (as a resource) offers to clients.
    Role {
        #[command(subcommand)]
        command: AppRoleCommand,
    },
}

/// `clavis app role ...`
#[derive(clap::Subcommand, Debug)]
pub enum AppRoleCommand {
    /// Add an app role that can be granted to applications.
    Add {
        /// Object id, appId, identifier URI or display name of the resource application.
        app: String,
        /// The role's value: what tokens carry in their `roles` claim (e.g. Orders.Read).
        #[arg(long, value_name = "VALUE")]
        value: String,
        /// Human-readable name of the role (defaults to the value).
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
        /// What the role allows (defaults to the display name).
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// List an application's app roles.
    List {
        /// Object id, appId, identifier URI or display name.
        app: String,
    },
    /// Remove an app role: its grants are revoked, it is disabled, then removed.
    Remove {
        /// Object id, appId, identifier URI or display name of the resource application.
        app: String,
        /// The role's value, e.g. Orders.Read.
        #[arg(long, value_name = "VALUE")]
        value: String,
        /// Do not ask for confirmation (it is never asked when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

pub async fn run(ctx: &Ctx, cmd: AppCommand) -> Result<(), Error> {
    let s = ctx.session().await?;
    let format = ctx.global.output;
    match cmd {
        AppCommand::Create {
            name,
            identifier_uris,
        } => {
            warn_if_taken(&s, &name).await?;
            let body = json!({ "displayName": name, "identifierUris": identifier_uris });
            let created = s
                .post(s.url(&["applications"]), &body)
                .await?
                .ok_or_else(|| {
                    Error::new("the server created the application but did not return it")
                })?;
            output::emit(&show(format, &created)?);
        }
        AppCommand::List => {
            let apps = s.list(s.url(&["applications"]), None).await?;
            output::emit(&list(format, &apps)?);
        }
        AppCommand::Show { app } => {
            let found = lookup::application(&s, &app).await?;
            output::emit(&show(format, &found.raw)?);
        }
        AppCommand::Delete { app, yes } => {
            let found = lookup::application(&s, &app).await?;
            let a = &found.view;
            confirm::unless_yes(
                yes,
                &format!(
                    "Delete application '{}' (appId {}) with its {} secret(s) and role grants",
                    a.display_name,
                    a.app_id,
                    a.password_credentials.len()
                ),
            )?;
            s.delete(s.url(&["applications", &found.view.id])).await?;
            if format == OutputFormat::Table {
                let a = &found.view;
                output::emit(&format!(
                    "Deleted application '{}' (appId {}).\n",
                    a.display_name, a.app_id
                ));
            }
        }
        AppCommand::Role {
            command:
                AppRoleCommand::Add {
                    app,
                    value,
                    display_name,
                    description,
                },
        } => {
            let found = lookup::application(&s, &app).await?;
            let role = new_role(&value, display_name, description);
            let roles = with_role(&found.raw, &found.view, role.clone())?;
            s.patch(
                s.url(&["applications", &found.view.id]),
                &json!({ "appRoles": roles }),
            )
            .await?;
            output::emit(&match format {
                OutputFormat::Json => output::json(&role),
                OutputFormat::Table => roles_table(&[view(&role, "app role")?]),
            });
        }
        AppCommand::Role {
            command: AppRoleCommand::Remove { app, value, yes },
        } => {
            let found = lookup::application(&s, &app).await?;
            let revoked = app_role::remove(&s, &found, &value, yes).await?;
            if format == OutputFormat::Table {
                output::emit(&format!(
                    "Removed app role '{value}' from '{}'{}.\n",
                    found.view.display_name,
                    match revoked {
                        0 => String::new(),
                        n => format!(" and revoked its {n} grant(s)"),
                    }
                ));
            }
        }
        AppCommand::Role {
            command: AppRoleCommand::List { app },
        } => {
            let found = lookup::application(&s, &app).await?;
            output::emit(&match format {
                OutputFormat::Json => output::json(&output::list_field(&found.raw, "appRoles")),
                OutputFormat::Table => roles_table(&found.view.app_roles),
            });
        }
    }
    Ok(())
}

/// Print a warning (stderr) when applications named `name` (ignoring case)
/// exist: Entra allows it, but commands taking a name then need the appId.
async fn warn_if_taken(s: &crate::client::Session, name: &str) -> Result<(), Error> {
    let all = lookup::all_applications(s).await?;
    let taken: Vec<&str> = all
        .iter()
        .filter(|a| lookup::same_name(a, name))
        .filter_map(|a| a["appId"].as_str())
        .collect();
    if !taken.is_empty() {
        eprintln!(
            "warning: an application named '{name}' already exists (appId {}); creating another. \
             Commands that take a name will ask for the appId.",
            taken.join(", ")
        );
    }
    Ok(())
}

/// A new enabled app role for applications, with a fresh id.
fn new_role(value: &str, display_name: Option<String>, description: Option<String>) -> Value {
    let display_name = display_name.unwrap_or_else(|| value.to_owned());
    let description = description.unwrap_or_else(|| display_name.clone());
    json!({
        "id": Uuid::new_v4(),
        "value": value,
        "displayName": display_name,
        "description": description,
        "allowedMemberTypes": ["Application"],
        "isEnabled": true,
    })
}

/// The application's `appRoles` as sent (unknown fields kept) plus `role`,
/// refusing a value that is empty, has spaces or already exists.
fn with_role(raw: &Value, app: &Application, role: Value) -> Result<Vec<Value>, Error> {
    let value = role["value"].as_str().unwrap_or_default();
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(Error::new(format!(
            "'{value}' is not a role value: it must be non-empty, without spaces"
        )));
    }
    if app
        .app_roles
        .iter()
        .any(|r| r.value.eq_ignore_ascii_case(value))
    {
        return Err(Error::new(format!(
            "application '{}' already has an app role '{value}'",
            app.display_name
        ))
        .hint(format!(
            "see them with `clavis app role list {}`",
            app.app_id
        )));
    }
    let mut roles = raw["appRoles"].as_array().cloned().unwrap_or_default();
    roles.push(role);
    Ok(roles)
}

/// One application: a key/value block, or its JSON.
fn show(format: OutputFormat, raw: &Value) -> Result<String, Error> {
    if format == OutputFormat::Json {
        return Ok(output::json(raw));
    }
    let a: Application = view(raw, "application")?;
    let roles: Vec<&str> = a.app_roles.iter().map(|r| r.value.as_str()).collect();
    Ok(key_values(&[
        ("displayName", a.display_name.clone()),
        ("appId", a.app_id.clone()),
        ("objectId", a.id.clone()),
        ("identifierUris", a.identifier_uris.join(", ")),
        ("appRoles", roles.join(", ")),
        ("secrets", a.password_credentials.len().to_string()),
        ("created", output::time(&a.created_date_time)),
    ]))
}

/// Applications: a table, or a JSON array.
fn list(format: OutputFormat, raw: &[Value]) -> Result<String, Error> {
    if format == OutputFormat::Json {
        return Ok(output::json(&Value::from(raw.to_vec())));
    }
    let mut table = Table::new(&[
        "DISPLAY NAME",
        "APP ID",
        "OBJECT ID",
        "IDENTIFIER URIS",
        "CREATED",
    ]);
    for raw in raw {
        let a: Application = view(raw, "application")?;
        table.row(vec![
            a.display_name,
            a.app_id,
            a.id,
            a.identifier_uris.join(","),
            output::time(&a.created_date_time),
        ]);
    }
    Ok(table.render())
}

fn roles_table(roles: &[AppRole]) -> String {
    let mut table = Table::new(&["VALUE", "DISPLAY NAME", "ENABLED", "MEMBER TYPES", "ID"]);
    for r in roles {
        table.row(vec![
            r.value.clone(),
            r.display_name.clone(),
            if r.is_enabled { "yes" } else { "no" }.to_owned(),
            r.allowed_member_types.join(","),
            r.id.clone(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> Value {
        json!({
            "id": "11111111-1111-4111-8111-111111111111",
            "appId": "22222222-2222-4222-8222-222222222222",
            "displayName": "orders",
            "identifierUris": ["api://orders"],
            "appRoles": [{"id":"r1","value":"Orders.Read","displayName":"Read","isEnabled":true,
                          "allowedMemberTypes":["Application"],"origin":"kept"}],
            "passwordCredentials": [],
            "createdDateTime": "2026-01-02T03:04:05.678Z"
        })
    }

    #[test]
    fn new_role_is_appended_to_the_full_list() {
        let raw = app();
        let a: Application = view(&raw, "application").unwrap();
        let roles = with_role(&raw, &a, new_role("Orders.Write", None, None)).unwrap();
        assert_eq!(roles.len(), 2);
        assert_eq!(
            roles[0]["origin"], "kept",
            "unknown fields survive the PATCH"
        );
        assert_eq!(roles[1]["value"], "Orders.Write");
        assert_eq!(roles[1]["displayName"], "Orders.Write");
        assert_eq!(roles[1]["allowedMemberTypes"], json!(["Application"]));
        assert!(Uuid::parse_str(roles[1]["id"].as_str().unwrap()).is_ok());

        let dup = with_role(&raw, &a, new_role("Orders.Read", None, None)).unwrap_err();
        assert!(dup.reason().contains("already has"));
        assert!(with_role(&raw, &a, new_role("has space", None, None)).is_err());
    }

    #[test]
    fn list_and_show_render() {
        let table = list(OutputFormat::Table, &[app()]).unwrap();
        assert_eq!(
            table,
            "DISPLAY NAME  APP ID                                OBJECT ID                             IDENTIFIER URIS  CREATED\n\
             orders        22222222-2222-4222-8222-222222222222  11111111-1111-4111-8111-111111111111  api://orders     2026-01-02T03:04:05Z\n"
        );
        let json: Value =
            serde_json::from_str(&list(OutputFormat::Json, &[app()]).unwrap()).unwrap();
        assert_eq!(json, json!([app()]));
        let block = show(OutputFormat::Table, &app()).unwrap();
        assert!(block.contains("appRoles:        Orders.Read\n"), "{block}");
    }
}
