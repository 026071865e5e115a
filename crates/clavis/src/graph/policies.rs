//! `/v1.0/policies/tenantPolicy` (a Clavis extension in Graph style): the
//! tenant's token-signing algorithm and client-secret lifetimes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use clavis_store::Mutation;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::caller::Caller;
use super::error::GraphError;
use super::json::GraphJson;
use super::{commit, Audited};
use crate::app::AppState;
use crate::audit::Action;
use crate::builtin::Role;
use crate::keys::Algorithm;

/// The tenant policy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantPolicy {
    /// `ES256` (default), `RS256` or `EdDSA`: signs new tokens from the next request on.
    pub signing_algorithm: String,
    /// Longest lifetime of a new client secret, in days.
    pub max_secret_lifetime_days: i64,
    /// Lifetime of a new client secret when the request names no end, in days.
    pub default_secret_lifetime_days: i64,
}

/// Body of `PATCH /v1.0/policies/tenantPolicy`: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTenantPolicy {
    pub signing_algorithm: Option<String>,
    pub max_secret_lifetime_days: Option<i64>,
    pub default_secret_lifetime_days: Option<i64>,
}

const DAY: i64 = 86_400;

/// Read the tenant policy.
#[utoipa::path(get, path = "/v1.0/policies/tenantPolicy", tag = "policies", security(("bearer" = [])),
    responses((status = 200, body = TenantPolicy), (status = 401), (status = 403)))]
pub async fn get(caller: Caller) -> Result<Json<TenantPolicy>, GraphError> {
    caller.read_scope()?;
    let t = &caller.tenant;
    Ok(Json(TenantPolicy {
        signing_algorithm: t.signing_alg.clone(),
        max_secret_lifetime_days: t.max_secret_lifetime_secs / DAY,
        default_secret_lifetime_days: t.default_secret_lifetime_secs / DAY,
    }))
}

/// Change the tenant policy (needs Application.ReadWrite.All). A new
/// signing algorithm takes effect at once with a new key; the old key stays
/// in the JWKS until its last token has expired.
#[utoipa::path(patch, path = "/v1.0/policies/tenantPolicy", tag = "policies", security(("bearer" = [])),
    request_body = UpdateTenantPolicy,
    responses((status = 204), (status = 400), (status = 401), (status = 403)))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    GraphJson(body): GraphJson<UpdateTenantPolicy>,
) -> Result<StatusCode, GraphError> {
    let mut tenant = (*caller.tenant).clone();
    let action = Action {
        activity: "Update tenant policy",
        category: "Policy",
        operation: "Update",
        target_type: "Tenant",
        target_id: tenant.id.to_string(),
        target_name: tenant.name.clone(),
        target_key_id: None,
    };
    let allowed = if caller.has(Role::ApplicationReadWriteAll) {
        Ok(())
    } else {
        Err(GraphError::Forbidden(
            "Insufficient privileges to complete the operation: changing the tenant policy needs Application.ReadWrite.All.".into(),
        ))
    };
    Audited::check(&state, &caller, allowed, action.clone()).await?;
    if let Some(alg) = body.signing_algorithm {
        let alg = Algorithm::parse(&alg)
            .ok_or_else(|| GraphError::bad("signingAlgorithm must be ES256, RS256 or EdDSA."))?;
        tenant.signing_alg = alg.as_str().into();
    }
    if let Some(days) = body.max_secret_lifetime_days {
        if !(1..=3650).contains(&days) {
            return Err(GraphError::bad(
                "maxSecretLifetimeDays must be between 1 and 3650.",
            ));
        }
        tenant.max_secret_lifetime_secs = days * DAY;
    }
    if let Some(days) = body.default_secret_lifetime_days {
        if !(1..=3650).contains(&days) {
            return Err(GraphError::bad(
                "defaultSecretLifetimeDays must be between 1 and 3650.",
            ));
        }
        tenant.default_secret_lifetime_secs = days * DAY;
    }
    if body.default_secret_lifetime_days.is_none() {
        // Lowering only the maximum lowers the default with it.
        tenant.default_secret_lifetime_secs = tenant
            .default_secret_lifetime_secs
            .min(tenant.max_secret_lifetime_secs);
    }
    if tenant.default_secret_lifetime_secs > tenant.max_secret_lifetime_secs {
        return Err(GraphError::bad(
            "defaultSecretLifetimeDays must not exceed maxSecretLifetimeDays.",
        ));
    }
    let event = Audited::success(&state, &caller, action);
    commit(&state, vec![Mutation::UpdateTenant(tenant)], event).await?;
    Ok(StatusCode::NO_CONTENT)
}
