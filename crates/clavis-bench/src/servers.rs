//! Starting the two servers under test the same way: a fresh process on a
//! free loopback port, HTTPS, timed from spawn to its first token; and
//! registering their clients (Clavis through its management API, the peer
//! through its static configuration).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Clavis,
    Peer,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Clavis => "Clavis",
            Kind::Peer => "oidc-provider",
        }
    }
}

/// A running server under test.
#[derive(Debug)]
pub struct Server {
    pub kind: Kind,
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    /// Clavis only: its metrics listener (plain HTTP, loopback).
    pub metrics_addr: Option<SocketAddr>,
    pub ca_pem: Vec<u8>,
    /// Time from spawn to the first token.
    pub cold_start: Duration,
    /// Token request bodies, one per registered client.
    pub bodies: Vec<Bytes>,
    /// Token endpoint path.
    pub token_path: String,
    /// Clavis only: data directory.
    pub data_dir: Option<PathBuf>,
}

impl Server {
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The CPU the servers under test are pinned to (set once from the command
/// line), so that they and the load generator do not take turns on the same
/// cores: on a small machine that turn-taking, not the server, makes the
/// latency tail.
pub static SERVER_CPU: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();

/// A command for a server process, pinned when asked (Clavis then runs one
/// worker thread: one core, like the single-threaded peer).
fn server_command(program: &std::ffi::OsStr, pin: bool) -> Command {
    match SERVER_CPU.get().copied().flatten().filter(|_| pin) {
        Some(cpu) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(cpu.to_string()).arg(program);
            cmd.env("TOKIO_WORKER_THREADS", "1");
            cmd
        }
        None => Command::new(program),
    }
}

/// A free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn https_client(ca_pem: &[u8]) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem)?])
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Poll `attempt` every 5 ms until it succeeds (or 60 s pass).
async fn until_ok<F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(true) = attempt().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("{what} did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Start Clavis on a fresh data directory; the cold start ends with the
/// bootstrap admin's first token.
pub async fn start_clavis(binary: &Path, data_dir: &Path, log: &Path) -> anyhow::Result<Server> {
    start_clavis_with(binary, data_dir, log, &[], None, true, &[]).await
}

/// Start Clavis with extra `serve` flags (e.g. a PostgreSQL URL and a TLS
/// certificate). With `ca_pem` (a certificate not made by this node), the
/// node is ready when `/readyz` answers; otherwise at the bootstrap
/// admin's first token.
pub async fn start_clavis_with(
    binary: &Path,
    data_dir: &Path,
    log: &Path,
    extra: &[String],
    ca_pem: Option<&[u8]>,
    pin: bool,
    env: &[(String, String)],
) -> anyhow::Result<Server> {
    let port = free_port()?;
    let metrics_port = free_port()?;
    let spawned = Instant::now();
    let child = server_command(binary.as_os_str(), pin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("CLAVIS_LOG", "warn")
        .stdout(Stdio::from(std::fs::File::create(log)?))
        .stderr(Stdio::from(std::fs::File::create(
            log.with_extension("err"),
        )?))
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().unwrap_or_default();
    let boot_path = data_dir.join("bootstrap-admin.json");
    let ca_path = data_dir.join("tls/ca.pem");
    let base = format!("https://127.0.0.1:{port}");
    let ready = until_ok("Clavis", || async {
        let ca = match ca_pem {
            Some(pem) => pem.to_vec(),
            None => std::fs::read(&ca_path)?,
        };
        let http = https_client(&ca)?;
        if ca_pem.is_some() {
            let r = http.get(format!("{base}/readyz")).send().await?;
            return Ok(r.status().is_success());
        }
        let boot: Value = serde_json::from_slice(&std::fs::read(&boot_path)?)?;
        let r = http
            .post(format!("{base}/default/oauth2/v2.0/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", boot["clientId"].as_str().unwrap_or_default()),
                (
                    "client_secret",
                    boot["clientSecret"].as_str().unwrap_or_default(),
                ),
                ("scope", "api://clavis/.default"),
            ])
            .send()
            .await?;
        Ok(r.status().is_success())
    })
    .await;
    ready.map_err(|e| anyhow::anyhow!("{e}; see {}", log.with_extension("err").display()))?;
    let cold_start = spawned.elapsed();
    Ok(Server {
        kind: Kind::Clavis,
        child,
        pid,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], metrics_port))),
        ca_pem: match ca_pem {
            Some(pem) => pem.to_vec(),
            None => std::fs::read(&ca_path)?,
        },
        cold_start,
        bodies: Vec::new(),
        token_path: "/default/oauth2/v2.0/token".into(),
        data_dir: Some(data_dir.to_owned()),
    })
}

