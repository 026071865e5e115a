//! Writes of applications (with their service principal, identifier URIs
//! and owners) and of their password credentials, inside the transaction
//! that [`Store::commit`](crate::Store::commit) opened.
//!
//! An application deleted by a concurrent transaction between a check and
//! a child-row insert makes the insert's foreign key fail; that is reported
//! as `NotFound("application")`, as if it had been gone from the start.

use sqlx::{query, query_scalar, PgConnection};
use uuid::Uuid;

use super::codec::{app_roles_json, id, position, time};
use super::error::{db, unique, unique_or_gone};
use super::mutate::found;
use crate::model::{Application, CredentialPolicy, PasswordCredential};
use crate::{StoreError, StoreResult};

fn application_rule(constraint: &str, app: &Application) -> String {
    match constraint {
        "applications_app_id_unique" => format!(
            "appId {} is already used by another application",
            app.app_id
        ),
        "applications_service_principal_id_unique"
        | "applications_tenant_service_principal_unique" => format!(
            "service principal id {} is already used by another application",
            app.service_principal_id
        ),
        _ => format!("an application with id {} already exists", app.id),
    }
}

pub(crate) async fn insert_application(
    conn: &mut PgConnection,
    app: &Application,
) -> StoreResult<()> {
    let done = query(
        "INSERT INTO applications (id, tenant_id, app_id, service_principal_id, display_name, \
         app_roles, builtin, created_at, policy_max_lifetime_secs, policy_default_lifetime_secs, \
         policy_max_secrets, policy_password_credentials_allowed) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
         WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $2)",
    )
    .bind(id(app.id))
    .bind(id(app.tenant_id))
    .bind(id(app.app_id))
    .bind(id(app.service_principal_id))
    .bind(&app.display_name)
    .bind(app_roles_json(&app.app_roles)?)
    .bind(app.builtin)
    .bind(time(app.created_at)?)
    .bind(app.credential_policy.max_lifetime_secs)
    .bind(app.credential_policy.default_lifetime_secs)
    .bind(app.credential_policy.max_secrets)
    .bind(app.credential_policy.password_credentials_allowed)
    .execute(&mut *conn)
    .await
    .map_err(|e| unique(e, |constraint| application_rule(constraint, app)))?;
    found(done.rows_affected(), "tenant")?;

    insert_identifier_uris(conn, app).await?;
    for (index, owner) in app.owners.iter().enumerate() {
        query(
            "INSERT INTO application_owners (application_id, position, owner_id) \
             VALUES ($1, $2, $3)",
        )
        .bind(id(app.id))
        .bind(position(index)?)
        .bind(id(*owner))
        .execute(&mut *conn)
        .await
        .map_err(|e| unique(e, |_| format!("owner {owner} is listed twice")))?;
    }
    for credential in &app.password_credentials {
        add_password(conn, app.tenant_id, app.id, credential).await?;
    }
    Ok(())
}

/// Insert `app.identifier_uris` in order; a URI another application of the
/// tenant holds (ignoring ASCII case) is a `Conflict`.
async fn insert_identifier_uris(conn: &mut PgConnection, app: &Application) -> StoreResult<()> {
    for (index, uri) in app.identifier_uris.iter().enumerate() {
        if app.identifier_uris[..index].contains(uri) {
            return Err(StoreError::Conflict(format!(
                "identifier URI '{uri}' is listed twice"
            )));
        }
        query(
            "INSERT INTO application_identifier_uris (tenant_id, application_id, position, uri) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id(app.tenant_id))
        .bind(id(app.id))
        .bind(position(index)?)
        .bind(uri)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            unique_or_gone(e, "application", |_| {
                format!(
                    "identifier URI '{uri}' is already used by another application in this tenant"
                )
            })
        })?;
    }
    Ok(())
}

