//! Several Clavis nodes on one PostgreSQL database: safe concurrent first
//! start, any node serves any request, revocations reach every node within
//! one second even with warm caches, a database outage answers 503 (never a
//! token it cannot check) and heals by itself, and a node killed under load
//! loses nothing committed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clavis::clock::SystemClock;
use clavis::{App, Config, Tls};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::helpers::{shared_kek_dirs, TestDatabase};

/// An in-process node on `url`, serving plain HTTP.
struct Node {
    base: String,
    bootstrapped: bool,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_node(dir: &std::path::Path, url: &str) -> Node {
    let mut config = Config::for_tests(dir.to_path_buf(), Tls::Off);
    config.database_url = url.to_owned();
    // As behind a load balancer: one public URL (issuer) for every node.
    config.public_url = Some("http://clavis.test".into());
    let app = App::build(config, Arc::new(SystemClock))
        .await
        .expect("node starts");
    let base = format!("http://{}", app.local_addr());
    let bootstrapped = app.bootstrapped.is_some();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    Node {
        base,
        bootstrapped,
        _stop: tx,
    }
}

async fn token(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
    scope: &str,
) -> (StatusCode, Value) {
    let r = http
        .post(format!("{base}/default/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn ok_token(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
    scope: &str,
) -> String {
    let (status, body) = token(http, base, id, secret, scope).await;
    assert_eq!(status, StatusCode::OK, "{base}: {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Poll until `check` holds; the time it took.
async fn within<F, Fut>(limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn three_nodes_one_database() {
    let db = TestDatabase::create().await;
    let dirs = shared_kek_dirs(3);
    // All three start at once on the empty database.
    let (a, b, c) = tokio::join!(
        start_node(dirs[0].path(), &db.url),
        start_node(dirs[1].path(), &db.url),
        start_node(dirs[2].path(), &db.url)
    );
    let nodes = [&a, &b, &c];
    assert_eq!(
        nodes.iter().filter(|n| n.bootstrapped).count(),
        1,
        "exactly one bootstrap admin"
    );
    let winner = dirs
        .iter()
        .find(|d| d.path().join("bootstrap-admin.json").exists())
        .unwrap();
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(winner.path().join("bootstrap-admin.json")).unwrap(),
    )
    .unwrap();
    let (admin_id, admin_secret) = (
        boot["clientId"].as_str().unwrap(),
        boot["clientSecret"].as_str().unwrap(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Every node issues tokens at once (concurrently: one signing key wins).
    let (ta, tb, tc) = tokio::join!(
        ok_token(
            &http,
            &a.base,
            admin_id,
            admin_secret,
            "api://clavis/.default"
        ),
        ok_token(
            &http,
            &b.base,
            admin_id,
            admin_secret,
            "api://clavis/.default"
        ),
        ok_token(
            &http,
            &c.base,
            admin_id,
            admin_secret,
            "api://clavis/.default"
        )
    );
    let mut kids: Vec<Value> = Vec::new();
    for t in [&ta, &tb, &tc] {
        kids.push(super::helpers::header(t)["kid"].clone());
    }
    kids.dedup();
    assert_eq!(kids.len(), 1, "one signing key per tenant: {kids:?}");
    let mut jwks = Vec::new();
    for n in nodes {
        let keys: Value = http
            .get(format!("{}/default/discovery/v2.0/keys", n.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jwks.push(keys["keys"].as_array().unwrap().len());
    }
    assert_eq!(jwks, vec![1, 1, 1]);

    // A secret created through A works on B at once.
    let admin = ta;
    let api: Value = http
        .post(format!("{}/v1.0/applications", a.base))
        .bearer_auth(&admin)
        .json(&json!({"displayName": "api", "identifierUris": ["api://orders"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(api["appId"].is_string(), "{api}");
    let client: Value = http
        .post(format!("{}/v1.0/applications", a.base))
        .bearer_auth(&admin)
        .json(&json!({"displayName": "worker"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret: Value = http
        .post(format!(
            "{}/v1.0/applications/{}/addPassword",
            a.base,
            client["id"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (cid, csecret) = (
        client["appId"].as_str().unwrap(),
        secret["secretText"].as_str().unwrap(),
    );
    for n in nodes {
        ok_token(&http, &n.base, cid, csecret, "api://orders/.default").await;
    }

    // Removed through A: B and C refuse it within a second, caches warm.
    let r = http
        .post(format!(
            "{}/v1.0/applications/{}/removePassword",
            a.base,
            client["id"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .json(&json!({"keyId": secret["keyId"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for n in [&b, &c] {
        let took = within(Duration::from_secs(1), || async {
            token(&http, &n.base, cid, csecret, "api://orders/.default")
                .await
                .0
                == StatusCode::UNAUTHORIZED
        })
        .await;
        eprintln!("secret removal reached {} in {took:?}", n.base);
    }

    // An application deleted through B stops working on A and C within a second.
    let other: Value = http
        .post(format!("{}/v1.0/applications", b.base))
        .bearer_auth(&admin)
        .json(&json!({"displayName": "other"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other_secret: Value = http
        .post(format!(
            "{}/v1.0/applications/{}/addPassword",
            b.base,
            other["id"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (oid, osecret) = (
        other["appId"].as_str().unwrap(),
        other_secret["secretText"].as_str().unwrap(),
    );
    for n in [&a, &c] {
        ok_token(&http, &n.base, oid, osecret, "api://orders/.default").await;
    }
    let r = http
        .delete(format!(
            "{}/v1.0/applications/{}",
            b.base,
            other["id"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for n in [&a, &c] {
        let took = within(Duration::from_secs(1), || async {
            token(&http, &n.base, oid, osecret, "api://orders/.default")
                .await
                .0
                == StatusCode::UNAUTHORIZED
        })
        .await;
        eprintln!("application deletion reached {} in {took:?}", n.base);
    }
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore:
/// from the nodes' side, exactly a database that went away and came back.
struct Outage {
    addr: SocketAddr,
    up: Arc<std::sync::atomic::AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Outage {
    async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound); // refused
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        Outage { addr, up, links }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_database_outage_answers_503_and_heals() {
    let db = TestDatabase::create().await;
    let pg: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = Outage::start(pg).await;
    let url = db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let dirs = shared_kek_dirs(1);
    let node = start_node(dirs[0].path(), &url).await;
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(dirs[0].path().join("bootstrap-admin.json")).unwrap(),
    )
    .unwrap();
    let (id, secret) = (
        boot["clientId"].as_str().unwrap(),
        boot["clientSecret"].as_str().unwrap(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    ok_token(&http, &node.base, id, secret, "api://clavis/.default").await; // cache warm

    proxy.cut();
    // Never a token for a credential the node cannot check, cache or not.
    within(Duration::from_secs(5), || async {
        let (status, body) = token(&http, &node.base, id, secret, "api://clavis/.default").await;
        assert_ne!(
            status,
            StatusCode::OK,
            "issued a token while the database was down: {body}"
        );
        status == StatusCode::SERVICE_UNAVAILABLE && body["error"] == "temporarily_unavailable"
    })
    .await;
    let r = http
        .get(format!("{}/readyz", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = http
        .get(format!("{}/healthz", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "alive, just not ready");

    proxy.restore();
    let healed = within(Duration::from_secs(15), || async {
        token(&http, &node.base, id, secret, "api://clavis/.default")
            .await
            .0
            == StatusCode::OK
    })
    .await;
    eprintln!("recovered {healed:?} after the database came back");
    let r = http
        .get(format!("{}/readyz", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_node_killed_under_load_loses_nothing_committed() {
    let db = TestDatabase::create().await;
    let dirs = shared_kek_dirs(2);
    let spawn = |dir: &std::path::Path| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_clavis"))
            .args([
                "serve",
                "--plain-http",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--metrics-listen",
                "off",
                "--database-url",
                &db.url,
                "--data-dir",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        (child, format!("http://127.0.0.1:{port}"))
    };
    let (mut first, a) = spawn(dirs[0].path());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    within(Duration::from_secs(30), || async {
        http.get(format!("{a}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let (mut second, b) = spawn(dirs[1].path());
    within(Duration::from_secs(30), || async {
        http.get(format!("{b}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(dirs[0].path().join("bootstrap-admin.json")).unwrap(),
    )
    .unwrap();
    let (id, secret) = (
        boot["clientId"].as_str().unwrap().to_owned(),
        boot["clientSecret"].as_str().unwrap().to_owned(),
    );
    let admin = ok_token(&http, &a, &id, &secret, "api://clavis/.default").await;

    // Writes through A, tokens from B, and A is killed half-way.
    let created = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (http, a, admin, created) = (http.clone(), a.clone(), admin.clone(), created.clone());
        tokio::spawn(async move {
            for i in 0..400 {
                let Ok(r) = http
                    .post(format!("{a}/v1.0/applications"))
                    .bearer_auth(&admin)
                    .json(&json!({"displayName": format!("app {i}")}))
                    .send()
                    .await
                else {
                    break;
                };
                if r.status() == StatusCode::CREATED {
                    let v: Value = r.json().await.unwrap();
                    created
                        .lock()
                        .unwrap()
                        .push(v["id"].as_str().unwrap().to_owned());
                }
            }
        })
    };
    let reader = {
        let (http, b, id, secret) = (http.clone(), b.clone(), id.clone(), secret.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            let end = Instant::now() + Duration::from_secs(2);
            while Instant::now() < end {
                match token(&http, &b, &id, &secret, "api://clavis/.default")
                    .await
                    .0
                {
                    StatusCode::OK => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let _ = writer.await;
    let (ok, failed) = reader.await.unwrap();
    assert!(
        ok > 0 && failed == 0,
        "B kept serving: {ok} ok, {failed} failed"
    );

    // Every application A acknowledged is there, read through B.
    let acknowledged = created.lock().unwrap().clone();
    assert!(!acknowledged.is_empty());
    let admin_b = ok_token(&http, &b, &id, &secret, "api://clavis/.default").await;
    for app_id in &acknowledged {
        let r = http
            .get(format!("{b}/v1.0/applications/{app_id}"))
            .bearer_auth(&admin_b)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "acknowledged application {app_id} lost"
        );
    }
    second.kill().unwrap();
    second.wait().unwrap();
}
