//! `/v1.0/webhooks` (a Clavis extension in Graph style): the tenant's
//! subscriptions to secret expiry warnings, and each one's delivery log.
//! The signing secret is in the creation response only; the store keeps it
//! sealed under the key-encryption key.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use clavis_store::{DeliveryQuery, Mutation, WebhookDelivery, WebhookSubscription};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::caller::Caller;
use super::error::GraphError;
use super::json::{GraphJson, ListQuery};
use super::shapes::{rfc3339, Collection};
use super::{commit, object_id, Audited};
use crate::app::AppState;
use crate::audit::Action;
use crate::builtin::{Role, MANAGEMENT_API_URI};
use crate::domain::webhook;
use crate::expiry::WebhookSecret;

/// Body of `POST /v1.0/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://…` to a public address (internal addresses — this
    /// machine, private and link-local networks, carrier-grade NAT — only
    /// when the server runs with `--allow-internal-webhooks`, which also
    /// admits `http://` to localhost / 127.0.0.0/8 / [::1]).
    pub url: String,
    /// Days before a secret's end to warn at (default `[30, 7, 1]`; each
    /// 1–3650, at most 10 values; duplicates are merged).
    pub threshold_days: Option<Vec<i64>>,
    pub display_name: Option<String>,
}

/// Body of `PATCH /v1.0/webhooks/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhook {
    /// `true` pauses the subscription (no deliveries; warnings that fall
    /// due meanwhile are recorded unsent, pending deliveries wait); `false`
    /// resumes it. `clavis restore` pauses every webhook it restores.
    pub paused: bool,
}

/// A webhook subscription (never with its signing secret, except in the
/// response that creates it).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDto {
    pub id: Uuid,
    /// The whole URL for callers with Application.ReadWrite.All; only its
    /// scheme, host and port for readers (a path or query often carries a
    /// token).
    pub url: String,
    pub threshold_days: Vec<u32>,
    pub display_name: String,
    pub created_date_time: String,
    /// Whether deliveries are paused (`PATCH {"paused": false}` resumes).
    pub paused: bool,
    /// When it was paused; `null` while active.
    pub paused_date_time: Option<String>,
    /// `whsec_…`: only in the creation response. Verify `Clavis-Signature`
    /// with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub signing_secret: Option<WebhookSecret>,
}

impl WebhookDto {
    /// The subscription as `caller` may see it: readers get the URL's
    /// scheme, host and port only.
    fn for_caller(w: &WebhookSubscription, caller: &Caller) -> Self {
        let mut dto = Self::from(w);
        if may_write(caller).is_err() {
            dto.url = webhook::reader_view(&w.url);
        }
        dto
    }
}

impl From<&WebhookSubscription> for WebhookDto {
    fn from(w: &WebhookSubscription) -> Self {
        Self {
            id: w.id,
            url: w.url.clone(),
            threshold_days: w.threshold_days.clone(),
            display_name: w.display_name.clone(),
            created_date_time: rfc3339(w.created_at),
            paused: w.paused_at.is_some(),
            paused_date_time: w.paused_at.map(rfc3339),
            signing_secret: None,
        }
    }
}

/// One entry of a webhook's delivery log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// `secret.expiring`, `secret.expired`, or `ping` (a test delivery).
    pub event_type: String,
    /// The secret the warning is about (`null` for a `ping`).
    pub key_id: Option<Uuid>,
    /// `pending`, `delivered` or `failed`.
    pub status: &'static str,
    pub attempts: u32,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_date_time: String,
    pub last_attempt_date_time: Option<String>,
    pub next_attempt_date_time: Option<String>,
}

impl From<&WebhookDelivery> for DeliveryDto {
    fn from(d: &WebhookDelivery) -> Self {
        Self {
            id: d.id,
            webhook_id: d.subscription_id,
            event_type: d.event_type.clone(),
            key_id: (!d.key_id.is_nil()).then_some(d.key_id),
            status: d.status.as_str(),
            attempts: d.attempts,
            last_http_status: d.last_status,
            last_error: d.last_error.clone(),
            created_date_time: rfc3339(d.created_at),
            last_attempt_date_time: d.last_attempt_at.map(rfc3339),
            next_attempt_date_time: d.next_attempt_at.map(rfc3339),
        }
    }
}

fn denied(needed: &str) -> GraphError {
    GraphError::Forbidden(format!(
        "Insufficient privileges to complete the operation: webhooks need the {needed} role on \
         {MANAGEMENT_API_URI}."
    ))
}

