//! `clavis backup` / `clavis restore` through the real binary: a snapshot
//! taken while the server runs, restored into a fresh data directory with
//! the key-encryption key, serves tokens with the old secrets; the backup
//! holds no secret value; nothing is ever overwritten.

use clavis::Tls;
use reqwest::StatusCode;
use serde_json::json;

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
    // Issue 13: the next step names the database, or `clavis serve` would
    // start a new, empty SQLite installation; never with the password.
    assert!(
        text.contains(&format!(
            "clavis serve --data-dir {} --database-url '",
            target.path().display()
        )) && text.contains("password=PASSWORD")
            && !text.contains("password=x"),
        "{text}"
    );
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

/// Issue 13: a restored copy sends no webhooks until an operator resumes
/// them (it would repeat the original's warnings), and `restore` says so,
/// with the command that starts it and why its TLS CA is new.
#[tokio::test]
async fn a_restored_copy_pauses_its_webhooks_and_says_what_comes_next() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (status, hook) = app
        .post(
            "/v1.0/webhooks",
            &admin,
            json!({"url": "https://hooks.example.com/clavis", "displayName": "ops"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
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

    let target = tempfile::tempdir().unwrap();
    let restored_dir = target.path().to_owned();
    let dir = restored_dir.to_str().unwrap();
    let (ok, text) = clavis(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data-dir",
        dir,
    ]);
    assert!(ok, "{text}");
    for expected in [
        format!("start it: clavis serve --data-dir {dir}\n"),
        format!("put the installation's kek.key into {dir}"),
        format!("creates a new local CA, {dir}/tls/ca.pem"),
        "copy the old data directory's tls/".to_owned(),
        "webhooks: 1 paused".to_owned(),
        "clavis webhook resume --all".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} in:\n{text}");
    }
    assert_eq!(text.matches("error").count(), 0, "{text}");

    std::fs::copy(app.dir.path().join("kek.key"), restored_dir.join("kek.key")).unwrap();
    std::fs::copy(
        app.dir.path().join("bootstrap-admin.json"),
        restored_dir.join("bootstrap-admin.json"),
    )
    .unwrap();
    let restored = spawn_in(target, Tls::Off).await;
    let admin = restored.admin_token().await;
    let (status, hooks) = restored.get("/v1.0/webhooks", &admin).await;
    assert_eq!(status, StatusCode::OK, "{hooks}");
    assert_eq!(hooks["value"][0]["paused"], true, "{hooks}");
    let (_, audit) = restored
        .get(
            "/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'Pause%20webhook%20subscription'",
            &admin,
        )
        .await;
    assert_eq!(audit["value"].as_array().map(Vec::len), Some(1), "{audit}");
}

/// Issue 13: store and restore errors say each cause once (the drivers
/// repeat theirs) and carry a hint an operator can act on.
#[tokio::test]
async fn restore_and_copy_errors_say_each_cause_once_with_a_hint() {
    // A PostgreSQL installation, stopped (so no live node blocks a copy).
    let source = super::helpers::TestDatabase::create().await;
    let app = super::helpers::spawn_tuned(tempfile::tempdir().unwrap(), Tls::Off, |c| {
        c.database_url = source.url.clone();
    })
    .await;
    let admin = app.admin_token().await;
    let (status, hook) = app
        .post(
            "/v1.0/webhooks",
            &admin,
            json!({"url": "https://hooks.example.com/clavis"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    app.stop().await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let pg_backup = scratch.path().join("b.pgdump");
    let (ok, text) = clavis(&[
        "backup",
        "--database-url",
        &source.url,
        "--to",
        pg_backup.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");

    let base = super::helpers::postgres_admin_url();
    let base = base
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&base)
        .to_owned();
    let missing = format!("{base}/clavis_missing_db_13");
    let dir = |name: &str| scratch.path().join(name).to_str().unwrap().to_owned();
    let pg = pg_backup.to_str().unwrap();
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            vec![
                "restore".into(),
                "--from".into(),
                pg.into(),
                "--data-dir".into(),
                dir("a"),
                "--database-url".into(),
                missing.clone(),
            ],
            "does not exist",
            "createdb -h ",
        ),
        (
            vec![
                "restore".into(),
                "--from".into(),
                pg.into(),
                "--data-dir".into(),
                dir("b"),
                "--database-url".into(),
                "postgres://postgres:pw@127.0.0.1:1/x".into(),
            ],
            "Connection refused",
            "pg_isready -h 127.0.0.1 -p 1",
        ),
        (
            vec![
                "restore".into(),
                "--from".into(),
                pg.into(),
                "--data-dir".into(),
                dir("c"),
                "--database-url".into(),
                source.url.clone(),
            ],
            "already holds",
            "createdb -h ",
        ),
        (
            vec![
                "restore".into(),
                "--from".into(),
                pg.into(),
                "--data-dir".into(),
                dir("d"),
                "--database-url".into(),
                "sqlite://x.db".into(),
            ],
            "takes a postgres:// URL",
            "--data-dir alone",
        ),
        (
            vec![
                "store".into(),
                "copy".into(),
                "--from".into(),
                source.url.clone(),
                "--to".into(),
                missing.clone(),
            ],
            "does not exist",
            "createdb -h ",
        ),
        (
            vec![
                "store".into(),
                "copy".into(),
                "--from".into(),
                source.url.clone(),
                "--to".into(),
                source.url.clone(),
            ],
            "is not empty",
            "createdb NAME",
        ),
        (
            vec![
                "store".into(),
                "copy".into(),
                "--from".into(),
                source.url.clone(),
                "--to".into(),
                "postgres//x".into(),
            ],
            "unsupported database URL",
            "--to takes sqlite://PATH or postgres://",
        ),
    ];
    for (args, cause, hint) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, text) = clavis(&args);
        assert!(!ok, "{args:?}: {text}");
        assert_eq!(
            text.matches(cause).count(),
            1,
            "{cause:?} once, for {args:?}:\n{text}"
        );
        assert_eq!(
            text.lines().filter(|l| l.starts_with("error: ")).count(),
            1,
            "{text}"
        );
        let hint_line = text
            .lines()
            .find(|l| l.starts_with("hint: "))
            .unwrap_or_else(|| panic!("no hint for {args:?}:\n{text}"));
        assert!(
            hint_line.contains(hint),
            "{hint:?} in the hint for {args:?}:\n{text}"
        );
        assert!(!text.contains(":pw@"), "a password in {text}");
    }

    // A copy that runs beside its source can start with its webhooks paused.
    let beside = super::helpers::TestDatabase::create().await;
    let (ok, text) = clavis(&[
        "store",
        "copy",
        "--from",
        &source.url,
        "--to",
        &beside.url,
        "--pause-webhooks",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("Paused the destination's 1 webhook(s)")
            && !text.contains("start no server on the source"),
        "{text}"
    );
}
