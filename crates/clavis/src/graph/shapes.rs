//! Microsoft Graph v1.0 representations of Clavis records (what the
//! management API sends and accepts), and their OpenAPI schemas.

use clavis_store::{AppRole, Application, AuditEvent, PasswordCredential, RoleAssignment};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// An app role (`microsoft.graph.appRole`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppRoleDto {
    pub id: Uuid,
    /// Appears in the `roles` claim. No spaces; 1–120 characters.
    pub value: String,
    pub display_name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `["Application"]` (and/or `User`).
    pub allowed_member_types: Vec<String>,
    #[serde(default = "yes")]
    pub is_enabled: bool,
    /// Ignored (Graph sends it).
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub origin: Option<String>,
}

fn yes() -> bool {
    true
}

impl From<&AppRole> for AppRoleDto {
    fn from(r: &AppRole) -> Self {
        Self {
            id: r.id,
            value: r.value.clone(),
            display_name: r.display_name.clone(),
            description: Some(r.description.clone()),
            allowed_member_types: r.allowed_member_types.clone(),
            is_enabled: r.is_enabled,
            origin: None,
        }
    }
}

/// A password credential (`microsoft.graph.passwordCredential`).
/// `secretText` is only ever set in the `addPassword` response.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordCredentialDto {
    pub key_id: Uuid,
    pub display_name: String,
    /// First three characters of the secret after its prefix.
    pub hint: String,
    pub start_date_time: String,
    pub end_date_time: String,
    pub custom_key_identifier: Option<String>,
    /// Clavis extension: when a token was last issued with this secret (kept
    /// by the sign-in log, so up to about a second behind); `null` if never.
    pub last_used_date_time: Option<String>,
    #[schema(value_type = Option<String>)]
    pub secret_text: Option<ShownOnce>,
}

/// A secret value on its way into the one response that shows it:
/// serialized as the value, `Debug` redacted, zeroed on drop.
pub struct ShownOnce(pub crate::secret::ClientSecret);

impl std::fmt::Debug for ShownOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for ShownOnce {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.expose())
    }
}

impl From<&PasswordCredential> for PasswordCredentialDto {
    fn from(c: &PasswordCredential) -> Self {
        Self {
            key_id: c.key_id,
            display_name: c.display_name.clone(),
            hint: c.hint.clone(),
            start_date_time: rfc3339(c.start_at),
            end_date_time: rfc3339(c.end_at),
            custom_key_identifier: None,
            last_used_date_time: c.last_used_at.map(rfc3339),
            secret_text: None,
        }
    }
}

/// An application registration (`microsoft.graph.application`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDto {
    pub id: Uuid,
    pub app_id: Uuid,
    pub display_name: String,
    pub identifier_uris: Vec<String>,
    pub app_roles: Vec<AppRoleDto>,
    pub password_credentials: Vec<PasswordCredentialDto>,
    pub created_date_time: String,
    pub sign_in_audience: &'static str,
}

impl From<&Application> for ApplicationDto {
    fn from(a: &Application) -> Self {
        Self {
            id: a.id,
            app_id: a.app_id,
            display_name: a.display_name.clone(),
            identifier_uris: a.identifier_uris.clone(),
            app_roles: a.app_roles.iter().map(Into::into).collect(),
            password_credentials: a.password_credentials.iter().map(Into::into).collect(),
            created_date_time: rfc3339(a.created_at),
            sign_in_audience: "AzureADMyOrg",
        }
    }
}

/// A service principal (`microsoft.graph.servicePrincipal`): the
/// application's identity in its tenant.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipalDto {
    pub id: Uuid,
    pub app_id: Uuid,
    pub display_name: String,
    pub app_roles: Vec<AppRoleDto>,
    pub service_principal_names: Vec<String>,
    pub account_enabled: bool,
    pub service_principal_type: &'static str,
}

impl From<&Application> for ServicePrincipalDto {
    fn from(a: &Application) -> Self {
        let mut names = a.identifier_uris.clone();
        names.push(a.app_id.to_string());
        Self {
            id: a.service_principal_id,
            app_id: a.app_id,
            display_name: a.display_name.clone(),
            app_roles: a.app_roles.iter().map(Into::into).collect(),
            service_principal_names: names,
            account_enabled: true,
            service_principal_type: "Application",
        }
    }
}

/// An app role granted to a client (`microsoft.graph.appRoleAssignment`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppRoleAssignmentDto {
    pub id: Uuid,
    pub app_role_id: Uuid,
    pub principal_id: Uuid,
    pub principal_display_name: String,
    pub principal_type: &'static str,
    pub resource_id: Uuid,
    pub resource_display_name: String,
    pub created_date_time: String,
}

impl AppRoleAssignmentDto {
    pub fn new(a: &RoleAssignment, principal: &str, resource: &str) -> Self {
        Self {
            id: a.id,
            app_role_id: a.app_role_id,
            principal_id: a.principal_id,
            principal_display_name: principal.to_owned(),
            principal_type: "ServicePrincipal",
            resource_id: a.resource_id,
            resource_display_name: resource.to_owned(),
            created_date_time: rfc3339(a.created_at),
        }
    }
}

/// An audit event (`microsoft.graph.directoryAudit`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryAuditDto {
    pub id: Uuid,
    pub category: String,
    pub correlation_id: Uuid,
    /// The caller's own id for the request (its `client-request-id`
    /// header, else its `request-id`), sanitised: visible ASCII, at most
    /// 64 characters. `correlationId` is always Clavis's own.
    pub client_request_id: Option<String>,
    pub result: &'static str,
    pub result_reason: String,
    pub activity_display_name: String,
    pub activity_date_time: String,
    pub logged_by_service: &'static str,
    pub operation_type: String,
    #[schema(value_type = Object)]
    pub initiated_by: Value,
    #[schema(value_type = Vec<Object>)]
    pub target_resources: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub additional_details: Vec<Value>,
}

impl From<&AuditEvent> for DirectoryAuditDto {
    fn from(e: &AuditEvent) -> Self {
        let mut details = vec![json!({"key": "TenantId", "value": e.tenant_id})];
        if let Some(ip) = &e.client_ip {
            details.push(json!({"key": "ClientIpAddress", "value": ip}));
        }
        if let Some(k) = e.actor_key_id {
            details.push(json!({"key": "ActorCredentialKeyId", "value": k}));
        }
        if let Some(k) = e.target_key_id {
            details.push(json!({"key": "KeyId", "value": k}));
        }
        Self {
            id: e.id,
            category: e.category.clone(),
            correlation_id: e.correlation_id,
            client_request_id: e.client_request_id.clone(),
            result: e.result.as_str(),
            result_reason: e.result_reason.clone(),
            activity_display_name: e.activity.clone(),
            activity_date_time: rfc3339(e.at),
            logged_by_service: "Clavis",
            operation_type: e.operation_type.clone(),
            initiated_by: json!({"app": {
                "appId": e.actor_app_id,
                "displayName": e.actor_display_name,
                "servicePrincipalId": e.actor_service_principal_id,
                "ipAddress": e.client_ip,
            }}),
            target_resources: vec![json!({
                "id": e.target_id,
                "displayName": e.target_display_name,
                "type": e.target_type,
            })],
            additional_details: details,
        }
    }
}

/// A Graph collection page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Collection<T> {
    #[serde(rename = "@odata.context")]
    pub context: String,
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}
