//! `POST /{tenant}/oauth2/v2.0/introspect` (RFC 7662) and
//! `POST /{tenant}/oauth2/v2.0/revoke` (RFC 7009): the caller authenticates
//! like at the token endpoint (client_secret_basic or client_secret_post).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clavis_store::Mutation;

use super::oauth_response::{failure, OAuthFailure};
use super::sign_in::Attempt;
use crate::app::AppState;
use crate::audit::{Action, Actor};
use crate::directory::Client;
use crate::oauth::claims::AccessTokenClaims;
use crate::oauth::client_credentials::Issuer;
use crate::oauth::introspection::{self, Introspection};
use crate::oauth::{client_auth, request, OAuthError};

/// Form fields of introspection and revocation (documentation only).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TokenQueryForm {
    /// The access token.
    token: String,
    /// `access_token` (the only kind Clavis issues; other hints are ignored).
    token_type_hint: Option<String>,
    /// The caller's appId (or use HTTP Basic).
    client_id: Option<String>,
    /// The caller's secret (or use HTTP Basic).
    client_secret: Option<String>,
}

struct Authenticated {
    client: Arc<Client>,
    /// The credential the caller authenticated with.
    key_id: uuid::Uuid,
    tenant: Arc<clavis_store::Tenant>,
    token: String,
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Read the form, authenticate the caller, return the token asked about.
/// The client authentication is a sign-in like one at the token endpoint
/// (success or failure, with its address and user agent): a secret tried
/// here shows in the sign-in log, its `lastUsedDateTime` and the
/// compromise report.
async fn authenticate(
    state: &AppState,
    tenant: Result<Path<String>, PathRejection>,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    source: Option<std::net::IpAddr>,
) -> Result<Authenticated, OAuthFailure> {
    let trace_id = super::request_id(headers);
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let basic_used = request::uses_basic(authorization);
    let fail = |error: OAuthError| OAuthFailure {
        error,
        basic_used,
        trace_id,
        correlation_id: trace_id,
    };
    let Ok(Path(segment)) = tenant else {
        return Err(fail(OAuthError::malformed(
            "the tenant in the URL is not valid UTF-8.",
        )));
    };
    let tenant = state
        .directory
        .tenant(&segment)
        .ok_or_else(|| fail(OAuthError::unknown_tenant(&segment)))?;
    let mut attempt = Attempt::new(headers, source, None, state.clock.now());
    let refused = |attempt: &Attempt, error: OAuthError| {
        state.sign_ins.record(attempt.failed(tenant.id, error.code));
        fail(error)
    };
    let body = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            return Err(refused(
                &attempt,
                OAuthError::too_large(state.max_body_bytes),
            ))
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let form = match request::parse_client_form(
        content_type,
        query,
        authorization,
        &body,
        &["token", "token_type_hint"],
    ) {
        Ok(form) => form,
        Err(e) => return Err(refused(&attempt, e)),
    };
    attempt = attempt.presenting(form.client_id.as_deref());
    if form.client_id.is_none() && form.client_secret.is_none() {
        // RFC 7662 §2.1 / RFC 7009 §2.1: the caller must authenticate.
        return Err(refused(&attempt, OAuthError::no_credential()));
    }
    let issuer = state.issuer();
    let (client, key_id) = match client_auth::authenticate(
        &issuer,
        &tenant,
        &segment,
        form.client_id.as_deref(),
        form.client_secret.as_ref(),
        source,
    )
    .await
    {
        Ok(authenticated) => authenticated,
        Err(e) => return Err(refused(&attempt, e)),
    };
    state
        .sign_ins
        .record(attempt.succeeded(tenant.id, key_id, None));
    let token = form
        .get("token")
        .ok_or_else(|| fail(OAuthError::missing("token")))?
        .to_owned();
    Ok(Authenticated {
        client,
        key_id,
        tenant,
        token,
    })
}

/// The claims of the token the caller asks about, if it is active and the
/// caller may know about it (its holder, audience or an admin).
async fn examine(
    issuer: &Issuer<'_>,
    caller: &Authenticated,
) -> Result<Option<AccessTokenClaims>, OAuthError> {
    introspection::visible_active_claims(issuer, &caller.tenant, &caller.client, &caller.token)
        .await
}

/// Is this access token active? (RFC 7662; the caller must authenticate.)
#[utoipa::path(post, path = "/{tenant}/oauth2/v2.0/introspect", tag = "oauth",
    params(("tenant" = String, Path, description = "Tenant GUID or name")),
    request_body(content = TokenQueryForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "`{\"active\":false}`, or `active: true` with the token's claims for its holder, its audience or a tenant admin"),
        (status = 400, description = "invalid_request"),
        (status = 401, description = "invalid_client"),
        (status = 429, description = "temporarily_unavailable (90055): too many failed client authentications; see `Retry-After`"),
        (status = 503, description = "temporarily_unavailable")
    ))]
