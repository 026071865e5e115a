//! `spawn_app()` and `TestApp`: a real server on a random port with its own
//! data directory and SQLite file, and one method per endpoint.

use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use clavis::clock::ManualClock;
use clavis::{App, Config, Tls};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use time::OffsetDateTime;

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub base: String,
    /// The metrics listener's base URL (`http://127.0.0.1:PORT`), if on.
    pub metrics_base: Option<String>,
    pub http: Client,
    pub dir: TempDir,
    pub clock: ManualClock,
    pub tenant_id: String,
    pub admin_id: String,
    pub admin_secret: String,
    /// The running server's state (to set up what the API cannot yet, e.g. a second tenant).
    pub state: Arc<clavis::app::AppState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// PostgreSQL runs: the test's own database, dropped after the test.
    pub database: Option<TestDatabase>,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Ask the server to stop and wait until it has (graceful shutdown).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server
            .take()
            .expect("running")
            .await
            .expect("server task")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Start a plain-HTTP server (TLS has its own tests).
pub async fn spawn_app() -> TestApp {
    spawn_with(Tls::Off).await
}

pub async fn spawn_with(tls: Tls) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_in(dir, tls).await
}

/// Start a server on an existing data directory (restarts).
pub async fn spawn_in(dir: TempDir, tls: Tls) -> TestApp {
    spawn_tuned(dir, tls, |_| {}).await
}

/// Start a server whose test configuration `tune` adjusts first.
pub async fn spawn_tuned(dir: TempDir, tls: Tls, tune: impl FnOnce(&mut Config)) -> TestApp {
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let mut config = Config::for_tests(dir.path().to_path_buf(), tls.clone());
    let database = match super::BACKEND {
        crate::Backend::Sqlite => None,
        crate::Backend::Postgres => {
            let db = TestDatabase::create().await;
            config.database_url = db.url.clone();
            Some(db)
        }
    };
    // After the database is chosen, so `tune` may reroute it (a proxy).
    tune(&mut config);
    let app = App::build(config, Arc::new(clock.clone()))
        .await
        .expect("app builds");
    let base = app.base_url().to_owned();
    let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
    let state = app.state().clone();
    let mut http = Client::builder();
    if let Some(ca) = &app.ca_file {
        let pem = std::fs::read(ca).expect("ca.pem");
        http = http.tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")]);
    }
    let http = http.build().expect("client");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("bootstrap-admin.json")).expect("bootstrap file"),
    )
    .expect("bootstrap json");
    TestApp {
        base,
        metrics_base,
        http,
        clock,
        tenant_id: boot["tenantId"].as_str().unwrap().to_owned(),
        admin_id: boot["clientId"].as_str().unwrap().to_owned(),
        admin_secret: boot["clientSecret"].as_str().unwrap().to_owned(),
        dir,
        state,
        database,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// The claims of a JWT, unverified (tests verify signatures separately).
pub fn claims(token: &str) -> Value {
    let body = token.split('.').nth(1).expect("jwt");
    serde_json::from_slice(&B64.decode(body).expect("b64")).expect("json")
}

pub fn header(token: &str) -> Value {
    let head = token.split('.').next().expect("jwt");
    serde_json::from_slice(&B64.decode(head).expect("b64")).expect("json")
}

/// A registered client with one secret.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: String,
    pub app_id: String,
    pub sp_id: String,
    pub secret: String,
    pub key_id: String,
}

