//! The last administrator cannot lock everyone out. Two changes are
//! refused (400, saying why and what to do first):
//! - removing the last usable client secret of the application the caller
//!   is signed in as (`removePassword` on itself): nobody could sign in as
//!   it again to undo anything;
//! - any change that leaves the tenant without a *live* holder of
//!   `Application.ReadWrite.All` on `api://clavis`: removing that grant
//!   (`DELETE …/appRoleAssignedTo/{id}`), deleting the application that
//!   holds it (`DELETE /v1.0/applications/{id}`, which deletes its service
//!   principal and grants), or removing its last usable secret
//!   (`removePassword`).
//!
//! A holder is *live* when it has a client secret that works now (started,
//! not ended): a holder whose secrets have all expired cannot get a token,
//! so it does not count, and nobody but another administrator could give it
//! a new secret. `reportCompromisedPassword` is never refused here: a leaked
//! secret must always be removable, whoever it belongs to.
//!
//! Checks and commits of such changes are serialised on each node by
//! [`Guard`], so two administrators removing each other on one node cannot
//! both pass; nodes sharing a PostgreSQL database check independently. The
//! way back from a lock-out in any case is `clavis admin recover` (run by an
//! operator with the data directory and the key-encryption key).

use std::collections::HashSet;

use clavis_store::{Application, RoleAssignment};
use time::OffsetDateTime;
use uuid::Uuid;

use super::caller::{management_api, Caller};
use super::error::GraphError;
use crate::app::AppState;
use crate::audit::Action;
use crate::builtin::{Role, MANAGEMENT_API_URI};

/// Serialises the check and commit of changes that may remove
/// management access, on this node.
#[derive(Debug, Default)]
pub struct Guard(tokio::sync::Mutex<()>);

impl Guard {
    /// Hold until the change is committed (or refused).
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.0.lock().await
    }
}