/// Display name, identifier URIs and app roles only. The UPDATE locks the
/// application's row, so concurrent updates of one application queue.
pub(crate) async fn update_application(
    conn: &mut PgConnection,
    app: &Application,
) -> StoreResult<()> {
    let done = query(
        "UPDATE applications SET display_name = $1, app_roles = $2 \
         WHERE id = $3 AND tenant_id = $4",
    )
    .bind(&app.display_name)
    .bind(app_roles_json(&app.app_roles)?)
    .bind(id(app.id))
    .bind(id(app.tenant_id))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    found(done.rows_affected(), "application")?;
    query("DELETE FROM application_identifier_uris WHERE application_id = $1")
        .bind(id(app.id))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    insert_identifier_uris(conn, app).await
}

/// The schema cascades to URIs, owners, credentials and role assignments in
/// both directions; the application's service principal also leaves every
/// owner list it was on.
pub(crate) async fn delete_application(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    app: Uuid,
) -> StoreResult<()> {
    let service_principal: Option<super::codec::PgUuid> = query_scalar(
        "DELETE FROM applications WHERE id = $1 AND tenant_id = $2 \
         RETURNING service_principal_id",
    )
    .bind(id(app))
    .bind(id(tenant_id))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(service_principal) = service_principal else {
        return Err(StoreError::NotFound("application"));
    };
    query("DELETE FROM application_owners WHERE owner_id = $1")
        .bind(service_principal)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

fn credential_rule(constraint: &str, credential: &PasswordCredential) -> String {
    if constraint == "password_credentials_secret_hash_unique" {
        // Never the hash itself: only that one collided.
        "a password credential with the same secret hash already exists".to_owned()
    } else {
        format!(
            "a password credential with key id {} already exists",
            credential.key_id
        )
    }
}

pub(crate) async fn add_password(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    application_id: Uuid,
    credential: &PasswordCredential,
) -> StoreResult<()> {
    let done = query(
        "INSERT INTO password_credentials (key_id, application_id, display_name, hint, \
         secret_hash, start_at, end_at, created_at, last_used_at) \
         SELECT $1, id, $2, $3, $4, $5, $6, $7, $8 FROM applications \
         WHERE id = $9 AND tenant_id = $10",
    )
    .bind(id(credential.key_id))
    .bind(&credential.display_name)
    .bind(&credential.hint)
    .bind(credential.secret_hash.as_slice())
    .bind(time(credential.start_at)?)
    .bind(time(credential.end_at)?)
    .bind(time(credential.created_at)?)
    .bind(credential.last_used_at.map(time).transpose()?)
    .bind(id(application_id))
    .bind(id(tenant_id))
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        unique_or_gone(e, "application", |constraint| {
            credential_rule(constraint, credential)
        })
    })?;
    found(done.rows_affected(), "application")
}

pub(crate) async fn remove_password(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    application_id: Uuid,
    key_id: Uuid,
) -> StoreResult<()> {
    let done = query(
        "DELETE FROM password_credentials WHERE key_id = $1 AND application_id IN \
         (SELECT id FROM applications WHERE id = $2 AND tenant_id = $3)",
    )
    .bind(id(key_id))
    .bind(id(application_id))
    .bind(id(tenant_id))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    if done.rows_affected() > 0 {
        return Ok(());
    }
    let app_exists: bool =
        query_scalar("SELECT EXISTS (SELECT 1 FROM applications WHERE id = $1 AND tenant_id = $2)")
            .bind(id(application_id))
            .bind(id(tenant_id))
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
    Err(StoreError::NotFound(if app_exists {
        "password credential"
    } else {
        "application"
    }))
}

pub(crate) async fn set_credential_policy(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    application_id: Uuid,
    policy: &CredentialPolicy,
) -> StoreResult<()> {
    let done = query(
        "UPDATE applications SET policy_max_lifetime_secs = $1, policy_default_lifetime_secs = $2, \
         policy_max_secrets = $3, policy_password_credentials_allowed = $4 \
         WHERE id = $5 AND tenant_id = $6",
    )
    .bind(policy.max_lifetime_secs)
    .bind(policy.default_lifetime_secs)
    .bind(policy.max_secrets)
    .bind(policy.password_credentials_allowed)
    .bind(id(application_id))
    .bind(id(tenant_id))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    found(done.rows_affected(), "application")
}
