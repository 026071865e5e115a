//! The installation's key-encryption keys (Clavis extension in Graph
//! style): `GET /v1.0/policies/keyEncryptionKeys` says which provider seals
//! the store, which keys it holds and how many sealed records each key
//! wraps; `POST .../rewrap` moves every record to the active key, after
//! making a new active key if asked (key-file provider). Installation-wide,
//! so only an `Application.ReadWrite.All` caller of the `default` tenant (made
//! on first start) may use it. Never any key material: ids and counts only.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use clavis_store::SealedRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::caller::Caller;
use super::error::GraphError;
use super::json::optional_json;
use super::Audited;
use crate::app::AppState;
use crate::audit::Action;
use crate::bootstrap::DEFAULT_TENANT;
use crate::builtin::Role;
use crate::keys::rewrap::{count_by_holder, rewrap_all, RewrapReport};

/// One key-encryption key and its use.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyEncryptionKeyView {
    /// The key's id (a fingerprint; stored beside each record it wraps).
    pub key_id: String,
    /// Wraps every new record.
    pub active: bool,
    /// The provider holds it (false: records need a key the server lacks).
    pub configured: bool,
    /// Sealed records whose data key it wraps.
    pub sealed_records: usize,
}

/// The key provider and its keys.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyEncryptionKeys {
    /// `file`, `env` or `pkcs11`.
    pub provider: String,
    pub active_key_id: String,
    pub keys: Vec<KeyEncryptionKeyView>,
}

/// Body of `rewrap` (optional: an empty body rewraps under the active key).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewrapRequest {
    /// Make a new active key first (key-file provider only: it is saved
    /// in `kek.key` before use, the old keys kept after it).
    pub new_key: Option<bool>,
}

/// A record that could not be rewrapped (left unchanged).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RewrapFailure {
    /// `signingKey`, `serverSecret` or `webhookSecret`.
    pub kind: String,
    pub id: String,
    pub reason: String,
}

/// What `rewrap` did, and the keys afterwards.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RewrapResult {
    /// Whether a new active key was made.
    pub new_key: bool,
    pub rewrapped: usize,
    pub already_current: usize,
    pub failed: Vec<RewrapFailure>,
    pub key_encryption_keys: KeyEncryptionKeys,
}

fn kek_action(activity: &'static str, operation: &'static str, target: String) -> Action {
    Action {
        activity,
        category: "KeyManagement",
        operation,
        target_type: "KeyEncryptionKey",
        target_id: target,
        target_name: String::new(),
        target_key_id: None,
    }
}

/// Installation-wide: Application.ReadWrite.All in the tenant made on first
/// start (`default`; tenant names never change).
fn operator(caller: &Caller, what: &str) -> Result<(), GraphError> {
    if caller.has(Role::ApplicationReadWriteAll) && caller.tenant.name == DEFAULT_TENANT {
        Ok(())
    } else {
        Err(GraphError::Forbidden(format!(
            "Insufficient privileges to complete the operation: {what} is installation-wide and needs Application.ReadWrite.All in the '{DEFAULT_TENANT}' tenant."
        )))
    }
}

fn view(
    state: &AppState,
    report_by_kek: &std::collections::BTreeMap<String, usize>,
) -> KeyEncryptionKeys {
    let provider = &state.key_provider;
    let active = provider.active_kek_id();
    let configured = provider.kek_ids();
    let mut keys: Vec<KeyEncryptionKeyView> = configured
        .iter()
        .map(|id| KeyEncryptionKeyView {
            key_id: id.clone(),
            active: *id == active,
            configured: true,
            sealed_records: report_by_kek.get(id).copied().unwrap_or(0),
        })
        .collect();
    for (id, count) in report_by_kek {
        if !configured.contains(id) {
            // Signing keys held by the token are protected by the token itself.
            keys.push(KeyEncryptionKeyView {
                key_id: id.clone(),
                active: false,
                configured: id == "pkcs11-token" && provider.token().is_some(),
                sealed_records: *count,
            });
        }
    }
    KeyEncryptionKeys {
        provider: provider.kind().as_str().into(),
        active_key_id: active,
        keys,
    }
}

/// The key provider, its keys and how many sealed records each wraps.
#[utoipa::path(get, path = "/v1.0/policies/keyEncryptionKeys", tag = "policies", security(("bearer" = [])),
    responses((status = 200, body = KeyEncryptionKeys), (status = 401), (status = 403)))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<KeyEncryptionKeys>, GraphError> {
    let refused = kek_action("Read key-encryption keys", "Read", String::new());
    let allowed = operator(&caller, "reading the key-encryption keys");
    Audited::check(&state, &caller, allowed, refused).await?;
    let by_kek = count_by_holder(state.directory.store().as_ref()).await?;
    Ok(Json(view(&state, &by_kek)))
}

/// Rewrap every sealed record under the active key-encryption key (first
/// making a new one if `newKey`), while the server keeps serving. Safe to
/// rerun; records that cannot be opened are reported and left unchanged.
#[utoipa::path(post, path = "/v1.0/policies/keyEncryptionKeys/rewrap", tag = "policies", security(("bearer" = [])),
    request_body(content = Option<RewrapRequest>, description = "optional"),
    responses((status = 200, body = RewrapResult), (status = 400), (status = 401), (status = 403), (status = 503)))]
pub async fn rewrap_all_records(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RewrapResult>, GraphError> {
    let refused = kek_action("Rewrap sealed records", "Update", String::new());
    let allowed = operator(&caller, "rewrapping the store");
    Audited::check(&state, &caller, allowed, refused).await?;
    let body: RewrapRequest = optional_json(&headers, &body)?;
    let new_key = body.new_key.unwrap_or(false);
    if new_key {
        let id = state.key_provider.add_active_kek().map_err(|e| match e {
            crate::keys::ProviderError::Unsupported(m) => GraphError::BadRequest(m),
            other => GraphError::from(other),
        })?;
        let event = Audited::success(
            &state,
            &caller,
            kek_action("Add key-encryption key", "Add", id),
        );
        state.directory.store().record_audit(&[event]).await?;
    }
    let report: RewrapReport = rewrap_all(
        state.directory.store().as_ref(),
        &state.key_provider,
        |record: &SealedRecord, from: &str| {
            let mut action = kek_action("Rewrap sealed record", "Update", record.id.clone());
            action.target_name = format!("{} from {from}", record.kind.as_str());
            Audited::success(&state, &caller, action)
        },
    )
    .await?;
    Ok(Json(RewrapResult {
        new_key,
        rewrapped: report.rewrapped,
        already_current: report.already_current,
        failed: report
            .failed
            .iter()
            .map(|(kind, id, reason)| RewrapFailure {
                kind: kind.as_str().into(),
                id: id.clone(),
                reason: reason.clone(),
            })
            .collect(),
        key_encryption_keys: view(&state, &report.by_kek),
    }))
}
