//! Rendering OAuth errors the way Entra ID does: RFC 6749 §5.2 JSON plus
//! `error_codes`, `timestamp`, `trace_id`, `correlation_id`; 401 with
//! `WWW-Authenticate` only when the client used Basic.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::oauth::{OAuthError, OAuthErrorKind};

/// An OAuth error with what is needed to render it.
#[derive(Debug)]
pub struct OAuthFailure {
    pub error: OAuthError,
    pub basic_used: bool,
    pub trace_id: Uuid,
    pub correlation_id: Uuid,
}

/// The response for `error` on an endpoint where no client used Basic.
pub fn failure(headers: &axum::http::HeaderMap, error: OAuthError) -> Response {
    let trace_id = super::request_id(headers);
    OAuthFailure {
        error,
        basic_used: false,
        trace_id,
        correlation_id: trace_id,
    }
    .into_response()
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let timestamp = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let e = &self.error;
        let body = json!({
            "error": e.kind.as_str(),
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
                e.code, e.description, self.trace_id, self.correlation_id, timestamp
            ),
            "error_codes": [e.code],
            "timestamp": timestamp,
            "trace_id": self.trace_id,
            "correlation_id": self.correlation_id,
        });
        let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(seconds) = e.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if e.kind == OAuthErrorKind::InvalidClient && self.basic_used {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"clavis\", charset=\"UTF-8\""),
            );
        }
        response
    }
}
