//! What `clavis serve` says and refuses, as a user sees it: flags with bad
//! values stop it with the flag's name, a port in use names `--listen`, the
//! log has no colour codes off a terminal (or with `NO_COLOR`), a refused
//! token request's trace id is in the default log, plain HTTP sent to the
//! TLS port gets a plain answer naming the https URL, the bootstrap file
//! follows the public URL, and a PostgreSQL restart logs no migration
//! NOTICE.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::helpers::{run_clavis, TestDatabase};

/// A `clavis serve` process whose output (stdout and stderr) is collected.
struct Serve {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// `clavis serve` (text log, port 0, metrics off) with `extra` flags;
    /// waits for the line that names the bound address.
    fn start(data_dir: &std::path::Path, extra: &[&str]) -> Serve {
        let mut command = Command::new(env!("CARGO_BIN_EXE_clavis"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "off",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env_remove("CLAVIS_DATABASE_URL")
            .env_remove("CLAVIS_LOG")
            .env_remove("CLAVIS_LOG_FORMAT")
            .env_remove("CLAVIS_PUBLIC_URL");
        Self::spawn(command)
    }

    fn spawn(mut command: Command) -> Serve {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("clavis starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, tx) = (log.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains("Clavis is listening") {
                        if let Some(addr) = line
                            .split_whitespace()
                            .find_map(|w| strip_ansi(w).strip_prefix("listen=").map(str::to_owned))
                        {
                            let _ = tx.send(addr);
                        }
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "server did not report its address:\n{}",
                    log.lock().unwrap()
                )
            });
        Serve { child, addr, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait (at most a minute) until the log contains `needle`.
    fn wait_for_log(&self, needle: &str) -> String {
        for _ in 0..600 {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("`{needle}` never appeared in the log:\n{}", self.log());
    }
}

/// `text` without ANSI escape sequences (for finding fields in a coloured line).
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn https_client(data_dir: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(data_dir.join("tls/ca.pem")).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[test]
fn flags_with_bad_values_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--data-dir",
            data,
        ];
        args.extend_from_slice(extra);
        run_clavis(&args)
    };
    let (ok, out) = serve(&["--log-format", "yaml"]);
    assert!(!ok);
    assert!(
        out.contains("--log-format") && out.contains("text") && out.contains("json"),
        "{out}"
    );
    for (url, why) in [
        ("login.example.com", "not a URL"),
        ("ftp://login.example.com", "scheme"),
        ("https://login.example.com/clavis", "path"),
        ("https://login.example.com/?tenant=a", "query"),
        ("https://login.example.com/#top", "fragment"),
    ] {
        let (ok, out) = serve(&["--public-url", url]);
        assert!(!ok, "{url} accepted");
        assert!(
            out.contains("--public-url") && out.contains(why),
            "{url}: {out}"
        );
    }
    let (ok, out) = serve(&["--public-url", "https://admin:hunter2@login.example.com"]);
    assert!(!ok && out.contains("--public-url"), "{out}");
    assert!(
        !out.contains("hunter2"),
        "a password in the URL is echoed: {out}"
    );
    for (flag, value) in [("--sign-in-log", "maybe"), ("--key-provider", "vault")] {
        let (ok, out) = serve(&[flag, value]);
        assert!(!ok && out.contains(flag), "{flag} {value}: {out}");
    }
    // Nothing was created by the refused starts.
    assert!(!std::path::Path::new(data).exists());
    // The same check on the offline command that writes an authority.
    let (ok, out) = run_clavis(&[
        "admin",
        "recover",
        "--data-dir",
        data,
        "--public-url",
        "https://login.example.com/x?y",
    ]);
    assert!(!ok && out.contains("--public-url"), "{out}");
}

#[test]
fn a_port_in_use_names_the_address_and_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out) = run_clavis(&[
        "serve",
        "--listen",
        &addr,
        "--metrics-listen",
        "off",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(out.contains(&addr), "{out}");
    assert!(out.contains("already in use"), "{out}");
    assert!(out.contains("--listen"), "{out}");
}

#[tokio::test]
async fn the_log_off_a_terminal_is_plain_and_a_refusal_carries_its_trace_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Serve::start(&data, &["--log-format", "text"]);
    let boot: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("bootstrap-admin.json")).unwrap())
            .unwrap();
    let wrong = "clv_wrongSecretCanary0123456789abcdefABCDEF";
    let r = https_client(&data)
        .post(format!("https://{}/default/oauth2/v2.0/token", server.addr))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", boot["clientId"].as_str().unwrap()),
            ("client_secret", wrong),
            ("scope", "api://clavis/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let request_id = r.headers()["request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["trace_id"], request_id.as_str());
    let log = server.wait_for_log(&request_id);
    let line = log.lines().find(|l| l.contains(&request_id)).unwrap();
    assert!(
        line.contains("INFO") && line.contains("token request refused"),
        "{line}"
    );
    assert!(line.contains("7000215"), "{line}");
    assert!(!log.contains(wrong), "the wrong secret reached the log");
    assert!(
        !log.contains('\x1b'),
        "colour codes in a log that is not a terminal:\n{log}"
    );
}

