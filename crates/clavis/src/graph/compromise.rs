//! `POST /v1.0/applications/{id}/reportCompromisedPassword` (a Clavis
//! extension): the one-step response to a leaked client secret. In one
//! transaction with its audit events it removes the secret (every token it
//! minted turns inactive), optionally revokes all of the application's
//! tokens and replaces its other secrets; then it answers with the new
//! secret values (shown once) and a report of what the leaked secret was
//! used for ([`crate::compromise_report`]).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clavis_store::{Application, AuditEvent, Mutation, PasswordCredential};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

use super::applications::{app_action, load, writer};
use super::caller::Caller;
use super::error::GraphError;
use super::json::GraphJson;
use super::shapes::{rfc3339, ShownOnce};
use super::{object_id, Audited};
use crate::app::AppState;
use crate::compromise_report::{self, CompromiseReport};
use crate::domain::secret_lifetime;
use crate::secret::ClientSecret;

const ACTIVITY: &str = "Report compromised password credential";

/// Body of `reportCompromisedPassword`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportCompromisedPassword {
    /// The leaked secret's keyId.
    pub key_id: Uuid,
    /// Also replace every other valid secret of the application: each gets
    /// a fresh one with the same remaining lifetime (within the tenant
    /// policy), returned once in `newSecrets`, and the old one is removed.
    #[serde(default)]
    pub rotate_other_secrets: bool,
    /// Also revoke every token the application holds now, whatever secret
    /// minted it.
    #[serde(default)]
    pub revoke_all_tokens: bool,
}

/// The application the report is about.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRef {
    pub id: Uuid,
    pub app_id: Uuid,
    pub display_name: String,
}

/// A secret that replaced one of the application's other secrets. The
/// value is in this response only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewSecret {
    pub key_id: Uuid,
    pub display_name: String,
    pub hint: String,
    pub start_date_time: String,
    pub end_date_time: String,
    #[schema(value_type = String)]
    pub secret_text: ShownOnce,
    /// The keyId of the secret it replaced (now removed).
    pub replaces_key_id: Uuid,
}

/// Response of `reportCompromisedPassword`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompromiseResponse {
    pub application: ApplicationRef,
    /// The removed secret.
    pub key_id: Uuid,
    pub hint: String,
    pub revoked_date_time: String,
    /// Whether every token of the application was revoked too.
    pub tokens_revoked: bool,
    pub new_secrets: Vec<NewSecret>,
    /// `null` only if the logs could not be read after the change was made
    /// (then `reportError` says so; the change and `newSecrets` stand).
    pub report: Option<CompromiseReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_error: Option<String>,
}

/// A replacement for `old`: same name + " (rotated)", same end (capped by
/// the tenant policy), a fresh value.
fn replacement(
    state: &AppState,
    caller: &Caller,
    old: &PasswordCredential,
    now: OffsetDateTime,
) -> Result<(PasswordCredential, ClientSecret), GraphError> {
    let tenant = &caller.tenant;
    let max = Duration::seconds(tenant.max_secret_lifetime_secs);
    let end = old.end_at.min(now.checked_add(max).unwrap_or(old.end_at));
    let (start, end) = secret_lifetime::window(
        now,
        None,
        Some(end),
        Duration::seconds(tenant.default_secret_lifetime_secs),
        max,
    )
    .map_err(GraphError::BadRequest)?;
    let secret = ClientSecret::generate();
    let credential = PasswordCredential {
        key_id: Uuid::new_v4(),
        display_name: rotated_name(&old.display_name),
        hint: secret.hint(),
        secret_hash: state.hasher.hash(&secret),
        start_at: start,
        end_at: end,
        created_at: now,
        last_used_at: None,
    };
    Ok((credential, secret))
}

/// `name (rotated)`, within the 256 characters a display name may have.
fn rotated_name(name: &str) -> String {
    const SUFFIX: &str = " (rotated)";
    let name = name.trim();
    if name.is_empty() {
        return "rotated".into();
    }
    let keep = 256 - SUFFIX.len();
    let mut out: String = name.chars().take(keep).collect();
    out.truncate(out.trim_end().len());
    out.push_str(SUFFIX);
    out
}

