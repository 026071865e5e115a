//! The Azure Resource Manager routes' one error type, rendered as ARM does:
//! `{"error":{"code":..,"message":..}}`, with `WWW-Authenticate` on 401.
//! Internal details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Everything an ARM route can answer besides success.
#[derive(Debug)]
pub enum ArmError {
    /// 400 `MissingApiVersionParameter`: no `api-version` in the query.
    MissingApiVersion,
    /// 400 `InvalidApiVersionParameter`: an `api-version` that is not a date.
    InvalidApiVersion,
    /// 400 `InvalidRequestUri`: a query string that cannot be decoded.
    BadQuery(String),
    /// 401 `AuthenticationFailed`: no `Authorization` header.
    MissingToken,
    /// 401 `InvalidAuthenticationToken`: a header or token that is not valid.
    InvalidToken(&'static str),
    /// 401 `InvalidAuthenticationTokenAudience`: a valid token for another API.
    WrongAudience,
    /// 405 `MethodNotAllowed`: these routes take GET only.
    MethodNotAllowed(String),
    /// 503 `ServiceUnavailable`: the store or the keys do not answer.
    Unavailable,
    /// 500 `InternalServerError`: logged with details, sent without.
    Internal,
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let audience = crate::builtin::MANAGEMENT_API_URI;
        let (status, code, message) = match self {
            Self::MissingApiVersion => (
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests."
                    .to_owned(),
            ),
            Self::InvalidApiVersion => (
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                "The api-version is not valid: use a date such as 2022-12-01 (optionally with \
                 -preview)."
                    .to_owned(),
            ),
            Self::BadQuery(why) => (
                StatusCode::BAD_REQUEST,
                "InvalidRequestUri",
                format!("The query string is not valid: {why}."),
            ),
            Self::MissingToken => (
                StatusCode::UNAUTHORIZED,
                "AuthenticationFailed",
                format!(
                    "Authentication failed. The 'Authorization' header is missing: send a \
                     bearer token for {audience}/.default from this server's token endpoint."
                ),
            ),
            Self::InvalidToken(why) => (
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                format!(
                    "The access token is invalid: {why}. Get a token for {audience}/.default \
                     from this server's token endpoint."
                ),
            ),
            Self::WrongAudience => (
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationTokenAudience",
                format!(
                    "The access token has an invalid audience: Azure Resource Manager routes \
                     take tokens for {audience}/.default (the cloud metadata's \
                     authentication.audiences)."
                ),
            ),
            Self::MethodNotAllowed(method) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("The HTTP method '{method}' is not supported here: use GET."),
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The store or the key provider cannot be reached; retry shortly.".to_owned(),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "An internal error occurred; the server log has the details under this \
                 request-id."
                    .to_owned(),
            ),
        };
        let body = json!({"error": {"code": code, "message": message}});
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // ARM's challenge: error and description, as RFC 6750 §3 has it.
            let challenge = format!(
                "Bearer realm=\"clavis\", error=\"invalid_token\", error_description=\"{}\"",
                message.replace(['"', '\\'], "'")
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}
