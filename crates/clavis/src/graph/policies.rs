//! Credential and signing policies (Clavis extensions in Graph style):
//! `/v1.0/policies/tenantPolicy` holds the tenant's token-signing algorithm
//! and its rules for client secrets; `/v1.0/applications/{id}/credentialPolicy`
//! holds one application's exceptions to those rules (Entra's app management
//! policies). `addPassword` enforces them (`domain::credential_policy`).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use clavis_store::{CredentialPolicy, Mutation};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::applications::load;
use super::caller::Caller;
use super::error::GraphError;
use super::json::GraphJson;
use super::{commit, object_id, Audited};
use crate::app::AppState;
use crate::audit::Action;
use crate::builtin::Role;
use crate::domain::credential_policy::{EffectivePolicy, MAX_DAYS, MAX_SECRETS_LIMIT};
use crate::keys::Algorithm;

/// The tenant policy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantPolicy {
    /// `RS256` (the default for new tenants, as Entra), `ES256` or `EdDSA`: signs new tokens from the next request on.
    pub signing_algorithm: String,
    /// Longest lifetime of a new client secret, in days.
    pub max_secret_lifetime_days: i64,
    /// Lifetime of a new client secret when the request names no end, in
    /// days, as configured. Lowering `maxSecretLifetimeDays` below it keeps
    /// it: it applies again once the maximum is raised.
    pub default_secret_lifetime_days: i64,
    /// The lifetime a new client secret gets when the request names no
    /// end, in days: `defaultSecretLifetimeDays` capped by
    /// `maxSecretLifetimeDays` (read-only).
    pub effective_default_secret_lifetime_days: i64,
    /// The most client secrets one application may hold at once.
    pub max_secrets_per_application: i64,
    /// Whether applications may be given client secrets at all.
    pub password_credentials_allowed: bool,
}

/// Body of `PATCH /v1.0/policies/tenantPolicy`: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTenantPolicy {
    pub signing_algorithm: Option<String>,
    pub max_secret_lifetime_days: Option<i64>,
    pub default_secret_lifetime_days: Option<i64>,
    pub max_secrets_per_application: Option<i64>,
    pub password_credentials_allowed: Option<bool>,
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
        effective_default_secret_lifetime_days: t
            .default_secret_lifetime_secs
            .min(t.max_secret_lifetime_secs)
            / DAY,
        max_secrets_per_application: t.max_secrets_per_application,
        password_credentials_allowed: t.password_credentials_allowed,
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
        tenant.max_secret_lifetime_secs = days_in_range("maxSecretLifetimeDays", days)? * DAY;
    }
    if let Some(days) = body.default_secret_lifetime_days {
        tenant.default_secret_lifetime_secs =
            days_in_range("defaultSecretLifetimeDays", days)? * DAY;
    }
    // Lowering only the maximum keeps the configured default (as Vault's
    // max TTL caps its default TTL): new secrets get the smaller of the two,
    // and the default applies again once the maximum is raised. Setting a
    // default above the maximum is a contradiction, and refused.
    if body.default_secret_lifetime_days.is_some()
        && tenant.default_secret_lifetime_secs > tenant.max_secret_lifetime_secs
    {
        return Err(GraphError::bad(format!(
            "defaultSecretLifetimeDays must not exceed maxSecretLifetimeDays ({} days).",
            tenant.max_secret_lifetime_secs / DAY
        )));
    }
    if let Some(most) = body.max_secrets_per_application {
        tenant.max_secrets_per_application = secrets_in_range(most)?;
    }
    if let Some(allowed) = body.password_credentials_allowed {
        tenant.password_credentials_allowed = allowed;
    }
    let event = Audited::success(&state, &caller, action);
    commit(&state, vec![Mutation::UpdateTenant(tenant)], event).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn days_in_range(field: &str, days: i64) -> Result<i64, GraphError> {
    if (1..=MAX_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(GraphError::bad(format!(
            "{field} must be between 1 and {MAX_DAYS}."
        )))
    }
}

pub(crate) fn secrets_in_range(most: i64) -> Result<i64, GraphError> {
    if (1..=MAX_SECRETS_LIMIT).contains(&most) {
        Ok(most)
    } else {
        Err(GraphError::bad(format!(
            "maxSecretsPerApplication must be between 1 and {MAX_SECRETS_LIMIT}."
        )))
    }
}

/// The rules in force for an application, whoever set them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveCredentialPolicy {
    pub max_secret_lifetime_days: i64,
    pub default_secret_lifetime_days: i64,
    pub max_secrets_per_application: i64,
    pub password_credentials_allowed: bool,
}

/// An application's credential policy: its exceptions to the tenant's rules
/// (`null`: as the tenant) and the rules in force.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationCredentialPolicy {
    pub max_secret_lifetime_days: Option<i64>,
    pub default_secret_lifetime_days: Option<i64>,
    pub max_secrets_per_application: Option<i64>,
    pub password_credentials_allowed: Option<bool>,
    /// What `addPassword` enforces: these exceptions over the tenant policy.
    pub effective: EffectiveCredentialPolicy,
}

