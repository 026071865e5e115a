//! Who is calling the management API: a bearer token Clavis issued for
//! `api://clavis`, verified (signature, issuer, audience, lifetime), from an
//! application and credential that still exist. Its `tid` scopes the call
//! to one tenant; its `roles` decide what the call may do.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use clavis_store::{Application, Tenant};
use serde::Deserialize;
use uuid::Uuid;

use super::error::GraphError;
use crate::app::AppState;
use crate::audit::Actor;
use crate::builtin::{Role, MANAGEMENT_API_URI};
use crate::directory::Client;
use crate::oauth::claims::AccessTokenClaims;
use crate::oauth::introspection::{self, Expect, Inactive, LEEWAY_SECS};
use crate::oauth::OAuthErrorKind;

/// An authenticated management caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Arc<Tenant>,
    pub app_id: Uuid,
    /// Object id of the caller's own application.
    pub application_id: Uuid,
    pub service_principal_id: Uuid,
    pub display_name: String,
    pub key_id: Uuid,
    pub roles: Vec<Role>,
    pub client_ip: Option<String>,
    pub request_id: Uuid,
    /// The caller's own id for the request, if it sent one.
    pub client_request_id: Option<String>,
}

#[derive(Deserialize)]
struct TidOnly {
    tid: Uuid,
}

/// The `tid` claim of a JWS payload (its base64url middle part), read
/// without verifying anything: only to pick the keys to verify with.
pub(crate) fn unverified_tid(payload: &str) -> Option<Uuid> {
    let bytes = B64.decode(payload).ok()?;
    serde_json::from_slice::<TidOnly>(&bytes)
        .ok()
        .map(|t| t.tid)
}

fn invalid(why: &str) -> GraphError {
    GraphError::Unauthenticated(format!(
        "Access token validation failure: {why}. Get a token for {MANAGEMENT_API_URI}/.default \
         from this server's token endpoint (`clavis login`)."
    ))
}

/// A verified management API token: its tenant, its claims, the client it
/// was issued to and the management API application itself.
pub(crate) struct Verified {
    pub tenant: Arc<Tenant>,
    pub management: Arc<Application>,
    pub claims: AccessTokenClaims,
    pub client: Arc<Client>,
}

/// Why a request carries no valid management API token.
pub(crate) enum Unverified {
    /// No `Authorization` header at all.
    Missing,
    /// A header or token that is not valid; the reason says what is wrong.
    Invalid(&'static str),
    /// A valid token of this server, but for another API.
    OtherAudience,
    /// The check itself failed (store or keys unavailable).
    Failed(GraphError),
}

/// Verify the bearer token of a request as a token for the management API
/// (also used by the Azure Resource Manager routes, which answer in their
/// own error format).
pub(crate) async fn verify(state: &AppState, headers: &HeaderMap) -> Result<Verified, Unverified> {
    let header = headers
        .get(header::AUTHORIZATION)
        .ok_or(Unverified::Missing)?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(Unverified::Invalid(
            "the Authorization header is not 'Bearer <token>'",
        ))?;
    // Which tenant? Read `tid` unverified, only to find the keys to verify with.
    let tid = token
        .split('.')
        .nth(1)
        .and_then(unverified_tid)
        .ok_or(Unverified::Invalid("the token is not a JWT"))?;
    let tenant = state
        .directory
        .tenant_by_id(tid)
        .ok_or(Unverified::Invalid("the token's tenant does not exist"))?;
    let management = management_api(state, tenant.id)
        .await
        .map_err(Unverified::Failed)?;
    // The same rules as introspection (signature, lifetime, issuer, the
    // caller and its credential still there, not revoked), plus the
    // management API as audience. Removing a secret, deleting an app or
    // revoking its tokens cuts off its management access at once.
    let expect = Expect {
        audience: Some(management.app_id),
        exp_leeway: LEEWAY_SECS,
    };
    let (claims, client) = introspection::check(&state.issuer(), &tenant, token, expect)
        .await
        .map_err(|e| {
            Unverified::Failed(match e.kind {
                OAuthErrorKind::TemporarilyUnavailable => GraphError::Unavailable,
                _ => GraphError::Internal,
            })
        })?
        .map_err(|why| match why {
            Inactive::OtherAudience => Unverified::OtherAudience,
            why => Unverified::Invalid(why.reason()),
        })?;
    Ok(Verified {
        tenant,
        management,
        claims,
        client,
    })
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = GraphError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Verified {
            tenant,
            management,
            claims,
            client,
        } = verify(state, &parts.headers)
            .await
            .map_err(|why| match why {
                Unverified::Missing => invalid("the request has no Authorization header"),
                Unverified::Invalid(reason) => invalid(reason),
                Unverified::OtherAudience => {
                    invalid(&format!("the token's audience is not {MANAGEMENT_API_URI}"))
                }
                Unverified::Failed(error) => error,
            })?;

        // Roles: those in the token that are still granted now, so revoking
        // a management role takes effect at once, not when the token expires.
        let granted: Vec<Role> = client
            .grants
            .iter()
            .filter(|g| g.resource_id == management.service_principal_id)
            .filter_map(|g| {
                management
                    .app_roles
                    .iter()
                    .find(|r| r.id == g.app_role_id && r.is_enabled)
            })
            .filter_map(|r| Role::parse(&r.value))
            .collect();
        let roles = claims
            .roles
            .iter()
            .filter_map(|r| Role::parse(r))
            .filter(|r| granted.contains(r))
            .collect();

        let client_ip = crate::http::source_ip(&parts.extensions).map(|ip| ip.to_string());
        Ok(Caller {
            tenant,
            app_id: claims.azp,
            application_id: client.app.id,
            service_principal_id: client.app.service_principal_id,
            display_name: client.app.display_name.clone(),
            key_id: claims.credential_id,
            roles,
            client_ip,
            request_id: crate::http::request_id(&parts.headers),
            client_request_id: parts
                .extensions
                .get::<crate::http::ClientRequestId>()
                .and_then(|c| c.0.clone()),
        })
    }
}

