//! The installation's key-encryption keys (Clavis extension in Graph
//! style): `GET /v1.0/policies/keyEncryptionKeys` says which provider seals
//! the store, which keys it holds, how many sealed records each key wraps,
//! and which keys every node sharing the store holds (their heartbeats,
//! [`crate::node`]); `POST .../rewrap` makes a key the installation's — a
//! key named by id, a new one (key-file provider, one node), or this node's
//! first key — and moves every record to it. A rewrap under a key that a
//! live node lacks is refused (409, naming the nodes), so no node is left
//! unable to open what the others seal. Installation-wide, so only an
//! `Application.ReadWrite.All` caller of the `default` tenant (made on first
//! start) may use it. Never any key material: ids and counts only.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use clavis_store::{Mutation, NodeRecord, SealedRecord};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
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
use crate::node::{describe, live_others, live_window_seconds};

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
    /// Every live node sharing the store holds it (this one included): a
    /// rewrap under it is allowed.
    pub held_by_every_live_node: bool,
}

/// A server sharing the store, as its heartbeat row says.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// Random per process start.
    pub node_id: String,
    /// The machine's host name.
    pub host: String,
    /// The address it listens on.
    pub listen: String,
    pub public_url: String,
    /// The key-encryption keys it holds, in its configured order.
    pub key_ids: Vec<String>,
    /// The key it seals new records under.
    pub sealing_key_id: String,
    pub started_date_time: String,
    pub last_seen_date_time: String,
    /// Seen within the last 30 seconds.
    pub live: bool,
    /// The node that answered this call.
    pub this_node: bool,
}

/// The key provider and its keys.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyEncryptionKeys {
    /// `file`, `env` or `pkcs11`.
    pub provider: String,
    /// The key this node seals new records under: the installation's key
    /// when the node holds it.
    pub active_key_id: String,
    /// The installation's key-encryption key: the one every node that holds
    /// it seals under (set by the first start and by `rewrap`).
    pub installation_key_id: String,
    pub keys: Vec<KeyEncryptionKeyView>,
    /// Every node that wrote a heartbeat in the last hour, oldest first.
    pub nodes: Vec<NodeView>,
}