/// A field that may be absent (unchanged), `null` (back to the tenant's
/// rule) or a value (an exception).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Body of `PATCH /v1.0/applications/{id}/credentialPolicy`: fields left out
/// keep their value, `null` returns a rule to the tenant's.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateApplicationCredentialPolicy {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, nullable)]
    pub max_secret_lifetime_days: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, nullable)]
    pub default_secret_lifetime_days: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, nullable)]
    pub max_secrets_per_application: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>, nullable)]
    pub password_credentials_allowed: Option<Option<bool>>,
}

fn application_policy(
    tenant: &clavis_store::Tenant,
    policy: &CredentialPolicy,
) -> ApplicationCredentialPolicy {
    let effective = EffectivePolicy::of(tenant, policy);
    ApplicationCredentialPolicy {
        max_secret_lifetime_days: policy.max_lifetime_secs.map(|s| s / DAY),
        default_secret_lifetime_days: policy.default_lifetime_secs.map(|s| s / DAY),
        max_secrets_per_application: policy.max_secrets,
        password_credentials_allowed: policy.password_credentials_allowed,
        effective: EffectiveCredentialPolicy {
            max_secret_lifetime_days: effective.max_lifetime_secs.value / DAY,
            default_secret_lifetime_days: effective
                .default_lifetime_secs
                .value
                .min(effective.max_lifetime_secs.value)
                / DAY,
            max_secrets_per_application: effective.max_secrets.value,
            password_credentials_allowed: effective.password_credentials_allowed.value,
        },
    }
}

/// Read an application's credential policy.
#[utoipa::path(get, path = "/v1.0/applications/{id}/credentialPolicy", tag = "policies", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Application object id")),
    responses((status = 200, body = ApplicationCredentialPolicy), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn get_application(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ApplicationCredentialPolicy>, GraphError> {
    let id = object_id(id)?;
    caller.read_scope()?;
    let app = load(&state, &caller, id).await?;
    caller.can_read(&app)?;
    Ok(Json(application_policy(
        &caller.tenant,
        &app.credential_policy,
    )))
}

/// Set an application's exceptions to the tenant's rules for client
/// secrets (needs Application.ReadWrite.All: an owner may not loosen the
/// rules for itself). Secrets the application already holds are left alone.
#[utoipa::path(patch, path = "/v1.0/applications/{id}/credentialPolicy", tag = "policies", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Application object id")),
    request_body = UpdateApplicationCredentialPolicy,
    responses((status = 200, body = ApplicationCredentialPolicy), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn update_application(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    GraphJson(body): GraphJson<UpdateApplicationCredentialPolicy>,
) -> Result<Json<ApplicationCredentialPolicy>, GraphError> {
    let id = object_id(id)?;
    let mut action = Action::on_id(
        "Update application credential policy",
        "Policy",
        "Update",
        "Application",
        id,
    );
    let allowed = if caller.has(Role::ApplicationReadWriteAll) {
        Ok(())
    } else {
        Err(GraphError::Forbidden(
            "Insufficient privileges to complete the operation: changing an application's credential policy needs Application.ReadWrite.All.".into(),
        ))
    };
    Audited::check(&state, &caller, allowed, action.clone()).await?;
    let app = load(&state, &caller, id).await?;
    if app.builtin {
        return Err(GraphError::bad(
            "The Clavis Management API application is built in and holds no client secrets.",
        ));
    }
    action.target_name = app.display_name.clone();
    let mut policy = app.credential_policy;
    if let Some(days) = body.max_secret_lifetime_days {
        policy.max_lifetime_secs = days
            .map(|d| days_in_range("maxSecretLifetimeDays", d).map(|d| d * DAY))
            .transpose()?;
    }
    if let Some(days) = body.default_secret_lifetime_days {
        policy.default_lifetime_secs = days
            .map(|d| days_in_range("defaultSecretLifetimeDays", d).map(|d| d * DAY))
            .transpose()?;
    }
    if let Some(most) = body.max_secrets_per_application {
        policy.max_secrets = most.map(secrets_in_range).transpose()?;
    }
    if let Some(allowed) = body.password_credentials_allowed {
        policy.password_credentials_allowed = allowed;
    }
    let effective = EffectivePolicy::of(&caller.tenant, &policy);
    if policy.default_lifetime_secs.is_some()
        && effective.default_lifetime_secs.value > effective.max_lifetime_secs.value
    {
        return Err(GraphError::bad(format!(
            "defaultSecretLifetimeDays must not exceed maxSecretLifetimeDays ({} days, from the {} policy).",
            effective.max_lifetime_secs.value / DAY,
            effective.max_lifetime_secs.source.as_str(),
        )));
    }
    let event = Audited::success(&state, &caller, action);
    commit(
        &state,
        vec![Mutation::SetCredentialPolicy {
            tenant_id: caller.tenant.id,
            application_id: app.id,
            policy,
        }],
        event,
    )
    .await?;
    Ok(Json(application_policy(&caller.tenant, &policy)))
}