impl TestApp {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// `/metrics` from the metrics listener, asserting 200 and plain text.
    pub async fn metrics(&self) -> String {
        let base = self.metrics_base.as_deref().expect("metrics listener on");
        let r = self
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics request");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        r.text().await.expect("metrics body")
    }

    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base)
    }

    /// POST a form to the token endpoint (client_secret_post).
    pub async fn token_post(&self, client_id: &str, secret: &str, scope: &str) -> Response {
        self.http
            .post(self.token_url("default"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", scope),
            ])
            .send()
            .await
            .expect("request")
    }

    /// A token, asserting success.
    pub async fn token(&self, client_id: &str, secret: &str, scope: &str) -> String {
        let r = self.token_post(client_id, secret, scope).await;
        let status = r.status();
        let body: Value = r.json().await.expect("json");
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A management token for the bootstrap admin.
    pub async fn admin_token(&self) -> String {
        self.token(&self.admin_id, &self.admin_secret, "api://clavis/.default")
            .await
    }

    /// Call the management API with `token`.
    pub async fn graph(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let text = r.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json body")
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.graph(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.graph(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Create an application, asserting 201.
    pub async fn create_app(&self, token: &str, body: Value) -> Value {
        let (status, app) = self.post("/v1.0/applications", token, body).await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        app
    }

    /// Add a secret, asserting 200.
    pub async fn add_secret(&self, token: &str, app_object_id: &str) -> Value {
        let (status, cred) = self
            .post(
                &format!("/v1.0/applications/{app_object_id}/addPassword"),
                token,
                json!({"passwordCredential": {"displayName": "test"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{cred}");
        cred
    }

    /// The service principal of an appId.
    pub async fn sp_of(&self, token: &str, app_id: &str) -> String {
        let (status, list) = self
            .get(
                &format!("/v1.0/servicePrincipals?$filter=appId%20eq%20'{app_id}'"),
                token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["value"][0]["id"].as_str().unwrap().to_owned()
    }

    /// Register a client app with a secret.
    pub async fn register_client(&self, token: &str, name: &str) -> Registered {
        let app = self.create_app(token, json!({"displayName": name})).await;
        let cred = self.add_secret(token, app["id"].as_str().unwrap()).await;
        let sp_id = self.sp_of(token, app["appId"].as_str().unwrap()).await;
        Registered {
            id: app["id"].as_str().unwrap().into(),
            app_id: app["appId"].as_str().unwrap().into(),
            sp_id,
            secret: cred["secretText"].as_str().unwrap().into(),
            key_id: cred["keyId"].as_str().unwrap().into(),
        }
    }

    /// Register an API with one app role, returns (app json, role id).
    pub async fn register_api(&self, token: &str, uri: &str, role: &str) -> (Value, String) {
        let role_id = uuid::Uuid::new_v4().to_string();
        let app = self
            .create_app(
                token,
                json!({"displayName": format!("api {uri}"), "identifierUris": [uri],
                       "appRoles": [{"id": role_id, "value": role, "displayName": role,
                                     "allowedMemberTypes": ["Application"], "isEnabled": true}]}),
            )
            .await;
        (app, role_id)
    }

    /// Grant `role_id` of the resource `api_app_id` to `client_sp`.
    pub async fn grant(
        &self,
        token: &str,
        api_app_id: &str,
        client_sp: &str,
        role_id: &str,
    ) -> (StatusCode, Value) {
        let resource_sp = self.sp_of(token, api_app_id).await;
        self.post(
            &format!("/v1.0/servicePrincipals/{resource_sp}/appRoleAssignedTo"),
            token,
            json!({"principalId": client_sp, "resourceId": resource_sp, "appRoleId": role_id}),
        )
        .await
    }

    /// Grant a management role (by value) to a client.
    pub async fn grant_management(&self, token: &str, client_sp: &str, role: &str) {
        let (_, list) = self
            .get(
                "/v1.0/applications?$filter=identifierUris/any(x:x%20eq%20'api://clavis')",
                token,
            )
            .await;
        let mgmt = &list["value"][0];
        let role_id = mgmt["appRoles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["value"] == role)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, body) = self
            .grant(token, mgmt["appId"].as_str().unwrap(), client_sp, &role_id)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// Server-level URL of the PostgreSQL the tests use (trust auth).
pub fn postgres_admin_url() -> String {
    std::env::var("CLAVIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database for one test; dropped (forcibly) on drop.
/// Names carry their creation time, so databases left by a killed run are
/// dropped by the next one after an hour.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        use sqlx::Connection;
        let admin = postgres_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                "PostgreSQL is needed for the `postgres` half of the suite ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or set \
                 CLAVIS_TEST_POSTGRES_URL"
            )
            });
        static SWEPT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        if SWEPT.set(()).is_ok() {
            let stale: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'clavis_it_%'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            let hour_ago = OffsetDateTime::now_utc().unix_timestamp() - 3600;
            for name in stale {
                let born: i64 = name
                    .split('_')
                    .nth(2)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                if born < hour_ago {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                }
            }
        }
        let name = format!(
            "clavis_it_{}_{}",
            OffsetDateTime::now_utc().unix_timestamp(),
            uuid::Uuid::new_v4().simple()
        );
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .unwrap_or(admin);
        TestDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                }
            });
        })
        .join();
    }
}

/// A fresh data directory holding the key-encryption key `kek_hex` (0600),
/// as a node that shares a database with others must.
#[allow(dead_code)] // multi-node tests run in the PostgreSQL module only
pub fn data_dir_with_kek(kek_hex: &str) -> TempDir {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.path().join("kek.key"))
        .expect("kek.key");
    writeln!(f, "{kek_hex}").expect("write kek.key");
    dir
}

/// `n` data directories sharing one fresh key-encryption key.
#[allow(dead_code)] // multi-node tests run in the PostgreSQL module only
pub fn shared_kek_dirs(n: usize) -> Vec<TempDir> {
    let kek =
        uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
    (0..n).map(|_| data_dir_with_kek(&kek)).collect()
}

/// Run the `clavis` binary with `args` (no data dir or database from the
/// environment): whether it succeeded, and what it printed.
pub fn run_clavis(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clavis"))
        .args(args)
        .env_remove("CLAVIS_DATA_DIR")
        .env_remove("CLAVIS_DATABASE_URL")
        .output()
        .expect("clavis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The workspace's root (the test runs in `crates/clavis`).
#[allow(dead_code)] // the interop tests run in the SQLite module only
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of the workspace's `.venv` once `probe` (Python code, e.g.
/// `import msal`) runs there, installing `requirements` (a path in the
/// workspace) first when it does not; the venv is made when missing.
/// `scripts/test` installs everything beforehand: this is for a test run
/// alone with `cargo test`. One installation at a time, as tests start
/// together.
#[allow(dead_code)] // the interop tests run in the SQLite module only
pub fn venv_python(requirements: &str, probe: &str) -> PathBuf {
    use std::process::Command;
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let venv = workspace().join(".venv");
    let python = venv.join("bin/python");
    let ready = |python: &PathBuf| {
        Command::new(python)
            .args(["-c", probe])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&python) {
        return python;
    }
    if !python.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed (apt-get install python3-venv, or run scripts/test)")
            .success();
        assert!(ok, "python3 -m venv failed");
    }
    let ok = Command::new(&python)
        .args(["-m", "pip", "install", "-q", "-r"])
        .arg(workspace().join(requirements))
        .status()
        .expect("pip runs")
        .success();
    assert!(ok, "pip install -r {requirements} failed");
    assert!(
        ready(&python),
        "{requirements} installed, yet `{probe}` fails"
    );
    python
}

/// The workspace folder `project` (a package.json with its lock file) with
/// its packages installed by `npm ci` when `node_modules` is missing; for a
/// test run alone with `cargo test` (`scripts/test` installs them first).
#[allow(dead_code)] // the interop tests run in the SQLite module only
pub fn npm_project(project: &str) -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = workspace().join(project);
    if !dir.join("node_modules/.package-lock.json").exists() {
        let ok = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("node and npm are needed (apt-get install nodejs npm, or run scripts/test)")
            .success();
        assert!(ok, "npm ci in {project} failed");
    }
    dir
}