/// The tenant's built-in management API application.
pub async fn management_api(
    state: &AppState,
    tenant: Uuid,
) -> Result<Arc<Application>, GraphError> {
    state
        .directory
        .resource(tenant, MANAGEMENT_API_URI)
        .await?
        .ok_or_else(|| {
            tracing::error!(%tenant, "tenant has no management API application");
            GraphError::Internal
        })
}

impl Caller {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Audit actor for this caller.
    pub fn actor(&self) -> Actor {
        Actor {
            app_id: Some(self.app_id),
            service_principal_id: Some(self.service_principal_id),
            display_name: self.display_name.clone(),
            key_id: Some(self.key_id),
            client_ip: self.client_ip.clone(),
            correlation_id: self.request_id,
            client_request_id: self.client_request_id.clone(),
        }
    }

    /// May list or read applications at all? Returns the owner filter to
    /// apply (`Some(sp)` when the caller may only see what it owns).
    pub fn read_scope(&self) -> Result<Option<Uuid>, GraphError> {
        if self.has(Role::ApplicationReadWriteAll) || self.has(Role::ApplicationReadAll) {
            Ok(None)
        } else if self.has(Role::ApplicationReadWriteOwnedBy) {
            Ok(Some(self.service_principal_id))
        } else {
            Err(denied(
                "Application.Read.All, Application.ReadWrite.All or Application.ReadWrite.OwnedBy",
            ))
        }
    }

    /// May read this application?
    pub fn can_read(&self, app: &Application) -> Result<(), GraphError> {
        match self.read_scope()? {
            None => Ok(()),
            Some(owner) if app.owners.contains(&owner) => Ok(()),
            Some(_) => Err(not_owner()),
        }
    }

    /// May change this application (and its secrets and role grants)?
    pub fn can_write(&self, app: &Application) -> Result<(), GraphError> {
        if self.has(Role::ApplicationReadWriteAll) {
            Ok(())
        } else if self.has(Role::ApplicationReadWriteOwnedBy) {
            if app.owners.contains(&self.service_principal_id) {
                Ok(())
            } else {
                Err(not_owner())
            }
        } else {
            Err(denied(
                "Application.ReadWrite.All or Application.ReadWrite.OwnedBy",
            ))
        }
    }

    /// Is `application` (an object id) the caller's own application, and
    /// may the caller rotate that application's secrets
    /// (`Application.Credentials.RotateSelf`)? Such a caller may read its own
    /// application and add or remove its secrets, and nothing else.
    pub fn rotates_self(&self, application: Uuid) -> bool {
        application == self.application_id && self.has(Role::ApplicationCredentialsRotateSelf)
    }

    /// May add or remove secrets of `application` at all? Like
    /// [`may_write`](Self::may_write), checked before the object is read;
    /// `Application.Credentials.RotateSelf` opens the caller's own application.
    pub fn may_write_secrets(&self, application: Uuid) -> Result<(), GraphError> {
        if self.rotates_self(application) {
            return Ok(());
        }
        self.may_write().map_err(|_| {
            denied(
                "Application.ReadWrite.All or Application.ReadWrite.OwnedBy (or, for its own \
                 application only, Application.Credentials.RotateSelf)",
            )
        })
    }

    /// May add or remove this application's secrets?
    pub fn can_write_secrets(&self, app: &Application) -> Result<(), GraphError> {
        if self.rotates_self(app.id) {
            return Ok(());
        }
        self.can_write(app)
    }

    /// May change any application at all? Checked before an object is read,
    /// so a caller without a write role cannot probe which ids exist.
    pub fn may_write(&self) -> Result<(), GraphError> {
        self.can_create()
    }

    /// May create applications?
    pub fn can_create(&self) -> Result<(), GraphError> {
        if self.has(Role::ApplicationReadWriteAll) || self.has(Role::ApplicationReadWriteOwnedBy) {
            Ok(())
        } else {
            Err(denied(
                "Application.ReadWrite.All or Application.ReadWrite.OwnedBy",
            ))
        }
    }

    /// May read the audit log?
    pub fn can_read_audit(&self) -> Result<(), GraphError> {
        if self.has(Role::AuditLogReadAll) {
            Ok(())
        } else {
            Err(denied("AuditLog.Read.All"))
        }
    }
}

fn denied(needed: &str) -> GraphError {
    GraphError::Forbidden(format!(
        "Insufficient privileges to complete the operation: the caller needs the {needed} role on \
         {MANAGEMENT_API_URI} (grant it with `clavis role grant --resource {MANAGEMENT_API_URI} ...`)."
    ))
}

fn not_owner() -> GraphError {
    GraphError::Forbidden(
        "Insufficient privileges to complete the operation: with Application.ReadWrite.OwnedBy a \
         caller can only manage applications it owns."
            .into(),
    )
}
