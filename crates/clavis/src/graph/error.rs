//! The management API's one error type, rendered as Microsoft Graph does:
//! `{"error":{"code":..,"message":..,"innerError":{..}}}`. Internal details
//! are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use clavis_store::StoreError;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Everything a management call can answer besides success.
#[derive(Debug)]
pub enum GraphError {
    /// 400 `Request_BadRequest`: the message says what to fix.
    BadRequest(String),
    /// 401 `InvalidAuthenticationToken`: no, malformed or expired token.
    Unauthenticated(String),
    /// 403 `Authorization_RequestDenied`: the token lacks the role.
    Forbidden(String),
    /// 404 `Request_ResourceNotFound` (also for objects of another tenant).
    NotFound(String),
    /// 413 `Request_EntityTooLarge`.
    TooLarge(usize),
    /// 415 `Request_UnsupportedMediaType`.
    UnsupportedMediaType,
    /// 503 `ServiceUnavailable`: the store does not answer.
    Unavailable,
    /// 503 `ServiceUnavailable`: the key provider cannot seal, open or
    /// sign (logged with details; Clavis fails closed).
    KeyProviderUnavailable,
    /// 503 `ServiceUnavailable`: the store's disk is full, so the change
    /// (and its audit event) was not made.
    StoreFull,
    /// 500 `InternalServerError`: logged with details, sent without.
    Internal,
    /// 409 `Request_Conflict`: the request is valid but the state of the
    /// installation forbids it now (e.g. a rewrap under a key that a live
    /// node lacks); the message says what to change first.
    Conflict(String),
}

impl GraphError {
    pub fn not_found(kind: &str, id: impl std::fmt::Display) -> Self {
        Self::NotFound(format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present ({kind})."
        ))
    }

    pub fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }
}

impl From<StoreError> for GraphError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::NotFound(format!(
                "Resource does not exist or was deleted meanwhile ({what})."
            )),
            StoreError::Conflict(rule) => Self::BadRequest(rule),
            StoreError::Unavailable(_) if err.is_disk_full() => {
                tracing::error!(error = %err, "store disk full: changes fail until space is freed");
                Self::StoreFull
            }
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %err, "store unavailable");
                Self::Unavailable
            }
            StoreError::Internal(_) => {
                tracing::error!(error = %err, "store error");
                Self::Internal
            }
        }
    }
}

impl From<crate::keys::ProviderError> for GraphError {
    fn from(err: crate::keys::ProviderError) -> Self {
        tracing::error!(error = %err, "key provider failed; refusing the operation (fail closed)");
        Self::KeyProviderUnavailable
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "Request_BadRequest", m),
            Self::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", m),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "Authorization_RequestDenied", m),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, "Request_ResourceNotFound", m),
            Self::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request_EntityTooLarge",
                format!("The request body is larger than {limit} bytes."),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Request_UnsupportedMediaType",
                "Send the request body as JSON with Content-Type: application/json.".into(),
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The store cannot be reached; retry shortly.".into(),
            ),
            Self::KeyProviderUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The key provider cannot serve this request; the server log says why. Nothing was changed."
                    .into(),
            ),
            Self::StoreFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The store's disk is full, so nothing was changed; retry once space is freed."
                    .into(),
            ),
            Self::Conflict(m) => (StatusCode::CONFLICT, "Request_Conflict", m),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "An internal error occurred; the server log has the details under this request-id."
                    .into(),
            ),
        };
        let date = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let mut response = (
            status,
            Json(
                json!({"error": {"code": code, "message": message, "innerError": {"date": date}}}),
            ),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"clavis\""),
            );
        }
        response
    }
}
