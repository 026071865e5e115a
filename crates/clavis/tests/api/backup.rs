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

/// Found in a review (issue 12, item 9): `clavis backup` on PostgreSQL gave
/// pg_dump the database URL, so the `?options[statement_timeout]=…` URL the
/// README documents failed (libpq does not read it) and a `?password=` was
/// on pg_dump's command line for `ps` to show. A `pg_dump` first on the
/// `PATH` records its command line and environment, then runs the real one.
#[tokio::test]
async fn a_postgresql_backup_takes_the_server_s_url_and_keeps_the_password_off_the_command_line() {
    let db = super::helpers::TestDatabase::create().await;
    let url = format!(
        "{}?options[statement_timeout]=5s&password=canary-pw-5150",
        db.url
    );
    let data = tempfile::tempdir().unwrap();
    let app = super::helpers::spawn_tuned(data, Tls::Off, |c| c.database_url = url.clone()).await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "kept").await;

    let real = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("pg_dump"))
                .find(|p| p.is_file())
        })
        .expect("pg_dump on the PATH");
    let bin = tempfile::tempdir().unwrap();
    let record = bin.path().join("record");
    let wrapper = bin.path().join("pg_dump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{{ printf 'arg %s\\n' \"$@\"; echo \"PGPASSWORD=$PGPASSWORD\"; \
             echo \"PGOPTIONS=$PGOPTIONS\"; echo \"PGDATABASE=$PGDATABASE\"; }} > '{}'\n\
             exec '{}' \"$@\"\n",
            record.display(),
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("clavis.pgdump");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clavis"))
        .args([
            "backup",
            "--database-url",
            &url,
            "--to",
            file.to_str().unwrap(),
        ])
        .env("PATH", &path)
        .env_remove("CLAVIS_DATABASE_URL")
        .env_remove("PGPASSWORD")
        .env_remove("PGOPTIONS")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let recorded = std::fs::read_to_string(&record).expect("the wrapper ran");
    let args: Vec<&str> = recorded.lines().filter(|l| l.starts_with("arg ")).collect();
    for arg in &args {
        assert!(
            !arg.contains("canary-pw-5150")
                && !arg.contains("postgres")
                && !arg.contains("options["),
            "nothing of the URL on the command line: {args:?}"
        );
    }
    assert!(
        recorded.contains("PGPASSWORD=canary-pw-5150\n"),
        "{recorded}"
    );
    assert!(
        recorded.contains("PGOPTIONS=-c statement_timeout=5s\n"),
        "{recorded}"
    );
    assert!(
        recorded.contains(&format!("PGDATABASE={}\n", db.name)),
        "{recorded}"
    );

    // The archive restores through a URL of the same kind.
    let target_db = super::helpers::TestDatabase::create().await;
    let target_url = format!("{}?options[statement_timeout]=5s&password=x", target_db.url);
    let target = tempfile::tempdir().unwrap();
    let (ok, text) = clavis(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data-dir",
        target.path().to_str().unwrap(),
        "--database-url",
        &target_url,
        "--kek-file",
        app.dir.path().join("kek.key").to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    std::fs::copy(
        app.dir.path().join("bootstrap-admin.json"),
        target.path().join("bootstrap-admin.json"),
    )
    .unwrap();
    drop(app);
    let restored = super::helpers::spawn_tuned(target, Tls::Off, |c| {
        c.database_url = target_url.clone();
    })
    .await;
    restored
        .token(&client.app_id, &client.secret, "api://clavis/.default")
        .await;
}
