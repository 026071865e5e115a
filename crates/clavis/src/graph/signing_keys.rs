//! The tenant's token-signing keys (Clavis extension in Graph style):
//! `GET /v1.0/policies/signingKeys` lists them with their state,
//! `POST .../rotate` publishes the next key ahead of its use, and
//! `POST .../{kid}/revoke` removes a key in an emergency. Never any private
//! material: only kids, algorithms and times.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use clavis_store::{Mutation, SigningKeyRecord};
use serde::{Deserialize, Serialize};
use time::Duration;
use utoipa::ToSchema;

use super::caller::Caller;
use super::error::GraphError;
use super::json::optional_json;
use super::shapes::{rfc3339, Collection};
use super::Audited;
use crate::app::AppState;
use crate::audit::Action;
use crate::builtin::Role;
use crate::keys::lifecycle::{classify, KeyState, KeyStatus};
use crate::keys::Algorithm;

/// One signing key, public facts only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyView {
    /// The `kid` in token headers and the JWKS.
    pub kid: String,
    /// `ES256`, `RS256` or `EdDSA`.
    pub algorithm: String,
    /// `pending` (published, not signing yet), `current` (signs new tokens),
    /// `retired` (replaced; published until its last token expired) or
    /// `revoked` (removed in an emergency).
    pub state: String,
    /// Whether the JWKS lists it now.
    pub published: bool,
    pub created_date_time: String,
    /// When it starts (or started) signing.
    pub activates_date_time: String,
    /// When its successor took over (retired keys).
    pub retired_date_time: Option<String>,
    /// When it leaves the JWKS by itself (retired keys).
    pub published_until_date_time: Option<String>,
    /// When it was removed in an emergency (revoked keys).
    pub revoked_date_time: Option<String>,
}

impl SigningKeyView {
    fn of(status: &KeyStatus<'_>) -> Self {
        let r = status.record;
        Self {
            kid: r.kid.clone(),
            algorithm: r.alg.clone(),
            state: status.state.as_str().into(),
            published: status.published,
            created_date_time: rfc3339(r.created_at),
            activates_date_time: rfc3339(r.activates_at),
            retired_date_time: status.retired_at.map(rfc3339),
            published_until_date_time: status.published_until.map(rfc3339),
            revoked_date_time: r.revoked_at.map(rfc3339),
        }
    }
}

/// Body of `rotate` (optional: an empty body takes the defaults).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateSigningKey {
    /// Minutes the new key is published before it signs; default: the
    /// server's pre-publication period (`--signing-key-prepublish-hours`).
    pub activate_after_minutes: Option<i64>,
}

/// The answer to `revoke`: the revoked key and, when it was the current
/// key, the key that replaced it at once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedSigningKey {
    pub revoked: SigningKeyView,
    pub replacement: Option<SigningKeyView>,
}

/// Longest pre-publication a rotation may ask for: a year.
const MAX_ACTIVATE_AFTER_MINUTES: i64 = 365 * 24 * 60;

fn key_action(activity: &'static str, operation: &'static str, kid: &str) -> Action {
    Action {
        activity,
        category: "KeyManagement",
        operation,
        target_type: "SigningKey",
        target_id: kid.to_owned(),
        target_name: String::new(),
        target_key_id: None,
    }
}

fn writer(caller: &Caller, what: &str) -> Result<(), GraphError> {
    if caller.has(Role::ApplicationReadWriteAll) {
        Ok(())
    } else {
        Err(GraphError::Forbidden(format!(
            "Insufficient privileges to complete the operation: {what} needs Application.ReadWrite.All."
        )))
    }
}

async fn records(state: &AppState, caller: &Caller) -> Result<Vec<SigningKeyRecord>, GraphError> {
    // Makes the tenant's first key if it has none, so the list is never empty.
    state
        .keyring
        .for_tenant(&caller.tenant)
        .await
        .map_err(keyring_error)?;
    Ok(state
        .directory
        .store()
        .signing_keys(caller.tenant.id)
        .await?)
}

fn keyring_error(err: crate::keys::keyring::KeyringError) -> GraphError {
    use crate::keys::keyring::KeyringError;
    if matches!(
        err,
        KeyringError::Provider(_) | KeyringError::Corrupt { .. }
    ) {
        tracing::error!(error = %err, "key provider failed; refusing the key operation (fail closed)");
        GraphError::KeyProviderUnavailable
    } else if err.is_unavailable() {
        GraphError::Unavailable
    } else {
        tracing::error!(error = %err, "signing keys unusable");
        GraphError::Internal
    }
}

/// List the tenant's signing keys and their state, newest first by activation.
#[utoipa::path(get, path = "/v1.0/policies/signingKeys", tag = "policies", security(("bearer" = [])),
    responses((status = 200, body = Collection<SigningKeyView>), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Collection<SigningKeyView>>, GraphError> {
    caller.read_scope()?;
    let records = records(&state, &caller).await?;
    let statuses = classify(&records, state.clock.now(), state.keyring.retain_for());
    Ok(Json(Collection {
        context: format!("{}/v1.0/$metadata#signingKeys", state.base_url),
        value: statuses.iter().map(SigningKeyView::of).collect(),
        next_link: None,
    }))
}

/// Publish the tenant's next signing key now; it signs from
/// `activatesDateTime` on (needs Application.ReadWrite.All). Refused while
/// another key is pending.
#[utoipa::path(post, path = "/v1.0/policies/signingKeys/rotate", tag = "policies", security(("bearer" = [])),
    request_body(content = Option<RotateSigningKey>, description = "optional"),
    responses((status = 200, body = SigningKeyView), (status = 400), (status = 401), (status = 403)))]
