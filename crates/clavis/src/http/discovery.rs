//! OpenID discovery (`/{tenant}/v2.0/.well-known/openid-configuration`), the
//! JWKS (`/{tenant}/discovery/v2.0/keys`), and the authorization endpoint
//! that MSAL requires to exist (no interactive flows yet).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::oauth_response::failure;
use crate::app::AppState;
use crate::oauth::{OAuthError, OAuthErrorKind};

/// The tenant named in the path, or the OAuth error for it.
fn resolve(
    state: &AppState,
    tenant: Result<Path<String>, PathRejection>,
) -> Result<Arc<clavis_store::Tenant>, OAuthError> {
    let Ok(Path(segment)) = tenant else {
        return Err(OAuthError::malformed(
            "the tenant in the URL is not valid UTF-8.",
        ));
    };
    state
        .directory
        .tenant(&segment)
        .ok_or_else(|| OAuthError::unknown_tenant(&segment))
}

/// The OpenID Provider metadata of a tenant.
#[utoipa::path(get, path = "/{tenant}/v2.0/.well-known/openid-configuration", tag = "oauth",
    params(("tenant" = String, Path, description = "Tenant GUID or name")),
    responses((status = 200, description = "Discovery document"), (status = 400, description = "Unknown tenant (90002)")))]
pub async fn openid_configuration(
    State(state): State<Arc<AppState>>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let tenant = match resolve(&state, tenant) {
        Ok(tenant) => tenant,
        Err(error) => return failure(&headers, error),
    };
    let base = &state.base_url;
    let id = tenant.id;
    let doc = json!({
        "issuer": format!("{base}/{id}/v2.0"),
        "token_endpoint": format!("{base}/{id}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{base}/{id}/oauth2/v2.0/authorize"),
        "jwks_uri": format!("{base}/{id}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "introspection_endpoint": format!("{base}/{id}/oauth2/v2.0/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "revocation_endpoint": format!("{base}/{id}/oauth2/v2.0/revoke"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": [tenant.signing_alg],
        "scopes_supported": ["openid"],
        "claims_supported": ["iss", "aud", "sub", "oid", "azp", "tid", "roles", "iat", "nbf", "exp", "jti", "ver", "idtyp", "credential_id"],
        "tenant_region_scope": null,
        "cloud_instance_name": "clavis",
        "management_api": format!("{base}/v1.0"),
    });
    let mut response = Json(doc).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// The tenant's public signing keys (JWKS).
#[utoipa::path(get, path = "/{tenant}/discovery/v2.0/keys", tag = "oauth",
    params(("tenant" = String, Path, description = "Tenant GUID or name")),
    responses((status = 200, description = "JWK Set"), (status = 400, description = "Unknown tenant (90002)")))]
pub async fn jwks(
    State(state): State<Arc<AppState>>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let tenant = match resolve(&state, tenant) {
        Ok(tenant) => tenant,
        Err(error) => return failure(&headers, error),
    };
    match state.keyring.for_tenant(&tenant).await {
        Ok(keys) => {
            let mut response = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                keys.jwks.to_string(),
            )
                .into_response();
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            response
        }
        Err(e) => failure(&headers, e.into()),
    }
}

/// Interactive sign-in is not supported yet; the endpoint exists because
/// MSAL requires `authorization_endpoint` in discovery.
#[utoipa::path(get, path = "/{tenant}/oauth2/v2.0/authorize", tag = "oauth",
    params(("tenant" = String, Path, description = "Tenant GUID or name")),
    responses((status = 400, description = "unsupported_response_type")))]
pub async fn authorize(headers: HeaderMap) -> Response {
    let mut error = OAuthError::unsupported_grant("authorization_code");
    error.kind = OAuthErrorKind::InvalidRequest;
    error.description = "Interactive sign-in (authorization code flow) is not supported yet: \
        Clavis issues application tokens with the client credentials grant at the token endpoint."
        .into();
    failure(&headers, error)
}
