//! Signing-key rotation on several nodes sharing one PostgreSQL database:
//! nodes that run the schedule at the same moment agree on one pending key,
//! every node publishes it, and an emergency revocation on one node leaves
//! every node's JWKS within a second.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use clavis::clock::ManualClock;
use clavis::keys::lifecycle::Schedule;
use clavis::{App, Config, Tls};
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::helpers::{header, TestDatabase};

struct Node {
    base: String,
    state: Arc<clavis::app::AppState>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A node on `url`; every node shares `kek` and `clock`.
async fn start_node(url: &str, kek: &str, clock: &ManualClock) -> Node {
    let dir = super::helpers::data_dir_with_kek(kek);
    let mut config = Config::for_tests(dir.path().to_path_buf(), Tls::Off);
    config.database_url = url.to_owned();
    config.public_url = Some("http://clavis.test".into());
    config.signing_keys = Schedule {
        rotate_after: Some(Duration::days(2)),
        prepublish: Duration::hours(6),
    };
    let app = App::build(config, Arc::new(clock.clone())).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    Node {
        base,
        state,
        _dir: dir,
        _stop: tx,
    }
}

async fn jwks_kids(http: &reqwest::Client, node: &Node) -> Vec<String> {
    let jwks: Value = http
        .get(format!("{}/default/discovery/v2.0/keys", node.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn nodes_agree_on_one_pending_key_and_a_revocation_reaches_all() {
    let db = TestDatabase::create().await;
    let kek: String = uuid::Uuid::new_v4().simple().to_string().repeat(2);
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let a = start_node(&db.url, &kek, &clock).await;
    let b = start_node(&db.url, &kek, &clock).await;
    let boot_dir = [&a, &b]
        .into_iter()
        .map(|n| n._dir.path().join("bootstrap-admin.json"))
        .find(|p| p.exists())
        .unwrap();
    let boot: Value = serde_json::from_str(&std::fs::read_to_string(boot_dir).unwrap()).unwrap();
    let http = reqwest::Client::new();
    let token = |node: &Node| {
        let req = http
            .post(format!("{}/default/oauth2/v2.0/token", node.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", boot["clientId"].as_str().unwrap()),
                ("client_secret", boot["clientSecret"].as_str().unwrap()),
                ("scope", "api://clavis/.default"),
            ]);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let first = token(&a).await;
    let old = header(&first)["kid"].as_str().unwrap().to_owned();

    // Both nodes run the schedule at the same moment: one key is made.
    clock.advance(Duration::hours(43));
    let (made_a, made_b) = tokio::join!(
        clavis::keys::rotation::rotate_due_keys(&a.state),
        clavis::keys::rotation::rotate_due_keys(&b.state)
    );
    let made: Vec<String> = made_a.into_iter().chain(made_b).collect();
    // Never two. Under load a node may lose the race, or its answer (a
    // store error after the key was made is logged and retried by the
    // next check; seen in CI): the store says what exists.
    assert!(made.len() <= 1, "at most one pending key: {made:?}");
    let tenant_id = a.state.directory.tenant("default").unwrap().id;
    let store = a.state.directory.store().clone();
    let mut keys = store.signing_keys(tenant_id).await.unwrap();
    if keys.len() == 1 {
        clavis::keys::rotation::rotate_due_keys(&a.state).await;
        keys = store.signing_keys(tenant_id).await.unwrap();
    }
    assert_eq!(keys.len(), 2, "exactly one new key: {keys:?}");
    let new = keys
        .iter()
        .find(|k| k.kid != old)
        .map(|k| k.kid.clone())
        .unwrap();
    if let Some(reported) = made.first() {
        assert_eq!(reported, &new);
    }
    for node in [&a, &b] {
        let start = Instant::now();
        while jwks_kids(&http, node).await != [new.clone(), old.clone()] {
            assert!(start.elapsed() < StdDuration::from_secs(1), "{}", node.base);
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
    }

    // Revoked on A: gone from B's JWKS within a second.
    let admin = token(&a).await;
    let r = http
        .post(format!("{}/v1.0/policies/signingKeys/{new}/revoke", a.base))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let start = Instant::now();
    while jwks_kids(&http, &b).await != [old.clone()] {
        assert!(
            start.elapsed() < StdDuration::from_secs(1),
            "B still publishes it"
        );
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
}
