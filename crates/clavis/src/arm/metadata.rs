//! `GET /metadata/endpoints`: the cloud metadata document in Azure Resource
//! Manager's shape, read by `az cloud register --endpoint-resource-manager`
//! (which asks `{endpoint}/metadata/endpoints`, so an endpoint ending in `/`
//! gives a doubled slash: the router serves that spelling too). It points
//! the Azure CLI at this server for sign-in and for ARM, with the management
//! API as the audience of its tokens.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::api_version;
use super::error::ArmError;
use crate::app::AppState;
use crate::builtin::MANAGEMENT_API_URI;

/// The name the Azure CLI shows for this cloud unless `az cloud register --name` says otherwise.
pub const CLOUD_NAME: &str = "Clavis";

/// The cloud metadata document (ARM's `metadata/endpoints` shape).
#[utoipa::path(get, path = "/metadata/endpoints", tag = "arm",
    params(("api-version" = String, Query, description = "A date, e.g. 2022-09-01 (any is answered alike)")),
    responses((status = 200, description = "Cloud metadata: sign-in endpoint, token audience, resource manager"),
        (status = 400, description = "MissingApiVersionParameter or InvalidApiVersionParameter")))]
pub async fn endpoints(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ArmError> {
    api_version(query.as_deref())?;
    let base = &state.base_url;
    let doc = json!({
        "name": CLOUD_NAME,
        "authentication": {
            // No trailing `/`: `az login --tenant NAME` asks
            // `{loginEndpoint}/{NAME}/v2.0/.well-known/openid-configuration`.
            "loginEndpoint": base,
            // The Azure CLI asks for tokens for the first audience (its
            // `activeDirectoryResourceId`) and sends them to the ARM routes.
            "audiences": [MANAGEMENT_API_URI],
            "identityProvider": "AAD",
        },
        "resourceManager": format!("{base}/"),
        // Another name of the management API (crate::builtin), so
        // `--resource-type ms-graph` gets a token this server's /v1.0 takes.
        "microsoftGraphResourceId": "https://graph.microsoft.com/",
        "suffixes": {},
    });
    let mut response = Json(doc).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}
