//! Building audit events: who acted (an [`Actor`]), on what, with which
//! outcome. Events are written by the store in the same transaction as the
//! change they describe; nothing here ever holds a secret value.

use clavis_store::{AuditEvent, AuditResult};
use time::OffsetDateTime;
use uuid::Uuid;

/// Who performs a management action, and from where.
#[derive(Debug, Clone)]
pub struct Actor {
    pub app_id: Option<Uuid>,
    pub service_principal_id: Option<Uuid>,
    pub display_name: String,
    /// Credential the actor authenticated with, when known.
    pub key_id: Option<Uuid>,
    pub client_ip: Option<String>,
    /// Request id, to tie the event to server logs: always Clavis's own.
    pub correlation_id: Uuid,
    /// The caller's own id for the request (`client-request-id`), as sent,
    /// sanitised (see [`crate::http::client_request_id`]).
    pub client_request_id: Option<String>,
}

impl Actor {
    /// Clavis itself (bootstrap, key generation).
    pub fn system() -> Self {
        Self {
            app_id: None,
            service_principal_id: None,
            display_name: "Clavis".into(),
            key_id: None,
            client_ip: None,
            correlation_id: Uuid::new_v4(),
            client_request_id: None,
        }
    }
}

/// What was done to what.
#[derive(Debug, Clone)]
pub struct Action {
    /// Graph-style activity, e.g. `Add application`.
    pub activity: &'static str,
    /// `ApplicationManagement`, `RoleManagement`, `KeyManagement`.
    pub category: &'static str,
    /// `Add`, `Update`, `Delete`, `Assign`, `Unassign`.
    pub operation: &'static str,
    /// `Application`, `ServicePrincipal`, `AppRoleAssignment`, `Tenant`.
    pub target_type: &'static str,
    pub target_id: String,
    pub target_name: String,
    /// The credential the action concerns (add/removePassword).
    pub target_key_id: Option<Uuid>,
}

impl Action {
    /// An action on an object known only by id (refused before it was read).
    pub fn on_id(
        activity: &'static str,
        category: &'static str,
        operation: &'static str,
        target_type: &'static str,
        id: Uuid,
    ) -> Self {
        Self {
            activity,
            category,
            operation,
            target_type,
            target_id: id.to_string(),
            target_name: String::new(),
            target_key_id: None,
        }
    }
}

impl Actor {
    /// A successful event for `action` in `tenant`.
    pub fn succeeded(&self, tenant: Uuid, at: OffsetDateTime, action: Action) -> AuditEvent {
        self.event(tenant, at, action, AuditResult::Success, String::new())
    }

    /// A refused action (e.g. missing role), with the reason given to the caller.
    pub fn failed(
        &self,
        tenant: Uuid,
        at: OffsetDateTime,
        action: Action,
        reason: &str,
    ) -> AuditEvent {
        self.event(tenant, at, action, AuditResult::Failure, reason.to_owned())
    }

    fn event(
        &self,
        tenant: Uuid,
        at: OffsetDateTime,
        action: Action,
        result: AuditResult,
        result_reason: String,
    ) -> AuditEvent {
        AuditEvent {
            id: Uuid::new_v4(),
            tenant_id: tenant,
            at,
            actor_app_id: self.app_id,
            actor_service_principal_id: self.service_principal_id,
            actor_display_name: self.display_name.clone(),
            actor_key_id: self.key_id,
            client_ip: self.client_ip.clone(),
            activity: action.activity.into(),
            category: action.category.into(),
            operation_type: action.operation.into(),
            target_type: action.target_type.into(),
            target_id: action.target_id,
            target_display_name: action.target_name,
            target_key_id: action.target_key_id,
            result,
            result_reason,
            correlation_id: self.correlation_id,
            client_request_id: self.client_request_id.clone(),
        }
    }
}
