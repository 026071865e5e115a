//! Writes of applications (with their service principal, identifier URIs
//! and owners) and of their password credentials, inside the transaction
//! that [`Store::commit`](crate::Store::commit) opened.

use sqlx::{query, query_scalar, SqliteConnection};
use uuid::Uuid;

use super::codec::{app_roles_json, id, micros};
use super::error::{db, unique};
use super::mutate::{found, position_value};
use crate::model::{Application, CredentialPolicy, PasswordCredential};
use crate::{StoreError, StoreResult};

fn application_rule(columns: &str, app: &Application) -> String {
    if columns.contains("applications.app_id") {
        format!(
            "appId {} is already used by another application",
            app.app_id
        )
    } else if columns.contains("applications.service_principal_id") {
        format!(
            "service principal id {} is already used by another application",
            app.service_principal_id
        )
    } else {
        format!("an application with id {} already exists", app.id)
    }
}

pub(crate) async fn insert_application(
    conn: &mut SqliteConnection,
    app: &Application,
) -> StoreResult<()> {
    let done = query(
        "INSERT INTO applications (id, tenant_id, app_id, service_principal_id, display_name, \
         app_roles, builtin, created_at, policy_max_lifetime_secs, policy_default_lifetime_secs, \
         policy_max_secrets, policy_password_credentials_allowed) \
         SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ?)",
    )
    .bind(id(app.id))
    .bind(id(app.tenant_id))
    .bind(id(app.app_id))
    .bind(id(app.service_principal_id))
    .bind(&app.display_name)
    .bind(app_roles_json(&app.app_roles)?)
    .bind(app.builtin)
    .bind(micros(app.created_at)?)
    .bind(app.credential_policy.max_lifetime_secs)
    .bind(app.credential_policy.default_lifetime_secs)
    .bind(app.credential_policy.max_secrets)
    .bind(app.credential_policy.password_credentials_allowed)
    .bind(id(app.tenant_id))
    .execute(&mut *conn)
    .await
    .map_err(|e| unique(e, |columns| application_rule(columns, app)))?;
    found(done.rows_affected(), "tenant")?;

    insert_identifier_uris(conn, app).await?;
    for (position, owner) in app.owners.iter().enumerate() {
        query(
            "INSERT INTO application_owners (application_id, position, owner_id) VALUES (?, ?, ?)",
        )
        .bind(id(app.id))
        .bind(position_value(position)?)
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
/// tenant holds is a `Conflict`.
async fn insert_identifier_uris(conn: &mut SqliteConnection, app: &Application) -> StoreResult<()> {
    for (position, uri) in app.identifier_uris.iter().enumerate() {
        if app.identifier_uris[..position].contains(uri) {
            return Err(StoreError::Conflict(format!(
                "identifier URI '{uri}' is listed twice"
            )));
        }
        query(
            "INSERT INTO application_identifier_uris (tenant_id, application_id, position, uri) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(id(app.tenant_id))
        .bind(id(app.id))
        .bind(position_value(position)?)
        .bind(uri)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            unique(e, |_| {
                format!(
                    "identifier URI '{uri}' is already used by another application in this tenant"
                )
            })
        })?;
    }
    Ok(())
}

/// Display name, identifier URIs and app roles only.
pub(crate) async fn update_application(
    conn: &mut SqliteConnection,
    app: &Application,
) -> StoreResult<()> {
    let done = query(
        "UPDATE applications SET display_name = ?, app_roles = ? WHERE id = ? AND tenant_id = ?",
    )
    .bind(&app.display_name)
    .bind(app_roles_json(&app.app_roles)?)
    .bind(id(app.id))
    .bind(id(app.tenant_id))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    found(done.rows_affected(), "application")?;
    query("DELETE FROM application_identifier_uris WHERE application_id = ?")
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
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
    app: Uuid,
) -> StoreResult<()> {
    let service_principal: Option<String> = query_scalar(
        "DELETE FROM applications WHERE id = ? AND tenant_id = ? RETURNING service_principal_id",
    )
    .bind(id(app))
    .bind(id(tenant_id))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(service_principal) = service_principal else {
        return Err(StoreError::NotFound("application"));
    };
    query("DELETE FROM application_owners WHERE owner_id = ?")
        .bind(service_principal)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

fn credential_rule(columns: &str, credential: &PasswordCredential) -> String {
    if columns.contains("password_credentials.secret_hash") {
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
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
    application_id: Uuid,
    credential: &PasswordCredential,
) -> StoreResult<()> {
    let done = query(
        "INSERT INTO password_credentials (key_id, application_id, display_name, hint, \
         secret_hash, start_at, end_at, created_at, last_used_at) \
         SELECT ?, id, ?, ?, ?, ?, ?, ?, ? FROM applications WHERE id = ? AND tenant_id = ?",
    )
    .bind(id(credential.key_id))
    .bind(&credential.display_name)
    .bind(&credential.hint)
    .bind(credential.secret_hash.as_slice())
    .bind(micros(credential.start_at)?)
    .bind(micros(credential.end_at)?)
    .bind(micros(credential.created_at)?)
    .bind(credential.last_used_at.map(micros).transpose()?)
    .bind(id(application_id))
    .bind(id(tenant_id))
    .execute(&mut *conn)
    .await
    .map_err(|e| unique(e, |columns| credential_rule(columns, credential)))?;
    found(done.rows_affected(), "application")
}

pub(crate) async fn remove_password(
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
    application_id: Uuid,
    key_id: Uuid,
) -> StoreResult<()> {
    let done = query(
        "DELETE FROM password_credentials WHERE key_id = ? AND application_id IN \
         (SELECT id FROM applications WHERE id = ? AND tenant_id = ?)",
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
        query_scalar("SELECT EXISTS (SELECT 1 FROM applications WHERE id = ? AND tenant_id = ?)")
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
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
    application_id: Uuid,
    policy: &CredentialPolicy,
) -> StoreResult<()> {
    let done = query(
        "UPDATE applications SET policy_max_lifetime_secs = ?, policy_default_lifetime_secs = ?, \
         policy_max_secrets = ?, policy_password_credentials_allowed = ? \
         WHERE id = ? AND tenant_id = ?",
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
