//! Finding what a person means by `APP`: an object id or an appId (both GUIDs:
//! `GET /applications/{id}` first, then `$filter=appId eq`), an identifier URI,
//! or a display name (ambiguous names are an error listing the candidates);
//! and finding service principals (one per application) by appId.

use serde_json::Value;
use uuid::Uuid;

use crate::client::Session;
use crate::error::Error;
use crate::model::{view, Application, ServicePrincipal};
use crate::odata::{literal, with_query};

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

/// Resolve `spec` to one application.
pub async fn application(s: &Session, spec: &str) -> Result<Found<Application>, Error> {
    find_application(s, spec)
        .await?
        .ok_or_else(|| not_found(spec))
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

/// The error for an `APP` that matches nothing.
pub fn not_found(spec: &str) -> Error {
    Error::new(format!("no application matches '{spec}'"))
        .hint("give its appId, object id, identifier URI or display name; see `clavis app list`")
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
        Ok(id) => format!("appId eq {}", literal(&id.to_string())),
        Err(_) if spec.contains(':') => {
            format!("servicePrincipalNames/any(x:x eq {})", literal(spec.trim()))
        }
        Err(_) => return Err(not_found(spec)),
    };
    match filter(s, "servicePrincipals", &query).await {
        Ok(matches) => match pick(spec, matches)? {
            Some(raw) => Found::new(raw, "service principal"),
            None => Err(not_found(spec)),
        },
        // A server without that filter simply has no such resource to offer.
        Err(e) if e.http_status() == Some(400) => Err(not_found(spec)),
        Err(e) => Err(e),
    }
}

/// `GET /v1.0/{collection}?$filter=...`, every page.
async fn filter(s: &Session, collection: &str, filter: &str) -> Result<Vec<Value>, Error> {
    s.list(
        with_query(s.url(&[collection]), &[("$filter", filter)]),
        None,
    )
    .await
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
}
