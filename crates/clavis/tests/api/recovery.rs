//! `clavis admin recover` through the real binary (issue 12, item 10): the
//! break-glass path for an operator with the data directory and its key.
//! It refuses while a server holds the data directory, never makes a key,
//! and gives a tenant nobody can manage a working administrator again
//! (recreated if deleted, its roles granted again), written to the
//! bootstrap file (0600) and audited as the operator's doing.

use clavis::Tls;
use clavis_store::Mutation;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use uuid::Uuid;

use super::helpers::{run_clavis, spawn_app, spawn_tuned, TestApp, TestDatabase};

/// Stop `app`, keeping its data directory and (PostgreSQL) its database.
async fn stop_keeping_data(mut app: TestApp) -> (TempDir, Option<TestDatabase>) {
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    let db = app.database.take();
    app.stop().await.expect("stops");
    (dir, db)
}

/// `clavis admin recover` on `dir` (and `db`): success and output.
fn recover(dir: &TempDir, db: Option<&TestDatabase>) -> (bool, String) {
    let mut args = vec![
        "admin".to_owned(),
        "recover".to_owned(),
        "--data-dir".to_owned(),
        dir.path().display().to_string(),
    ];
    if let Some(db) = db {
        args.extend(["--database-url".to_owned(), db.url.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_clavis(&args)
}

/// A server on `dir` and `db` again.
async fn restart(dir: TempDir, db: Option<&TestDatabase>) -> TestApp {
    let url = db.map(|d| d.url.clone());
    spawn_tuned(dir, Tls::Off, move |config| {
        if let Some(url) = url {
            config.database_url = url;
        }
    })
    .await
}

fn bootstrap_file(dir: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(dir.join("bootstrap-admin.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn an_operator_recovers_a_tenant_nobody_can_manage() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let worker = app.register_client(&admin, "worker").await;
    // Locked out: the only administrator is gone (as a deletion before the
    // last-administrator rule, or a database edit, could leave it).
    let admin_app = app
        .state
        .directory
        .store()
        .application_by_app_id(
            app.state.directory.tenant("default").unwrap().id,
            Uuid::parse_str(&app.admin_id).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    app.state
        .directory
        .commit(
            &[Mutation::DeleteApplication {
                tenant_id: admin_app.tenant_id,
                id: admin_app.id,
            }],
            &[],
        )
        .await
        .unwrap();
    let r = app
        .token_post(&app.admin_id, &app.admin_secret, "api://clavis/.default")
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "locked out");

    // Offline only: refused while the server holds the data directory.
    let (ok, text) = recover(&app.dir, app.database.as_ref());
    assert!(!ok && text.contains("already serving"), "{text}");
    let old_secret = app.admin_secret.clone();
    let (dir, db) = stop_keeping_data(app).await;

    let (ok, text) = recover(&dir, db.as_ref());
    assert!(ok, "{text}");
    assert!(text.contains("recreated the bootstrap admin"), "{text}");
    assert!(text.contains("bootstrap-admin.json"), "{text}");
    let file = bootstrap_file(dir.path());
    let secret = file["clientSecret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("clavis_") && secret != old_secret);
    assert!(!text.contains(&secret), "the secret is not printed: {text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("bootstrap-admin.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "private: {mode:o}");
    assert!(!dir.path().join("bootstrap-admin.json.new").exists());

    // The server (restarted) takes the new administrator: it manages the
    // tenant and reads the audit log, where the recovery is recorded.
    let app = restart(dir, db.as_ref()).await;
    assert_ne!(app.admin_id, worker.app_id);
    let admin = app.admin_token().await;
    let (status, list) = app.get("/v1.0/applications", &admin).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(
        list.to_string().contains("worker"),
        "the tenant's data is intact"
    );
    let (status, audit) = app
        .get(
            "/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'Recover%20administrator%20access'",
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let events = audit["value"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    let by = events[0]["initiatedBy"]["app"]["displayName"]
        .as_str()
        .unwrap();
    assert!(
        by.starts_with("operator (clavis admin recover) on "),
        "{by}"
    );
    let (_, all) = app.get("/v1.0/auditLogs/directoryAudits", &admin).await;
    let operator_events = all["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["initiatedBy"]["app"]["displayName"]
                .as_str()
                .is_some_and(|n| n.starts_with("operator (clavis admin recover)"))
        })
        .count();
    // Add application, add password credential, two grants, the recovery.
    assert_eq!(operator_events, 5, "{all}");
    drop(app);
    drop(db);
}

#[tokio::test]
async fn recovery_gives_an_existing_bootstrap_admin_its_roles_and_a_new_secret() {
    let app = spawn_app().await;
    let store = app.state.directory.store().clone();
    let tenant = app.state.directory.tenant("default").unwrap().id;
    let sp = store
        .application_by_app_id(tenant, Uuid::parse_str(&app.admin_id).unwrap())
        .await
        .unwrap()
        .unwrap()
        .service_principal_id;
    let grants = store.role_assignments_of(tenant, sp).await.unwrap();
    assert_eq!(grants.len(), 2);
    let removals: Vec<Mutation> = grants
        .iter()
        .map(|g| Mutation::DeleteRoleAssignment {
            tenant_id: tenant,
            id: g.id,
        })
        .collect();
    app.state.directory.commit(&removals, &[]).await.unwrap();
    let admin_id = app.admin_id.clone();
    let (dir, db) = stop_keeping_data(app).await;

    let (ok, text) = recover(&dir, db.as_ref());
    assert!(ok, "{text}");
    assert!(text.contains("recovered the bootstrap admin"), "{text}");
    assert!(
        text.contains("granted Application.ReadWrite.All and AuditLog.Read.All again"),
        "{text}"
    );
    assert_eq!(bootstrap_file(dir.path())["clientId"], admin_id.as_str());
    let app = restart(dir, db.as_ref()).await;
    let admin = app.admin_token().await;
    let (status, _) = app.get("/v1.0/applications", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/v1.0/auditLogs/directoryAudits", &admin).await;
    assert_eq!(status, StatusCode::OK);
    drop(app);
    drop(db);
}

#[tokio::test]
async fn recovery_needs_the_data_directory_and_its_key() {
    let scratch = tempfile::tempdir().unwrap();
    let missing = scratch.path().join("nothing");
    let (ok, text) = run_clavis(&["admin", "recover", "--data-dir", missing.to_str().unwrap()]);
    assert!(!ok && text.contains("is not a data directory"), "{text}");
    assert!(!missing.exists(), "nothing is created");

    let app = spawn_app().await;
    let (dir, db) = stop_keeping_data(app).await;
    let kek = dir.path().join("kek.key");
    let saved = dir.path().join("kek.key.saved");
    std::fs::rename(&kek, &saved).unwrap();
    let (ok, text) = recover(&dir, db.as_ref());
    assert!(!ok && text.contains("kek.key is missing"), "{text}");
    assert!(!kek.exists(), "no new key is made");
    std::fs::rename(&saved, &kek).unwrap();
    let before = std::fs::read(dir.path().join("bootstrap-admin.json")).unwrap();
    let mut args = vec![
        "admin",
        "recover",
        "--tenant",
        "nope",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ];
    if let Some(db) = &db {
        args.extend(["--database-url", db.url.as_str()]);
    }
    let (ok, text) = run_clavis(&args);
    assert!(!ok && text.contains("no tenant 'nope'"), "{text}");
    assert!(text.contains("default"), "{text}");
    assert_eq!(
        std::fs::read(dir.path().join("bootstrap-admin.json")).unwrap(),
        before,
        "nothing changed"
    );
}
