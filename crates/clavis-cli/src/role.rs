//! `clavis role`: grant an app role of a resource to a client application
//! (`POST /v1.0/servicePrincipals/{resource}/appRoleAssignedTo`; a role the
//! client already holds is not granted twice: the existing grant is shown and
//! the exit code is 0, as `az role assignment create` does), list what a
//! resource has granted or what a client holds
//! (`GET /v1.0/servicePrincipals/{client}/appRoleAssignments`), and revoke a
//! grant by its id or by client and role.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::app_role;
use crate::client::Session;
use crate::confirm;
use crate::error::Error;
use crate::lookup::{self, Found};
use crate::model::{view, AppRole, AppRoleAssignment, ServicePrincipal};
use crate::output::{self, key_values, OutputFormat, Table};
use crate::Ctx;

/// `clavis role ...`
#[derive(clap::Subcommand, Debug)]
pub enum RoleCommand {
    /// Grant a resource's app role to a client application.
    ///
    /// The client's next tokens for that resource carry the role's value in
    /// their `roles` claim. Granting a role the client already holds changes
    /// nothing: it says so on stderr, prints the existing grant and exits 0.
    /// Management roles (Application.ReadWrite.All,
    /// Application.ReadWrite.OwnedBy, Application.Read.All, AuditLog.Read.All,
    /// Application.Credentials.RotateSelf) are app roles of the resource api://clavis.
    Grant {
        /// The client application: object id, appId, identifier URI or display name.
        #[arg(long, value_name = "APP")]
        client: String,
        /// The resource application (e.g. api://orders, or api://clavis for management roles).
        #[arg(long, value_name = "APP_OR_URI")]
        resource: String,
        /// The app role's value, e.g. Orders.Read or Application.ReadWrite.All.
        #[arg(long, value_name = "VALUE")]
        role: String,
    },
    /// List the app roles granted on a resource (--resource), held by a
    /// client (--client), or both.
    List {
        /// The resource application: object id, appId, identifier URI or display name.
        #[arg(long, value_name = "APP_OR_URI", required_unless_present = "client")]
        resource: Option<String>,
        /// The client application: object id, appId, identifier URI or display name.
        #[arg(long, value_name = "APP")]
        client: Option<String>,
    },
    /// Revoke one role grant on a resource: by its id, or by --client and --role.
    Revoke {
        /// The resource application: object id, appId, identifier URI or display name.
        #[arg(long, value_name = "APP_OR_URI")]
        resource: String,
        /// The grant's id, as shown by `clavis role list`.
        #[arg(required_unless_present = "client", conflicts_with_all = ["client", "role"])]
        assignment_id: Option<String>,
        /// The client holding the role: object id, appId, identifier URI or display name.
        #[arg(long, value_name = "APP", requires = "role")]
        client: Option<String>,
        /// The role's value, e.g. Orders.Read (with --client).
        #[arg(long, value_name = "VALUE", requires = "client")]
        role: Option<String>,
        /// Do not ask for confirmation (it is never asked when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

pub async fn run(ctx: &Ctx, cmd: RoleCommand) -> Result<(), Error> {
    let s = ctx.session().await?;
    let format = ctx.global.output;
    match cmd {
        RoleCommand::Grant {
            client,
            resource,
            role,
        } => {
            let client_sp = client_principal(&s, &client).await?;
            let resource_sp = lookup::resource_service_principal(&s, &resource).await?;
            let role = find_role(&resource_sp.view, &role)?;
            let (assignment, new) = grant(&s, &client_sp.view, &resource_sp.view, role).await?;
            if !new {
                eprintln!(
                    "Role '{}' of '{}' was already granted to '{}'; nothing changed.",
                    role.value, resource_sp.view.display_name, client_sp.view.display_name
                );
            }
            output::emit(&match format {
                OutputFormat::Json => output::json(&assignment),
                OutputFormat::Table => granted_block(&assignment, &role.value)?,
            });
        }
        RoleCommand::List { resource, client } => {
            let resource_sp = match &resource {
                Some(spec) => Some(lookup::resource_service_principal(&s, spec).await?),
                None => None,
            };
            let Some(client) = client else {
                let resource_sp = resource_sp
                    .ok_or_else(|| Error::new("pass --resource APP, --client APP or both"))?;
                let url = s.url(&[
                    "servicePrincipals",
                    &resource_sp.view.id,
                    "appRoleAssignedTo",
                ]);
                let assignments = s.list(url, None).await?;
                output::emit(&match format {
                    OutputFormat::Json => output::json(&Value::from(assignments)),
                    OutputFormat::Table => list_table(&assignments, &resource_sp.view)?,
                });
                return Ok(());
            };
            let client_sp = client_principal(&s, &client).await?;
            let mut held = held_by(&s, &client_sp.view).await?;
            if let Some(resource_sp) = &resource_sp {
                held.retain(|a| a["resourceId"].as_str() == Some(resource_sp.view.id.as_str()));
            }
            output::emit(&match format {
                OutputFormat::Json => output::json(&Value::from(held)),
                OutputFormat::Table => held_table(&s, &held).await?,
            });
        }
        RoleCommand::Revoke {
            resource,
            assignment_id,
            client,
            role,
            yes,
        } => {
            let resource_sp = lookup::resource_service_principal(&s, &resource).await?;
            let (assignment_id, what) = match (assignment_id, client, role) {
                (Some(id), _, _) => (id.clone(), format!("grant {id}")),
                (None, Some(client), Some(role)) => {
                    let client_sp = client_principal(&s, &client).await?;
                    let r = &resource_sp.view;
                    let role = app_role::by_value(&r.app_roles, &role, &r.display_name, &r.app_id)?;
                    let held =
                        held_grant(&s, &client_sp.view, r, role)
                            .await?
                            .ok_or_else(|| {
                                Error::new(format!(
                                    "'{}' does not hold role '{}' of '{}'",
                                    client_sp.view.display_name, role.value, r.display_name
                                ))
                                .hint(format!(
                                    "see what it holds with `clavis role list --client {client}`"
                                ))
                            })?;
                    let what = format!(
                        "role '{}' of '{}' from '{}'",
                        role.value, r.display_name, client_sp.view.display_name
                    );
                    (text(&held["id"]), what)
                }
                _ => return Err(Error::new("name the grant: its id, or --client and --role")),
            };
            confirm::unless_yes(yes, &format!("Revoke {what}"))?;
            let url = s.url(&[
                "servicePrincipals",
                &resource_sp.view.id,
                "appRoleAssignedTo",
                &assignment_id,
            ]);
            s.delete(url).await.map_err(|e| {
                if e.is_not_found() {
                    e.hint(format!(
                        "see the grants with `clavis role list --resource {resource}`"
                    ))
                } else {
                    e
                }
            })?;
            if format == OutputFormat::Table {
                output::emit(&format!(
                    "Revoked assignment {assignment_id} on '{}'.\n",
                    resource_sp.view.display_name
                ));
            }
        }
    }
    Ok(())
}

/// The service principal of the client application `spec`.
async fn client_principal(s: &Session, spec: &str) -> Result<Found<ServicePrincipal>, Error> {
    let app = lookup::application(s, spec).await?;
    lookup::service_principal(s, &app.view.app_id, spec).await
}

/// Grant `role` of `resource` to `client` unless it already holds it: the
/// assignment, and whether it is new.
async fn grant(
    s: &Session,
    client: &ServicePrincipal,
    resource: &ServicePrincipal,
    role: &AppRole,
) -> Result<(Value, bool), Error> {
    if let Some(existing) = held_grant(s, client, resource, role).await? {
        return Ok((existing, false));
    }
    let body = json!({
        "principalId": client.id,
        "resourceId": resource.id,
        "appRoleId": role.id,
    });
    let url = s.url(&["servicePrincipals", &resource.id, "appRoleAssignedTo"]);
    match s.post(url, &body).await {
        Ok(Some(created)) => Ok((created, true)),
        Ok(None) => Err(Error::new(
            "the server granted the role but did not return the assignment",
        )),
        // Granted by someone else between our look and our grant?
        Err(e) if matches!(e.http_status(), Some(400 | 409)) => {
            match held_grant(s, client, resource, role).await? {
                Some(existing) => Ok((existing, false)),
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Every grant `client` holds (`GET /servicePrincipals/{id}/appRoleAssignments`).
async fn held_by(s: &Session, client: &ServicePrincipal) -> Result<Vec<Value>, Error> {
    s.list(
        s.url(&["servicePrincipals", &client.id, "appRoleAssignments"]),
        None,
    )
    .await
}

/// The grant of `role` of `resource` that `client` holds, if any.
async fn held_grant(
    s: &Session,
    client: &ServicePrincipal,
    resource: &ServicePrincipal,
    role: &AppRole,
) -> Result<Option<Value>, Error> {
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    Ok(held_by(s, client).await?.into_iter().find(|a| {
        same(&text(&a["resourceId"]), &resource.id) && same(&text(&a["appRoleId"]), &role.id)
    }))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// The enabled app role of `sp` whose value is `value`; an error suggesting
/// the closest values otherwise (never adding the typo).
fn find_role<'a>(sp: &'a ServicePrincipal, value: &str) -> Result<&'a AppRole, Error> {
    let role = app_role::by_value(&sp.app_roles, value, &sp.display_name, &sp.app_id)?;
    if !role.is_enabled {
        return Err(Error::new(format!(
            "app role '{value}' of '{}' is disabled",
            sp.display_name
        )));
    }
    if Uuid::parse_str(&role.id).is_err() {
        return Err(Error::new(format!("app role '{value}' has no valid id")));
    }
    Ok(role)
}

fn granted_block(raw: &Value, role_value: &str) -> Result<String, Error> {
    let a: AppRoleAssignment = view(raw, "app role assignment")?;
    Ok(key_values(&[
        ("id", a.id),
        ("role", role_value.to_owned()),
        (
            "client",
            format!("{} ({})", a.principal_display_name, a.principal_id),
        ),
        ("resource", a.resource_display_name),
        ("created", output::time(&a.created_date_time)),
    ]))
}

fn list_table(raw: &[Value], resource: &ServicePrincipal) -> Result<String, Error> {
    let mut table = Table::new(&["ID", "ROLE", "CLIENT", "CLIENT SP ID", "CREATED"]);
    for raw in raw {
        let a: AppRoleAssignment = view(raw, "app role assignment")?;
        let role = role_value(&resource.app_roles, &a.app_role_id);
        table.row(vec![
            a.id,
            role,
            a.principal_display_name,
            a.principal_id,
            output::time(&a.created_date_time),
        ]);
    }
    Ok(table.render())
}

/// What a client holds: one row per grant, with each resource's role values
/// (`GET /servicePrincipals/{resource}` once per resource).
async fn held_table(s: &Session, raw: &[Value]) -> Result<String, Error> {
    let mut resources: Vec<(String, ServicePrincipal)> = Vec::new();
    let mut table = Table::new(&["ID", "ROLE", "RESOURCE", "RESOURCE SP ID", "CREATED"]);
    for raw in raw {
        let a: AppRoleAssignment = view(raw, "app role assignment")?;
        if !resources.iter().any(|(id, _)| *id == a.resource_id) {
            let sp = s.get(s.url(&["servicePrincipals", &a.resource_id])).await?;
            resources.push((a.resource_id.clone(), view(&sp, "service principal")?));
        }
        let roles = resources
            .iter()
            .find(|(id, _)| *id == a.resource_id)
            .map(|(_, sp)| sp.app_roles.as_slice())
            .unwrap_or_default();
        table.row(vec![
            a.id,
            role_value(roles, &a.app_role_id),
            a.resource_display_name,
            a.resource_id,
            output::time(&a.created_date_time),
        ]);
    }
    Ok(table.render())
}

/// The value of the role with `id`, or the id when the role is gone.
fn role_value(roles: &[AppRole], id: &str) -> String {
    roles
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(id))
        .map_or(id.to_owned(), |r| r.value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp() -> ServicePrincipal {
        view(
            &json!({"id":"sp1","appId":"app1","displayName":"orders","appRoles":[
                {"id":"5b1c0a6e-0000-4000-8000-000000000001","value":"Orders.Read","isEnabled":true},
                {"id":"5b1c0a6e-0000-4000-8000-000000000002","value":"Orders.Old","isEnabled":false}]}),
            "service principal",
        )
        .unwrap()
    }

    #[test]
    fn finds_roles_by_value() {
        let sp = sp();
        assert_eq!(
            find_role(&sp, "Orders.Read").unwrap().id,
            "5b1c0a6e-0000-4000-8000-000000000001"
        );
        let missing = find_role(&sp, "Invoices.Write").unwrap_err();
        assert_eq!(
            missing.reason(),
            "'orders' has no app role 'Invoices.Write'"
        );
        assert!(missing
            .hint_text()
            .unwrap()
            .contains("clavis app role add app1 --value Invoices.Write"));
        let typo = find_role(&sp, "Orders.Raed").unwrap_err();
        assert_eq!(typo.hint_text(), Some("did you mean 'Orders.Read'?"));
        assert!(find_role(&sp, "Orders.Old")
            .unwrap_err()
            .reason()
            .contains("disabled"));
    }

    #[test]
    fn list_shows_role_values() {
        let rows = [
            json!({"id":"as1","appRoleId":"5B1C0A6E-0000-4000-8000-000000000001","principalId":"p1",
                            "principalDisplayName":"billing","createdDateTime":"2026-02-03T04:05:06Z"}),
        ];
        let table = list_table(&rows, &sp()).unwrap();
        assert_eq!(
            table,
            "ID   ROLE         CLIENT   CLIENT SP ID  CREATED\n\
             as1  Orders.Read  billing  p1            2026-02-03T04:05:06Z\n"
        );
    }
}
