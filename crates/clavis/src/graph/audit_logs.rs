//! `GET /v1.0/auditLogs/directoryAudits`: the audit log, newest first, for
//! callers holding `AuditLog.Read.All`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::Json;
use clavis_store::AuditQuery;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::caller::Caller;
use super::error::GraphError;
use super::json::{eq_clause, ListQuery};
use super::shapes::{Collection, DirectoryAuditDto};
use crate::app::AppState;

/// Read the audit log (`$top`, `$skiptoken`, `$filter` with
/// `activityDateTime ge|lt <RFC 3339>`, `activityDisplayName eq '…'`,
/// `targetResources/any(t:t/id eq '…')`, joined by `and`).
#[utoipa::path(get, path = "/v1.0/auditLogs/directoryAudits", tag = "auditLogs", security(("bearer" = [])),
    params(("$top" = Option<u32>, Query, description = "Page size, 1–999"),
           ("$filter" = Option<String>, Query, description = "activityDateTime ge 2026-01-01T00:00:00Z and activityDisplayName eq 'Add application'"),
           ("$skiptoken" = Option<String>, Query, description = "From @odata.nextLink")),
    responses((status = 200, body = Collection<DirectoryAuditDto>), (status = 400), (status = 401), (status = 403)))]
pub async fn directory_audits(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Collection<DirectoryAuditDto>>, GraphError> {
    caller.can_read_audit()?;
    let query = ListQuery::parse(raw.as_deref())?;
    let mut q = AuditQuery {
        tenant_id: caller.tenant.id,
        since: None,
        until: None,
        activity: None,
        target_id: None,
        actor_app_id: None,
        before: None,
        limit: query.page_size(),
    };
    if let Some(token) = &query.skiptoken {
        q.before = Some(parse_skiptoken(token)?);
    }
    if let Some(filter) = &query.filter {
        for clause in super::json::and_clauses(filter) {
            let clause = clause.trim();
            let time = |rest: &str| {
                OffsetDateTime::parse(rest.trim(), &Rfc3339).map_err(|_| {
                    GraphError::bad(
                        "activityDateTime in $filter must be RFC 3339, e.g. 2026-01-01T00:00:00Z.",
                    )
                })
            };
            if let Some(rest) = clause.strip_prefix("activityDateTime ge ") {
                q.since = Some(time(rest)?);
            } else if let Some(rest) = clause.strip_prefix("activityDateTime lt ") {
                q.until = Some(time(rest)?);
            } else if let Some(v) = eq_clause(clause, "activityDisplayName") {
                q.activity = Some(v);
            } else if let Some(v) = clause
                .strip_prefix("targetResources/any(t:t/id eq ")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(super::json::quoted)
            {
                q.target_id = Some(v);
            } else {
                return Err(GraphError::bad(
                    "Unsupported $filter clause: use activityDateTime ge|lt <time>, activityDisplayName eq '…' or targetResources/any(t:t/id eq '…'), joined by 'and'.",
                ));
            }
        }
    }
    let events = state.directory.store().audit_events(&q).await?;
    let next_link = (events.len() as u32 == q.limit).then(|| {
        let last = events.last().expect("a full page is not empty");
        next_page(
            &state,
            "directoryAudits",
            q.limit,
            (last.at, last.id),
            &query,
        )
    });
    Ok(Json(Collection {
        context: format!(
            "{}/v1.0/$metadata#auditLogs/directoryAudits",
            state.base_url
        ),
        value: events.iter().map(DirectoryAuditDto::from).collect(),
        next_link,
    }))
}

pub(crate) fn parse_skiptoken(token: &str) -> Result<(OffsetDateTime, Uuid), GraphError> {
    let bad = || GraphError::bad("$skiptoken is not valid; use the @odata.nextLink as given.");
    let (micros, id) = token.split_once('_').ok_or_else(bad)?;
    let micros: i128 = micros.parse().map_err(|_| bad())?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1000).ok_or_else(bad)?)
        .map_err(|_| bad())?;
    Ok((at, Uuid::try_parse(id).map_err(|_| bad())?))
}

/// One sign-in, in the shape of Microsoft Graph's `signIn` for a service
/// principal (`servicePrincipalCredentialKeyId` names the secret used).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInDto {
    pub id: Uuid,
    pub created_date_time: String,
    pub app_id: Option<Uuid>,
    pub service_principal_credential_key_id: Option<Uuid>,
    pub resource_id: Option<Uuid>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub client_credential_type: &'static str,
    #[schema(value_type = Object)]
    pub status: serde_json::Value,
    /// Clavis extension: how many requests this entry stands for (the log
    /// merges identical successes that come within one second, and the
    /// failures of one address, client id and error code within a minute;
    /// an entry with `status.errorCode` null counts a tenant's refusals of
    /// one minute that were not itemised).
    pub request_count: u32,
    /// Clavis extension: when the last of them came.
    pub last_request_date_time: String,
}

