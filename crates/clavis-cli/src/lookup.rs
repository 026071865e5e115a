//! Finding what a person means by `APP`: an object id or an appId (both GUIDs:
//! `GET /applications/{id}` first, then `$filter=appId eq`), an identifier URI,
//! or a display name, exactly and then ignoring case (names need not be
//! unique, as in Entra: an ambiguous name is an error listing the candidates;
//! an unknown one suggests the closest names); service principals (one per
//! application) by appId; a secret of an application by key id or name; a
//! webhook by id, name or URL.

use serde_json::Value;
use uuid::Uuid;

use crate::client::Session;
use crate::error::Error;
use crate::model::{view, Application, PasswordCredential, ServicePrincipal};
use crate::odata::{literal, with_query};
use crate::suggest;

/// An object as the server sent it, and its typed view.
#[derive(Debug)]
pub struct Found<T> {
    pub raw: Value,
    pub view: T,
}

impl<T: serde::de::DeserializeOwned> Found<T> {
    fn new(raw: Value, what: &str) -> Result<Self, Error> {
        let view = view(&raw, what)?;
        Ok(Found { raw, view })
    }
}

/// Resolve `spec` to one application: by id, URI or exact name, else by
/// name ignoring case; an error suggesting the closest names otherwise.
pub async fn application(s: &Session, spec: &str) -> Result<Found<Application>, Error> {
    if let Some(found) = find_application(s, spec).await? {
        return Ok(found);
    }
    if Uuid::parse_str(spec.trim()).is_ok() {
        return Err(not_found(spec, &[]));
    }
    let all = all_applications(s).await?;
    let same: Vec<Value> = all.iter().filter(|a| same_name(a, spec)).cloned().collect();
    match pick(spec, same)? {
        Some(raw) => Found::new(raw, "application"),
        None => Err(not_found(spec, &all)),
    }
}

/// Every application of the tenant the caller may see, in pages of 999.
pub async fn all_applications(s: &Session) -> Result<Vec<Value>, Error> {
    s.list(
        with_query(s.url(&["applications"]), &[("$top", "999")]),
        None,
    )
    .await
}

/// Whether `raw`'s display name is `name`, ignoring case (and surrounding blanks).
pub fn same_name(raw: &Value, name: &str) -> bool {
    raw["displayName"]
        .as_str()
        .is_some_and(|n| n.trim().to_lowercase() == name.trim().to_lowercase())
}

/// Resolve `spec` to one application, if any matches.
async fn find_application(s: &Session, spec: &str) -> Result<Option<Found<Application>>, Error> {
    let spec = spec.trim();
    let found = if let Ok(id) = Uuid::parse_str(spec) {
        let id = id.to_string();
        match s.get(s.url(&["applications", &id])).await {
            Ok(raw) => Some(raw),
            Err(e) if e.is_not_found() => pick(
                spec,
                filter(s, "applications", &format!("appId eq {}", literal(&id))).await?,
            )?,
            Err(e) => return Err(e),
        }
    } else {
        let mut found = None;
        if spec.contains(':') {
            let by_uri = format!("identifierUris/any(x:x eq {})", literal(spec));
            found = pick(spec, filter(s, "applications", &by_uri).await?)?;
        }
        if found.is_none() {
            let by_name = format!("displayName eq {}", literal(spec));
            found = pick(spec, filter(s, "applications", &by_name).await?)?;
        }
        found
    };
    found.map(|raw| Found::new(raw, "application")).transpose()
}

/// The error for an `APP` that matches nothing, suggesting the names (or,
/// for a URI, the identifier URIs) of `apps` closest to it.
pub fn not_found(spec: &str, apps: &[Value]) -> Error {
    let names: Vec<&str> = if spec.contains(':') {
        apps.iter()
            .filter_map(|a| a["identifierUris"].as_array())
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    } else {
        apps.iter()
            .filter_map(|a| a["displayName"].as_str())
            .collect()
    };
    let err = Error::new(format!("no application matches '{spec}'"));
    match suggest::did_you_mean(&suggest::closest(spec, names)) {
        Some(question) => err.hint(format!("{question} See `clavis app list`")),
        None => err.hint(
            "give its appId, object id, identifier URI or display name; see `clavis app list`",
        ),
    }
}

