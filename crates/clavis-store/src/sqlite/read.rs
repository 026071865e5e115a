//! The read side: applications with their child lists, filtered pages of
//! applications and audit events, role assignments, signing keys, tenants.
//!
//! Every query names the tenant, so nothing is readable across tenants.
//! Orders: identifier URIs and owners as they were given; password
//! credentials by (start_at, key_id); applications by id; tenants and role
//! assignments by (created_at, id); signing keys and audit events newest first.

use std::collections::HashMap;

use sqlx::{query_as, QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use super::codec::{id, micros, ApplicationRow, AuditRow, CredentialRow, OwnerRow, UriRow};
use super::codec::{RoleAssignmentRow, SigningKeyRow, TenantRow};
use super::error::{corrupt, db};
use crate::model::{Application, ApplicationFilter, AuditEvent, AuditQuery, RoleAssignment};
use crate::model::{SigningKeyRecord, Tenant};
use crate::StoreResult;

const APPLICATION_COLUMNS: &str = "a.id, a.tenant_id, a.app_id, a.service_principal_id, \
     a.display_name, a.app_roles, a.builtin, a.created_at, a.policy_max_lifetime_secs, \
     a.policy_default_lifetime_secs, a.policy_max_secrets, a.policy_password_credentials_allowed";

/// The column an application is looked up by.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ApplicationKey {
    Id,
    AppId,
    ServicePrincipal,
}

pub(crate) async fn tenants(conn: &mut SqliteConnection) -> StoreResult<Vec<Tenant>> {
    query_as::<_, TenantRow>(
        "SELECT id, name, signing_alg, max_secret_lifetime_secs, default_secret_lifetime_secs, \
         max_secrets_per_application, password_credentials_allowed, created_at \
         FROM tenants ORDER BY created_at, id",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?
    .into_iter()
    .map(TenantRow::into_model)
    .collect()
}

pub(crate) async fn application(
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
    key: ApplicationKey,
    value: Uuid,
) -> StoreResult<Option<Application>> {
    let column = match key {
        ApplicationKey::Id => "a.id",
        ApplicationKey::AppId => "a.app_id",
        ApplicationKey::ServicePrincipal => "a.service_principal_id",
    };
    let sql = format!(
        "SELECT {APPLICATION_COLUMNS} FROM applications a WHERE a.tenant_id = ? AND {column} = ?"
    );
    let row = query_as::<_, ApplicationRow>(&sql)
        .bind(id(tenant_id))
        .bind(id(value))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    one(conn, row).await
}

pub(crate) async fn application_by_identifier_uri(
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
    uri: &str,
) -> StoreResult<Option<Application>> {
    let sql = format!(
        "SELECT {APPLICATION_COLUMNS} FROM applications a \
         JOIN application_identifier_uris u ON u.application_id = a.id \
         WHERE u.tenant_id = ? AND u.uri = ?"
    );
    let row = query_as::<_, ApplicationRow>(&sql)
        .bind(id(tenant_id))
        .bind(uri)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    one(conn, row).await
}

pub(crate) async fn list_applications(
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
    filter: &ApplicationFilter,
) -> StoreResult<Vec<Application>> {
    let mut sql = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {APPLICATION_COLUMNS} FROM applications a WHERE a.tenant_id = "
    ));
    sql.push_bind(id(tenant_id));
    if let Some(app_id) = filter.app_id {
        sql.push(" AND a.app_id = ").push_bind(id(app_id));
    }
    if let Some(name) = &filter.display_name {
        sql.push(" AND a.display_name = ").push_bind(name.clone());
    }
    if let Some(owner) = filter.owner {
        sql.push(
            " AND EXISTS (SELECT 1 FROM application_owners o \
             WHERE o.application_id = a.id AND o.owner_id = ",
        )
        .push_bind(id(owner))
        .push(")");
    }
    if let Some(after) = filter.after {
        sql.push(" AND a.id > ").push_bind(id(after));
    }
    sql.push(" ORDER BY a.id LIMIT ")
        .push_bind(i64::from(filter.limit));
    let rows = sql
        .build_query_as::<ApplicationRow>()
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    complete(conn, rows).await
}

async fn one(
    conn: &mut SqliteConnection,
    row: Option<ApplicationRow>,
) -> StoreResult<Option<Application>> {
    Ok(complete(conn, row.into_iter().collect()).await?.pop())
}

