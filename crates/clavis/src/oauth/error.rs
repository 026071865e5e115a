//! OAuth 2.0 errors (RFC 6749 §5.2) carrying Entra ID's numeric codes, so
//! scripts that branch on `error_codes` keep working.

/// The RFC 6749 `error` value, which fixes the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorKind {
    /// 400: malformed request, missing or duplicated parameter.
    InvalidRequest,
    /// 401: client authentication failed.
    InvalidClient,
    /// 400: the grant type is not supported.
    UnsupportedGrantType,
    /// 400: the scope is malformed or names no resource.
    InvalidScope,
    /// 400: the resource named in the scope does not exist (Entra's `invalid_resource`).
    InvalidResource,
    /// 404-like 400: the tenant does not exist (Entra's `invalid_tenant`).
    InvalidTenant,
    /// 413: the request body is too large.
    PayloadTooLarge,
    /// 405: a known endpoint, the wrong HTTP method.
    MethodNotAllowed,
    /// 503: the store cannot be reached; retry later. Never a token instead.
    TemporarilyUnavailable,
    /// 429: too many failed client authentications; retry after `Retry-After`.
    Throttled,
    /// 500: a bug; details are logged with the trace id, never sent.
    ServerError,
}

impl OAuthErrorKind {
    /// The `error` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::PayloadTooLarge | Self::MethodNotAllowed => {
                "invalid_request"
            }
            Self::InvalidClient => "invalid_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidResource => "invalid_resource",
            Self::InvalidTenant => "invalid_tenant",
            Self::TemporarilyUnavailable | Self::Throttled => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidClient => 401,
            Self::PayloadTooLarge => 413,
            Self::MethodNotAllowed => 405,
            Self::TemporarilyUnavailable => 503,
            Self::Throttled => 429,
            Self::ServerError => 500,
            _ => 400,
        }
    }
}

/// An OAuth error ready to be rendered: kind, Entra code, human text that
/// says what to do next. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub kind: OAuthErrorKind,
    /// Entra's AADSTS number for the same condition.
    pub code: u32,
    pub description: String,
    /// Seconds for a `Retry-After` header (throttling only).
    pub retry_after: Option<u64>,
}