impl From<&clavis_store::SignIn> for SignInDto {
    fn from(s: &clavis_store::SignIn) -> Self {
        Self {
            id: s.id,
            created_date_time: super::shapes::rfc3339(s.at),
            app_id: s.app_id,
            service_principal_credential_key_id: s.key_id,
            resource_id: s.resource,
            ip_address: s.client_ip.clone(),
            user_agent: s.user_agent.clone(),
            client_credential_type: "clientSecret",
            status: match (s.result, s.error_code) {
                (clavis_store::AuditResult::Success, _) => {
                    serde_json::json!({"errorCode": 0, "failureReason": ""})
                }
                (_, Some(code)) => serde_json::json!({
                    "errorCode": code,
                    "failureReason": "Client authentication or token request failed",
                }),
                (_, None) => serde_json::json!({
                    "errorCode": null,
                    "failureReason": format!(
                        "{} refused requests in this minute not itemised: the tenant's budget of \
                         failure entries per minute (--sign-in-failure-entries-per-minute) was full",
                        s.count
                    ),
                }),
            },
            request_count: s.count,
            last_request_date_time: super::shapes::rfc3339(s.last_at),
        }
    }
}

/// Read the sign-in log: every token issued and every refused token request
/// (`$top`, `$skiptoken`, `$filter` with `appId eq '…'`,
/// `servicePrincipalCredentialKeyId eq '…'`, `status/errorCode eq 0` or
/// `ne 0`, `createdDateTime ge|lt <RFC 3339>`, joined by `and`). Written in
/// batches: the newest second may not be there yet.
#[utoipa::path(get, path = "/v1.0/auditLogs/signIns", tag = "auditLogs", security(("bearer" = [])),
    params(("$top" = Option<u32>, Query, description = "Page size, 1–999"),
           ("$filter" = Option<String>, Query, description = "appId eq '…' and status/errorCode ne 0"),
           ("$skiptoken" = Option<String>, Query, description = "From @odata.nextLink")),
    responses((status = 200, body = Collection<SignInDto>), (status = 400), (status = 401), (status = 403)))]
pub async fn sign_ins(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Collection<SignInDto>>, GraphError> {
    caller.can_read_audit()?;
    let query = ListQuery::parse(raw.as_deref())?;
    let mut q = clavis_store::SignInQuery {
        tenant_id: caller.tenant.id,
        app_id: None,
        key_id: None,
        result: None,
        since: None,
        until: None,
        before: None,
        limit: query.page_size(),
    };
    if let Some(token) = &query.skiptoken {
        q.before = Some(parse_skiptoken(token)?);
    }
    if let Some(filter) = &query.filter {
        for clause in super::json::and_clauses(filter) {
            let clause = clause.trim();
            let guid = |v: String, what: &str| {
                Uuid::try_parse(&v)
                    .map_err(|_| GraphError::bad(format!("{what} in $filter must be a GUID.")))
            };
            let time = |rest: &str| {
                OffsetDateTime::parse(rest.trim(), &Rfc3339)
                    .map_err(|_| GraphError::bad("createdDateTime in $filter must be RFC 3339."))
            };
            if let Some(v) = eq_clause(clause, "appId") {
                q.app_id = Some(guid(v, "appId")?);
            } else if let Some(v) = eq_clause(clause, "servicePrincipalCredentialKeyId") {
                q.key_id = Some(guid(v, "servicePrincipalCredentialKeyId")?);
            } else if clause == "status/errorCode eq 0" {
                q.result = Some(clavis_store::AuditResult::Success);
            } else if clause == "status/errorCode ne 0" {
                q.result = Some(clavis_store::AuditResult::Failure);
            } else if let Some(rest) = clause.strip_prefix("createdDateTime ge ") {
                q.since = Some(time(rest)?);
            } else if let Some(rest) = clause.strip_prefix("createdDateTime lt ") {
                q.until = Some(time(rest)?);
            } else {
                return Err(GraphError::bad(
                    "Unsupported $filter clause: use appId eq '…', servicePrincipalCredentialKeyId eq '…', status/errorCode eq 0 (or ne 0), createdDateTime ge|lt <time>, joined by 'and'.",
                ));
            }
        }
    }
    let rows = state.directory.store().sign_ins(&q).await?;
    let next_link = (rows.len() as u32 == q.limit).then(|| {
        let last = rows.last().expect("a full page is not empty");
        next_page(&state, "signIns", q.limit, (last.at, last.id), &query)
    });
    Ok(Json(Collection {
        context: format!("{}/v1.0/$metadata#auditLogs/signIns", state.base_url),
        value: rows.iter().map(SignInDto::from).collect(),
        next_link,
    }))
}

/// The `@odata.nextLink` of a full page of `/v1.0/auditLogs/{log}`: the same
/// page size and filter, after the page's last `(time, id)`.
fn next_page(
    state: &AppState,
    log: &str,
    limit: u32,
    (at, id): (OffsetDateTime, Uuid),
    query: &ListQuery,
) -> String {
    let mut link = format!(
        "{}/v1.0/auditLogs/{log}?$top={limit}&$skiptoken={}_{id}",
        state.base_url,
        at.unix_timestamp_nanos() / 1000,
    );
    if let Some(f) = &query.filter {
        link.push_str("&$filter=");
        link.push_str(&super::encode_query(f));
    }
    link
}