/// The size in bytes of one access token from `server` (its first client).
pub async fn token_size(server: &Server) -> anyhow::Result<usize> {
    let body = server
        .bodies
        .first()
        .ok_or_else(|| anyhow::anyhow!("no client registered"))?;
    let answer: Value = https_client(&server.ca_pem)?
        .post(format!("https://{}{}", server.addr, server.token_path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await?
        .json()
        .await?;
    let token = answer["access_token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no token: {answer}"))?;
    Ok(token.len())
}

/// Register an API and `clients` clients (one secret each) through the
/// management API, select the signing algorithm, and prepare token bodies.
pub async fn provision_clavis(
    server: &mut Server,
    alg: &str,
    clients: usize,
) -> anyhow::Result<()> {
    let data_dir = server
        .data_dir
        .clone()
        .ok_or_else(|| anyhow::anyhow!("not Clavis"))?;
    let boot: Value =
        serde_json::from_slice(&std::fs::read(data_dir.join("bootstrap-admin.json"))?)?;
    let http = https_client(&server.ca_pem)?;
    let base = format!("https://{}", server.addr);
    let admin: Value = http
        .post(format!("{base}{}", server.token_path))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", boot["clientId"].as_str().unwrap_or_default()),
            (
                "client_secret",
                boot["clientSecret"].as_str().unwrap_or_default(),
            ),
            ("scope", "api://clavis/.default"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let admin = admin["access_token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no admin token"))?
        .to_owned();
    let r = http
        .patch(format!("{base}/v1.0/policies/tenantPolicy"))
        .bearer_auth(&admin)
        .json(&json!({"signingAlgorithm": alg}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "setting {alg}: {}", r.status());
    let r = http
        .post(format!("{base}/v1.0/applications"))
        .bearer_auth(&admin)
        .json(&json!({"displayName": "bench api", "identifierUris": ["api://bench"]}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "creating the API: {}", r.status());

    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let (http, base, admin, limit) = (http.clone(), base.clone(), admin.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await?;
            let app: Value = http
                .post(format!("{base}/v1.0/applications"))
                .bearer_auth(&admin)
                .json(&json!({"displayName": format!("bench client {i}")}))
                .send()
                .await?
                .json()
                .await?;
            let id = app["id"].as_str().ok_or_else(|| anyhow::anyhow!("no app id: {app}"))?;
            let secret: Value = http
                .post(format!("{base}/v1.0/applications/{id}/addPassword"))
                .bearer_auth(&admin)
                .json(&json!({"passwordCredential": {"displayName": "bench"}}))
                .send()
                .await?
                .json()
                .await?;
            let body = format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&scope=api%3A%2F%2Fbench%2F.default",
                app["appId"].as_str().unwrap_or_default(),
                secret["secretText"].as_str().unwrap_or_default()
            );
            anyhow::Ok(Bytes::from(body))
        }));
    }
    for task in tasks {
        server.bodies.push(task.await??);
    }
    Ok(())
}

/// Start the peer (oidc-provider under Node.js) with `clients` static
/// clients and the given TLS certificate; cold start ends with its first token.
pub async fn start_peer(
    peer_dir: &Path,
    alg: &str,
    clients: usize,
    tls: (&Path, &Path, &[u8]),
    log: &Path,
) -> anyhow::Result<Server> {
    let peer_dir = &std::fs::canonicalize(peer_dir)?;
    let port = free_port()?;
    let seed = "bench-peer-secret";
    let spawned = Instant::now();
    let child = server_command(std::ffi::OsStr::new("node"), true)
        .arg(peer_dir.join("server.mjs"))
        .current_dir(peer_dir)
        .env("PORT", port.to_string())
        .env("ALG", alg)
        .env("CLIENTS", clients.to_string())
        .env("SECRET_SEED", seed)
        .env("TLS_CERT", tls.0)
        .env("TLS_KEY", tls.1)
        .env("NODE_ENV", "production")
        .stdout(Stdio::from(std::fs::File::create(log)?))
        .stderr(Stdio::from(std::fs::File::create(
            log.with_extension("err"),
        )?))
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().unwrap_or_default();
    let http = https_client(tls.2)?;
    let token_url = format!("https://127.0.0.1:{port}/token");
    until_ok("oidc-provider", || async {
        let r = http
            .post(&token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "bench-0"),
                ("client_secret", &format!("{seed}-0")),
                ("scope", "read"),
            ])
            .send()
            .await?;
        Ok(r.status().is_success())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; see {}", log.with_extension("err").display()))?;
    let cold_start = spawned.elapsed();
    let bodies = (0..clients)
        .map(|i| {
            Bytes::from(format!(
                "grant_type=client_credentials&client_id=bench-{i}&client_secret={seed}-{i}&scope=read"
            ))
        })
        .collect();
    Ok(Server {
        kind: Kind::Peer,
        child,
        pid,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        metrics_addr: None,
        ca_pem: tls.2.to_vec(),
        cold_start,
        bodies,
        token_path: "/token".into(),
        data_dir: None,
    })
}
