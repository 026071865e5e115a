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
    let body = axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| fail(OAuthError::too_large(state.max_body_bytes)))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let form = request::parse_client_form(
        content_type,
        query,
        authorization,
        &body,
        &["token", "token_type_hint"],
    )
    .map_err(fail)?;
    if form.client_id.is_none() && form.client_secret.is_none() {
        // RFC 7662 §2.1 / RFC 7009 §2.1: the caller must authenticate.
        return Err(fail(OAuthError::no_credential()));
    }
    let issuer = state.issuer();
    let (client, _) = client_auth::authenticate(
        &issuer,
        &tenant,
        &segment,
        form.client_id.as_deref(),
        form.client_secret.as_ref(),
        source,
    )
    .await
    .map_err(fail)?;
    let token = form
        .get("token")
        .ok_or_else(|| fail(OAuthError::missing("token")))?
        .to_owned();
    Ok(Authenticated {
        client,
        tenant,
        token,
    })
}

/// The claims of the token the caller asks about, if it is active, and
/// whether the caller may know about it (its holder, audience or an admin).
async fn examine(
    issuer: &Issuer<'_>,
    caller: &Authenticated,
) -> Result<Option<(AccessTokenClaims, bool)>, OAuthError> {
    let Some(claims) = introspection::active_claims(issuer, &caller.tenant, &caller.token).await?
    else {
        return Ok(None);
    };
    let visible = introspection::may_see(issuer, &caller.tenant, &caller.client, &claims).await?;
    Ok(Some((claims, visible)))
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
        Some((claims, true)) => introspection::describe(claims),
        _ => Introspection::inactive(),
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
        (status = 200, description = "Revoked, or the token was not valid anyway"),
        (status = 400, description = "invalid_request, unauthorized_client (not the token's holder, audience or a tenant admin)"),
        (status = 401, description = "invalid_client"),
        (status = 429, description = "temporarily_unavailable (90055): too many failed client authentications; see `Retry-After`"),
        (status = 503, description = "temporarily_unavailable")
    ))]
pub async fn revoke(
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
    let outcome = async {
        let claims = match examine(&issuer, &caller).await? {
            // RFC 7009 §2.2: an invalid token is not an error.
            None => return Ok(()),
            Some((_, false)) => return Err(OAuthError::not_yours()),
            Some((claims, true)) => claims,
        };
        let expires_at = time::OffsetDateTime::from_unix_timestamp(claims.exp)
            .unwrap_or_else(|_| state.clock.now());
        let actor = Actor {
            app_id: Some(caller.client.app.app_id),
            service_principal_id: Some(caller.client.app.service_principal_id),
            display_name: caller.client.app.display_name.clone(),
            key_id: None,
            client_ip: None,
            correlation_id: super::request_id(&headers),
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