pub async fn rotate(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SigningKeyView>, GraphError> {
    let mut action = key_action("Rotate signing key", "Add", "");
    let allowed = writer(&caller, "rotating the signing key");
    Audited::check(&state, &caller, allowed, action.clone()).await?;
    let body: RotateSigningKey = optional_json(&headers, &body)?;
    let schedule = state.keyring.schedule();
    let after = match body.activate_after_minutes {
        None => schedule.prepublish,
        Some(m) if (0..=MAX_ACTIVATE_AFTER_MINUTES).contains(&m) => Duration::minutes(m),
        Some(_) => {
            return Err(GraphError::bad(format!(
                "activateAfterMinutes must be between 0 and {MAX_ACTIVATE_AFTER_MINUTES}."
            )))
        }
    };
    let records = records(&state, &caller).await?;
    let now = state.clock.now();
    let statuses = classify(&records, now, state.keyring.retain_for());
    if let Some(pending) = statuses.iter().find(|s| s.state == KeyState::Pending) {
        return Err(GraphError::bad(format!(
            "Signing key '{}' is already pending (it signs from {}): wait for it, or revoke it first.",
            pending.record.kid,
            rfc3339(pending.record.activates_at)
        )));
    }
    let alg = Algorithm::parse(&caller.tenant.signing_alg).ok_or(GraphError::Internal)?;
    let record = state
        .keyring
        .new_record(&caller.tenant, alg, now + after, &records)
        .map_err(keyring_error)?;
    action.target_id = record.kid.clone();
    action.target_name = record.alg.clone();
    let event = Audited::success(&state, &caller, action);
    let mutation = Mutation::InsertSigningKeyIfCurrent {
        key: record.clone(),
        current: records.first().map(|r| r.kid.clone()),
    };
    state.directory.commit(&[mutation], &[event]).await?;
    state.keyring.invalidate();
    let view = SigningKeyView::of(&KeyStatus {
        record: &record,
        state: if after.is_zero() {
            KeyState::Current
        } else {
            KeyState::Pending
        },
        retired_at: None,
        published: true,
        published_until: None,
    });
    Ok(Json(view))
}

/// Emergency removal of a signing key: it leaves the JWKS at once (every
/// node within a second), tokens it signed are inactive, and if it was the
/// current key a new key signs at once (needs Application.ReadWrite.All).
#[utoipa::path(post, path = "/v1.0/policies/signingKeys/{kid}/revoke", tag = "policies", security(("bearer" = [])),
    params(("kid" = String, Path, description = "Key id")),
    responses((status = 200, body = RevokedSigningKey), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    kid: Result<Path<String>, PathRejection>,
) -> Result<Json<RevokedSigningKey>, GraphError> {
    let Path(kid) = kid.map_err(|_| GraphError::bad("The key id in the URL is not valid."))?;
    let kid: String = kid.chars().take(128).collect();
    let action = key_action("Revoke signing key", "Delete", &kid);
    let allowed = writer(&caller, "revoking a signing key");
    Audited::check(&state, &caller, allowed, action.clone()).await?;
    let records = records(&state, &caller).await?;
    let now = state.clock.now();
    let statuses = classify(&records, now, state.keyring.retain_for());
    let Some(target) = statuses.iter().find(|s| s.record.kid == kid) else {
        return Err(GraphError::not_found("signingKey", kid));
    };
    if target.state == KeyState::Revoked {
        return Ok(Json(RevokedSigningKey {
            revoked: SigningKeyView::of(target),
            replacement: None,
        }));
    }
    let mut mutations = vec![Mutation::RevokeSigningKey {
        tenant_id: caller.tenant.id,
        kid: kid.clone(),
        at: now,
    }];
    let mut events = vec![];
    let mut replacement = None;
    if target.state == KeyState::Current {
        // Emergency: no pre-publication, the replacement signs at once.
        let alg = Algorithm::parse(&caller.tenant.signing_alg).ok_or(GraphError::Internal)?;
        let record = state
            .keyring
            .new_record(&caller.tenant, alg, now, &records)
            .map_err(keyring_error)?;
        let mut add = key_action("Rotate signing key", "Add", &record.kid);
        add.target_name = record.alg.clone();
        events.push(Audited::success(&state, &caller, add));
        mutations.push(Mutation::InsertSigningKeyIfCurrent {
            key: record.clone(),
            current: records.first().map(|r| r.kid.clone()),
        });
        replacement = Some(record);
    }
    let mut action = action;
    action.target_name = target.record.alg.clone();
    events.insert(0, Audited::success(&state, &caller, action));
    state.directory.commit(&mutations, &events).await?;
    state.keyring.invalidate();
    tracing::warn!(tenant = %caller.tenant.id, %kid, "signing key revoked");
    state.key_provider.destroy_revoked(target.record);

    let mut revoked = target.record.clone();
    revoked.revoked_at = Some(now);
    let revoked_view = SigningKeyView::of(&KeyStatus {
        record: &revoked,
        state: KeyState::Revoked,
        retired_at: None,
        published: false,
        published_until: None,
    });
    let replacement = replacement.as_ref().map(|record| {
        SigningKeyView::of(&KeyStatus {
            record,
            state: KeyState::Current,
            retired_at: None,
            published: true,
            published_until: None,
        })
    });
    Ok(Json(RevokedSigningKey {
        revoked: revoked_view,
        replacement,
    }))
}
