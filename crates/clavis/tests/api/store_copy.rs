//! `clavis store copy` end to end: an installation with rows in every table
//! moves from SQLite to PostgreSQL and back; every table's row count is
//! equal after each copy, and what the rows mean still holds on the copy:
//! secrets and role grants work, revoked tokens stay inactive, a webhook
//! delivery left pending is retried and signed with the same secret, an
//! expiry warning already given is not given again, the audit log is whole.
//! The copy is refused while a server uses its source (the SQLite data
//! directory's lock; a live node's heartbeat in PostgreSQL).

use clavis::Tls;
use clavis_store::copy::{Treatment, TABLES};
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::Duration;

use super::expiry::{app_with_secret, assert_signed, run, s, subscribe, Receiver};
use super::helpers::{shared_kek_dirs, spawn_tuned, Registered, TestApp, TestDatabase};

async fn introspect(app: &TestApp, caller: &Registered, token: &str) -> bool {
    let r = app
        .http
        .post(format!("{}/default/oauth2/v2.0/introspect", app.base))
        .basic_auth(&caller.app_id, Some(&caller.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["active"] == true
}

async fn audit_ids(app: &TestApp) -> Vec<String> {
    let admin = app.admin_token().await;
    let (status, page) = app
        .get("/v1.0/auditLogs/directoryAudits?$top=999", &admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["id"]))
        .collect()
}

/// On `url`, at the one address (so the one issuer) of the installation,
/// as servers behind one name keep it across a move. The servers of the
/// test run one after the other.
fn same_issuer(config: &mut clavis::Config, url: String, listen: std::net::SocketAddr) {
    config.database_url = url;
    config.listen = listen;
    // The test's webhook receiver listens on loopback.
    config.allow_internal_webhooks = true;
}

fn copy_bootstrap_file(from: &std::path::Path, to: &std::path::Path) {
    std::fs::copy(
        from.join("bootstrap-admin.json"),
        to.join("bootstrap-admin.json"),
    )
    .unwrap();
}

/// Every table the copy keeps has rows in the source and as many in the
/// destination.
fn assert_every_table_copied(copied: &clavis::store_copy::Copied) {
    for table in TABLES {
        let counts = copied.table(table.name);
        match table.treatment {
            Treatment::Copy => {
                assert!(counts.source > 0, "the test fills {}: {copied}", table.name);
                assert_eq!(counts.source, counts.destination, "{copied}");
            }
            Treatment::Skip(_) => assert_eq!(counts.destination, 0, "{copied}"),
        }
    }
}

#[tokio::test]
async fn a_copy_to_postgresql_and_back_keeps_every_table_and_what_it_means() {
    let mut dirs = shared_kek_dirs(3).into_iter();
    let (d0, d1, d2) = (
        dirs.next().unwrap(),
        dirs.next().unwrap(),
        dirs.next().unwrap(),
    );
    let sqlite_url = format!("sqlite://{}", d0.path().join("clavis.db").display());
    let back_url = format!("sqlite://{}", d2.path().join("clavis.db").display());
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = sqlite_url.clone();
    let mut src = spawn_tuned(d0, Tls::Off, move |c| same_issuer(c, url, listen)).await;
    let admin = src.admin_token().await;

    // Rows in every table.
    let (api, role) = src
        .register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = src.register_client(&admin, "worker").await;
    let (status, _) = src
        .grant(&admin, s(&api["appId"]).as_str(), &client.sp_id, &role)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let other = src.register_client(&admin, "other").await;
    let rx = Receiver::start().await;
    rx.answer(500);
    let hook = subscribe(&src, &admin, &rx.url, json!({})).await;
    let signing_secret = s(&hook["signingSecret"]);
    app_with_secret(&src, &admin, "expiring", 20).await;
    let report = run(&src).await;
    assert_eq!((report.notices, report.delivered), (1, 0), "{report:?}");
    let scope = "api://orders/.default";
    let (revoked, kept) = (
        src.token(&client.app_id, &client.secret, scope).await,
        src.token(&client.app_id, &client.secret, scope).await,
    );
    let r = src
        .http
        .post(format!("{}/default/oauth2/v2.0/revoke", src.base))
        .form(&[
            ("token", revoked.as_str()),
            ("client_id", client.app_id.as_str()),
            ("client_secret", client.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cut = src
        .token(&other.app_id, &other.secret, "api://clavis/.default")
        .await;
    let (status, _) = src
        .post(
            &format!("/v1.0/applications/{}/revokeTokens", other.id),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let wrong = src.token_post(&client.app_id, "clavis_wrong", scope).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    clavis::throttle_sync::round(&src.state).await;

    // Refused while the server runs (it holds the data directory's lock).
    let db = TestDatabase::create().await;
    let err = clavis::store_copy::run(&sqlite_url, &db.url)
        .await
        .expect_err("refused while the source is served");
    assert!(format!("{err:#}").contains("clavis.lock"), "{err:#}");
    let source_audit = audit_ids(&src).await;
    let (admin_id, admin_secret) = (src.admin_id.clone(), src.admin_secret.clone());
    // Keep the data directory past the server.
    let src_dir = std::mem::replace(&mut src.dir, tempfile::tempdir().unwrap());
    src.stop().await.unwrap();

    // SQLite → PostgreSQL.
    let copied = clavis::store_copy::run(&sqlite_url, &db.url)
        .await
        .expect("copy");
    assert_every_table_copied(&copied);
    let shown = copied.to_string();
    assert!(
        shown.contains("sign_ins") && shown.contains("not copied"),
        "{shown}"
    );
    // Issue 13: a copy is a move; its active webhooks are named, with the
    // way to pause them for a copy that runs beside the source.
    assert_eq!(copied.active_webhooks, 1, "{shown}");
    assert!(
        shown.contains("start no server on the source again") && shown.contains("--pause-webhooks"),
        "{shown}"
    );
    assert!(
        clavis::store_copy::run(&sqlite_url, &db.url).await.is_err(),
        "a second copy into a store that is not empty is refused"
    );

    copy_bootstrap_file(src_dir.path(), d1.path());
    let url = db.url.clone();
    let moved = spawn_tuned(d1, Tls::Off, move |c| same_issuer(c, url, listen)).await;
    assert_eq!(moved.admin_id, admin_id);
    let token = moved.token(&client.app_id, &client.secret, scope).await;
    assert_eq!(
        super::helpers::claims(&token)["roles"],
        json!(["Orders.Read"])
    );
    assert!(
        !introspect(&moved, &client, &revoked).await,
        "revoked stays revoked"
    );
    assert!(introspect(&moved, &client, &kept).await);
    assert!(
        !introspect(&moved, &other, &cut).await,
        "revokeTokens holds"
    );
    // The delivery left pending is retried, signed with the same secret; the
    // warning already given is not given again.
    rx.answer(204);
    moved.clock.advance(Duration::hours(1));
    let report = run(&moved).await;
    assert_eq!((report.notices, report.delivered), (0, 1), "{report:?}");
    let got = rx.got();
    assert_eq!(got.len(), 2, "the failed attempt, then the retry");
    assert_eq!(got[0].delivery, got[1].delivery);
    assert_signed(&got[1], &signing_secret);
    let moved_audit = audit_ids(&moved).await;
    assert!(
        source_audit.iter().all(|id| moved_audit.contains(id)),
        "every audit event copied"
    );
    let latest = moved.admin_token().await;
    let (_, events) = moved
        .get(
            "/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'Copy%20store'",
            &latest,
        )
        .await;
    assert_eq!(events["value"].as_array().unwrap().len(), 1, "{events}");

    // Refused while a node serves the PostgreSQL source (its heartbeat).
    let err = clavis::store_copy::run(&db.url, &back_url)
        .await
        .expect_err("refused while a node is live");
    let text = format!("{err:#}");
    assert!(
        text.contains("a Clavis server is using the source store")
            && text.contains(moved.base.trim_start_matches("http://")),
        "{text}"
    );
    moved.stop().await.unwrap();

    // PostgreSQL → SQLite.
    let copied = clavis::store_copy::run(&db.url, &back_url)
        .await
        .expect("copy back");
    assert_every_table_copied(&copied);
    copy_bootstrap_file(src_dir.path(), d2.path());
    let url = back_url.clone();
    let back = spawn_tuned(d2, Tls::Off, move |c| same_issuer(c, url, listen)).await;
    back.token(&client.app_id, &client.secret, scope).await;
    assert!(!introspect(&back, &client, &revoked).await);
    assert_eq!(
        back.token_post(&admin_id, &admin_secret, "api://clavis/.default")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_missing_source_file_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    let db = TestDatabase::create().await;
    let err = clavis::store_copy::run(&format!("sqlite://{}", missing.display()), &db.url)
        .await
        .expect_err("refused");
    assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    assert!(!missing.exists());
}
