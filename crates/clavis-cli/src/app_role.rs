//! App roles by their value: finding one (a typo gets "did you mean …?",
//! never an invitation to create it) and `clavis app role remove`, done the
//! way Graph allows: disable it (`isEnabled: false`), revoke its grants,
//! then `PATCH` the `appRoles` list without it.

use serde_json::{json, Value};

use crate::client::Session;
use crate::confirm;
use crate::error::Error;
use crate::lookup::{self, Found};
use crate::model::{view, AppRole, AppRoleAssignment, Application};
use crate::suggest;

/// The role of `roles` whose value is `value` (exactly: tokens carry it as
/// it is). Otherwise an error that suggests the closest values, or lists
/// them and how to add one when none is close.
pub fn by_value<'a>(
    roles: &'a [AppRole],
    value: &str,
    owner: &str,
    app_id: &str,
) -> Result<&'a AppRole, Error> {
    if let Some(role) = roles.iter().find(|r| r.value == value) {
        return Ok(role);
    }
    let values: Vec<&str> = roles.iter().map(|r| r.value.as_str()).collect();
    let err = Error::new(format!("'{owner}' has no app role '{value}'"));
    Err(
        match suggest::did_you_mean(&suggest::closest(value, values.iter().copied())) {
            Some(question) => err.hint(question),
            None => {
                let offered = if values.is_empty() {
                    "none".to_owned()
                } else {
                    values.join(", ")
                };
                err.hint(format!(
                    "its roles: {offered}; add one with `clavis app role add {app_id} --value {value}`"
                ))
            }
        },
    )
}

/// Remove the role `value` of `app`, after asking (on a terminal, unless
/// `yes`); returns how many grants of it were revoked.
pub async fn remove(
    s: &Session,
    app: &Found<Application>,
    value: &str,
    yes: bool,
) -> Result<usize, Error> {
    let a = &app.view;
    let role = by_value(&a.app_roles, value, &a.display_name, &a.app_id)?;
    let role_id = role.id.clone();
    let sp = lookup::service_principal(s, &a.app_id, &a.display_name).await?;
    let grants_url = s.url(&["servicePrincipals", &sp.view.id, "appRoleAssignedTo"]);
    let mut grants = Vec::new();
    for raw in s.list(grants_url, None).await? {
        let grant: AppRoleAssignment = view(&raw, "app role assignment")?;
        if grant.app_role_id.eq_ignore_ascii_case(&role_id) {
            grants.push(grant);
        }
    }
    confirm::unless_yes(
        yes,
        &format!(
            "Remove app role '{value}' of '{}' and revoke its {} grant(s)",
            a.display_name,
            grants.len()
        ),
    )?;
    // Disable first, even if it already is: a resource that cannot be
    // changed (the built-in api://clavis) refuses here, before any grant goes.
    let app_url = s.url(&["applications", &a.id]);
    let roles = app.raw["appRoles"].as_array().cloned().unwrap_or_default();
    let is_it = |r: &Value| r["id"].as_str() == Some(role_id.as_str());
    let disabled: Vec<Value> = roles
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if is_it(&r) {
                r["isEnabled"] = false.into();
            }
            r
        })
        .collect();
    s.patch(app_url.clone(), &json!({ "appRoles": disabled }))
        .await?;
    for grant in &grants {
        let url = s.url(&[
            "servicePrincipals",
            &sp.view.id,
            "appRoleAssignedTo",
            &grant.id,
        ]);
        match s.delete(url).await {
            Ok(()) => {}
            // Revoked meanwhile: what we wanted.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let kept: Vec<&Value> = roles.iter().filter(|r| !is_it(r)).collect();
    s.patch(app_url, &json!({ "appRoles": kept })).await?;
    Ok(grants.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> Vec<AppRole> {
        let raw = json!([{"id":"1","value":"Orders.Read"},{"id":"2","value":"Orders.Write"}]);
        serde_json::from_value(raw).unwrap()
    }

    #[test]
    fn a_typo_suggests_the_closest_role_and_never_adding_it() {
        let roles = roles();
        assert_eq!(by_value(&roles, "Orders.Read", "o", "a").unwrap().id, "1");
        let typo = by_value(&roles, "Orders.Raed", "orders", "a").unwrap_err();
        assert_eq!(typo.reason(), "'orders' has no app role 'Orders.Raed'");
        assert_eq!(typo.hint_text(), Some("did you mean 'Orders.Read'?"));
        let case = by_value(&roles, "orders.write", "orders", "a").unwrap_err();
        assert_eq!(case.hint_text(), Some("did you mean 'Orders.Write'?"));
        let new = by_value(&roles, "Invoices.Admin", "orders", "a").unwrap_err();
        assert_eq!(
            new.hint_text(),
            Some("its roles: Orders.Read, Orders.Write; add one with `clavis app role add a --value Invoices.Admin`")
        );
        let none = by_value(&[], "X", "orders", "a").unwrap_err();
        assert!(none.hint_text().unwrap().starts_with("its roles: none;"));
    }
}