/// Turn application rows into applications, loading their identifier URIs,
/// owners and credentials with one query per child table.
async fn complete(
    conn: &mut SqliteConnection,
    rows: Vec<ApplicationRow>,
) -> StoreResult<Vec<Application>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    let ids = serde_json::to_string(&ids).map_err(|_| corrupt("application ids not encodable"))?;

    let uris = query_as::<_, UriRow>(
        "SELECT application_id, uri FROM application_identifier_uris \
         WHERE application_id IN (SELECT value FROM json_each(?)) \
         ORDER BY application_id, position",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let owners = query_as::<_, OwnerRow>(
        "SELECT application_id, owner_id FROM application_owners \
         WHERE application_id IN (SELECT value FROM json_each(?)) \
         ORDER BY application_id, position",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let credentials = query_as::<_, CredentialRow>(
        "SELECT application_id, key_id, display_name, hint, secret_hash, start_at, end_at, \
         created_at, last_used_at FROM password_credentials \
         WHERE application_id IN (SELECT value FROM json_each(?)) \
         ORDER BY application_id, start_at, key_id",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;

    let mut apps = Vec::with_capacity(rows.len());
    let mut index = HashMap::with_capacity(rows.len());
    for row in rows {
        index.insert(row.id.clone(), apps.len());
        apps.push(row.into_model()?);
    }
    let slot = |application_id: &str| {
        index
            .get(application_id)
            .copied()
            .ok_or_else(|| corrupt("child row of an application that was not loaded"))
    };
    for row in uris {
        apps[slot(&row.application_id)?]
            .identifier_uris
            .push(row.uri);
    }
    for row in owners {
        let owner = row.owner()?;
        apps[slot(&row.application_id)?].owners.push(owner);
    }
    for row in credentials {
        let at = slot(&row.application_id)?;
        apps[at].password_credentials.push(row.into_model()?);
    }
    Ok(apps)
}

/// `column` is `resource_id` or `principal_id`.
pub(crate) async fn role_assignments(
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
    column: &'static str,
    service_principal: Uuid,
) -> StoreResult<Vec<RoleAssignment>> {
    let sql = format!(
        "SELECT id, tenant_id, principal_id, resource_id, app_role_id, created_at \
         FROM app_role_assignments WHERE tenant_id = ? AND {column} = ? ORDER BY created_at, id"
    );
    query_as::<_, RoleAssignmentRow>(&sql)
        .bind(id(tenant_id))
        .bind(id(service_principal))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?
        .into_iter()
        .map(RoleAssignmentRow::into_model)
        .collect()
}

pub(crate) async fn signing_keys(
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
) -> StoreResult<Vec<SigningKeyRecord>> {
    query_as::<_, SigningKeyRow>(
        "SELECT kid, tenant_id, alg, public_jwk, encrypted_private_key, kek_id, created_at, \
         activates_at, revoked_at, certificate FROM signing_keys WHERE tenant_id = ? ORDER BY created_at DESC, kid DESC",
    )
    .bind(id(tenant_id))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?
    .into_iter()
    .map(SigningKeyRow::into_model)
    .collect()
}

/// Bounds and the `before` cursor compare at microsecond precision, like
/// the stored times.
pub(crate) async fn audit_events(
    conn: &mut SqliteConnection,
    q: &AuditQuery,
) -> StoreResult<Vec<AuditEvent>> {
    let mut sql = QueryBuilder::<Sqlite>::new(
        "SELECT id, tenant_id, at, actor_app_id, actor_service_principal_id, actor_display_name, \
         actor_key_id, client_ip, activity, category, operation_type, target_type, target_id, \
         target_display_name, target_key_id, result, result_reason, correlation_id, \
         client_request_id FROM audit_events WHERE tenant_id = ",
    );
    sql.push_bind(id(q.tenant_id));
    if let Some(since) = q.since {
        sql.push(" AND at >= ").push_bind(micros(since)?);
    }
    if let Some(until) = q.until {
        sql.push(" AND at < ").push_bind(micros(until)?);
    }
    if let Some(activity) = &q.activity {
        sql.push(" AND activity = ").push_bind(activity.clone());
    }
    if let Some(target_id) = &q.target_id {
        sql.push(" AND target_id = ").push_bind(target_id.clone());
    }
    if let Some(actor) = q.actor_app_id {
        sql.push(" AND actor_app_id = ").push_bind(id(actor));
    }
    if let Some((at, event)) = q.before {
        sql.push(" AND (at, id) < (")
            .push_bind(micros(at)?)
            .push(", ")
            .push_bind(id(event))
            .push(")");
    }
    sql.push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(i64::from(q.limit));
    sql.build_query_as::<AuditRow>()
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?
        .into_iter()
        .map(AuditRow::into_model)
        .collect()
}
