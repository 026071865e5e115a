//! Applying one [`Mutation`] (and writing audit events) inside the write
//! transaction that [`Store::commit`](crate::Store::commit) opened; the
//! application and credential writes live in `applications.rs`.
//!
//! Every "is it there?" rule is decided by affected-row counts of statements
//! that also match the tenant, so an object of another tenant is `NotFound`
//! exactly like a missing one; uniqueness rules are left to the schema's
//! UNIQUE constraints and turned into `Conflict`s with a readable rule.

use sqlx::{query, query_scalar, SqliteConnection};
use uuid::Uuid;

use super::applications::{
    add_password, delete_application, insert_application, remove_password, set_credential_policy,
    update_application,
};
use super::codec::{id, micros, opt_id};
use super::error::{corrupt, db, unique};
use crate::model::{AuditEvent, RoleAssignment, SigningKeyRecord, Tenant};
use crate::{Mutation, StoreError, StoreResult};

/// Apply one mutation; the caller rolls back on error.
pub(crate) async fn apply(conn: &mut SqliteConnection, mutation: &Mutation) -> StoreResult<()> {
    match mutation {
        Mutation::InsertTenant(tenant) => insert_tenant(conn, tenant).await,
        Mutation::UpdateTenant(tenant) => update_tenant(conn, tenant).await,
        Mutation::InsertApplication(app) => insert_application(conn, app).await,
        Mutation::UpdateApplication(app) => update_application(conn, app).await,
        Mutation::DeleteApplication { tenant_id, id } => {
            delete_application(conn, *tenant_id, *id).await
        }
        Mutation::AddPassword {
            tenant_id,
            application_id,
            credential,
        } => add_password(conn, *tenant_id, *application_id, credential).await,
        Mutation::RemovePassword {
            tenant_id,
            application_id,
            key_id,
        } => remove_password(conn, *tenant_id, *application_id, *key_id).await,
        Mutation::SetCredentialPolicy {
            tenant_id,
            application_id,
            policy,
        } => set_credential_policy(conn, *tenant_id, *application_id, policy).await,
        Mutation::InsertRoleAssignment(grant) => insert_role_assignment(conn, grant).await,
        Mutation::DeleteRoleAssignment { tenant_id, id } => {
            delete_role_assignment(conn, *tenant_id, *id).await
        }
        Mutation::InsertSigningKey(key) => insert_signing_key(conn, key).await,
        Mutation::RevokeToken {
            tenant_id,
            jti,
            expires_at,
        } => {
            let done = query(
                "INSERT INTO revoked_tokens (tenant_id, jti, expires_at) \
                 SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ?) \
                 ON CONFLICT (tenant_id, jti) DO UPDATE SET expires_at = excluded.expires_at",
            )
            .bind(id(*tenant_id))
            .bind(id(*jti))
            .bind(micros(*expires_at)?)
            .bind(id(*tenant_id))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            found(done.rows_affected(), "tenant")
        }
        Mutation::RevokeTokensOf {
            tenant_id,
            application_id,
            until,
        } => {
            let done = query(
                "INSERT INTO token_cutoffs (tenant_id, application_id, revoked_until) \
                 SELECT ?, ?, ? WHERE EXISTS \
                   (SELECT 1 FROM applications WHERE tenant_id = ? AND id = ?) \
                 ON CONFLICT (application_id) DO UPDATE \
                   SET revoked_until = max(revoked_until, excluded.revoked_until)",
            )
            .bind(id(*tenant_id))
            .bind(id(*application_id))
            .bind(micros(*until)?)
            .bind(id(*tenant_id))
            .bind(id(*application_id))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            found(done.rows_affected(), "application")
        }
        Mutation::InsertSigningKeyIfCurrent { key, current } => {
            insert_signing_key_if_current(conn, key, current.as_deref()).await
        }
        Mutation::RevokeSigningKey { tenant_id, kid, at } => {
            let done = query(
                "UPDATE signing_keys SET revoked_at = COALESCE(revoked_at, ?) \
                 WHERE tenant_id = ? AND kid = ?",
            )
            .bind(micros(*at)?)
            .bind(id(*tenant_id))
            .bind(kid)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            found(done.rows_affected(), "signing key")
        }
        Mutation::SetSigningKeyCertificate {
            tenant_id,
            kid,
            certificate,
        } => {
            let done = query(
                "UPDATE signing_keys SET certificate = COALESCE(certificate, ?) \
                 WHERE tenant_id = ? AND kid = ?",
            )
            .bind(certificate.as_slice())
            .bind(id(*tenant_id))
            .bind(kid)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            found(done.rows_affected(), "signing key")
        }
        Mutation::InsertWebhook(sub) => super::expiry::insert_webhook(conn, sub).await,
        Mutation::ResealRecord {
            kind,
            id,
            old,
            new,
            kek_id,
        } => reseal(conn, *kind, id, old, new, kek_id).await,
        Mutation::DeleteWebhook { tenant_id, id } => {
            super::expiry::delete_webhook(conn, *tenant_id, *id).await
        }
        Mutation::SetWebhookPaused {
            tenant_id,
            id,
            paused_at,
        } => super::expiry::set_webhook_paused(conn, *tenant_id, *id, *paused_at).await,
        Mutation::SetInstallationKek { kek_id, at } => {
            super::nodes::set_installation_kek(conn, kek_id, *at).await
        }
        Mutation::InsertWebhookDelivery(d) => super::expiry::record_delivery(conn, d).await,
    }
}