pub async fn introspect(
    State(state): State<Arc<AppState>>,
    tenant: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    super::Source(source): super::Source,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = match authenticate(&state, tenant, query.as_deref(), &headers, body, source).await
    {
        Ok(caller) => caller,
        Err(failure) => return failure.into_response(),
    };
    let issuer = state.issuer();
    // A token the caller may not know about is, for it, not active (RFC 7662 §2.2).
    let answer = examine(&issuer, &caller).await.map(|found| match found {
        Some(claims) => introspection::describe(claims),
        None => Introspection::inactive(),
    });
    match answer {
        Ok(answer) => no_store(Json(answer).into_response()),
        Err(e) => failure(&headers, e),
    }
}

/// Revoke an access token (RFC 7009): introspection then calls it inactive.
#[utoipa::path(post, path = "/{tenant}/oauth2/v2.0/revoke", tag = "oauth",
    params(("tenant" = String, Path, description = "Tenant GUID or name")),
    request_body(content = TokenQueryForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked; or the token was not valid anyway, or is not the caller's to revoke (not its holder, audience or a tenant admin): the same empty answer, so it tells nothing about another client's token"),
        (status = 400, description = "invalid_request"),
        (status = 401, description = "invalid_client"),
        (status = 429, description = "temporarily_unavailable (90055): too many failed client authentications; see `Retry-After`"),
        (status = 503, description = "temporarily_unavailable")
    ))]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    tenant: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    super::Source(source): super::Source,
    client_request_id: super::ClientRequestId,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = match authenticate(&state, tenant, query.as_deref(), &headers, body, source).await
    {
        Ok(caller) => caller,
        Err(failure) => return failure.into_response(),
    };
    let issuer = state.issuer();
    let outcome = async {
        // RFC 7009 §2.2: an invalid token is not an error. Nor is another
        // client's token: it is left alone with the same answer, so that
        // revocation cannot tell whether someone else's token is live.
        let Some(claims) = examine(&issuer, &caller).await? else {
            return Ok(());
        };
        let expires_at = time::OffsetDateTime::from_unix_timestamp(claims.exp)
            .unwrap_or_else(|_| state.clock.now());
        let actor = Actor {
            app_id: Some(caller.client.app.app_id),
            service_principal_id: Some(caller.client.app.service_principal_id),
            display_name: caller.client.app.display_name.clone(),
            key_id: Some(caller.key_id),
            client_ip: source.map(|ip| ip.to_string()),
            correlation_id: super::request_id(&headers),
            client_request_id: client_request_id.0,
        };
        let event = actor.succeeded(
            caller.tenant.id,
            state.clock.now(),
            Action {
                activity: "Revoke access token",
                category: "TokenManagement",
                operation: "Delete",
                target_type: "AccessToken",
                target_id: claims.jti.to_string(),
                target_name: format!("token of {}", claims.azp),
                target_key_id: Some(claims.credential_id),
            },
        );
        let mutation = Mutation::RevokeToken {
            tenant_id: caller.tenant.id,
            jti: claims.jti,
            expires_at,
        };
        state.directory.commit(&[mutation], &[event]).await?;
        Ok::<_, OAuthError>(())
    }
    .await;
    match outcome {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => failure(&headers, e),
    }
}
