//! The steps of rotating a client secret over the management API, shared by
//! `clavis secret rotate` (one shot, for an operator) and `clavis agent`
//! (beside an application): add a new secret, prove it by getting a token
//! with it, and only then let old ones go; a new secret that does not work
//! is removed again.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::{Zeroize as _, Zeroizing};

use crate::client::{Connection, Session};
use crate::error::Error;
use crate::output;
use crate::profile::ClientSecret;

/// The application whose secrets rotate.
#[derive(Debug, Clone)]
pub struct Target {
    /// Object id (`/v1.0/applications/{id}`).
    pub object_id: String,
    /// appId (the client id the secret authenticates).
    pub app_id: Uuid,
}

/// A secret `addPassword` just created. `Debug` shows its key id only; drop
/// zeroes the value (also inside `raw`).
pub struct NewSecret {
    pub key_id: Uuid,
    pub secret: ClientSecret,
    pub start: Option<OffsetDateTime>,
    pub end: Option<OffsetDateTime>,
    /// The `addPassword` answer as sent, `secretText` included (for `--output json`).
    pub raw: Value,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("key_id", &self.key_id)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl Drop for NewSecret {
    fn drop(&mut self) {
        forget_secret_text(&mut self.raw);
    }
}

/// Zero the secret value in an `addPassword` answer.
pub fn forget_secret_text(added: &mut Value) {
    if let Some(Value::String(text)) = added.get_mut("secretText") {
        text.zeroize();
    }
}

/// `POST /v1.0/applications/{id}/addPassword`: a new secret named
/// `display_name`, ending at `end` (the tenant's default lifetime without it).
pub async fn add(
    s: &Session,
    target: &Target,
    display_name: &str,
    end: Option<OffsetDateTime>,
) -> Result<NewSecret, Error> {
    let mut credential = serde_json::Map::new();
    credential.insert("displayName".into(), display_name.into());
    if let Some(at) = end {
        credential.insert("endDateTime".into(), output::rfc3339(at).into());
    }
    let url = s.url(&["applications", &target.object_id, "addPassword"]);
    let mut raw = s
        .post(url, &json!({ "passwordCredential": credential }))
        .await?
        .ok_or_else(|| Error::new("the server added a secret but did not return it"))?;
    let secret = ClientSecret::new(Zeroizing::new(
        raw["secretText"].as_str().unwrap_or_default().to_owned(),
    ));
    let key_id = raw["keyId"].as_str().and_then(|k| Uuid::parse_str(k).ok());
    let (Some(key_id), false) = (key_id, secret.is_empty()) else {
        forget_secret_text(&mut raw);
        return Err(Error::new(
            "the server's answer to addPassword has no keyId or no secretText",
        ));
    };
    let time = |field: &str| {
        raw[field]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    };
    Ok(NewSecret {
        key_id,
        secret,
        start: time("startDateTime"),
        end: time("endDateTime"),
        raw,
    })
}

/// Prove `secret` works: the application gets a token for itself with it.
pub async fn prove(conn: &Connection, app_id: Uuid, secret: &ClientSecret) -> Result<(), Error> {
    let scope = format!("{app_id}/.default");
    conn.token(app_id, secret, &scope).await.map(drop)
}

/// The new secret did not work: remove it again, and say what happened.
pub async fn undo(s: &Session, target: &Target, new: &NewSecret, why: &Error) -> Error {
    match remove(s, target, new.key_id).await {
        Ok(_) => Error::new(format!(
            "the new secret {} did not work ({why}); it was removed again and nothing else changed",
            new.key_id
        )),
        Err(e) => Error::new(format!(
            "the new secret {} did not work ({why}), and removing it again failed too ({e})",
            new.key_id
        ))
        .hint(format!(
            "remove it with `clavis secret remove {} {}`",
            target.app_id, new.key_id
        )),
    }
}

/// Add a secret and prove it; one that does not work is removed again.
pub async fn add_proven(
    s: &Session,
    target: &Target,
    display_name: &str,
    end: Option<OffsetDateTime>,
) -> Result<NewSecret, Error> {
    let new = add(s, target, display_name, end).await?;
    match prove(s.connection(), target.app_id, &new.secret).await {
        Ok(()) => Ok(new),
        Err(why) => Err(undo(s, target, &new, &why).await),
    }
}

/// What [`remove`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    Now,
    /// The server had no such secret (an earlier attempt got there first).
    AlreadyGone,
}

/// `POST /v1.0/applications/{id}/removePassword`.
pub async fn remove(s: &Session, target: &Target, key_id: Uuid) -> Result<Removed, Error> {
    let url = s.url(&["applications", &target.object_id, "removePassword"]);
    match s.post(url, &json!({ "keyId": key_id })).await {
        Ok(_) => Ok(Removed::Now),
        Err(e) if e.is_not_found() => Ok(Removed::AlreadyGone),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_secret_shows_its_key_id_only_and_forgets_its_value() {
        let value = "clavis_NewSecretValue0123456789";
        let new = NewSecret {
            key_id: Uuid::nil(),
            secret: ClientSecret::new(Zeroizing::new(value.to_owned())),
            start: None,
            end: None,
            raw: json!({"keyId": Uuid::nil(), "secretText": value}),
        };
        let shown = format!("{new:?}");
        assert!(shown.contains(&Uuid::nil().to_string()), "{shown}");
        assert!(!shown.contains(value), "{shown}");
        let mut raw = new.raw.clone();
        forget_secret_text(&mut raw);
        assert_eq!(raw["secretText"], "");
    }
}
