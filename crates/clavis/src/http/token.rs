//! `POST /{tenant}/oauth2/v2.0/token`: reads the raw request (with a body
//! cap), hands it to the protocol code, renders the result with
//! `Cache-Control: no-store`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::oauth_response::OAuthFailure;
use crate::app::AppState;
use crate::oauth::client_credentials::{self, TokenResponse};
use crate::oauth::{request, OAuthError};

/// Form fields of a client-credentials token request (documentation only:
/// the handler parses the raw body strictly).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// `client_credentials`.
    grant_type: String,
    /// The client's appId (or use HTTP Basic).
    client_id: Option<String>,
    /// The client secret (or use HTTP Basic). Never in the URL query.
    client_secret: Option<String>,
    /// `{resource}/.default`, resource = identifier URI or appId.
    scope: String,
}

/// Issue an access token (client credentials grant).
#[utoipa::path(post, path = "/{tenant}/oauth2/v2.0/token", tag = "oauth",
    params(("tenant" = String, Path, description = "Tenant GUID or name")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "`{token_type, expires_in, ext_expires_in, access_token}`"),
        (status = 400, description = "invalid_request, invalid_scope, invalid_resource, unsupported_grant_type, invalid_tenant"),
        (status = 401, description = "invalid_client (7000215 wrong secret, 7000222 expired, 700016 unknown application)"),
        (status = 413, description = "Body too large"),
        (status = 429, description = "temporarily_unavailable (90055): too many failed client authentications; see `Retry-After`"),
        (status = 503, description = "temporarily_unavailable")
    ))]
pub async fn token(
    State(state): State<Arc<AppState>>,
    tenant: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let trace_id = super::request_id(headers);
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let basic_used = request::uses_basic(authorization);
    let fail = |error: OAuthError| {
        state
            .counters
            .tokens_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The id the response carries (`trace_id`, `request-id`), so an
        // operator can find the refusal a caller reports; never the secret.
        tracing::info!(
            trace_id = %trace_id,
            code = error.code,
            error = error.kind.as_str(),
            "token request refused"
        );
        OAuthFailure {
            error,
            basic_used,
            trace_id,
            correlation_id: trace_id,
        }
        .into_response()
    };
    let Ok(Path(tenant)) = tenant else {
        return fail(OAuthError::malformed(
            "the tenant in the URL is not valid UTF-8.",
        ));
    };
    let body = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => return fail(OAuthError::too_large(state.max_body_bytes)),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let parsed = match request::parse(content_type, query.as_deref(), authorization, &body) {
        Ok(parsed) => parsed,
        Err(e) => return fail(e),
    };
    // For the sign-in log: who asked, from where.
    let source = super::source_ip(&parts.extensions);
    let attempt = super::sign_in::Attempt::new(
        headers,
        source,
        parsed.client_id.as_deref(),
        state.clock.now(),
    );
    let issuer = state.issuer();
    match client_credentials::grant(&issuer, &tenant, parsed, source).await {
        Ok((response, issued)) => {
            state
                .counters
                .tokens_issued
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(client = %issued.client_app_id, credential = %issued.credential_id,
                resource = %issued.resource_app_id, "token issued");
            state.sign_ins.record(attempt.succeeded(
                issued.tenant_id,
                issued.credential_id,
                Some(issued.resource_app_id),
            ));
            let mut response = json_response(&response);
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(e) => {
            if let Some(t) = state.directory.tenant(&tenant) {
                state.sign_ins.record(attempt.failed(t.id, e.code));
            }
            fail(e)
        }
    }
}

/// `Json(body).into_response()`, but serialized into a buffer sized for a
/// token up front instead of one grown (and copied) several times.
fn json_response(body: &TokenResponse) -> Response {
    let mut json = Vec::with_capacity(body.access_token.len() + 128);
    serde_json::to_writer(&mut json, body).expect("a token response serializes");
    let mut response = Response::new(Body::from(json));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
