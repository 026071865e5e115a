//! `/metrics` with two nodes on one PostgreSQL database: a secret added on
//! one node is in the other node's expiry lines within a second, although
//! that node had already built (and cached) them (`postgres` module only).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clavis::clock::ManualClock;
use clavis::{App, Config, Tls};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::helpers::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_added_on_one_node_is_in_the_other_node_s_metrics() {
    let db = TestDatabase::create().await;
    let dirs = super::helpers::shared_kek_dirs(2);
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let mut nodes = Vec::new();
    for dir in &dirs {
        let mut config = Config::for_tests(dir.path().to_path_buf(), Tls::Off);
        config.database_url = db.url.clone();
        let app = App::build(config, Arc::new(clock.clone())).await.unwrap();
        let base = app.base_url().to_owned();
        let metrics = format!("http://{}/metrics", app.metrics_addr().unwrap());
        tokio::spawn(app.run(std::future::pending()));
        nodes.push((base, metrics));
    }
    let boot: Value = serde_json::from_str(
        &dirs
            .iter()
            .find_map(|d| std::fs::read_to_string(d.path().join("bootstrap-admin.json")).ok())
            .expect("one node bootstrapped"),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let scrape = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let (a, b) = (&nodes[0].0, &nodes[1].1);
    let before = scrape(b.clone()).await;
    assert!(
        before.contains("clavis_client_secret_expiry_seconds{"),
        "{before}"
    );

    let admin: Value = http
        .post(format!("{a}/default/oauth2/v2.0/token"))
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
    let admin = admin["access_token"].as_str().unwrap().to_owned();
    let created: Value = http
        .post(format!("{a}/v1.0/applications"))
        .bearer_auth(&admin)
        .json(&json!({"displayName": "seen elsewhere"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let added: Value = http
        .post(format!(
            "{a}/v1.0/applications/{}/addPassword",
            created["id"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .json(&json!({"passwordCredential": {"displayName": "x"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key_id = format!("key_id=\"{}\"", added["keyId"].as_str().unwrap());
    let started = Instant::now();
    loop {
        let text = scrape(b.clone()).await;
        if text.contains(&key_id) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "node B still lists the old secrets after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