fn tenant_rule(columns: &str, tenant: &Tenant) -> String {
    if columns.contains("tenants.name") {
        format!(
            "tenant name '{}' is already used by another tenant",
            tenant.name
        )
    } else {
        format!("a tenant with id {} already exists", tenant.id)
    }
}

async fn insert_tenant(conn: &mut SqliteConnection, tenant: &Tenant) -> StoreResult<()> {
    query(
        "INSERT INTO tenants (id, name, signing_alg, max_secret_lifetime_secs, \
         default_secret_lifetime_secs, max_secrets_per_application, password_credentials_allowed, \
         created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id(tenant.id))
    .bind(&tenant.name)
    .bind(&tenant.signing_alg)
    .bind(tenant.max_secret_lifetime_secs)
    .bind(tenant.default_secret_lifetime_secs)
    .bind(tenant.max_secrets_per_application)
    .bind(tenant.password_credentials_allowed)
    .bind(micros(tenant.created_at)?)
    .execute(&mut *conn)
    .await
    .map_err(|e| unique(e, |columns| tenant_rule(columns, tenant)))?;
    Ok(())
}

/// Everything but `id` and `created_at`, which never change.
async fn update_tenant(conn: &mut SqliteConnection, tenant: &Tenant) -> StoreResult<()> {
    let done = query(
        "UPDATE tenants SET name = ?, signing_alg = ?, max_secret_lifetime_secs = ?, \
         default_secret_lifetime_secs = ?, max_secrets_per_application = ?, \
         password_credentials_allowed = ? WHERE id = ?",
    )
    .bind(&tenant.name)
    .bind(&tenant.signing_alg)
    .bind(tenant.max_secret_lifetime_secs)
    .bind(tenant.default_secret_lifetime_secs)
    .bind(tenant.max_secrets_per_application)
    .bind(tenant.password_credentials_allowed)
    .bind(id(tenant.id))
    .execute(&mut *conn)
    .await
    .map_err(|e| unique(e, |columns| tenant_rule(columns, tenant)))?;
    found(done.rows_affected(), "tenant")
}

async fn service_principal_exists(
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
    service_principal: Uuid,
) -> StoreResult<bool> {
    query_scalar(
        "SELECT EXISTS (SELECT 1 FROM applications \
         WHERE service_principal_id = ? AND tenant_id = ?)",
    )
    .bind(id(service_principal))
    .bind(id(tenant_id))
    .fetch_one(&mut *conn)
    .await
    .map_err(db)
}

async fn insert_role_assignment(
    conn: &mut SqliteConnection,
    grant: &RoleAssignment,
) -> StoreResult<()> {
    if !service_principal_exists(conn, grant.tenant_id, grant.principal_id).await? {
        return Err(StoreError::NotFound("service principal (principalId)"));
    }
    if !service_principal_exists(conn, grant.tenant_id, grant.resource_id).await? {
        return Err(StoreError::NotFound("service principal (resourceId)"));
    }
    query(
        "INSERT INTO app_role_assignments (id, tenant_id, principal_id, resource_id, app_role_id, \
         created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(id(grant.id))
    .bind(id(grant.tenant_id))
    .bind(id(grant.principal_id))
    .bind(id(grant.resource_id))
    .bind(id(grant.app_role_id))
    .bind(micros(grant.created_at)?)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        unique(e, |columns| {
            if columns.contains("app_role_assignments.principal_id") {
                "this app role is already assigned to that principal".to_owned()
            } else {
                format!("a role assignment with id {} already exists", grant.id)
            }
        })
    })?;
    Ok(())
}

async fn delete_role_assignment(
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
    grant: Uuid,
) -> StoreResult<()> {
    let done = query("DELETE FROM app_role_assignments WHERE id = ? AND tenant_id = ?")
        .bind(id(grant))
        .bind(id(tenant_id))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    found(done.rows_affected(), "role assignment")
}

