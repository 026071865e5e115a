//! Expiry warnings with two nodes on one PostgreSQL database: each notice
//! is sent once (runs in the `postgres` module only).
use super::expiry::*;
use super::helpers::TestDatabase;
use clavis::clock::{Clock as _, ManualClock};
use clavis::{App, Config, Tls};
use serde_json::{json, Value};
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_send_each_notice_once() {
    let db = TestDatabase::create().await;
    let dirs = super::helpers::shared_kek_dirs(2);
    let (dir_a, dir_b) = (&dirs[0], &dirs[1]);
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let mut nodes = Vec::new();
    for dir in [dir_a, dir_b] {
        let mut config = Config::for_tests(dir.path().to_path_buf(), Tls::Off);
        config.database_url = db.url.clone();
        // The receiver listens on 127.0.0.1: an internal target.
        config.allow_internal_webhooks = true;
        let app = App::build(config, Arc::new(clock.clone())).await.unwrap();
        let base = app.base_url().to_owned();
        let state = app.state().clone();
        tokio::spawn(app.run(std::future::pending()));
        nodes.push((base, state));
    }
    let boot = [&dir_a, &dir_b]
        .iter()
        .find_map(|d| std::fs::read_to_string(d.path().join("bootstrap-admin.json")).ok())
        .expect("one node bootstrapped");
    let boot: Value = serde_json::from_str(&boot).unwrap();
    let http = reqwest::Client::new();
    let base = &nodes[0].0;
    let admin: Value = http
        .post(format!("{base}/default/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", boot["clientId"].as_str().unwrap()),
            ("client_secret", boot["clientSecret"].as_str().unwrap()),
            ("scope", "api://clavis/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = s(&admin["access_token"]);
    let post = |path: &str, body: Value| {
        let req = http
            .post(format!("{base}{path}"))
            .bearer_auth(&admin)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };
    let rx = Receiver::start().await;
    post("/v1.0/webhooks", json!({"url": rx.url})).await;
    for name in ["a", "b", "c"] {
        let created = post("/v1.0/applications", json!({"displayName": name})).await;
        let end = (clock.now() + Duration::days(40)).format(&Rfc3339).unwrap();
        post(
            &format!("/v1.0/applications/{}/addPassword", s(&created["id"])),
            json!({"passwordCredential": {"endDateTime": end}}),
        )
        .await;
    }

    let (a, b) = (nodes[0].1.clone(), nodes[1].1.clone());
    let both = || async {
        let (x, y) = tokio::join!(a.expiry.run_once(), b.expiry.run_once());
        let (x, y) = (x.unwrap(), y.unwrap());
        (x.notices + y.notices, x.delivered + y.delivered)
    };
    clock.advance(Duration::days(10) + Duration::minutes(1));
    assert_eq!(both().await, (3, 3));
    assert_eq!(both().await, (0, 0));
    clock.advance(Duration::days(31));
    // 7 and 1 recorded unsent, then expired: 3 notices per secret.
    assert_eq!(both().await, (9, 3));
    assert_eq!(both().await, (0, 0));
    let got = rx.got();
    assert_eq!(got.len(), 6);
    let mut ids: Vec<String> = got.iter().map(|g| g.delivery.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "each delivery sent once");
    let expired: Vec<_> = got
        .iter()
        .filter(|g| g.json()["type"] == "secret.expired")
        .collect();
    assert_eq!(expired.len(), 3);
    let mut audits = 0;
    for tenant in a.directory.store().tenants().await.unwrap() {
        let q = clavis_store::AuditQuery {
            tenant_id: tenant.id,
            since: None,
            until: None,
            activity: Some("Password credential expired".into()),
            target_id: None,
            actor_app_id: None,
            before: None,
            limit: 100,
        };
        audits += a.directory.store().audit_events(&q).await.unwrap().len();
    }
    assert_eq!(audits, 3, "one audit event per expired secret");
}
