//! The store failing under a running server (docs/security.md, "Faults"):
//! PostgreSQL cut, slow and lock-bound behind a TCP proxy the test drives;
//! the disk full during an audited change (a real, small tmpfs under the
//! SQLite file or a PostgreSQL tablespace); SQLite's file locked by another
//! process past the busy timeout. Each answers
//! 503 in the endpoint's own format within a stated bound, applies nothing
//! half-way, loses nothing committed, and heals without a restart.
//!
//! Compiled in the `postgres` half of the suite only; the SQLite tests
//! point their server at a SQLite file in its data directory themselves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clavis::Tls;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::helpers::{spawn_tuned, TestApp};

/// The PostgreSQL the suite uses.
const POSTGRES: &str = "127.0.0.1:5432";
/// How long a call may take to fail once the database is gone: the pool's
/// acquire timeout (3 s, crates/clavis-store/src/postgres.rs) plus slack.
const PROMPT: Duration = Duration::from_secs(5);

/// A TCP proxy in front of PostgreSQL that the test can cut (every link
/// dropped, new ones refused), slow down (each chunk held for a while, in
/// both directions) and restore.
struct FaultyProxy {
    addr: SocketAddr,
    shared: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    down: AtomicBool,
    delay_ms: AtomicU64,
    links: Mutex<Vec<JoinHandle<()>>>,
}

