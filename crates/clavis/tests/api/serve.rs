//! `clavis serve` as a user runs it: the real binary on a random port,
//! first-start bootstrap, file modes, what the log says (and never says),
//! restart on the same data directory, and graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Server {
    child: Child,
    base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the binary and wait for the line that names the bound address.
fn start(data_dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clavis"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(data_dir)
        .env_remove("CLAVIS_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("clavis starts");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(addr) = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v["fields"]["listen"].as_str().map(str::to_owned))
                {
                    let _ = tx.send(addr);
                }
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
            }
        });
    }
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "server did not report its address:\n{}",
                log.lock().unwrap()
            )
        });
    Server {
        child,
        base: format!("https://{addr}"),
        log,
    }
}

fn client(data_dir: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(data_dir.join("tls/ca.pem")).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn mode(path: std::path::PathBuf) -> u32 {
    std::fs::metadata(&path).unwrap().permissions().mode() & 0o777
}

async fn admin_token(http: &reqwest::Client, base: &str, boot: &Value) -> reqwest::Response {
    http.post(format!("{base}/default/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", boot["clientId"].as_str().unwrap()),
            ("client_secret", boot["clientSecret"].as_str().unwrap()),
            ("scope", "api://clavis/.default"),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn first_start_restart_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data);
    let http = client(&data);

    let boot_path = data.join("bootstrap-admin.json");
    let boot: Value = serde_json::from_str(&std::fs::read_to_string(&boot_path).unwrap()).unwrap();
    assert_eq!(mode(boot_path.clone()), 0o600);
    assert_eq!(mode(data.join("kek.key")), 0o600);
    assert_eq!(mode(data.join("tls/server-key.pem")), 0o600);
    assert_eq!(mode(data.clone()), 0o700);
    assert_eq!(
        mode(data.join("clavis.db")) & 0o077,
        0,
        "database readable by others"
    );
    assert!(
        !data.join("tls/ca-key.pem").exists(),
        "the CA key is not kept"
    );

    // A second process on the same data directory is refused.
    let second = Command::new(env!("CARGO_BIN_EXE_clavis"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already serving"));
    for field in [
        "tenantId",
        "clientId",
        "clientSecret",
        "authority",
        "caFile",
    ] {
        assert!(boot[field].is_string(), "{field} in bootstrap file");
    }
    assert_eq!(boot["authority"], format!("{}/default", server.base));

    let r = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = admin_token(&http, &server.base, &boot).await;
    assert_eq!(r.status(), 200);
    let jwks: Value = http
        .get(format!("{}/default/discovery/v2.0/keys", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains(&boot_path.display().to_string()),
        "log names the bootstrap file:\n{log}"
    );
    assert!(
        log.contains(&format!("{}/default", server.base)),
        "log names the authority"
    );
    assert!(
        !log.contains(boot["clientSecret"].as_str().unwrap()),
        "secret in the log"
    );
    // The open-file limit was raised (or already at its maximum), and said so.
    assert!(log.contains("open-file limit"), "{log}");
    // Metrics: on their own loopback listener, named in the log; not on
    // the main one.
    let metrics = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["fields"]["metrics"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("the log names the metrics address:\n{log}"));
    assert!(metrics.starts_with("127.0.0.1:"), "{metrics}");
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("clavis_connections_max "), "{text}");
    let r = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // SIGTERM: a clean exit, quickly.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut server = server;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    drop(server);

    // Restart on the same directory: no second bootstrap, same secret and keys work.
    let server = start(&data);
    // The same admin and secret; the authority follows the new port.
    let mut after: Value =
        serde_json::from_str(&std::fs::read_to_string(&boot_path).unwrap()).unwrap();
    assert_eq!(after["authority"], format!("{}/default", server.base));
    after["authority"] = boot["authority"].clone();
    assert_eq!(after, boot);
    assert!(!server.log.lock().unwrap().contains("first start"));
    let r = admin_token(&http, &server.base, &boot).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let again: Value = http
        .get(format!("{}/default/discovery/v2.0/keys", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwks["keys"][0]["kid"], again["keys"][0]["kid"],
        "signing key survives restart"
    );
}

#[tokio::test]
async fn refuses_a_key_file_others_can_read_and_a_wrong_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(start(&data));
    std::fs::set_permissions(data.join("kek.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_clavis"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");

    // Another key file cannot open this database: a clear refusal, no new secrets.
    std::fs::remove_file(data.join("kek.key")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_clavis"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kek.key is missing"), "{err}");
    assert!(
        !data.join("kek.key").exists(),
        "no stray key file left behind"
    );
}

#[tokio::test]
async fn operator_certificate_and_public_url() {
    // Make a certificate the way an operator would bring one (here: from
    // another data dir's local CA), and serve it with a public URL that
    // differs from the listen address (as behind a proxy).
    let certs = tempfile::tempdir().unwrap();
    let ca = clavis::http::tls::ensure_local_ca(certs.path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = clavis::Config::for_tests(
        dir.path().to_path_buf(),
        clavis::Tls::Files {
            cert: ca.server_cert.clone(),
            key: ca.server_key.clone(),
        },
    );
    config.public_url = Some("https://login.example.test".into());
    let app = clavis::App::build(config, std::sync::Arc::new(clavis::clock::SystemClock))
        .await
        .unwrap();
    assert!(
        app.ca_file.is_none(),
        "no local CA when the operator brings a certificate"
    );
    assert!(!dir.path().join("tls").exists());
    let addr = app.local_addr();
    tokio::spawn(app.run(std::future::pending()));
    let http = client(certs.path());
    let doc: Value = http
        .get(format!(
            "https://{addr}/default/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = doc["issuer"].as_str().unwrap();
    assert!(
        issuer.starts_with("https://login.example.test/"),
        "{issuer}"
    );
    assert!(doc["token_endpoint"]
        .as_str()
        .unwrap()
        .starts_with("https://login.example.test/"));
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("bootstrap-admin.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(boot["authority"], "https://login.example.test/default");
    assert!(boot["caFile"].is_null());
}
