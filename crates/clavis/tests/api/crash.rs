//! Crash consistency: a real `clavis serve` process is SIGKILLed at a random
//! moment during a mixed load (applications created, secrets added and
//! removed, tokens issued), restarted on the same store, and checked:
//! - the store passes SQLite's integrity check (SQLite) and the server starts;
//! - every secret whose creation was answered 200 gets a token, unless its
//!   removal was answered 204;
//! - every secret whose removal was answered 204 is refused (7000215);
//! - every acknowledged addition and removal has its audit event.
//!
//! `CLAVIS_CRASH_ROUNDS` sets how many kill/restart rounds run (3 by default;
//! run many once by hand: `CLAVIS_CRASH_ROUNDS=50 cargo test … crash`).

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use super::helpers::TestDatabase;

fn rounds() -> usize {
    std::env::var("CLAVIS_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// A few pseudo-random milliseconds (no RNG dependency needed).
fn random_ms(low: u64, high: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    low + (nanos ^ (nanos >> 7)) % (high - low)
}

struct Server {
    child: Child,
    base: String,
}

async fn start(dir: &std::path::Path, database_url: Option<&str>) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clavis"));
    cmd.args([
        "serve",
        "--plain-http",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--metrics-listen",
        "off",
        "--throttle-failures-per-address",
        "0",
        "--throttle-failures-per-app",
        "0",
        "--data-dir",
    ])
    .arg(dir)
    .env_remove("CLAVIS_DATABASE_URL")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    let mut child = cmd.spawn().expect("clavis serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = Client::new();
    for _ in 0..300 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Server { child, base };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().ok();
    child.wait().ok();
    panic!("clavis did not become ready");
}

async fn token(http: &Client, base: &str, client: &str, secret: &str) -> Value {
    let r = http
        .post(format!("{base}/default/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
            ("scope", "api://clavis/.default"),
        ])
        .send()
        .await
        .expect("token request");
    r.json().await.expect("json")
}

/// What the server acknowledged before it died.
#[derive(Default)]
struct Acknowledged {
    /// keyId → (appId, secret value, object id)
    added: HashMap<String, (String, String, String)>,
    removed: HashSet<String>,
}

/// Create applications with one secret each and remove every third secret,
/// recording what the server answered, until the server goes away.
async fn load(http: Client, base: String, admin: String, seen: Arc<Mutex<Acknowledged>>) {
    for i in 0.. {
        let Ok(r) = http
            .post(format!("{base}/v1.0/applications"))
            .bearer_auth(&admin)
            .json(&json!({"displayName": format!("crash {i}")}))
            .send()
            .await
        else {
            return;
        };
        if r.status() != StatusCode::CREATED {
            return;
        }
        let Ok(app) = r.json::<Value>().await else {
            return;
        };
        let id = app["id"].as_str().unwrap().to_owned();
        let Ok(r) = http
            .post(format!("{base}/v1.0/applications/{id}/addPassword"))
            .bearer_auth(&admin)
            .json(&json!({}))
            .send()
            .await
        else {
            return;
        };
        if r.status() != StatusCode::OK {
            return;
        }
        let Ok(cred) = r.json::<Value>().await else {
            return;
        };
        let key = cred["keyId"].as_str().unwrap().to_owned();
        let secret = cred["secretText"].as_str().unwrap().to_owned();
        let app_id = app["appId"].as_str().unwrap().to_owned();
        seen.lock()
            .unwrap()
            .added
            .insert(key.clone(), (app_id.clone(), secret.clone(), id.clone()));
        // A token, as clients would.
        if http
            .post(format!("{base}/default/oauth2/v2.0/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", app_id.as_str()),
                ("client_secret", secret.as_str()),
                ("scope", "api://clavis/.default"),
            ])
            .send()
            .await
            .is_err()
        {
            return;
        }
        if i % 3 == 2 {
            let Ok(r) = http
                .post(format!("{base}/v1.0/applications/{id}/removePassword"))
                .bearer_auth(&admin)
                .json(&json!({"keyId": key}))
                .send()
                .await
            else {
                return;
            };
            if r.status() == StatusCode::NO_CONTENT {
                seen.lock().unwrap().removed.insert(key);
            }
        }
    }
}

/// Every audit event's key id, by activity.
async fn audited_keys(http: &Client, base: &str, admin: &str) -> HashMap<String, HashSet<String>> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    let mut url = format!("{base}/v1.0/auditLogs/directoryAudits?$top=999");
    loop {
        let page: Value = http
            .get(&url)
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for e in page["value"].as_array().unwrap() {
            let key = e["additionalDetails"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["key"] == "KeyId")
                .and_then(|d| d["value"].as_str());
            if let (Some(key), "success") = (key, e["result"].as_str().unwrap_or("")) {
                out.entry(e["activityDisplayName"].as_str().unwrap().to_owned())
                    .or_default()
                    .insert(key.to_owned());
            }
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let database = match super::BACKEND {
        crate::Backend::Sqlite => None,
        crate::Backend::Postgres => Some(TestDatabase::create().await),
    };
    let url = database.as_ref().map(|d| d.url.clone());
    let http = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Acknowledged::default()));

    let mut server = start(dir.path(), url.as_deref()).await;
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("bootstrap-admin.json")).unwrap(),
    )
    .unwrap();
    let (admin_id, admin_secret) = (
        boot["clientId"].as_str().unwrap().to_owned(),
        boot["clientSecret"].as_str().unwrap().to_owned(),
    );
    for round in 0..rounds() {
        let admin = token(&http, &server.base, &admin_id, &admin_secret).await;
        let admin = admin["access_token"].as_str().unwrap().to_owned();
        let worker = tokio::spawn(load(http.clone(), server.base.clone(), admin, seen.clone()));
        tokio::time::sleep(Duration::from_millis(random_ms(150, 900))).await;
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        worker.await.unwrap();

        if database.is_none() {
            clavis_store::sqlite::snapshot::inspect(&dir.path().join("clavis.db"))
                .await
                .unwrap_or_else(|e| panic!("round {round}: the store is damaged: {e}"));
        }
        server = start(dir.path(), url.as_deref()).await;
        let admin = token(&http, &server.base, &admin_id, &admin_secret).await;
        let admin = admin["access_token"].as_str().unwrap().to_owned();

        let (added, removed) = {
            let seen = seen.lock().unwrap();
            (seen.added.clone(), seen.removed.clone())
        };
        assert!(!added.is_empty(), "round {round}: the load did something");
        for (key, (app_id, secret, _)) in &added {
            let answer = token(&http, &server.base, app_id, secret).await;
            if removed.contains(key) {
                assert_eq!(
                    answer["error_codes"][0], 7000215,
                    "round {round}: removed secret {key} still works: {answer}"
                );
            } else {
                assert!(
                    answer["access_token"].is_string(),
                    "round {round}: acknowledged secret {key} lost: {answer}"
                );
            }
        }
        let audited = audited_keys(&http, &server.base, &admin).await;
        let adds = audited
            .get("Add password credential")
            .cloned()
            .unwrap_or_default();
        let removes = audited
            .get("Remove password credential")
            .cloned()
            .unwrap_or_default();
        for key in added.keys() {
            assert!(
                adds.contains(key),
                "round {round}: addition of {key} not audited"
            );
        }
        for key in &removed {
            assert!(
                removes.contains(key),
                "round {round}: removal of {key} not audited"
            );
        }
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
