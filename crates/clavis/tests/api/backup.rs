//! `clavis backup` / `clavis restore` through the real binary: a snapshot
//! taken while the server runs, restored into a fresh data directory with
//! the key-encryption key, serves tokens with the old secrets; the backup
//! holds no secret value; nothing is ever overwritten.

use clavis::Tls;

use super::helpers::run_clavis as clavis;
use super::helpers::{spawn_app, spawn_in};

#[tokio::test]
async fn a_backup_taken_while_serving_restores_into_a_working_installation() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let before = app.register_client(&admin, "before the backup").await;
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("clavis.backup");
    let data = app.dir.path().to_str().unwrap().to_owned();

    let (ok, text) = clavis(&[
        "backup",
        "--data-dir",
        &data,
        "--to",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("1 tenant(s)"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the backup is private: {mode:o}");
    let bytes = std::fs::read(&file).unwrap();
    for secret in [&before.secret, &app.admin_secret] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a secret value in the backup"
        );
    }
    // Written after the snapshot: not in it.
    let after = app.register_client(&admin, "after the backup").await;

    // Never overwrite.
    let (ok, text) = clavis(&[
        "backup",
        "--data-dir",
        &data,
        "--to",
        file.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("never overwrites"), "{text}");

    let target = tempfile::tempdir().unwrap();
    let restored_dir = target.path().to_str().unwrap().to_owned();
    let kek = app.dir.path().join("kek.key");
    let (ok, text) = clavis(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data-dir",
        &restored_dir,
        "--kek-file",
        kek.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let (ok, text) = clavis(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data-dir",
        &restored_dir,
    ]);
    assert!(!ok && text.contains("already holds a store"), "{text}");

    // The operator keeps the bootstrap file with their own secrets; the test
    // helper wants it to log in as the admin.
    std::fs::copy(
        app.dir.path().join("bootstrap-admin.json"),
        target.path().join("bootstrap-admin.json"),
    )
    .unwrap();
    let restored = spawn_in(target, Tls::Off).await;
    restored
        .token(&before.app_id, &before.secret, "api://clavis/.default")
        .await;
    let r = restored
        .token_post(&after.app_id, &after.secret, "api://clavis/.default")
        .await;
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["error_codes"][0], 700016,
        "an application made after the snapshot is not there: {body}"
    );
}

#[tokio::test]
async fn bad_sources_and_targets_get_clear_errors() {
    let scratch = tempfile::tempdir().unwrap();
    let path = |name: &str| scratch.path().join(name).to_str().unwrap().to_owned();
    let (ok, text) = clavis(&[
        "backup",
        "--database-url",
        "postgres://postgres@127.0.0.1/clavis",
        "--to",
        &path("x"),
    ]);
    assert!(!ok && text.contains("pg_dump"), "{text}");
    let (ok, text) = clavis(&["backup", "--data-dir", &path("nothing"), "--to", &path("y")]);
    assert!(!ok && text.contains("not a database file"), "{text}");
    assert!(
        !scratch.path().join("y").exists(),
        "no empty backup left behind"
    );

    std::fs::write(scratch.path().join("junk"), b"not a database").unwrap();
    let (ok, text) = clavis(&[
        "restore",
        "--from",
        &path("junk"),
        "--data-dir",
        &path("new"),
    ]);
    assert!(!ok && text.contains("not a usable backup"), "{text}");
    assert!(!scratch.path().join("new").join("clavis.db").exists());
}
