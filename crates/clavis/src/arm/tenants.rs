//! `GET /subscriptions` and `GET /tenants` in Azure Resource Manager's
//! shape, for `az login`: Clavis has no subscriptions (the CLI then signs in
//! at tenant level with `--allow-no-subscriptions`), and the caller sees its
//! own tenant.

use axum::extract::RawQuery;
use axum::Json;
use serde_json::{json, Value};

use super::error::ArmError;
use super::{api_version, ArmCaller};

/// The caller's subscriptions: none (Clavis has no resources to bill).
#[utoipa::path(get, path = "/subscriptions", tag = "arm",
    params(("api-version" = String, Query, description = "A date, e.g. 2022-12-01")),
    security(("bearer" = [])),
    responses((status = 200, description = "An empty list: {\"value\": []}"),
        (status = 400, description = "MissingApiVersionParameter or InvalidApiVersionParameter"),
        (status = 401, description = "AuthenticationFailed, InvalidAuthenticationToken or InvalidAuthenticationTokenAudience")))]
pub async fn subscriptions(
    RawQuery(query): RawQuery,
    caller: Result<ArmCaller, ArmError>,
) -> Result<Json<Value>, ArmError> {
    api_version(query.as_deref())?;
    caller?;
    Ok(Json(json!({"value": []})))
}

/// The tenants the caller can sign in to: its own.
#[utoipa::path(get, path = "/tenants", tag = "arm",
    params(("api-version" = String, Query, description = "A date, e.g. 2022-12-01")),
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's tenant: {\"value\": [{\"id\": \"/tenants/{tid}\", \"tenantId\": ..}]}"),
        (status = 400, description = "MissingApiVersionParameter or InvalidApiVersionParameter"),
        (status = 401, description = "AuthenticationFailed, InvalidAuthenticationToken or InvalidAuthenticationTokenAudience")))]
pub async fn tenants(
    RawQuery(query): RawQuery,
    caller: Result<ArmCaller, ArmError>,
) -> Result<Json<Value>, ArmError> {
    api_version(query.as_deref())?;
    let tenant = caller?.tenant;
    Ok(Json(json!({
        "value": [{
            "id": format!("/tenants/{}", tenant.id),
            "tenantId": tenant.id,
            "tenantCategory": "Home",
            "displayName": tenant.name,
            "domains": [],
            "tenantType": "AAD",
        }]
    })))
}