/// Keep echoed input short: a 1 MB parameter must not come back in an error.
pub fn shorten(s: &str) -> String {
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

impl OAuthError {
    fn new(kind: OAuthErrorKind, code: u32, description: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    /// AADSTS900144: a required parameter is missing.
    pub fn missing(param: &str) -> Self {
        Self::new(
            OAuthErrorKind::InvalidRequest,
            900144,
            format!("The request body must contain the following parameter: '{param}'."),
        )
    }

    /// AADSTS9002313: the request is malformed; `why` says how.
    pub fn malformed(why: impl std::fmt::Display) -> Self {
        Self::new(
            OAuthErrorKind::InvalidRequest,
            9002313,
            format!("Invalid request. Request is malformed or invalid: {why}"),
        )
    }

    /// A parameter given more than once (RFC 6749 §3.2).
    pub fn duplicated(param: &str) -> Self {
        Self::malformed(format!(
            "the parameter '{param}' is included more than once."
        ))
    }

    /// A client secret in the URL query (AADSTS9002313, malformed request).
    pub fn secret_in_query() -> Self {
        Self::new(
            OAuthErrorKind::InvalidRequest,
            9002313,
            "Client credentials must not be sent in the URL query string, where proxies and \
             logs record them. Send client_secret in the form body (client_secret_post) or an \
             HTTP Basic Authorization header (client_secret_basic).",
        )
    }

    /// AADSTS70003: unsupported grant type.
    pub fn unsupported_grant(grant: &str) -> Self {
        let grant = shorten(grant);
        Self::new(
            OAuthErrorKind::UnsupportedGrantType,
            70003,
            format!(
                "The app requested an unsupported grant type '{grant}'. This server supports \
                 'client_credentials'."
            ),
        )
    }

    /// AADSTS90002: no such tenant.
    pub fn unknown_tenant(tenant: &str) -> Self {
        let tenant = shorten(tenant);
        Self::new(
            OAuthErrorKind::InvalidTenant,
            90002,
            format!(
                "Tenant '{tenant}' not found. Check the authority URL: it names a tenant by its \
                 GUID or its name (the bootstrap file's tenantId)."
            ),
        )
    }

    /// AADSTS7000218: no client secret presented.
    pub fn no_credential() -> Self {
        Self::new(
            OAuthErrorKind::InvalidClient,
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or \
             'client_secret'.",
        )
    }

    /// AADSTS700016: no such application in this tenant.
    pub fn unknown_client(client_id: &str, tenant: &str) -> Self {
        let (client_id, tenant) = (shorten(client_id), shorten(tenant));
        Self::new(
            OAuthErrorKind::InvalidClient,
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory \
                 '{tenant}'. Check the client id, and that you are sending it to the right tenant."
            ),
        )
    }

    /// AADSTS7000215: the secret matches no credential of the application.
    pub fn wrong_secret(client_id: &str) -> Self {
        Self::new(
            OAuthErrorKind::InvalidClient,
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is \
                 the client secret value, not the client secret ID, for a secret added to app \
                 '{client_id}'."
            ),
        )
    }

    /// AADSTS7000222: the secret matched a credential that has expired.
    pub fn expired_secret(client_id: &str, key_id: &str) -> Self {
        Self::new(
            OAuthErrorKind::InvalidClient,
            7000222,
            format!(
                "The provided client secret keys for app '{client_id}' are expired (keyId \
                 {key_id}). Create a new secret with `clavis secret add` or addPassword, and use it."
            ),
        )
    }

    /// AADSTS900023-like: a client id that is not a GUID.
    pub fn malformed_client_id() -> Self {
        Self::new(
            OAuthErrorKind::InvalidRequest,
            700038,
            "client_id must be the application's appId, a GUID.",
        )
    }

    /// AADSTS1002012: scope is not `{resource}/.default`.
    pub fn bad_scope(scope: &str) -> Self {
        Self::new(
            OAuthErrorKind::InvalidScope,
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must \
                 have a scope value with /.default suffixed to the resource identifier \
                 (application ID URI)."
            ),
        )
    }

    /// AADSTS70011: more than one resource in one request.
    pub fn many_resources() -> Self {
        Self::new(
            OAuthErrorKind::InvalidScope,
            70011,
            "The provided value for the input parameter 'scope' is not valid: a token is issued \
             for one resource per request. Ask for each resource's '{resource}/.default' \
             separately.",
        )
    }

    /// AADSTS500011: the resource is not registered in this tenant.
    pub fn unknown_resource(resource: &str, tenant: &str) -> Self {
        let (resource, tenant) = (shorten(resource), shorten(tenant));
        Self::new(
            OAuthErrorKind::InvalidResource,
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named \
                 {tenant}. Check the identifier URI or appId in the scope, or register the API \
                 with `clavis app create`."
            ),
        )
    }

    /// Request body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            OAuthErrorKind::PayloadTooLarge,
            9002313,
            format!("The request body is larger than {limit} bytes."),
        )
    }

    /// AADSTS900561: the endpoint does not take this HTTP method.
    pub fn wrong_method(method: &str, allowed: &str) -> Self {
        Self::new(
            OAuthErrorKind::MethodNotAllowed,
            900561,
            format!(
                "The endpoint only accepts {allowed} requests. Received a {} request.",
                shorten(method)
            ),
        )
    }

    /// The store is down: never guess, ask the client to retry.
    pub fn unavailable() -> Self {
        Self::new(
            OAuthErrorKind::TemporarilyUnavailable,
            90033,
            "The service is temporarily unavailable (storage cannot be reached). Retry shortly.",
        )
    }

    /// The key provider (a PKCS#11 token) could not sign: never a token
    /// signed by another key instead.
    pub fn signing_unavailable() -> Self {
        Self::new(
            OAuthErrorKind::TemporarilyUnavailable,
            90033,
            "The service is temporarily unavailable (the token signing key cannot be used). Retry \
             shortly.",
        )
    }

    /// The request (its body included) took longer than the server allows.
    pub fn timed_out(seconds: u64) -> Self {
        Self::new(
            OAuthErrorKind::TemporarilyUnavailable,
            90033,
            format!(
                "The request did not complete within {seconds} seconds; send the whole request \
                 promptly and retry."
            ),
        )
    }

    /// AADSTS90055 (Entra's throttling code) with HTTP 429: this client
    /// authentication failed (a wrong secret or an unknown client id; a
    /// secret that matches is never throttled), and its address or
    /// application has had too many failures to be told which.
    pub fn throttled(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                OAuthErrorKind::Throttled,
                90055,
                format!(
                    "Too many failed client authentications from this address or for this \
                     application, and this one failed too (its details are withheld while the \
                     limit holds). Check the client id and secret: a valid secret is always \
                     served. Retry after {retry_after} seconds for the detailed error."
                ),
            )
        }
    }

    /// An internal failure; the details are in the server log under the trace id.
    pub fn internal() -> Self {
        Self::new(
            OAuthErrorKind::ServerError,
            90100,
            "An internal error occurred; the server log has the details under this trace id.",
        )
    }
}

impl From<clavis_store::StoreError> for OAuthError {
    fn from(err: clavis_store::StoreError) -> Self {
        match err {
            clavis_store::StoreError::Unavailable(_) => {
                tracing::warn!(error = %err, "store unavailable on the token path");
                Self::unavailable()
            }
            other => {
                tracing::error!(error = %other, "store error on the token path");
                Self::internal()
            }
        }
    }
}

impl From<crate::keys::keyring::KeyringError> for OAuthError {
    fn from(err: crate::keys::keyring::KeyringError) -> Self {
        use crate::keys::keyring::KeyringError;
        if matches!(
            err,
            KeyringError::Provider(_) | KeyringError::Corrupt { .. }
        ) {
            tracing::error!(error = %err, "key provider failed; no token issued (fail closed)");
            Self::unavailable()
        } else if err.is_unavailable() {
            tracing::warn!(error = %err, "signing keys unavailable");
            Self::unavailable()
        } else {
            tracing::error!(error = %err, "no usable signing key");
            Self::internal()
        }
    }
}

impl From<crate::keys::signing::SignError> for OAuthError {
    fn from(err: crate::keys::signing::SignError) -> Self {
        tracing::error!(
            key_provider = %err.provider,
            kid = %err.kid,
            error = %err.source,
            "token signing failed: the key provider cannot sign; answering 503 (no fallback key)"
        );
        Self::signing_unavailable()
    }
}
