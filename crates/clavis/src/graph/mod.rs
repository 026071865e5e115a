//! The management API in Microsoft Graph v1.0 shapes: one file per resource
//! ([`applications`], [`service_principals`], [`audit_logs`], [`webhooks`],
//! [`signing_keys`], and [`compromise`] for a leaked secret), the caller's
//! identity and roles ([`caller`]), the error format ([`error`]), strict
//! bodies and query options ([`json`]), the representations ([`shapes`]),
//! and the rule that the last administrator cannot lock everyone out
//! ([`last_admin`]).

pub mod applications;
pub mod audit_logs;
pub mod caller;
pub mod compromise;
pub mod error;
pub mod json;
pub mod key_encryption_keys;
pub mod last_admin;
pub mod listing;
pub mod policies;
pub mod service_principals;
pub mod shapes;
pub mod signing_keys;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use clavis_store::{AuditEvent, Mutation};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::caller::Caller;
use self::error::GraphError;
use crate::app::AppState;
use crate::audit::Action;

/// The management API's routes (with their OpenAPI descriptions).
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(applications::create, applications::list))
        .routes(routes!(
            applications::get,
            applications::update,
            applications::delete
        ))
        .routes(routes!(applications::add_password))
        .routes(routes!(applications::remove_password))
        .routes(routes!(applications::revoke_tokens))
        .routes(routes!(compromise::report_compromised_password))
        .routes(routes!(service_principals::list))
        .routes(routes!(service_principals::get))
        .routes(routes!(
            service_principals::assign,
            service_principals::assigned_to
        ))
        .routes(routes!(service_principals::unassign))
        .routes(routes!(service_principals::assignments))
        .routes(routes!(audit_logs::directory_audits))
        .routes(routes!(audit_logs::sign_ins))
        .routes(routes!(policies::get, policies::update))
        .routes(routes!(
            policies::get_application,
            policies::update_application
        ))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::test))
        .routes(routes!(signing_keys::list))
        .routes(routes!(signing_keys::rotate))
        .routes(routes!(signing_keys::revoke))
        .routes(routes!(key_encryption_keys::show))
        .routes(routes!(key_encryption_keys::rewrap_all_records))
}

/// An object id from the URL: a GUID, or a 400 saying so.
pub fn object_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, GraphError> {
    let Path(raw) = path.map_err(|_| GraphError::bad("The object id in the URL is not valid."))?;
    Uuid::try_parse(&raw).map_err(|_| {
        GraphError::bad(format!(
            "Invalid object identifier '{}': object ids are GUIDs.",
            raw.chars().take(80).collect::<String>()
        ))
    })
}

/// Audit events of management calls.
#[derive(Debug)]
pub struct Audited;

impl Audited {
    /// The success event for `action` by `caller`, to commit with the change.
    pub fn success(state: &AppState, caller: &Caller, action: Action) -> AuditEvent {
        caller
            .actor()
            .succeeded(caller.tenant.id, state.clock.now(), action)
    }

    /// Pass `check` through; a refusal is also recorded in the audit log
    /// (best effort: the refusal stands even if that write fails). A caller
    /// without any management role has only the first few refusals a
    /// minute itemised, the rest summarised ([`crate::audit_refusals`]).
    pub async fn check(
        state: &AppState,
        caller: &Caller,
        check: Result<(), GraphError>,
        action: Action,
    ) -> Result<(), GraphError> {
        if let Err(GraphError::Forbidden(reason)) = &check {
            let event = caller
                .actor()
                .failed(caller.tenant.id, state.clock.now(), action, reason);
            if caller.roles.is_empty() && !state.refusals.admit(&event) {
                return check;
            }
            if let Err(e) = state.directory.store().record_audit(&[event]).await {
                tracing::warn!(error = %e, "could not record a refused action in the audit log");
            }
        }
        check
    }
}

/// Commit a change with its audit event (one transaction), then refresh caches.
pub async fn commit(
    state: &AppState,
    mutations: Vec<Mutation>,
    event: AuditEvent,
) -> Result<(), GraphError> {
    state.directory.commit(&mutations, &[event]).await?;
    Ok(())
}

/// Percent-encode a query value for a nextLink.
pub fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
