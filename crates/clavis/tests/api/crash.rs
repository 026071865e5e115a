//! Crash consistency: a real `clavis serve` process is SIGKILLed at a random
//! moment during a mixed load (applications created, secrets added and
//! removed, tokens issued), restarted on the same store, and checked:
//! - the store passes SQLite's integrity check (SQLite) and the server starts;
//! - every secret whose creation was answered 200 gets a token, unless its
//!   removal was answered 204;
//! - every secret whose removal was answered 204 is refused (7000215);
//! - a removal that was sent but never answered (the kill came first) is
//!   settled after the restart: if the secret still works, the removal was not
//!   made; if it is refused, a successful removal audit event for it must
//!   exist, or the secret was lost;
//! - every acknowledged addition and removal has its audit event.
//!
//! `CLAVIS_CRASH_ROUNDS` sets how many kill/restart rounds run (3 by default;
//! run many once by hand: `CLAVIS_CRASH_ROUNDS=100 cargo test … crash
//! --test-threads=1`; the test prints how many removals it settled).

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

/// A failed assertion must not leave a server running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    /// Removals answered 204.
    removed: HashSet<String>,
    /// Removals sent whose 204 never arrived: the server may have committed
    /// them just before it died. Settled after the restart (`check`).
    unacknowledged: HashSet<String>,
}

/// What settling the unacknowledged removals found, over all rounds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Settled {
    /// Committed before the kill: the secret is refused and the removal audited.
    committed: usize,
    /// Not made: the secret still works.
    not_made: usize,
}

/// Create applications with one secret each and remove every third secret,
/// recording what the server answered, until the server goes away.
async fn load(http: Client, base: String, admin: String, seen: Arc<Mutex<Acknowledged>>) {
    for i in 0.. {
        let Some((id, key)) = add(&http, &base, &admin, &format!("crash {i}"), &seen).await else {
            return;
        };
        if i % 3 == 2 && !remove(&http, &base, &admin, &id, &key, &seen).await {
            return;
        }
    }
}

/// Create an application with one secret, record the secret once its 200
/// arrives, and get a token with it as a client would. The application's
/// object id and the secret's keyId; None when the server is gone.
async fn add(
    http: &Client,
    base: &str,
    admin: &str,
    name: &str,
    seen: &Mutex<Acknowledged>,
) -> Option<(String, String)> {
    let r = http
        .post(format!("{base}/v1.0/applications"))
        .bearer_auth(admin)
        .json(&json!({"displayName": name}))
        .send()
        .await
        .ok()?;
    if r.status() != StatusCode::CREATED {
        return None;
    }
    let app = r.json::<Value>().await.ok()?;
    let id = app["id"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{base}/v1.0/applications/{id}/addPassword"))
        .bearer_auth(admin)
        .json(&json!({}))
        .send()
        .await
        .ok()?;
    if r.status() != StatusCode::OK {
        return None;
    }
    let cred = r.json::<Value>().await.ok()?;
    let key = cred["keyId"].as_str().unwrap().to_owned();
    let secret = cred["secretText"].as_str().unwrap().to_owned();
    let app_id = app["appId"].as_str().unwrap().to_owned();
    seen.lock()
        .unwrap()
        .added
        .insert(key.clone(), (app_id.clone(), secret.clone(), id.clone()));
    http.post(format!("{base}/default/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app_id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", "api://clavis/.default"),
        ])
        .send()
        .await
        .ok()?;
    Some((id, key))
}