/// Webhooks are tenant-wide: reading them needs a tenant-wide role.
fn may_read(caller: &Caller) -> Result<(), GraphError> {
    if caller.has(Role::ApplicationReadWriteAll) || caller.has(Role::ApplicationReadAll) {
        Ok(())
    } else {
        Err(denied("Application.Read.All or Application.ReadWrite.All"))
    }
}

fn may_write(caller: &Caller) -> Result<(), GraphError> {
    if caller.has(Role::ApplicationReadWriteAll) {
        Ok(())
    } else {
        Err(denied("Application.ReadWrite.All"))
    }
}

fn action(operation: &'static str, id: Uuid, name: &str) -> Action {
    Action {
        activity: match operation {
            "Add" => "Add webhook subscription",
            "Delete" => "Delete webhook subscription",
            "Test" => "Test webhook subscription",
            _ => "Update webhook subscription",
        },
        category: "ApplicationManagement",
        operation,
        target_type: "Webhook",
        target_id: id.to_string(),
        target_name: name.to_owned(),
        target_key_id: None,
    }
}

/// The audit activity of pausing (`true`) or resuming a subscription.
pub fn pause_activity(paused: bool) -> &'static str {
    if paused {
        "Pause webhook subscription"
    } else {
        "Resume webhook subscription"
    }
}

async fn load(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<WebhookSubscription, GraphError> {
    state
        .directory
        .store()
        .webhook(caller.tenant.id, id)
        .await?
        .ok_or_else(|| GraphError::not_found("webhook", id))
}

/// Subscribe to secret expiry warnings. The signing secret is in this
/// response only.
#[utoipa::path(post, path = "/v1.0/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = CreateWebhook,
    responses((status = 201, body = WebhookDto, description = "The subscription with its signingSecret, shown once"),
              (status = 400), (status = 401), (status = 403)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    GraphJson(body): GraphJson<CreateWebhook>,
) -> Result<Response, GraphError> {
    let refused = action("Add", Uuid::nil(), "");
    Audited::check(&state, &caller, may_write(&caller), refused).await?;
    let url = webhook::url(&body.url).map_err(GraphError::BadRequest)?;
    webhook::target(&url, state.expiry.allows_internal_targets())
        .map_err(GraphError::BadRequest)?;
    let threshold_days =
        webhook::thresholds(body.threshold_days.as_deref()).map_err(GraphError::BadRequest)?;
    let display_name =
        webhook::display_name(body.display_name.as_deref()).map_err(GraphError::BadRequest)?;
    let id = Uuid::new_v4();
    let secret = WebhookSecret::generate();
    let sealed = state.expiry.seal(id, &secret)?;
    let sub = WebhookSubscription {
        id,
        tenant_id: caller.tenant.id,
        url,
        display_name,
        threshold_days,
        sealed_secret: sealed.blob,
        kek_id: sealed.kek_id,
        created_at: state.clock.now(),
        paused_at: None,
    };
    let event = Audited::success(&state, &caller, action("Add", id, &sub.display_name));
    commit(&state, vec![Mutation::InsertWebhook(sub.clone())], event).await?;
    let mut dto = WebhookDto::from(&sub);
    dto.signing_secret = Some(secret);
    Ok((StatusCode::CREATED, Json(dto)).into_response())
}

/// The tenant's webhook subscriptions, oldest first (one page: a tenant
/// has few).
#[utoipa::path(get, path = "/v1.0/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = Collection<WebhookDto>), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Collection<WebhookDto>>, GraphError> {
    may_read(&caller)?;
    let subs = state.directory.store().webhooks(caller.tenant.id).await?;
    Ok(Json(Collection {
        context: format!("{}/v1.0/$metadata#webhooks", state.base_url),
        value: subs
            .iter()
            .map(|w| WebhookDto::for_caller(w, &caller))
            .collect(),
        next_link: None,
    }))
}

/// Read one webhook subscription.
#[utoipa::path(get, path = "/v1.0/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookDto), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<WebhookDto>, GraphError> {
    may_read(&caller)?;
    let sub = load(&state, &caller, object_id(id)?).await?;
    Ok(Json(WebhookDto::for_caller(&sub, &caller)))
}

/// Delete a webhook subscription and its delivery log; pending deliveries
/// are dropped.
#[utoipa::path(delete, path = "/v1.0/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, GraphError> {
    let id = object_id(id)?;
    Audited::check(
        &state,
        &caller,
        may_write(&caller),
        action("Delete", id, ""),
    )
    .await?;
    let sub = load(&state, &caller, id).await?;
    let event = Audited::success(&state, &caller, action("Delete", id, &sub.display_name));
    let delete = Mutation::DeleteWebhook {
        tenant_id: caller.tenant.id,
        id,
    };
    commit(&state, vec![delete], event).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause or resume a webhook subscription (`{"paused": true|false}`).