/// The one match, none, or an error naming every candidate's appId.
pub fn pick(spec: &str, mut matches: Vec<Value>) -> Result<Option<Value>, Error> {
    match matches.len() {
        0 => Ok(None),
        1 => Ok(matches.pop()),
        n => {
            let ids: Vec<&str> = matches
                .iter()
                .map(|m| m["appId"].as_str().unwrap_or("?"))
                .collect();
            Err(Error::new(format!(
                "'{spec}' matches {n} applications: {}",
                ids.join(", ")
            ))
            .hint("pass one of these appIds instead"))
        }
    }
}

/// The service principal of the application with `app_id`.
pub async fn service_principal(
    s: &Session,
    app_id: &str,
    label: &str,
) -> Result<Found<ServicePrincipal>, Error> {
    let matches = filter(
        s,
        "servicePrincipals",
        &format!("appId eq {}", literal(app_id)),
    )
    .await?;
    match pick(label, matches)? {
        Some(raw) => Found::new(raw, "service principal"),
        None => Err(Error::new(format!(
            "application '{label}' (appId {app_id}) has no service principal"
        ))),
    }
}

/// The service principal of a resource: via its application when the tenant
/// has one, else by service principal name (built-in resources such as
/// `api://clavis` may exist only as service principals).
pub async fn resource_service_principal(
    s: &Session,
    spec: &str,
) -> Result<Found<ServicePrincipal>, Error> {
    if let Some(app) = find_application(s, spec).await? {
        return service_principal(s, &app.view.app_id, spec).await;
    }
    let query = match Uuid::parse_str(spec.trim()) {
        Ok(id) => Some(format!("appId eq {}", literal(&id.to_string()))),
        Err(_) if spec.contains(':') => Some(format!(
            "servicePrincipalNames/any(x:x eq {})",
            literal(spec.trim())
        )),
        Err(_) => None,
    };
    if let Some(query) = query {
        match filter(s, "servicePrincipals", &query).await {
            Ok(matches) => {
                if let Some(raw) = pick(spec, matches)? {
                    return Found::new(raw, "service principal");
                }
            }
            // A server without that filter simply has no such resource to offer.
            Err(e) if e.http_status() == Some(400) => {}
            Err(e) => return Err(e),
        }
    }
    // A name in another case, or the error suggesting the closest ones.
    let app = application(s, spec).await?;
    service_principal(s, &app.view.app_id, spec).await
}

/// `GET /v1.0/{collection}?$filter=...`, every page.
async fn filter(s: &Session, collection: &str, filter: &str) -> Result<Vec<Value>, Error> {
    s.list(
        with_query(s.url(&[collection]), &[("$filter", filter)]),
        None,
    )
    .await
}

/// The secret of `app` that `spec` names: its key id, or its display name
/// ignoring case (names need not be unique: an ambiguous one is an error).
pub fn secret<'a>(app: &'a Application, spec: &str) -> Result<&'a PasswordCredential, Error> {
    let spec = spec.trim();
    let secrets = &app.password_credentials;
    let matches: Vec<&PasswordCredential> = match Uuid::parse_str(spec) {
        Ok(id) => secrets
            .iter()
            .filter(|c| Uuid::parse_str(&c.key_id).is_ok_and(|k| k == id))
            .collect(),
        Err(_) => secrets
            .iter()
            .filter(|c| c.display_name.trim().to_lowercase() == spec.to_lowercase())
            .collect(),
    };
    let list_hint = format!("see its secrets with `clavis secret list {}`", app.app_id);
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let names = secrets.iter().map(|c| c.display_name.as_str());
            let err = Error::new(format!(
                "application '{}' has no secret '{spec}' (by key id or name)",
                app.display_name
            ));
            Err(
                match suggest::did_you_mean(&suggest::closest(spec, names)) {
                    Some(question) => err.hint(format!("{question} Or {list_hint}")),
                    None => err.hint(list_hint),
                },
            )
        }
        several => {
            let ids: Vec<&str> = several.iter().map(|c| c.key_id.as_str()).collect();
            Err(Error::new(format!(
                "'{spec}' names {} secrets of '{}': {}",
                several.len(),
                app.display_name,
                ids.join(", ")
            ))
            .hint("pass one of these key ids instead"))
        }
    }
}