/// Remove a secret, recording the attempt before it is sent and the removal
/// only once its 204 arrives. False when the server is gone.
async fn remove(
    http: &Client,
    base: &str,
    admin: &str,
    id: &str,
    key: &str,
    seen: &Mutex<Acknowledged>,
) -> bool {
    seen.lock().unwrap().unacknowledged.insert(key.to_owned());
    let Ok(r) = http
        .post(format!("{base}/v1.0/applications/{id}/removePassword"))
        .bearer_auth(admin)
        .json(&json!({"keyId": key}))
        .send()
        .await
    else {
        return false;
    };
    if r.status() != StatusCode::NO_CONTENT {
        return false;
    }
    let mut seen = seen.lock().unwrap();
    seen.unacknowledged.remove(key);
    seen.removed.insert(key.to_owned());
    true
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

/// Check the restarted server against what was acknowledged, first settling
/// the unacknowledged removals (each becomes removed or stays added). An
/// error names the first secret that breaks the rules.
async fn check(
    http: &Client,
    base: &str,
    admin: &str,
    seen: &Mutex<Acknowledged>,
    settled: &mut Settled,
) -> Result<(), String> {
    let audited = audited_keys(http, base, admin).await;
    let adds = audited
        .get("Add password credential")
        .cloned()
        .unwrap_or_default();
    let removes = audited
        .get("Remove password credential")
        .cloned()
        .unwrap_or_default();
    let (added, unacknowledged) = {
        let seen = seen.lock().unwrap();
        (seen.added.clone(), seen.unacknowledged.clone())
    };
    for key in &unacknowledged {
        let Some((app_id, secret, _)) = added.get(key) else {
            return Err(format!(
                "removal of {key} attempted for a secret never added"
            ));
        };
        let answer = token(http, base, app_id, secret).await;
        let committed = if answer["access_token"].is_string() {
            if removes.contains(key) {
                return Err(format!(
                    "the removal of {key} is audited as a success but the secret still works"
                ));
            }
            false
        } else if answer["error_codes"][0] == 7000215 {
            if !removes.contains(key) {
                return Err(format!(
                    "secret {key} is gone, its removal was never acknowledged and no successful \
                     removal is audited: it was lost ({answer})"
                ));
            }
            true
        } else {
            return Err(format!(
                "secret {key} neither works nor is refused as removed: {answer}"
            ));
        };
        let mut seen = seen.lock().unwrap();
        seen.unacknowledged.remove(key);
        if committed {
            seen.removed.insert(key.clone());
            settled.committed += 1;
        } else {
            settled.not_made += 1;
        }
    }

    let removed = seen.lock().unwrap().removed.clone();
    if added.is_empty() {
        return Err("the load did nothing".into());
    }
    for (key, (app_id, secret, _)) in &added {
        let answer = token(http, base, app_id, secret).await;
        if removed.contains(key) {
            if answer["error_codes"][0] != 7000215 {
                return Err(format!("removed secret {key} still works: {answer}"));
            }
        } else if !answer["access_token"].is_string() {
            return Err(format!("acknowledged secret {key} lost: {answer}"));
        }
    }
    for key in added.keys() {
        if !adds.contains(key) {
            return Err(format!("addition of {key} not audited"));
        }
    }
    for key in &removed {
        if !removes.contains(key) {
            return Err(format!("removal of {key} not audited"));
        }
    }
    Ok(())
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
    let mut settled = Settled::default();
    let started = std::time::Instant::now();

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

        check(&http, &server.base, &admin, &seen, &mut settled)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    let (added, removed) = {
        let seen = seen.lock().unwrap();
        (seen.added.len(), seen.removed.len())
    };
    eprintln!(
        "crash: {} rounds on {:?} in {:.0?}; {added} secrets added, {removed} removed; \
         unacknowledged removals settled from the audit log: {} committed, {} not made",
        rounds(),
        super::BACKEND,
        started.elapsed(),
        settled.committed,
        settled.not_made,
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// The bookkeeping itself, made deterministic: a removal committed whose 204
/// was lost, and one never sent, are settled without a false alarm; a secret
/// that disappears without an audited removal is still caught as lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_removals_are_settled_from_the_audit_log_and_a_loss_is_still_caught() {
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
    let seen = Mutex::new(Acknowledged::default());
    let mut settled = Settled::default();
    let mut server = start(dir.path(), url.as_deref()).await;
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("bootstrap-admin.json")).unwrap(),
    )
    .unwrap();
    let (admin_id, admin_secret) = (
        boot["clientId"].as_str().unwrap().to_owned(),
        boot["clientSecret"].as_str().unwrap().to_owned(),
    );
    let admin = token(&http, &server.base, &admin_id, &admin_secret).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = server.base.clone();
    let (committed_id, committed) = add(&http, &base, &admin, "committed", &seen).await.unwrap();
    let (_, never_sent) = add(&http, &base, &admin, "never sent", &seen)
        .await
        .unwrap();
    let (_, lost) = add(&http, &base, &admin, "lost", &seen).await.unwrap();
    let (_, kept) = add(&http, &base, &admin, "kept", &seen).await.unwrap();
    // The removal is made, but its 204 is "lost in the kill"; the other was
    // about to be sent.
    seen.lock()
        .unwrap()
        .unacknowledged
        .insert(committed.clone());
    let r = http
        .post(format!(
            "{base}/v1.0/applications/{committed_id}/removePassword"
        ))
        .bearer_auth(&admin)
        .json(&json!({"keyId": committed}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    seen.lock()
        .unwrap()
        .unacknowledged
        .insert(never_sent.clone());
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    server = start(dir.path(), url.as_deref()).await;
    let admin = token(&http, &server.base, &admin_id, &admin_secret).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    check(&http, &server.base, &admin, &seen, &mut settled)
        .await
        .expect("no false alarm");
    assert_eq!(
        settled,
        Settled {
            committed: 1,
            not_made: 1
        }
    );
    assert!(seen.lock().unwrap().removed.contains(&committed));
    assert!(seen.lock().unwrap().unacknowledged.is_empty());
    assert!(!seen.lock().unwrap().removed.contains(&kept));

    // A secret that vanishes with no audited removal (a lost write, made here
    // behind the server's back) is a loss, whether or not its removal had
    // been attempted.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let delete = "DELETE FROM password_credentials WHERE key_id = $1";
    match &url {
        None => {
            use sqlx::Connection;
            let path = dir.path().join("clavis.db");
            let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query(delete)
                .bind(&lost)
                .execute(&mut db)
                .await
                .unwrap();
        }
        Some(url) => {
            use sqlx::Connection;
            let mut db = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query("DELETE FROM password_credentials WHERE key_id = $1::uuid")
                .bind(&lost)
                .execute(&mut db)
                .await
                .unwrap();
        }
    }
    seen.lock().unwrap().unacknowledged.insert(lost.clone());
    server = start(dir.path(), url.as_deref()).await;
    let admin = token(&http, &server.base, &admin_id, &admin_secret).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = check(&http, &server.base, &admin, &seen, &mut settled)
        .await
        .expect_err("the loss is caught");
    assert!(err.contains(&lost) && err.contains("lost"), "{err}");
    // Without the attempt on record, the same loss is caught as before.
    seen.lock().unwrap().unacknowledged.clear();
    let err = check(&http, &server.base, &admin, &seen, &mut settled)
        .await
        .expect_err("the loss is caught");
    assert!(err.contains(&lost) && err.contains("lost"), "{err}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
