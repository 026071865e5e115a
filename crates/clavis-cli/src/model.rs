//! Lenient typed views of the Microsoft Graph objects the CLI reads: every
//! field is optional (missing or `null` reads as empty), so a server that adds
//! or omits a field never breaks a table. `--output json` prints the raw
//! objects, never these views.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::Error;

/// Read a view from a raw object.
pub fn view<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T, Error> {
    serde_json::from_value(value.clone()).map_err(|e| {
        Error::new(format!(
            "the server sent a {what} this client cannot read: {e}"
        ))
    })
}

/// `null` reads as the type's default (empty string, empty list).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `/v1.0/applications/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub app_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub display_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub identifier_uris: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub app_roles: Vec<AppRole>,
    #[serde(default, deserialize_with = "nullable")]
    pub password_credentials: Vec<PasswordCredential>,
    #[serde(default, deserialize_with = "nullable")]
    pub created_date_time: String,
}

/// An entry of `appRoles` (on applications and service principals).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRole {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub value: String,
    #[serde(default, deserialize_with = "nullable")]
    pub display_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub allowed_member_types: Vec<String>,
    #[serde(default = "yes")]
    pub is_enabled: bool,
}

fn yes() -> bool {
    true
}

/// An entry of `passwordCredentials` (never with its value).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordCredential {
    #[serde(default, deserialize_with = "nullable")]
    pub key_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub display_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub hint: String,
    #[serde(default, deserialize_with = "nullable")]
    pub start_date_time: String,
    #[serde(default, deserialize_with = "nullable")]
    pub end_date_time: String,
    /// Empty when the secret was never used (or the server does not say).
    #[serde(default, deserialize_with = "nullable")]
    pub last_used_date_time: String,
}

/// `/v1.0/servicePrincipals/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub app_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub display_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub app_roles: Vec<AppRole>,
}

/// `/v1.0/servicePrincipals/{id}/appRoleAssignedTo/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRoleAssignment {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub app_role_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub principal_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub principal_display_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub resource_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub resource_display_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub created_date_time: String,
}

/// `/v1.0/auditLogs/directoryAudits/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryAudit {
    #[serde(default, deserialize_with = "nullable")]
    pub activity_date_time: String,
    #[serde(default, deserialize_with = "nullable")]
    pub activity_display_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub result: String,
    #[serde(default, deserialize_with = "nullable")]
    pub result_reason: String,
    #[serde(default, deserialize_with = "nullable")]
    pub correlation_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub initiated_by: InitiatedBy,
    #[serde(default, deserialize_with = "nullable")]
    pub target_resources: Vec<TargetResource>,
    #[serde(default, deserialize_with = "nullable")]
    pub additional_details: Vec<KeyValue>,
}

impl DirectoryAudit {
    /// The value of `additionalDetails` entry `key`, or empty.
    pub fn detail(&self, key: &str) -> &str {
        self.additional_details
            .iter()
            .find(|d| d.key == key)
            .map_or("", |d| d.value.as_str())
    }
}

/// An entry of `additionalDetails` (Graph's `keyValue`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyValue {
    #[serde(default, deserialize_with = "nullable")]
    pub key: String,
    #[serde(default, deserialize_with = "any_as_text")]
    pub value: String,
}

/// Any JSON value as text: strings as they are, `null` empty, others printed.
fn any_as_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Who did it: an application (users come later).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitiatedBy {
    #[serde(default, deserialize_with = "nullable")]
    pub app: AppIdentity,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppIdentity {
    #[serde(default, deserialize_with = "nullable")]
    pub app_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub display_name: String,
    /// Where the request came from.
    #[serde(default, deserialize_with = "nullable")]
    pub ip_address: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetResource {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub display_name: String,
    #[serde(default, deserialize_with = "nullable", rename = "type")]
    pub kind: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_and_null_fields_read_as_empty() {
        let app: Application = view(
            &json!({"id":"o1","appId":"a1","displayName":null,"passwordCredentials":[{"keyId":"k","secretText":null}],"extra":1}),
            "application",
        )
        .unwrap();
        assert_eq!(
            (
                app.id.as_str(),
                app.app_id.as_str(),
                app.display_name.as_str()
            ),
            ("o1", "a1", "")
        );
        assert!(app.identifier_uris.is_empty());
        assert_eq!(app.password_credentials[0].key_id, "k");
        let audit: DirectoryAudit =
            view(&json!({"initiatedBy":{"app":null}}), "audit event").unwrap();
        assert_eq!(audit.initiated_by.app.app_id, "");
    }
}