impl FaultyProxy {
    async fn start() -> Self {
        let target: SocketAddr = POSTGRES.parse().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(ProxyState::default());
        let state = shared.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if state.down.load(Ordering::SeqCst) {
                    drop(inbound); // refused
                    continue;
                }
                let link_state = state.clone();
                let link = tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (from_client, to_client) = inbound.into_split();
                    let (from_db, to_db) = outbound.into_split();
                    tokio::join!(
                        pump(from_client, to_db, &link_state),
                        pump(from_db, to_client, &link_state),
                    );
                });
                state.links.lock().unwrap().push(link);
            }
        });
        FaultyProxy { addr, shared }
    }

    /// `url` (a database on the suite's PostgreSQL) through this proxy.
    fn reroute(&self, url: &str) -> String {
        assert!(url.contains(POSTGRES), "{url}");
        url.replace(POSTGRES, &self.addr.to_string())
    }

    fn cut(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        for link in self.shared.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Hold every chunk for `delay` before passing it on (0: no delay;
    /// bytes already held are released as soon as the delay shrinks).
    fn delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    fn restore(&self) {
        self.delay(Duration::ZERO);
        self.shared.down.store(false, Ordering::SeqCst);
    }
}

/// Copy one direction of a link, holding each chunk for the current delay.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: &ProxyState,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let held = Instant::now();
        while held.elapsed().as_millis() < u128::from(state.delay_ms.load(Ordering::SeqCst)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A server on its own PostgreSQL database, reached through `proxy`.
async fn spawn_behind(proxy: &FaultyProxy, request_timeout: Duration) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    spawn_tuned(dir, Tls::Off, |c| {
        c.database_url = proxy.reroute(&c.database_url);
        c.request_timeout = request_timeout;
    })
    .await
}

/// A server on a SQLite file in `dir` (this file runs in the `postgres`
/// half of the suite, whose default would be a PostgreSQL database).
async fn spawn_sqlite(dir: tempfile::TempDir) -> TestApp {
    spawn_tuned(dir, Tls::Off, |c| {
        c.database_url = format!("sqlite://{}", c.data_dir.join("clavis.db").display());
    })
    .await
}

/// A token request with a secret in the body: status, body and how long
/// the answer took.
async fn timed_token(app: &TestApp, id: &str, secret: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let r = app.token_post(id, secret, "api://clavis/.default").await;
    let status = r.status();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

/// A management call: status, body and how long the answer took.
async fn timed_graph(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let (status, body) = app.graph(method, path, token, body).await;
    (status, body, started.elapsed())
}

fn assert_oauth_unavailable(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body["error_codes"].is_array(), "{body}");
    assert!(body["trace_id"].is_string(), "{body}");
}

fn assert_graph_unavailable(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "ServiceUnavailable", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// Display names of the applications of the tenant.
async fn app_names(app: &TestApp, token: &str) -> Vec<String> {
    pages(app, "/v1.0/applications?$select=displayName", token)
        .await
        .iter()
        .map(|a| a["displayName"].as_str().unwrap().to_owned())
        .collect()
}

/// Display names of the applications whose creation was audited as a success.
async fn audited_creations(app: &TestApp, token: &str) -> Vec<String> {
    pages(app, "/v1.0/auditLogs/directoryAudits", token)
        .await
        .iter()
        .filter(|e| e["activityDisplayName"] == "Add application" && e["result"] == "success")
        .map(|e| {
            e["targetResources"][0]["displayName"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Every item of a paged collection.
async fn pages(app: &TestApp, first: &str, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut path = first.to_owned();
    loop {
        let (status, body) = app.get(&path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        match body["@odata.nextLink"].as_str() {
            Some(next) => path = next[app.base.len()..].to_owned(),
            None => return items,
        }
    }
}

/// Wait (at most `limit`) until `check` holds; how long it took.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the log captured so far has a line at `level` containing every
/// one of `parts` (the capture is shared by the tests of this binary).
fn logged(level: &str, parts: &[&str]) -> bool {
    crate::logs::captured()
        .text()
        .lines()
        .any(|l| l.contains(level) && parts.iter().all(|p| l.contains(p)))
}

async fn ready(app: &TestApp) -> StatusCode {
    app.http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_cut_database_answers_503_promptly_in_each_protocol_s_format_and_heals() {
    crate::logs::captured();
    let proxy = FaultyProxy::start().await;
    let app = spawn_behind(&proxy, Duration::from_secs(30)).await;
    let admin = app.admin_token().await;
    let before = app.register_client(&admin, "made before the outage").await;
    // Both clients' tokens now come from the cache.
    for (id, secret) in [
        (&before.app_id, &before.secret),
        (&app.admin_id, &app.admin_secret),
    ] {
        let (status, body, _) = timed_token(&app, id, secret).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    proxy.cut();
    let noticed = eventually(PROMPT, || async {
        ready(&app).await == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    eprintln!("readyz answered 503 {noticed:?} after the cut");
    let health = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK, "alive, just not ready");

    // A cached client is not served either: with the change feed down, a
    // revocation made on another node could be missed (the design).
    let (status, body, took) = timed_token(&app, &before.app_id, &before.secret).await;
    assert_oauth_unavailable(status, &body);
    assert!(took < PROMPT, "cached client: {took:?}");
    let (status, body, took) = timed_token(&app, &uuid::Uuid::new_v4().to_string(), "x").await;
    assert_oauth_unavailable(status, &body);
    assert!(took < PROMPT, "unknown client: {took:?}");
    for (method, path, body) in [
        (reqwest::Method::GET, "/v1.0/applications".to_owned(), None),
        (
            reqwest::Method::POST,
            "/v1.0/applications".to_owned(),
            Some(json!({"displayName": "made during the outage"})),
        ),
        (
            reqwest::Method::POST,
            format!("/v1.0/applications/{}/addPassword", before.id),
            Some(json!({"passwordCredential": {"displayName": "during"}})),
        ),
    ] {
        let (status, body, took) = timed_graph(&app, method.clone(), &path, &admin, body).await;
        assert_graph_unavailable(status, &body);
        assert!(took < PROMPT, "{method} {path}: {took:?}");
    }

    assert!(logged("WARN", &["change feed lost its connection"]));
    assert!(logged("WARN", &["store unavailable on the token path"]));
    assert!(logged("WARN", &["store unavailable", "/v1.0/applications"]));

    proxy.restore();
    let healed = eventually(Duration::from_secs(15), || async {
        timed_token(&app, &before.app_id, &before.secret).await.0 == StatusCode::OK
    })
    .await;
    eprintln!("tokens again {healed:?} after the database came back, no restart");
    assert_eq!(ready(&app).await, StatusCode::OK);
    let after = app.register_client(&admin, "made after the outage").await;
    let (status, body, _) = timed_token(&app, &after.app_id, &after.secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Nothing committed before is lost, nothing refused was made.
    let names = app_names(&app, &admin).await;
    assert!(
        names.iter().any(|n| n == "made before the outage"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "made after the outage"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n == "made during the outage"),
        "{names:?}"
    );
    let (_, creds, _) = timed_graph(
        &app,
        reqwest::Method::GET,
        &format!("/v1.0/applications/{}", before.id),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        creds["passwordCredentials"].as_array().unwrap().len(),
        1,
        "the refused addPassword added nothing: {creds}"
    );
}

#[tokio::test]
async fn a_slow_database_answers_slowly_or_503_within_the_request_time_limit() {
    crate::logs::captured();
    let limit = Duration::from_secs(4);
    let proxy = FaultyProxy::start().await;
    let app = spawn_behind(&proxy, limit).await;
    let admin = app.admin_token().await;
    let before = app
        .register_client(&admin, "made before the slowness")
        .await;
    let (status, body, _) = timed_token(&app, &before.app_id, &before.secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Slow (50 ms each way per chunk): everything still works, slower.
    proxy.delay(Duration::from_millis(50));
    let (status, body, took) = timed_token(&app, &before.app_id, &before.secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eprintln!("token with a 50 ms database: {took:?}");
    let (status, body, took) = timed_graph(
        &app,
        reqwest::Method::POST,
        "/v1.0/applications",
        &admin,
        Some(json!({"displayName": "made while slow"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    eprintln!("application created with a 50 ms database: {took:?}");
    assert!(took < limit, "{took:?}");

    // Hanging (each chunk held for a minute): 503 at the time limit, in
    // each endpoint's format, never later.
    proxy.delay(Duration::from_secs(60));
    let slack = Duration::from_millis(1500);
    let (status, body, took) = timed_graph(
        &app,
        reqwest::Method::POST,
        "/v1.0/applications",
        &admin,
        Some(json!({"displayName": "made while hanging"})),
    )
    .await;
    assert_graph_unavailable(status, &body);
    assert!(took < limit + slack, "{took:?}");
    let (status, body, took) = timed_graph(
        &app,
        reqwest::Method::GET,
        "/v1.0/applications",
        &admin,
        None,
    )
    .await;
    assert_graph_unavailable(status, &body);
    assert!(took < limit + slack, "{took:?}");
    // Whichever came first: the pool's acquire timeout (3 s: its check of
    // an idle connection gets no answer) or the request time limit.
    assert!(
        logged("WARN", &["store unavailable", "pool timed out"])
            || logged("WARN", &["request timed out", "/v1.0/applications"])
    );
    // By now the change feed's heartbeat has gone unanswered: no cache.
    let (status, body, took) = timed_token(&app, &before.app_id, &before.secret).await;
    assert_oauth_unavailable(status, &body);
    assert!(took < limit + slack, "{took:?}");

    proxy.restore();
    let healed = eventually(Duration::from_secs(15), || async {
        timed_token(&app, &before.app_id, &before.secret).await.0 == StatusCode::OK
    })
    .await;
    eprintln!("tokens again {healed:?} after the database sped up");
    let names = app_names(&app, &admin).await;
    for name in ["made before the slowness", "made while slow"] {
        assert!(names.iter().any(|n| n == name), "{name}: {names:?}");
    }
    // The change answered 503 ran on in the database: made with its audit
    // event, or not at all (the caller must look, as after any timeout).
    let audited = audited_creations(&app, &admin).await;
    eprintln!(
        "the change answered 503 at the time limit was {}made",
        if audited.iter().any(|n| n == "made while hanging") {
            ""
        } else {
            "not "
        }
    );
    assert_eq!(
        names.iter().any(|n| n == "made while hanging"),
        audited.iter().any(|n| n == "made while hanging"),
        "{names:?} / {audited:?}"
    );
    let after = app.register_client(&admin, "made after the slowness").await;
    let (status, body, _) = timed_token(&app, &after.app_id, &after.secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_write_blocked_by_a_lock_fails_at_the_default_statement_timeout() {
    // The default (10 s) ends it before the request time limit (30 s).
    blocked_write("", Duration::from_secs(13)).await;
}

#[tokio::test]
async fn a_statement_timeout_in_the_url_replaces_the_default() {
    blocked_write("?options[statement_timeout]=1s", Duration::from_secs(4)).await;
}

/// A write of `applications` while another session holds a lock on it:
/// 503 within `within`, and not made later when the lock goes.
async fn blocked_write(url_options: &str, within: Duration) {
    crate::logs::captured();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_tuned(dir, Tls::Off, |c| {
        c.database_url = format!("{}{url_options}", c.database_url);
    })
    .await;
    let admin = app.admin_token().await;
    let url = app.database.as_ref().unwrap().url.clone();
    let mut locker = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&url).await.unwrap()
    };
    // Writers of `applications` wait; readers do not.
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE applications IN EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();

    let (status, body, took) = timed_graph(
        &app,
        reqwest::Method::POST,
        "/v1.0/applications",
        &admin,
        Some(json!({"displayName": "blocked by a lock"})),
    )
    .await;
    eprintln!("blocked write answered {status} after {took:?}");
    assert_graph_unavailable(status, &body);
    assert!(took < within, "{took:?}");
    assert!(logged(
        "WARN",
        &["store unavailable", "statement timeout", "57014"]
    ));
    let names = app_names(&app, &admin).await;
    assert!(!names.iter().any(|n| n == "blocked by a lock"), "{names:?}");

    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let names = app_names(&app, &admin).await;
    assert!(
        !names.iter().any(|n| n == "blocked by a lock"),
        "a write answered 503 was made once the lock went: {names:?}"
    );
    assert!(!audited_creations(&app, &admin)
        .await
        .iter()
        .any(|n| n == "blocked by a lock"));
    app.create_app(&admin, json!({"displayName": "after the lock"}))
        .await;
}

/// A small tmpfs mounted for one test (root only), lazily unmounted on drop.
struct SmallDisk {
    mount: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` when this process may not mount (not root).
    fn mount(size: &str) -> Option<SmallDisk> {
        let mount = tempfile::tempdir().unwrap();
        let done = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(mount.path())
            .status()
            .ok()?;
        done.success().then_some(SmallDisk { mount })
    }

    /// Write a filler file until the disk is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.mount.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match file.write_all(&chunk).and_then(|()| file.sync_all()) {
                Ok(()) => continue,
                Err(e) if e.raw_os_error() == Some(28) => return path, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.mount.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_change_and_its_audit_together_and_recovers() {
    // A real full filesystem, not SQLite's max_page_count: the error comes
    // from the kernel (ENOSPC on the WAL), as in production.
    let Some(disk) = SmallDisk::mount("16m") else {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    };
    crate::logs::captured();
    let app = spawn_sqlite(tempfile::tempdir_in(disk.mount.path()).unwrap()).await;
    full_disk_story(&app, &disk, "database or disk is full").await;
    let integrity = std::process::Command::new("sqlite3")
        .arg(app.dir.path().join("clavis.db"))
        .arg("PRAGMA integrity_check;")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&integrity.stdout).trim(), "ok");
}

#[tokio::test]
async fn a_full_disk_under_postgresql_fails_the_change_and_its_audit_together_and_recovers() {
    // The test's database lives in a tablespace on a small tmpfs (PostgreSQL
    // runs on this machine); its WAL stays on PostgreSQL's own disk, so a
    // table or index that needs a new page gets ENOSPC (SQLSTATE 53100).
    let admin_url = super::helpers::postgres_admin_url();
    if !admin_url.contains("@127.0.0.1") && !admin_url.contains("@localhost") {
        eprintln!("SKIPPED: the tablespace must be on PostgreSQL's machine, this one");
        return;
    }
    let Some(disk) = SmallDisk::mount("16m") else {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    };
    let owned = std::process::Command::new("chown")
        .args(["postgres:postgres"])
        .arg(disk.mount.path())
        .status()
        .unwrap();
    assert!(owned.success());
    crate::logs::captured();
    let space = Tablespace::create(disk.mount.path()).await;
    let db = super::helpers::TestDatabase::create().await;
    space.hold(&db.name).await;
    let url = db.url.clone();
    let app = spawn_tuned(tempfile::tempdir().unwrap(), Tls::Off, |c| {
        c.database_url = url;
    })
    .await;
    full_disk_story(&app, &disk, "No space left on device (SQLSTATE 53100)").await;
    drop(app);
    drop(db);
    drop(space);
}

/// A PostgreSQL tablespace at a directory, dropped (after the databases in
/// it) on drop.
struct Tablespace {
    name: String,
}

impl Tablespace {
    async fn create(location: &std::path::Path) -> Tablespace {
        use sqlx::Connection;
        let name = format!("clavis_it_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&super::helpers::postgres_admin_url())
            .await
            .unwrap();
        sqlx::query(&format!(
            "CREATE TABLESPACE \"{name}\" LOCATION '{}'",
            location.display()
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        Tablespace { name }
    }

    /// Move the (empty, unused) database `db` into this tablespace.
    async fn hold(&self, db: &str) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&super::helpers::postgres_admin_url())
            .await
            .unwrap();
        sqlx::query(&format!(
            "ALTER DATABASE \"{db}\" SET TABLESPACE \"{}\"",
            self.name
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

impl Drop for Tablespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use sqlx::Connection;
                let url = super::helpers::postgres_admin_url();
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let drop = format!("DROP TABLESPACE IF EXISTS \"{name}\"");
                    let _ = sqlx::query(&drop).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// Fill `disk` (which holds `app`'s store) and check: the first change the
/// store cannot write is refused whole with a message naming the full
/// disk, and logged as an error quoting `driver_says`; reads and tokens go
/// on; once space is back, changes work again without a restart and every
/// acknowledged change has its audit event.
async fn full_disk_story(app: &TestApp, disk: &SmallDisk, driver_says: &str) {
    let admin = app.admin_token().await;
    let before = app
        .register_client(&admin, "made before the disk filled")
        .await;

    let filler = disk.fill();
    // The store may still have room for a few changes (free space in its
    // pages or its WAL); the first refused one must be refused whole.
    let mut made = Vec::new();
    let refused = loop {
        assert!(made.len() < 2000, "the full disk never refused a change");
        let name = format!("made on a full disk {}", made.len());
        let (status, body, _) = timed_graph(
            app,
            reqwest::Method::POST,
            "/v1.0/applications",
            &admin,
            Some(json!({"displayName": name})),
        )
        .await;
        if status == StatusCode::CREATED {
            made.push(name);
            continue;
        }
        assert_graph_unavailable(status, &body);
        eprintln!("refused after {} changes: {body}", made.len());
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("disk is full"), "{message}");
        break name;
    };
    // What the operator sees: an error naming the full disk.
    assert!(logged("ERROR", &["store disk full", driver_says]));
    // Reads still work; a secret made before still gets tokens.
    let (status, body, _) = timed_token(app, &before.app_id, &before.secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!app_names(app, &admin).await.contains(&refused));

    std::fs::remove_file(filler).unwrap();
    app.create_app(&admin, json!({"displayName": "made after space came back"}))
        .await;
    let names = app_names(app, &admin).await;
    let audited = audited_creations(app, &admin).await;
    assert!(!names.contains(&refused), "{names:?}");
    assert!(!audited.contains(&refused), "{audited:?}");
    for name in made
        .iter()
        .map(String::as_str)
        .chain(["made before the disk filled", "made after space came back"])
    {
        assert!(names.iter().any(|n| n == name), "{name}: {names:?}");
        assert!(audited.iter().any(|n| n == name), "{name}: {audited:?}");
    }
    let (status, body) = app
        .post(
            &format!("/v1.0/applications/{}/addPassword", before.id),
            &admin,
            json!({"passwordCredential": {"displayName": "after space came back"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_sqlite_file_locked_past_the_busy_timeout_answers_503_not_500() {
    use std::io::{BufRead, Write};
    crate::logs::captured();
    let app = spawn_sqlite(tempfile::tempdir().unwrap()).await;
    let admin = app.admin_token().await;
    // Another process takes the write lock and keeps it.
    let mut holder = std::process::Command::new("sqlite3")
        .arg(app.dir.path().join("clavis.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the sqlite3 command-line tool");
    let mut stdin = holder.stdin.take().unwrap();
    writeln!(stdin, "BEGIN IMMEDIATE; SELECT 'locked';").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");

    let (status, body, took) = timed_graph(
        &app,
        reqwest::Method::POST,
        "/v1.0/applications",
        &admin,
        Some(json!({"displayName": "while locked"})),
    )
    .await;
    eprintln!("write under another process's lock: {status} after {took:?}");
    assert_graph_unavailable(status, &body);
    // The busy timeout (5 s), then the answer.
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(logged("WARN", &["store unavailable", "database is locked"]));
    // Readers are not blocked (WAL), tokens still come.
    assert!(!app_names(&app, &admin)
        .await
        .iter()
        .any(|n| n == "while locked"));
    let (status, body, _) = timed_token(&app, &app.admin_id, &app.admin_secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    writeln!(stdin, "ROLLBACK;").unwrap();
    drop(stdin);
    holder.wait().unwrap();
    app.create_app(&admin, json!({"displayName": "after the lock"}))
        .await;
    assert!(!audited_creations(&app, &admin)
        .await
        .iter()
        .any(|n| n == "while locked"));
}