/// A change that may take management access away.
#[derive(Debug, Clone, Copy)]
pub enum Loss<'a> {
    /// `removePassword` of `key_id` on `app`.
    Secret { app: &'a Application, key_id: Uuid },
    /// Deleting `app` (with its service principal and grants).
    Application(&'a Application),
    /// Deleting one role grant.
    Grant(&'a RoleAssignment),
}

/// Whether `credential` can get a token at `now`.
fn usable(credential: &clavis_store::PasswordCredential, now: OffsetDateTime) -> bool {
    credential.start_at <= now && now < credential.end_at
}

/// Whether `app` keeps a usable secret after `loss`.
fn keeps_a_secret(app: &Application, loss: Loss<'_>, now: OffsetDateTime) -> bool {
    let removed = match loss {
        Loss::Secret {
            app: target,
            key_id,
        } if target.id == app.id => Some(key_id),
        Loss::Application(target) if target.id == app.id => return false,
        _ => None,
    };
    app.password_credentials
        .iter()
        .filter(|c| Some(c.key_id) != removed)
        .any(|c| usable(c, now))
}

/// Refuse `loss` (and record the refusal in the audit log) if it locks the
/// caller out of its own application or leaves the tenant without a live
/// administrator. Call it holding [`Guard::hold`], right before the commit.
pub async fn check(
    state: &AppState,
    caller: &Caller,
    loss: Loss<'_>,
    action: &Action,
) -> Result<(), GraphError> {
    let now = state.clock.now();
    let refusal = match own_last_secret(caller, loss, now) {
        Some(why) => Some(why),
        None => last_administrator(state, caller, loss, now).await?,
    };
    let Some(why) = refusal else {
        return Ok(());
    };
    let event = caller
        .actor()
        .failed(caller.tenant.id, now, action.clone(), &why);
    if let Err(e) = state.directory.store().record_audit(&[event]).await {
        tracing::warn!(error = %e, "could not record a refused action in the audit log");
    }
    Err(GraphError::BadRequest(why))
}

fn own_last_secret(caller: &Caller, loss: Loss<'_>, now: OffsetDateTime) -> Option<String> {
    let Loss::Secret { app, .. } = loss else {
        return None;
    };
    if app.id != caller.application_id || keeps_a_secret(app, loss, now) {
        return None;
    }
    Some(
        "This is the last valid client secret of the application you are signed in as: \
         removing it would lock it out for good (nobody could sign in as it again). Add a new \
         secret first (addPassword, or `clavis secret add`), switch to it, then remove this one."
            .into(),
    )
}

async fn last_administrator(
    state: &AppState,
    caller: &Caller,
    loss: Loss<'_>,
    now: OffsetDateTime,
) -> Result<Option<String>, GraphError> {
    let store = state.directory.store();
    let tenant = caller.tenant.id;
    let management = management_api(state, tenant).await?;
    let admin_role = Role::ApplicationReadWriteAll.id();
    let is_admin_grant = |g: &RoleAssignment| {
        g.resource_id == management.service_principal_id && g.app_role_id == admin_role
    };
    // Only changes that touch a holder can take the last one away: the
    // common case costs one small read.
    let touched = match loss {
        Loss::Secret { app, .. } | Loss::Application(app) => store
            .role_assignments_of(tenant, app.service_principal_id)
            .await?
            .iter()
            .any(is_admin_grant),
        Loss::Grant(grant) => is_admin_grant(grant),
    };
    if !touched {
        return Ok(None);
    }
    let holders: HashSet<Uuid> = store
        .role_assignments_to(tenant, management.service_principal_id)
        .await?
        .iter()
        .filter(|g| is_admin_grant(g))
        .filter(|g| !matches!(loss, Loss::Grant(gone) if gone.id == g.id))
        .map(|g| g.principal_id)
        .collect();
    let mut live_before = false;
    for &principal in &holders {
        let Some(app) = store
            .application_by_service_principal(tenant, principal)
            .await?
        else {
            continue;
        };
        if keeps_a_secret(&app, loss, now) {
            return Ok(None);
        }
        live_before |= app.password_credentials.iter().any(|c| usable(c, now));
    }
    if let Loss::Grant(grant) = loss {
        if let Some(app) = store
            .application_by_service_principal(tenant, grant.principal_id)
            .await?
        {
            live_before |= app.password_credentials.iter().any(|c| usable(c, now));
        }
    }
    if !live_before {
        // Nobody live held it before either: this change locks nobody out.
        return Ok(None);
    }
    let what = match loss {
        Loss::Secret { .. } => "removing this secret would leave it with none that works",
        Loss::Application(_) => "deleting it",
        Loss::Grant(_) => "removing this grant",
    };
    let whose = match loss {
        Loss::Grant(_) => "This grant is the tenant's last Application.ReadWrite.All",
        _ => "This application is the tenant's last holder of Application.ReadWrite.All",
    };
    Ok(Some(format!(
        "{whose} on {MANAGEMENT_API_URI} with a valid client secret: {what} would leave nobody \
         able to manage the tenant. Grant Application.ReadWrite.All to another application and \
         give it a secret first (`clavis role grant --client NAME --resource {MANAGEMENT_API_URI} \
         --role Application.ReadWrite.All`). An operator locked out already can run `clavis \
         admin recover` on the server."
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clavis_store::{CredentialPolicy, PasswordCredential};
    use time::macros::datetime;
    use time::Duration;

    const NOW: OffsetDateTime = datetime!(2026-06-01 0:00 UTC);

    fn secret(n: u128, start: OffsetDateTime, end: OffsetDateTime) -> PasswordCredential {
        PasswordCredential {
            key_id: Uuid::from_u128(n),
            display_name: String::new(),
            hint: "abc".into(),
            secret_hash: [0; 32],
            start_at: start,
            end_at: end,
            created_at: start,
            last_used_at: None,
        }
    }

    fn app(id: u128, secrets: Vec<PasswordCredential>) -> Application {
        Application {
            id: Uuid::from_u128(id),
            tenant_id: Uuid::nil(),
            app_id: Uuid::from_u128(id + 100),
            service_principal_id: Uuid::from_u128(id + 200),
            display_name: "a".into(),
            identifier_uris: vec![],
            app_roles: vec![],
            owners: vec![],
            password_credentials: secrets,
            credential_policy: CredentialPolicy::default(),
            builtin: false,
            created_at: NOW,
        }
    }

    #[test]
    fn only_secrets_that_work_now_count() {
        let day = Duration::days(1);
        let live = secret(1, NOW - day, NOW + day);
        let expired = secret(2, NOW - 2 * day, NOW - day);
        let future = secret(3, NOW + day, NOW + 2 * day);
        let a = app(1, vec![live.clone(), expired.clone(), future.clone()]);
        let other = app(2, vec![]);
        let keep = |loss| keeps_a_secret(&a, loss, NOW);
        let grant = RoleAssignment {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            principal_id: a.service_principal_id,
            resource_id: Uuid::nil(),
            app_role_id: Uuid::nil(),
            created_at: NOW,
        };
        assert!(keep(Loss::Grant(&grant)));
        assert!(!keep(Loss::Secret {
            app: &a,
            key_id: live.key_id
        }));
        assert!(keep(Loss::Secret {
            app: &a,
            key_id: expired.key_id
        }));
        assert!(keep(Loss::Secret {
            app: &other,
            key_id: live.key_id
        }));
        assert!(!keep(Loss::Application(&a)));
        assert!(keep(Loss::Application(&other)));
        // Expired and not yet started secrets do not count.
        let stale = app(3, vec![expired, future]);
        assert!(!keeps_a_secret(&stale, Loss::Application(&other), NOW));
    }
}
