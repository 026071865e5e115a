//! `clavis role`: grant an app role of a resource to a client application
//! (`POST /v1.0/servicePrincipals/{resource}/appRoleAssignedTo`), list a
//! resource's assignments and revoke one.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::Error;
use crate::lookup;
use crate::model::{view, AppRole, AppRoleAssignment, ServicePrincipal};
use crate::output::{self, key_values, OutputFormat, Table};
use crate::Ctx;

/// `clavis role ...`
#[derive(clap::Subcommand, Debug)]
pub enum RoleCommand {
    /// Grant a resource's app role to a client application.
    ///
    /// The client's next tokens for that resource carry the role's value in
    /// their `roles` claim. Management roles (Application.ReadWrite.All,
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
    /// List the app roles granted on a resource.
    List {
        /// The resource application: object id, appId, identifier URI or display name.
        #[arg(long, value_name = "APP_OR_URI")]
        resource: String,
    },
    /// Revoke one role assignment on a resource.
    Revoke {
        /// The resource application: object id, appId, identifier URI or display name.
        #[arg(long, value_name = "APP_OR_URI")]
        resource: String,
        /// The assignment's id, as shown by `clavis role list`.
        assignment_id: String,
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
            let client_app = lookup::application(&s, &client).await?;
            let client_sp = lookup::service_principal(&s, &client_app.view.app_id, &client).await?;
            let resource_sp = lookup::resource_service_principal(&s, &resource).await?;
            let role = find_role(&resource_sp.view, &role)?;
            let body = json!({
                "principalId": client_sp.view.id,
                "resourceId": resource_sp.view.id,
                "appRoleId": role.id,
            });
            let url = s.url(&[
                "servicePrincipals",
                &resource_sp.view.id,
                "appRoleAssignedTo",
            ]);
            let assignment = s.post(url, &body).await?.ok_or_else(|| {
                Error::new("the server granted the role but did not return the assignment")
            })?;
            output::emit(&match format {
                OutputFormat::Json => output::json(&assignment),
                OutputFormat::Table => granted_block(&assignment, &role.value)?,
            });
        }
        RoleCommand::List { resource } => {
            let resource_sp = lookup::resource_service_principal(&s, &resource).await?;
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
        }
        RoleCommand::Revoke {
            resource,
            assignment_id,
        } => {
            let resource_sp = lookup::resource_service_principal(&s, &resource).await?;
            let url = s.url(&[
                "servicePrincipals",
                &resource_sp.view.id,
                "appRoleAssignedTo",
                &assignment_id,
            ]);
            s.delete(url).await.map_err(|e| {
                if e.is_not_found() {
                    e.hint(format!(
                        "see the assignments with `clavis role list --resource {resource}`"
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

/// The enabled app role of `sp` whose value is `value`; an error listing the
/// values there are otherwise.
fn find_role<'a>(sp: &'a ServicePrincipal, value: &str) -> Result<&'a AppRole, Error> {
    let Some(role) = sp.app_roles.iter().find(|r| r.value == value) else {
        let values: Vec<&str> = sp.app_roles.iter().map(|r| r.value.as_str()).collect();
        let offered = if values.is_empty() {
            "none".to_owned()
        } else {
            values.join(", ")
        };
        return Err(Error::new(format!(
            "'{}' has no app role '{value}'; its roles: {offered}",
            sp.display_name
        ))
        .hint(format!(
            "add one with `clavis app role add {} --value {value}`",
            sp.app_id
        )));
    };
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
        let role = resource
            .app_roles
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(&a.app_role_id))
            .map_or(a.app_role_id.clone(), |r| r.value.clone());
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
        let missing = find_role(&sp, "Orders.Write").unwrap_err();
        assert_eq!(
            missing.reason(),
            "'orders' has no app role 'Orders.Write'; its roles: Orders.Read, Orders.Old"
        );
        assert!(missing
            .hint_text()
            .unwrap()
            .contains("clavis app role add app1 --value Orders.Write"));
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
