//! HTTP: the router, the protocol endpoints (discovery, JWKS, token), health
//! probes, the OpenAPI document, TLS set-up and the accept loop. Handlers
//! parse, call, map.

pub mod discovery;
pub mod expiry_gauge;
pub mod file_limit;
pub mod health;
pub mod introspect;
pub mod metrics;
pub mod metrics_auth;
pub mod oauth_response;
pub mod openapi;
/// Plain HTTP sent to the TLS port: a plain 400 naming the https URL.
pub mod plain_on_tls;
pub mod server;
/// The sign-in log entry of a client authentication (token, introspection, revocation).
pub mod sign_in;
pub mod tls;
pub mod token;
pub mod transport;

use std::sync::Arc;

use axum::http::{HeaderName, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tower_http::request_id::PropagateRequestIdLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

/// Header carrying the request id (also Entra's `trace_id` and Graph's `request-id`).
pub static REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
/// Header carrying the caller's own id for a request (what MSAL sends).
pub static CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");
/// Longest caller-supplied request id kept (a GUID is 36, a W3C `traceparent` 55).
pub const MAX_CLIENT_REQUEST_ID: usize = 64;

/// The OpenAPI document's top level; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Clavis",
        description = "Entra ID v2.0 compatible token endpoints and a Microsoft Graph shaped management API."
    ),
    tags(
        (name = "oauth", description = "OAuth 2.0 / OpenID endpoints (Entra ID v2.0 layout)"),
        (name = "applications", description = "Application registrations and their secrets"),
        (name = "servicePrincipals", description = "Service principals and app role assignments"),
        (name = "auditLogs", description = "The audit log"),
        (name = "policies", description = "Tenant policy (Clavis extension)"),
        (name = "webhooks", description = "Secret expiry warnings (Clavis extension)"),
        (name = "arm", description = "Azure Resource Manager routes for the Azure CLI (cloud metadata, subscriptions, tenants)"),
        (name = "health", description = "Liveness and readiness")
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A Clavis access token for api://clavis/.default"))
                    .build(),
            ),
        );
    }
}

/// Every route, with its OpenAPI description collected from the same code.
pub fn api(state: Arc<AppState>) -> (Router, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(discovery::openid_configuration))
        .routes(routes!(discovery::jwks))
        .routes(routes!(discovery::authorize))
        .routes(routes!(token::token))
        .routes(routes!(introspect::introspect))
        .routes(routes!(introspect::revoke))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .merge(crate::graph::routes())
        .merge(crate::arm::routes())
        .with_state(state)
        .split_for_parts();
    (router, doc)
}

/// The complete service.
pub fn router(state: Arc<AppState>) -> Router {
    let (router, doc) = api(state.clone());
    let doc = Arc::new(openapi::document(&doc));
    router
        // `az cloud register` asks `{endpoint}/metadata/endpoints`, so an
        // endpoint ending in `/` doubles the slash; not in the OpenAPI
        // document (the same route as `/metadata/endpoints`).
        .route(
            "//metadata/endpoints",
            get(crate::arm::metadata::endpoints).with_state(state.clone()),
        )
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), transport::time_limit))
        .layer(from_fn_with_state(state.clone(), transport::resolve_client))
        .layer(from_fn_with_state(state, transport::security_headers))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(tower::util::MapRequestLayer::new(assign_request_id))
}

/// Middleware: every request gets an id of ours (`request-id`, in the
/// response too), whatever the caller sent: it becomes the error's
/// `trace_id`/`correlation_id` and the audit event's `correlationId`, so a
/// caller cannot make its events collide with another's. The caller's own
/// id (`client-request-id`, as MSAL sends, else its `request-id`) is kept
/// apart as [`ClientRequestId`]. (A plain function over the request: no
/// boxing or task on the token path.)
fn assign_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    let headers = request.headers();
    let theirs = headers
        .get(&CLIENT_REQUEST_ID)
        .or_else(|| headers.get(&REQUEST_ID))
        .and_then(|v| client_request_id(v.as_bytes()));
    if theirs.is_some() {
        request.extensions_mut().insert(ClientRequestId(theirs));
    }
    let mut buffer = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let ours = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
    request.headers_mut().insert(
        REQUEST_ID.clone(),
        axum::http::HeaderValue::from_str(ours).expect("a GUID is a header value"),
    );
    request
}

/// A caller-supplied request id as kept: its visible ASCII characters
/// (no spaces, controls or bytes beyond ASCII, so it cannot forge log
/// lines), at most [`MAX_CLIENT_REQUEST_ID`] of them; `None` if nothing is left.
pub fn client_request_id(raw: &[u8]) -> Option<String> {
    let kept: String = raw
        .iter()
        .filter(|b| b.is_ascii_graphic())
        .take(MAX_CLIENT_REQUEST_ID)
        .map(|b| char::from(*b))
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// The caller's own id for this request, if it sent one (see
/// [`client_request_id`]); an extractor that never rejects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRequestId(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientRequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientRequestId>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The span of a request: method, path and request id. Never the query
/// string, where a careless client may have put a secret.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %crate::oauth::error::shorten(request.uri().path()),
        request_id = %request_id(request.headers()),
    )
}

async fn not_found(uri: axum::http::Uri) -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "error": {
                "code": "Request_ResourceNotFound",
                "message": format!(
                    "No endpoint at {}. Token endpoints live under /{{tenant}}/oauth2/v2.0/, the \
                     management API under /v1.0/, and the full list at /openapi.json.",
                    crate::oauth::error::shorten(uri.path())
                ),
            }
        })),
    )
}

/// A known path with the wrong method: 405 in the path's own error format.
async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let path = crate::oauth::error::shorten(uri.path());
    if crate::arm::is_arm_path(&path) {
        let method: String = method.as_str().chars().take(20).collect();
        return crate::arm::error::ArmError::MethodNotAllowed(method).into_response();
    }
    if !path.starts_with("/v1.0/") {
        let allowed = if path.ends_with("/token") {
            "POST"
        } else {
            "GET"
        };
        return oauth_response::failure(
            &headers,
            crate::oauth::OAuthError::wrong_method(method.as_str(), allowed),
        );
    }
    let message =
        format!("{method} is not allowed on {path}; /openapi.json lists each route's methods.");
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(serde_json::json!({"error": {"code": "Request_BadRequest", "message": message}})),
    )
        .into_response()
}

/// The id [`assign_request_id`] gave this request (or a new one).
pub fn request_id(headers: &axum::http::HeaderMap) -> uuid::Uuid {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::try_parse(v).ok())
        .unwrap_or_else(uuid::Uuid::new_v4)
}

/// The caller's address, if the server recorded it: the TCP peer, or what a
/// trusted proxy forwarded ([`transport::client_address`] decides, once per
/// request). The throttle, the sign-in log and the audit log all use this.
pub fn source_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<transport::ClientAddr>()
        .map(|c| c.0)
        .or_else(|| {
            extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_canonical())
        })
}

/// Extractor for [`source_ip`] (never rejects).
#[derive(Debug, Clone, Copy)]
pub struct Source(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(source_ip(&parts.extensions)))
    }
}