/// Body of `rewrap` (optional: an empty body rewraps under this node's
/// configured first key).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewrapRequest {
    /// Make a new active key first (key-file provider only: it is saved
    /// in `kek.key` before use, the old keys kept after it). Refused while
    /// other nodes are live: no other node could hold a new key.
    pub new_key: Option<bool>,
    /// Rewrap under this key (as `GET keyEncryptionKeys` lists it), which
    /// this node and every live node must already hold.
    #[schema(max_length = 200)]
    pub key_id: Option<String>,
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
    /// The key every record was moved to, now the installation's.
    pub key_id: String,
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
    installation_key_id: String,
    nodes: &[NodeRecord],
) -> KeyEncryptionKeys {
    let provider = &state.key_provider;
    let now = state.clock.now();
    let active = provider.active_kek_id();
    let configured = provider.kek_ids();
    let others = live_others(nodes, state.node.id, now);
    let everywhere = |id: &str| provider.holds(id) && others.iter().all(|n| n.holds(id));
    let mut keys: Vec<KeyEncryptionKeyView> = configured
        .iter()
        .map(|id| KeyEncryptionKeyView {
            key_id: id.clone(),
            active: *id == active,
            configured: true,
            sealed_records: report_by_kek.get(id).copied().unwrap_or(0),
            held_by_every_live_node: everywhere(id),
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
                held_by_every_live_node: false,
            });
        }
    }
    KeyEncryptionKeys {
        provider: provider.kind().as_str().into(),
        active_key_id: active,
        installation_key_id,
        keys,
        nodes: nodes
            .iter()
            .map(|n| NodeView {
                node_id: n.node_id.to_string(),
                host: n.host.clone(),
                listen: n.listen.clone(),
                public_url: n.public_url.clone(),
                key_ids: n.kek_ids.clone(),
                sealing_key_id: n.sealing_kek_id.clone(),
                started_date_time: rfc3339(n.started_at),
                last_seen_date_time: rfc3339(n.last_seen_at),
                live: n.node_id == state.node.id || n.is_live(now),
                this_node: n.node_id == state.node.id,
            })
            .collect(),
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The installation's key and the nodes' rows, as the view needs them.
async fn installation(state: &AppState) -> Result<(String, Vec<NodeRecord>), GraphError> {
    let store = state.directory.store();
    let chosen = store
        .installation_kek_or_insert(
            &state.key_provider.configured_active_kek_id(),
            state.clock.now(),
        )
        .await?;
    Ok((chosen, store.nodes().await?))
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
    let (chosen, nodes) = installation(&state).await?;
    Ok(Json(view(&state, &by_kek, chosen, &nodes)))
}

/// Rewrap every sealed record under one key-encryption key — `keyId`, a new
/// one (`newKey`), or this node's first — which becomes the installation's,
/// while the server keeps serving. Refused (409) if a live node lacks it.
/// Safe to rerun; records that cannot be opened are reported and left
/// unchanged.
#[utoipa::path(post, path = "/v1.0/policies/keyEncryptionKeys/rewrap", tag = "policies", security(("bearer" = [])),
    request_body(content = Option<RewrapRequest>, description = "optional"),
    responses((status = 200, body = RewrapResult), (status = 400), (status = 401), (status = 403),
        (status = 409, description = "Request_Conflict: this node or a live node lacks the key (or, with newKey, other nodes are live); nothing was changed"),
        (status = 503)))]
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
    let store = state.directory.store();
    let now = state.clock.now();
    let nodes = store.nodes().await?;
    let others = live_others(&nodes, state.node.id, now);
    let target = match (new_key, body.key_id) {
        (true, Some(_)) => {
            return Err(GraphError::bad(
                "Send either newKey or keyId, not both: newKey makes a key, keyId names one every node already holds.",
            ))
        }
        (true, None) => {
            if !others.is_empty() {
                return Err(refuse_rewrap(&state, &caller, new_key_refusal(&others, now)).await);
            }
            let id = state.key_provider.add_active_kek().map_err(|e| match e {
                crate::keys::ProviderError::Unsupported(m) => GraphError::BadRequest(m),
                other => GraphError::from(other),
            })?;
            let event = Audited::success(
                &state,
                &caller,
                kek_action("Add key-encryption key", "Add", id.clone()),
            );
            store.record_audit(&[event]).await?;
            id
        }
        (false, Some(id)) => {
            let shown: String = id.chars().take(80).collect();
            if id.len() > 200 {
                return Err(GraphError::bad(
                    "keyId is at most 200 characters: use an id as `GET keyEncryptionKeys` lists it.",
                ));
            }
            // A well-formed id this node's configuration lacks: the state,
            // not the request, must change (409, as for a live node lacking it).
            if !state.key_provider.holds(&id) {
                return Err(GraphError::Conflict(format!(
                    "This node does not hold the key-encryption key '{shown}' (`clavis keys kek` lists the ids each node holds). Add the key to every node first (a line of kek.key after the first, or CLAVIS_KEK_PREVIOUS), restart them one by one, then run the rewrap again."
                )));
            }
            id
        }
        (false, None) => state.key_provider.configured_active_kek_id(),
    };
    let lacking: Vec<&NodeRecord> = others
        .iter()
        .copied()
        .filter(|n| !n.holds(&target))
        .collect();
    if !lacking.is_empty() {
        return Err(refuse_rewrap(&state, &caller, lacking_refusal(&target, &lacking, now)).await);
    }
    // The target becomes the installation's key: every node that holds it
    // seals under it from its next heartbeat (within 5 s), this one at once.
    let current = store
        .installation_kek_or_insert(&state.key_provider.configured_active_kek_id(), now)
        .await?;
    if current != target {
        let change = Mutation::SetInstallationKek {
            kek_id: target.clone(),
            at: now,
        };
        let mut action = kek_action(
            "Set installation key-encryption key",
            "Update",
            target.clone(),
        );
        action.target_name = format!("from {current}");
        let event = Audited::success(&state, &caller, action);
        state.directory.commit(&[change], &[event]).await?;
    }
    state.key_provider.follow_installation_kek(&target);
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
        key_id: target.clone(),
        key_encryption_keys: view(&state, &report.by_kek, target, &store.nodes().await?),
    }))
}

/// A rewrap refused because of other nodes: audited, then 409.
async fn refuse_rewrap(state: &AppState, caller: &Caller, message: String) -> GraphError {
    let action = kek_action("Rewrap sealed records", "Update", String::new());
    let event = caller
        .actor()
        .failed(caller.tenant.id, state.clock.now(), action, &message);
    if let Err(e) = state.directory.store().record_audit(&[event]).await {
        tracing::warn!(error = %e, "could not record a refused rewrap in the audit log");
    }
    GraphError::Conflict(message)
}

/// Why `newKey` is refused with other nodes live, and the procedure instead.
fn new_key_refusal(others: &[&NodeRecord], now: OffsetDateTime) -> String {
    format!(
        "A new key would be held by this node only, and {} other node(s) share this store: {}. In a cluster, give every node the key first: generate one (`openssl rand -hex 32`), add it to each node's kek.key as a line after the first (or to CLAVIS_KEK_PREVIOUS) and restart the nodes one by one; `clavis keys kek` then shows its id on every node; then run `clavis keys rewrap --key-id ID`. Nothing was changed. {}",
        others.len(),
        list(others, now),
        live_note()
    )
}

/// Why a rewrap under `target` is refused, naming the nodes that lack it.
fn lacking_refusal(target: &str, lacking: &[&NodeRecord], now: OffsetDateTime) -> String {
    format!(
        "Rewrapping under {target} would leave {} live node(s) unable to open the store's sealed records, because they do not hold that key: {}. Add the key to each of them (a line of kek.key after the first, or CLAVIS_KEK_PREVIOUS) and restart them, then run the rewrap again. Nothing was changed. {}",
        lacking.len(),
        list(lacking, now),
        live_note()
    )
}

fn list(nodes: &[&NodeRecord], now: OffsetDateTime) -> String {
    nodes
        .iter()
        .map(|n| describe(n, now))
        .collect::<Vec<_>>()
        .join("; ")
}

fn live_note() -> String {
    format!(
        "A node counts as live until {} s after its last heartbeat; one that shut down cleanly no longer counts.",
        live_window_seconds()
    )
}
