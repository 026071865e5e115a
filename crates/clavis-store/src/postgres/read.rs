//! The read side: applications with their child lists, filtered pages of
//! applications and audit events, role assignments, signing keys, tenants.
//!
//! Every read is ONE statement, so it sees one snapshot without an explicit
//! transaction (nothing to leave open on a pooled connection when a caller
//! stops waiting half-way): an application comes with its identifier URIs
//! and owners as arrays and its credentials as joined rows.
//!
//! Every query names the tenant, so nothing is readable across tenants.
//! Orders: identifier URIs and owners as they were given; password
//! credentials by (start_at, key_id); applications by id; tenants and role
//! assignments by (created_at, id); signing keys and audit events newest first.

use sqlx::{query_as, PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::codec::TenantRow;
use super::codec::{id, time, ApplicationRow, AuditRow, RoleAssignmentRow, SigningKeyRow};
use super::error::db;
use crate::model::{Application, ApplicationFilter, AuditEvent, AuditQuery, RoleAssignment};
use crate::model::{SigningKeyRecord, Tenant};
use crate::StoreResult;

/// What precedes the selected applications `a` (a subquery) in an
/// application read: their columns and lists.
const APPLICATION_HEAD: &str = "SELECT a.id, a.tenant_id, a.app_id, a.service_principal_id, \
     a.display_name, a.app_roles, a.builtin, a.created_at, a.policy_max_lifetime_secs, \
     a.policy_default_lifetime_secs, a.policy_max_secrets, a.policy_password_credentials_allowed, \
     ARRAY(SELECT u.uri FROM application_identifier_uris u \
           WHERE u.application_id = a.id ORDER BY u.position) AS identifier_uris, \
     ARRAY(SELECT o.owner_id FROM application_owners o \
           WHERE o.application_id = a.id ORDER BY o.position) AS owners, \
     c.key_id, c.display_name AS credential_display_name, c.hint, c.secret_hash, \
     c.start_at, c.end_at, c.created_at AS credential_created_at, \
     c.last_used_at AS credential_last_used_at FROM (";

/// What follows the subquery: one row per credential, or one row with null
/// credential columns when there is none.
const APPLICATION_TAIL: &str = ") a LEFT JOIN password_credentials c ON c.application_id = a.id \
     ORDER BY a.id, c.start_at, c.key_id";

fn application_query(selected: &str) -> String {
    format!("{APPLICATION_HEAD}{selected}{APPLICATION_TAIL}")
}

/// The column an application is looked up by.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ApplicationKey {
    Id,
    AppId,
    ServicePrincipal,
}

pub(crate) async fn tenants(conn: &mut PgConnection) -> StoreResult<Vec<Tenant>> {
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
    conn: &mut PgConnection,
    tenant_id: Uuid,
    key: ApplicationKey,
    value: Uuid,
) -> StoreResult<Option<Application>> {
    let column = match key {
        ApplicationKey::Id => "id",
        ApplicationKey::AppId => "app_id",
        ApplicationKey::ServicePrincipal => "service_principal_id",
    };
    let sql = application_query(&format!(
        "SELECT * FROM applications WHERE tenant_id = $1 AND {column} = $2"
    ));
    let rows = query_as::<_, ApplicationRow>(&sql)
        .bind(id(tenant_id))
        .bind(id(value))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    Ok(assemble(rows)?.pop())
}

/// ASCII case-insensitive, through the same expression as the unique index.
pub(crate) async fn application_by_identifier_uri(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    uri: &str,
) -> StoreResult<Option<Application>> {
    let sql = application_query(
        "SELECT s.* FROM applications s \
         JOIN application_identifier_uris u ON u.application_id = s.id \
         WHERE u.tenant_id = $1 AND clavis_ascii_lower(u.uri) = clavis_ascii_lower($2)",
    );
    let rows = query_as::<_, ApplicationRow>(&sql)
        .bind(id(tenant_id))
        .bind(uri)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    Ok(assemble(rows)?.pop())
}

pub(crate) async fn list_applications(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    filter: &ApplicationFilter,
) -> StoreResult<Vec<Application>> {
    let mut sql = QueryBuilder::<Postgres>::new(APPLICATION_HEAD);
    sql.push("SELECT * FROM applications s WHERE s.tenant_id = ")
        .push_bind(id(tenant_id));
    if let Some(app_id) = filter.app_id {
        sql.push(" AND s.app_id = ").push_bind(id(app_id));
    }
    if let Some(name) = &filter.display_name {
        sql.push(" AND s.display_name = ").push_bind(name.clone());
    }
    if let Some(owner) = filter.owner {
        sql.push(
            " AND EXISTS (SELECT 1 FROM application_owners o \
                 WHERE o.application_id = s.id AND o.owner_id = ",
        )
        .push_bind(id(owner))
        .push(")");
    }
    if let Some(after) = filter.after {
        sql.push(" AND s.id > ").push_bind(id(after));
    }
    sql.push(" ORDER BY s.id LIMIT ")
        .push_bind(i64::from(filter.limit))
        .push(APPLICATION_TAIL);
    let rows = sql
        .build_query_as::<ApplicationRow>()
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    assemble(rows)
}

/// Fold rows (ordered by application id, then credential order) into
/// applications.
fn assemble(rows: Vec<ApplicationRow>) -> StoreResult<Vec<Application>> {
    let mut apps: Vec<Application> = Vec::new();
    for mut row in rows {
        if apps.last().is_none_or(|last| last.id != row.id.0) {
            apps.push(row.application()?);
        }
        if let Some(credential) = row.credential()? {
            if let Some(app) = apps.last_mut() {
                app.password_credentials.push(credential);
            }
        }
    }
    Ok(apps)
}

/// `column` is `resource_id` or `principal_id`.
pub(crate) async fn role_assignments(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    column: &'static str,
    service_principal: Uuid,
) -> StoreResult<Vec<RoleAssignment>> {
    let sql = format!(
        "SELECT id, tenant_id, principal_id, resource_id, app_role_id, created_at \
         FROM app_role_assignments WHERE tenant_id = $1 AND {column} = $2 \
         ORDER BY created_at, id"
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
    conn: &mut PgConnection,
    tenant_id: Uuid,
) -> StoreResult<Vec<SigningKeyRecord>> {
    query_as::<_, SigningKeyRow>(
        "SELECT kid, tenant_id, alg, public_jwk, encrypted_private_key, kek_id, created_at, \
         activates_at, revoked_at, certificate FROM signing_keys WHERE tenant_id = $1 ORDER BY created_at DESC, kid DESC",
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
    conn: &mut PgConnection,
    q: &AuditQuery,
) -> StoreResult<Vec<AuditEvent>> {
    let mut sql = QueryBuilder::<Postgres>::new(
        "SELECT id, tenant_id, at, actor_app_id, actor_service_principal_id, actor_display_name, \
         actor_key_id, client_ip, activity, category, operation_type, target_type, target_id, \
         target_display_name, target_key_id, result, result_reason, correlation_id, \
         client_request_id FROM audit_events WHERE tenant_id = ",
    );
    sql.push_bind(id(q.tenant_id));
    if let Some(since) = q.since {
        sql.push(" AND at >= ").push_bind(time(since)?);
    }
    if let Some(until) = q.until {
        sql.push(" AND at < ").push_bind(time(until)?);
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
            .push_bind(time(at)?)
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