/// `clavis serve` on a pseudo-terminal (`script`), with `env` set: its log.
fn log_on_a_terminal(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = format!(
        "exec {} serve --listen 127.0.0.1:0 --metrics-listen off --data-dir {}",
        env!("CARGO_BIN_EXE_clavis"),
        data.display()
    );
    let mut command = Command::new("script");
    command
        .args(["-qefc", &serve, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("CLAVIS_LOG")
        .env_remove("CLAVIS_DATABASE_URL")
        .envs(env.iter().copied());
    let server = Serve::spawn(command);
    server.log()
}

#[test]
fn colours_only_on_a_terminal_without_no_color() {
    let coloured = log_on_a_terminal(&[]);
    assert!(
        coloured.contains('\x1b'),
        "no colours on a terminal (is the test's terminal real?):\n{coloured}"
    );
    let plain = log_on_a_terminal(&[("NO_COLOR", "1")]);
    assert!(
        !plain.contains('\x1b'),
        "colour codes despite NO_COLOR:\n{plain}"
    );
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_told_to_use_https() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Serve::start(&data, &[]);
    let path = "/default/v2.0/.well-known/openid-configuration";

    // A raw request, as curl http:// would send it.
    let mut tcp = std::net::TcpStream::connect(&server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        tcp,
        "GET {path}?x=1 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("content-type: text/plain"), "{answer}");
    assert!(
        answer.contains(&format!("use https://{}{path}\n", server.addr)),
        "{answer}"
    );

    // An HTTP client given http:// gets the same answer as a response.
    let r = reqwest::Client::new()
        .post(format!("http://{}/default/oauth2/v2.0/token", server.addr))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("plain HTTP request was sent to an HTTPS port")
            && text.contains(&format!(
                "https://{}/default/oauth2/v2.0/token",
                server.addr
            )),
        "{text}"
    );

    // The CLI, given http:// for this https server, says to use https.
    let config = tempfile::tempdir().unwrap();
    let login = |authority: String| {
        Command::new(env!("CARGO_BIN_EXE_clavis"))
            .args([
                "login",
                "--bootstrap",
                data.to_str().unwrap(),
                "--authority",
                &authority,
            ])
            .env("CLAVIS_CONFIG_DIR", config.path())
            .env_remove("CLAVIS_PROFILE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = login(format!("http://{}/default", server.addr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("sent as plain HTTP") && err.contains("use https://"),
        "{err}"
    );
    let out = login(format!("https://{}/default", server.addr));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // TLS on the same port still works.
    let r = https_client(&data)
        .get(format!("https://{}{path}", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_bootstrap_file_follows_the_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = data.join("bootstrap-admin.json");
    let read =
        || -> Value { serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap() };

    let first = Serve::start(&data, &[]);
    let boot = read();
    assert_eq!(boot["authority"], format!("https://{}/default", first.addr));

    // Another port: the authority follows; the secret and the rest stay.
    let first_addr = first.addr.clone();
    drop(first);
    let second = Serve::start(&data, &[]);
    let moved = read();
    assert_eq!(
        moved["authority"],
        format!("https://{}/default", second.addr)
    );
    for field in ["clientId", "clientSecret", "keyId", "tenantId", "caFile"] {
        assert_eq!(moved[field], boot[field], "{field}");
    }
    let log = second.log();
    if second.addr != first_addr {
        assert!(log.contains("bootstrap-admin.json now names"), "{log}");
    }
    assert!(!log.contains(boot["clientSecret"].as_str().unwrap()));
    drop(second);

    // A public URL (as behind a proxy).
    let third = Serve::start(&data, &["--public-url", "https://login.example.test:9443/"]);
    assert_eq!(
        read()["authority"],
        "https://login.example.test:9443/default"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(third);

    // Deleted after first use (as advised): it stays deleted.
    std::fs::remove_file(&file).unwrap();
    drop(Serve::start(&data, &[]));
    assert!(!file.exists());
}

#[tokio::test]
async fn a_postgresql_restart_logs_no_migration_notice() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for _ in 0..2 {
        let server = Serve::start(&data, &["--database-url", &db.url]);
        let log = server.log();
        assert!(!log.contains("_sqlx_migrations"), "{log}");
        assert!(!log.contains("already exists"), "{log}");
    }
}