async fn insert_signing_key(
    conn: &mut SqliteConnection,
    key: &SigningKeyRecord,
) -> StoreResult<()> {
    let done = query(
        "INSERT INTO signing_keys (kid, tenant_id, alg, public_jwk, encrypted_private_key, kek_id, \
         created_at, activates_at, revoked_at, certificate) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
         WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ?)",
    )
    .bind(&key.kid)
    .bind(id(key.tenant_id))
    .bind(&key.alg)
    .bind(&key.public_jwk)
    .bind(key.encrypted_private_key.as_slice())
    .bind(&key.kek_id)
    .bind(micros(key.created_at)?)
    .bind(micros(key.activates_at)?)
    .bind(key.revoked_at.map(micros).transpose()?)
    .bind(key.certificate.as_deref())
    .bind(id(key.tenant_id))
    .execute(&mut *conn)
    .await
    .map_err(|e| unique(e, |_| format!("a signing key with kid '{}' already exists", key.kid)))?;
    found(done.rows_affected(), "tenant")
}

/// The write transaction (`BEGIN IMMEDIATE`) already holds the database's
/// write lock, so nothing can change the tenant's keys between the check
/// and the insert.
async fn insert_signing_key_if_current(
    conn: &mut SqliteConnection,
    key: &SigningKeyRecord,
    current: Option<&str>,
) -> StoreResult<()> {
    let tenant_exists: bool = query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = ?)")
        .bind(id(key.tenant_id))
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    if !tenant_exists {
        return Err(StoreError::NotFound("tenant"));
    }
    let newest: Option<String> = query_scalar(
        "SELECT kid FROM signing_keys WHERE tenant_id = ? ORDER BY created_at DESC, kid DESC \
         LIMIT 1",
    )
    .bind(id(key.tenant_id))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    if newest.as_deref() != current {
        return Err(StoreError::Conflict(
            "the tenant's signing key changed meanwhile".to_owned(),
        ));
    }
    insert_signing_key(conn, key).await
}

/// Insert audit events in order; an id recorded before is a `Conflict`.
pub(crate) async fn insert_audit(
    conn: &mut SqliteConnection,
    events: &[AuditEvent],
) -> StoreResult<()> {
    for event in events {
        query(
            "INSERT INTO audit_events (id, tenant_id, at, actor_app_id, actor_service_principal_id, \
             actor_display_name, actor_key_id, client_ip, activity, category, operation_type, \
             target_type, target_id, target_display_name, target_key_id, result, result_reason, \
             correlation_id, client_request_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id(event.id))
        .bind(id(event.tenant_id))
        .bind(micros(event.at)?)
        .bind(opt_id(event.actor_app_id))
        .bind(opt_id(event.actor_service_principal_id))
        .bind(&event.actor_display_name)
        .bind(opt_id(event.actor_key_id))
        .bind(&event.client_ip)
        .bind(&event.activity)
        .bind(&event.category)
        .bind(&event.operation_type)
        .bind(&event.target_type)
        .bind(&event.target_id)
        .bind(&event.target_display_name)
        .bind(opt_id(event.target_key_id))
        .bind(event.result.as_str())
        .bind(&event.result_reason)
        .bind(id(event.correlation_id))
        .bind(&event.client_request_id)
        .execute(&mut *conn)
        .await
        .map_err(|e| unique(e, |_| format!("audit event {} is already recorded", event.id)))?;
    }
    Ok(())
}

/// Replace one sealed value if it still holds `old` (see
/// [`crate::sealed::reseal_sql`]).
async fn reseal(
    conn: &mut SqliteConnection,
    kind: crate::SealedKind,
    key: &str,
    old: &[u8],
    new: &[u8],
    kek_id: &str,
) -> StoreResult<()> {
    let sql = crate::sealed::reseal_sql(kind, "", |n| format!("?{n}"));
    let mut update = query(&sql.update).bind(new);
    if sql.binds_kek_id {
        update = update.bind(kek_id);
    }
    let done = update
        .bind(key)
        .bind(old)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    if done.rows_affected() > 0 {
        return Ok(());
    }
    let exists: Option<i32> = sqlx::query_scalar(&sql.exists)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    match exists {
        Some(_) => Err(StoreError::Conflict(
            "the sealed value changed meanwhile".into(),
        )),
        None => Err(StoreError::NotFound("sealed record")),
    }
}

pub(crate) fn found(rows: u64, what: &'static str) -> StoreResult<()> {
    if rows == 0 {
        Err(StoreError::NotFound(what))
    } else {
        Ok(())
    }
}

pub(crate) fn position_value(position: usize) -> StoreResult<i64> {
    i64::try_from(position).map_err(|_| corrupt("list too long to store"))
}