#[utoipa::path(patch, path = "/v1.0/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = UpdateWebhook,
    responses((status = 200, body = WebhookDto), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    GraphJson(body): GraphJson<UpdateWebhook>,
) -> Result<Json<WebhookDto>, GraphError> {
    let id = object_id(id)?;
    Audited::check(
        &state,
        &caller,
        may_write(&caller),
        action("Update", id, ""),
    )
    .await?;
    let sub = load(&state, &caller, id).await?;
    let paused_at = body.paused.then(|| state.clock.now());
    let mut done = action("Update", id, &sub.display_name);
    done.activity = pause_activity(body.paused);
    let event = Audited::success(&state, &caller, done);
    let change = Mutation::SetWebhookPaused {
        tenant_id: caller.tenant.id,
        id,
        paused_at,
    };
    commit(&state, vec![change], event).await?;
    let sub = load(&state, &caller, id).await?;
    Ok(Json(WebhookDto::for_caller(&sub, &caller)))
}

/// Send the webhook a signed `ping` now (the same `Clavis-Signature` as the
/// warnings), once, and record it in its delivery log. The answer is that
/// delivery: `delivered` with the receiver's status, or `failed` with the
/// status or the reason (no answer, or an address the egress rules refuse).
#[utoipa::path(post, path = "/v1.0/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, body = DeliveryDto, description = "The ping's delivery, as it ended"),
              (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn test(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<DeliveryDto>, GraphError> {
    let id = object_id(id)?;
    Audited::check(&state, &caller, may_write(&caller), action("Test", id, "")).await?;
    let sub = load(&state, &caller, id).await?;
    let delivery = state.expiry.ping(&sub).await;
    let event = Audited::success(&state, &caller, action("Test", id, &sub.display_name));
    commit(
        &state,
        vec![Mutation::InsertWebhookDelivery(delivery.clone())],
        event,
    )
    .await?;
    Ok(Json(DeliveryDto::from(&delivery)))
}

/// A webhook's delivery log, newest first (`$top`, `$skiptoken`).
#[utoipa::path(get, path = "/v1.0/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Webhook id"),
           ("$top" = Option<u32>, Query, description = "Page size, 1–999 (default 100)"),
           ("$skiptoken" = Option<String>, Query, description = "From @odata.nextLink")),
    responses((status = 200, body = Collection<DeliveryDto>), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn deliveries(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Collection<DeliveryDto>>, GraphError> {
    may_read(&caller)?;
    let id = object_id(id)?;
    let query = ListQuery::parse(raw.as_deref())?;
    if query.filter.is_some() {
        return Err(GraphError::bad(
            "$filter is not supported on deliveries; use $top and $skiptoken.",
        ));
    }
    load(&state, &caller, id).await?;
    let q = DeliveryQuery {
        tenant_id: caller.tenant.id,
        subscription_id: id,
        before: query.skiptoken.as_deref().map(skiptoken).transpose()?,
        limit: query.page_size(),
    };
    let rows = state.directory.store().webhook_deliveries(&q).await?;
    let next_link = (rows.len() as u32 == q.limit).then(|| {
        let last = rows.last().expect("a full page is not empty");
        format!(
            "{}/v1.0/webhooks/{id}/deliveries?$top={}&$skiptoken={}_{}",
            state.base_url,
            q.limit,
            last.created_at.unix_timestamp_nanos() / 1000,
            last.id
        )
    });
    Ok(Json(Collection {
        context: format!(
            "{}/v1.0/$metadata#webhooks('{id}')/deliveries",
            state.base_url
        ),
        value: rows.iter().map(DeliveryDto::from).collect(),
        next_link,
    }))
}

pub(crate) fn skiptoken(token: &str) -> Result<(OffsetDateTime, Uuid), GraphError> {
    let bad = || GraphError::bad("$skiptoken is not valid; use the @odata.nextLink as given.");
    let (micros, id) = token.split_once('_').ok_or_else(bad)?;
    let micros: i128 = micros.parse().map_err(|_| bad())?;
    let at = micros
        .checked_mul(1000)
        .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
        .ok_or_else(bad)?;
    Ok((at, Uuid::try_parse(id).map_err(|_| bad())?))
}