/// Report a client secret as compromised: remove it (every token it minted
/// turns inactive at introspection and the management API at once),
/// optionally revoke all of the application's tokens and replace its other
/// secrets, and answer with the new values (once) and a report from the
/// sign-in and audit logs. Resource servers that validate JWTs offline
/// accept already-issued tokens until they expire.
#[utoipa::path(post, path = "/v1.0/applications/{id}/reportCompromisedPassword", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Application object id")),
    request_body = ReportCompromisedPassword,
    responses((status = 200, body = CompromiseResponse, description = "Removed; new secret values (shown once) and the report"),
              (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn report_compromised_password(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    GraphJson(body): GraphJson<ReportCompromisedPassword>,
) -> Result<Response, GraphError> {
    let id = object_id(id)?;
    writer(&state, &caller, ACTIVITY, "Delete", id).await?;
    let app = load(&state, &caller, id).await?;
    let mut action = app_action(ACTIVITY, "Delete", &app);
    action.target_key_id = Some(body.key_id);
    Audited::check(&state, &caller, caller.can_write(&app), action.clone()).await?;
    let Some(leaked) = app
        .password_credentials
        .iter()
        .find(|c| c.key_id == body.key_id)
        .cloned()
    else {
        return Err(GraphError::NotFound(format!(
            "No password credential with keyId {} on this application.",
            body.key_id
        )));
    };

    let now = state.clock.now();
    let tenant_id = caller.tenant.id;
    let mut mutations = vec![Mutation::RemovePassword {
        tenant_id,
        application_id: app.id,
        key_id: leaked.key_id,
    }];
    let mut events = vec![Audited::success(&state, &caller, action)];
    let mut new_secrets = Vec::new();
    if body.rotate_other_secrets {
        // Expired secrets mint nothing: they are left alone.
        let others = app
            .password_credentials
            .iter()
            .filter(|c| c.key_id != leaked.key_id && c.end_at > now);
        for old in others {
            let (credential, secret) = replacement(&state, &caller, old, now)?;
            mutations.push(Mutation::AddPassword {
                tenant_id,
                application_id: app.id,
                credential: credential.clone(),
            });
            mutations.push(Mutation::RemovePassword {
                tenant_id,
                application_id: app.id,
                key_id: old.key_id,
            });
            events.push(key_event(
                &state,
                &caller,
                &app,
                "Add password credential",
                "Add",
                credential.key_id,
            ));
            events.push(key_event(
                &state,
                &caller,
                &app,
                "Remove password credential",
                "Delete",
                old.key_id,
            ));
            new_secrets.push(NewSecret {
                key_id: credential.key_id,
                display_name: credential.display_name,
                hint: credential.hint,
                start_date_time: rfc3339(credential.start_at),
                end_date_time: rfc3339(credential.end_at),
                secret_text: ShownOnce(secret),
                replaces_key_id: old.key_id,
            });
        }
    }
    if body.revoke_all_tokens {
        mutations.push(Mutation::RevokeTokensOf {
            tenant_id,
            application_id: app.id,
            until: now,
        });
        events.push(Audited::success(
            &state,
            &caller,
            app_action("Revoke application tokens", "Delete", &app),
        ));
    }
    state.directory.commit(&mutations, &events).await?;
    tracing::warn!(application = %app.app_id, key_id = %leaked.key_id,
        rotated = new_secrets.len(), tokens_revoked = body.revoke_all_tokens,
        "client secret reported compromised and removed");

    // The change stands from here on: a report that cannot be read must not
    // lose the new secret values, so it becomes `reportError` instead.
    state.sign_ins.flush().await;
    let (report, report_error) = match compromise_report::gather(
        state.directory.store().as_ref(),
        &app,
        &leaked,
    )
    .await
    {
        Ok(report) => (Some(report), None),
        Err(e) => {
            tracing::error!(error = %e, "could not build the compromise report");
            (
                    None,
                    Some("The secret was removed, but the report could not be read; read the sign-in and audit logs (/v1.0/auditLogs) instead.".to_owned()),
                )
        }
    };
    let body = CompromiseResponse {
        application: ApplicationRef {
            id: app.id,
            app_id: app.app_id,
            display_name: app.display_name.clone(),
        },
        key_id: leaked.key_id,
        hint: leaked.hint.clone(),
        revoked_date_time: rfc3339(now),
        tokens_revoked: body.revoke_all_tokens,
        new_secrets,
        report,
        report_error,
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The audit event of one secret added or removed by the rotation.
fn key_event(
    state: &AppState,
    caller: &Caller,
    app: &Application,
    activity: &'static str,
    operation: &'static str,
    key_id: Uuid,
) -> AuditEvent {
    let mut action = app_action(activity, operation, app);
    action.target_key_id = Some(key_id);
    Audited::success(state, caller, action)
}

#[cfg(test)]
mod tests {
    use super::rotated_name;

    #[test]
    fn rotated_names_stay_within_the_limit() {
        assert_eq!(rotated_name("ci"), "ci (rotated)");
        assert_eq!(rotated_name("  "), "rotated");
        let long = "x".repeat(300);
        let name = rotated_name(&long);
        assert_eq!(name.chars().count(), 256);
        assert!(name.ends_with(" (rotated)"));
        assert!(crate::domain::registration::display_name(&name).is_ok());
    }
}