/// The id of the webhook `spec` names: its id (a GUID, as given), or its
/// display name (ignoring case) or URL among the tenant's webhooks.
pub async fn webhook(s: &Session, spec: &str) -> Result<String, Error> {
    let spec = spec.trim();
    if let Ok(id) = Uuid::parse_str(spec) {
        return Ok(id.to_string());
    }
    let hooks = s.list(s.url(&["webhooks"]), None).await?;
    let field = |h: &Value, key: &str| h[key].as_str().unwrap_or_default().to_owned();
    let matches: Vec<&Value> = hooks
        .iter()
        .filter(|h| {
            field(h, "displayName").trim().to_lowercase() == spec.to_lowercase()
                || field(h, "url") == spec
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(field(one, "id")),
        [] => {
            let names = hooks.iter().filter_map(|h| h["displayName"].as_str());
            let err = Error::new(format!("no webhook matches '{spec}'"));
            let list = "see them with `clavis webhook list`";
            Err(
                match suggest::did_you_mean(&suggest::closest(spec, names)) {
                    Some(question) => err.hint(format!("{question} Or {list}")),
                    None => err.hint(format!("give its id, name or URL; {list}")),
                },
            )
        }
        several => {
            let ids: Vec<String> = several.iter().map(|h| field(h, "id")).collect();
            Err(Error::new(format!(
                "'{spec}' matches {} webhooks: {}",
                several.len(),
                ids.join(", ")
            ))
            .hint("pass one of these ids instead"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pick_one_none_or_complain_with_app_ids() {
        assert_eq!(pick("x", vec![]).unwrap(), None);
        assert_eq!(
            pick("x", vec![json!({"appId":"a"})]).unwrap(),
            Some(json!({"appId":"a"}))
        );
        let err = pick(
            "billing",
            vec![json!({"appId":"a1"}), json!({"appId":"a2"})],
        )
        .unwrap_err();
        assert_eq!(err.reason(), "'billing' matches 2 applications: a1, a2");
        assert!(err.hint_text().unwrap().contains("appId"));
    }

    fn app() -> Application {
        view(
            &json!({"id":"o","appId":"a","displayName":"orders","passwordCredentials":[
                {"keyId":"0b9f1a4e-59c4-4b8e-9d0e-5f8c8f7e3c21","displayName":"ci"},
                {"keyId":"1b9f1a4e-59c4-4b8e-9d0e-5f8c8f7e3c21","displayName":"prod"},
                {"keyId":"2b9f1a4e-59c4-4b8e-9d0e-5f8c8f7e3c21","displayName":"prod"}]}),
            "application",
        )
        .unwrap()
    }

    #[test]
    fn secrets_by_key_id_or_name() {
        let app = app();
        let by_id = secret(&app, "0B9F1A4E-59C4-4B8E-9D0E-5F8C8F7E3C21").unwrap();
        assert_eq!(by_id.display_name, "ci");
        assert_eq!(secret(&app, "CI").unwrap().key_id, by_id.key_id);
        let twice = secret(&app, "prod").unwrap_err();
        assert!(
            twice.reason().starts_with("'prod' names 2 secrets"),
            "{twice}"
        );
        let typo = secret(&app, "prdo").unwrap_err();
        assert!(typo
            .hint_text()
            .unwrap()
            .starts_with("did you mean 'prod'?"));
        let unknown = secret(&app, "3b9f1a4e-59c4-4b8e-9d0e-5f8c8f7e3c21").unwrap_err();
        assert!(unknown
            .hint_text()
            .unwrap()
            .contains("clavis secret list a"));
    }

    #[test]
    fn unknown_applications_suggest_names_or_uris() {
        let apps = [
            json!({"displayName":"Orders API","identifierUris":["api://orders"]}),
            json!({"displayName":"Billing worker","identifierUris":[]}),
        ];
        let err = not_found("Order API", &apps);
        assert_eq!(err.reason(), "no application matches 'Order API'");
        assert_eq!(
            err.hint_text().unwrap(),
            "did you mean 'Orders API'? See `clavis app list`"
        );
        let err = not_found("api://ordres", &apps);
        assert!(err
            .hint_text()
            .unwrap()
            .starts_with("did you mean 'api://orders'?"));
        let err = not_found("zzz", &apps);
        assert!(err.hint_text().unwrap().starts_with("give its appId"));
    }
}
