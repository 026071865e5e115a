//! `clavis webhook` end to end (runs in the `sqlite` module only: the store
//! makes no difference to the CLI).
use super::expiry::*;
use clavis::Tls;
use serde_json::{json, Value};

/// Run the `clavis` binary with its own config directory.
async fn clavis_cli(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_clavis"))
        .args(args)
        .env("CLAVIS_CONFIG_DIR", config)
        .env_remove("CLAVIS_PROFILE")
        .env_remove("CLAVIS_OUTPUT")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("clavis runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test]
async fn the_cli_adds_lists_shows_deliveries_and_removes_webhooks() {
    // The receiver listens on 127.0.0.1: an internal target.
    let app = super::helpers::spawn_tuned(tempfile::tempdir().unwrap(), Tls::LocalCa, |c| {
        c.allow_internal_webhooks = true;
    })
    .await;
    let config = tempfile::tempdir().unwrap();
    let cfg = config.path();
    let data = app.data_dir();
    let ok = |(code, out, err): (i32, String, String)| {
        assert_eq!(code, 0, "{out}\n{err}");
        out
    };
    ok(clavis_cli(cfg, &["login", "--bootstrap", data.to_str().unwrap()]).await);
    let rx = Receiver::start().await;
    let added = ok(clavis_cli(
        cfg,
        &[
            "webhook",
            "add",
            &rx.url,
            "--threshold-days",
            "7,1",
            "--name",
            "ops",
        ],
    )
    .await);
    assert!(added.contains("signingSecret:  whsec_"), "{added}");
    assert!(added.contains("will not be shown again"), "{added}");
    let secret = added
        .lines()
        .find_map(|l| l.strip_prefix("signingSecret:"))
        .unwrap()
        .trim()
        .to_owned();

    let list: Value = serde_json::from_str(&ok(clavis_cli(
        cfg,
        &["webhook", "list", "--output", "json"],
    )
    .await))
    .unwrap();
    assert_eq!(list[0]["thresholdDays"], json!([7, 1]));
    assert!(!list.to_string().contains(&secret));
    let id = s(&list[0]["id"]);
    let table = ok(clavis_cli(cfg, &["webhook", "list"]).await);
    assert!(table.contains(&id) && table.contains("7,1"), "{table}");

    let admin = app.admin_token().await;
    app_with_secret(&app, &admin, "soon", 3).await;
    run(&app).await;
    assert_signed(&rx.got()[0], &secret);
    let deliveries = ok(clavis_cli(cfg, &["webhook", "deliveries", &id]).await);
    assert!(
        deliveries.contains("secret.expiring") && deliveries.contains("delivered"),
        "{deliveries}"
    );

    // Issue 13: pause and resume, by id or all at once; the list shows it.
    let paused = ok(clavis_cli(cfg, &["webhook", "pause", "--all"]).await);
    assert_eq!(paused, format!("Paused webhook {id}.\n"));
    let table = ok(clavis_cli(cfg, &["webhook", "list"]).await);
    assert!(table.contains("paused since"), "{table}");
    let resumed = ok(clavis_cli(cfg, &["webhook", "resume", &id, "--query", "[].paused"]).await);
    assert_eq!(resumed, "false\n");
    let (code, _, err) = clavis_cli(cfg, &["webhook", "pause"]).await;
    assert_eq!(code, 2, "an id or --all is required: {err}");
    // A test ping: signed like the warnings, reported, and logged.
    let pinged = ok(clavis_cli(cfg, &["webhook", "test", &id]).await);
    assert!(
        pinged.contains(&format!("Sent a signed ping to webhook {id}: delivered")),
        "{pinged}"
    );
    let ping = rx.got().pop().unwrap();
    assert_eq!(ping.json()["type"], "ping");
    assert_signed(&ping, &secret);
    rx.answer(500);
    let (code, _, err) = clavis_cli(cfg, &["webhook", "test", &id]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("was not delivered: the receiver answered HTTP 500")
            && err.contains(&format!("clavis webhook deliveries {id}")),
        "{err}"
    );
    let deliveries = ok(clavis_cli(cfg, &["webhook", "deliveries", &id]).await);
    assert_eq!(deliveries.matches("ping").count(), 2, "{deliveries}");
    let (code, _, err) = clavis_cli(
        cfg,
        &["webhook", "test", "00000000-0000-0000-0000-000000000001"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.starts_with("error:"), "{err}");

    ok(clavis_cli(cfg, &["webhook", "remove", &id]).await);
    let (code, _, err) = clavis_cli(cfg, &["webhook", "remove", &id]).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("error:"), "{err}");
    let (code, _, err) = clavis_cli(cfg, &["webhook", "add", "http://example.com/hook"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("https"), "{err}");
}
