//! Transport hardening: TLS 1.2+ only, security headers on every response,
//! `X-Forwarded-For` only from trusted proxies, request time limits, and
//! slow clients (slowloris) closed without slowing anyone else down.

use std::time::{Duration, Instant};

use clavis::Tls;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::helpers::{spawn_tuned, spawn_with, TestApp};

fn addr(app: &TestApp) -> String {
    app.base
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .to_owned()
}

const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    for tls in [Tls::LocalCa, Tls::Off] {
        let app = spawn_with(tls.clone()).await;
        let admin = app.admin_token().await;
        let t = &app.tenant_id;
        let bad_secret = app
            .token_post(&app.admin_id, "wrong", "api://clavis/.default")
            .await;
        let mut responses = vec![
            ("token failure", bad_secret),
            (
                "token success",
                app.token_post(&app.admin_id, &app.admin_secret, "api://clavis/.default")
                    .await,
            ),
        ];
        let gets = [
            (
                "discovery",
                format!("/{t}/v2.0/.well-known/openid-configuration"),
            ),
            ("jwks", format!("/{t}/discovery/v2.0/keys")),
            ("404", "/nowhere".to_owned()),
            ("405", format!("/{t}/oauth2/v2.0/token")),
            ("healthz", "/healthz".to_owned()),
            ("openapi", "/openapi.json".to_owned()),
        ];
        for (name, path) in gets {
            let r = app
                .http
                .get(format!("{}{path}", app.base))
                .send()
                .await
                .unwrap();
            responses.push((name, r));
        }
        for (name, path) in [
            ("management 200", "/v1.0/applications"),
            (
                "management 404",
                "/v1.0/applications/00000000-0000-0000-0000-000000000000",
            ),
        ] {
            let r = app
                .http
                .get(format!("{}{path}", app.base))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            responses.push((name, r));
        }
        let r = app
            .http
            .get(format!("{}/v1.0/applications", app.base))
            .send()
            .await
            .unwrap();
        responses.push(("management 401", r));

        for (name, r) in &responses {
            let h = r.headers();
            for (header, value) in SECURITY_HEADERS {
                assert_eq!(
                    h.get(*header).map(|v| v.to_str().unwrap()),
                    Some(*value),
                    "{name}: {header} ({tls:?})"
                );
            }
            let hsts = h
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap());
            match tls {
                Tls::Off => assert_eq!(hsts, None, "{name}: no HSTS over plain HTTP"),
                _ => assert_eq!(hsts, Some("max-age=31536000"), "{name}"),
            }
            let cache = h.get("cache-control").unwrap().to_str().unwrap();
            if matches!(*name, "discovery" | "jwks") {
                assert!(
                    cache.contains("max-age"),
                    "{name} keeps its caching: {cache}"
                );
            } else {
                assert_eq!(cache, "no-store", "{name}");
            }
        }
        let statuses: Vec<_> = responses
            .iter()
            .map(|(n, r)| (*n, r.status().as_u16()))
            .collect();
        for (name, want) in [
            ("token failure", 401),
            ("token success", 200),
            ("404", 404),
            ("405", 405),
            ("management 200", 200),
            ("management 404", 404),
            ("management 401", 401),
        ] {
            assert!(statuses.contains(&(name, want)), "{statuses:?}");
        }
    }
}

#[tokio::test]
async fn a_tls_1_2_only_client_is_served() {
    let app = spawn_with(Tls::LocalCa).await;
    let pem = std::fs::read(app.dir.path().join("tls/ca.pem")).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// A TLS 1.1 ClientHello (no `supported_versions` extension) gets a fatal
/// `protocol_version` alert: the server speaks only TLS 1.3 and 1.2.
#[tokio::test]
async fn a_tls_1_1_handshake_is_refused() {
    let app = spawn_with(Tls::LocalCa).await;
    let mut hello_body = vec![0x03, 0x02]; // client_version TLS 1.1
    hello_body.extend([7u8; 32]); // random
    hello_body.push(0); // no session id
    hello_body.extend([0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // two TLS 1.1 suites
    hello_body.extend([0x01, 0x00]); // null compression
                                     // signature_algorithms: ecdsa_secp256r1_sha256 (so only the version is wrong).
    hello_body.extend([0x00, 0x08, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend((hello_body.len() as u16).to_be_bytes());
    handshake.extend(hello_body);
    let mut record = vec![0x16, 0x03, 0x02];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);

    let mut tcp = TcpStream::connect(addr(&app)).await.unwrap();
    tcp.write_all(&record).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    assert!(answer.len() >= 7, "an alert, not silence: {answer:?}");
    assert_eq!(answer[0], 0x15, "an alert record: {answer:?}");
    assert_eq!(
        &answer[5..7],
        &[2, 70],
        "fatal protocol_version: {answer:?}"
    );
    assert!(!answer.contains(&0x16), "no handshake record: {answer:?}");
}

async fn sign_in_ip(app: &TestApp, xff: Option<&str>, tag: &str) -> Value {
    let mut request = app
        .http
        .post(app.token_url("default"))
        .header("user-agent", tag)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.admin_id.as_str()),
            ("client_secret", app.admin_secret.as_str()),
            ("scope", "api://clavis/.default"),
        ]);
    if let Some(xff) = xff {
        request = request.header("x-forwarded-for", xff);
    }
    assert_eq!(request.send().await.unwrap().status(), StatusCode::OK);
    app.state.sign_ins.flush().await;
    let admin = app.admin_token().await;
    let (status, all) = app.get("/v1.0/auditLogs/signIns", &admin).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    all["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["userAgent"] == tag)
        .unwrap_or_else(|| panic!("no sign-in tagged {tag}: {all}"))["ipAddress"]
        .clone()
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = spawn_with(Tls::Off).await;
    assert_eq!(
        sign_in_ip(&app, Some("203.0.113.5"), "spoof").await,
        "127.0.0.1"
    );
}

#[tokio::test]
async fn a_trusted_proxy_s_forwarded_address_is_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_tuned(dir, Tls::Off, |c| {
        c.trusted_proxies = vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
    })
    .await;
    assert_eq!(
        sign_in_ip(&app, Some("203.0.113.5"), "one").await,
        "203.0.113.5"
    );
    // The right-most hop that is not a trusted proxy; what the client
    // itself wrote on the left is not believed.
    assert_eq!(
        sign_in_ip(&app, Some("198.51.100.66, 203.0.113.7, 10.1.1.1"), "chain").await,
        "203.0.113.7"
    );
    for (i, garbage) in ["not-an-address", "203.0.113.5, <script>", ",,", ""]
        .iter()
        .enumerate()
    {
        assert_eq!(
            sign_in_ip(&app, Some(garbage), &format!("garbage{i}")).await,
            "127.0.0.1",
            "{garbage:?} falls back to the peer"
        );
    }
    assert_eq!(sign_in_ip(&app, None, "none").await, "127.0.0.1");
}

/// Junk a client writes into `X-Forwarded-For` lands left of the address
/// its proxy appends: it must not make Clavis fall back to the proxy's
/// address (which every client behind the proxy shares).
#[tokio::test]
async fn junk_in_forwarded_for_does_not_hide_the_client_behind_its_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_tuned(dir, Tls::Off, |c| {
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    for (i, header) in [
        "not-an-address, 203.0.113.9",
        "<script>, 198.51.100.1, 203.0.113.9",
        "unknown,,203.0.113.9",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(
            sign_in_ip(&app, Some(header), &format!("junk{i}")).await,
            "203.0.113.9",
            "{header:?}"
        );
    }
}

/// Send the start of a request and then nothing: the server answers 503 in
/// the endpoint's own error format once the request time limit passes.
async fn stalled_post(app: &TestApp, path: &str, extra: &str) -> (Duration, String) {
    let mut tcp = TcpStream::connect(addr(app)).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: 100\r\n\r\ngrant_type=client"
    );
    let started = Instant::now();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut answer))
        .await
        .expect("an answer before the test gives up")
        .unwrap();
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer[..n]).into_owned(),
    )
}

#[tokio::test]
async fn a_request_that_outlasts_the_time_limit_gets_503_in_its_protocol_s_format() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_tuned(dir, Tls::Off, |c| {
        c.request_timeout = Duration::from_secs(1)
    })
    .await;
    let (took, answer) = stalled_post(
        &app,
        "/default/oauth2/v2.0/token",
        "Content-Type: application/x-www-form-urlencoded\r\n",
    )
    .await;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("\"error\":\"temporarily_unavailable\""),
        "{answer}"
    );
    assert!(
        answer.contains("x-content-type-options: nosniff"),
        "{answer}"
    );

    let admin = app.admin_token().await;
    let (_, answer) = stalled_post(
        &app,
        "/v1.0/applications",
        &format!("Authorization: Bearer {admin}\r\nContent-Type: application/json\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("\"code\":\"ServiceUnavailable\""),
        "{answer}"
    );
}

/// Drip `bytes` one per second until the server closes the connection;
/// how long that took (or `None` if it never did within `give_up`).
async fn drip(address: String, bytes: &'static [u8], give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(address).await.ok()?;
    let mut buf = [0u8; 1024];
    for b in bytes.iter().cycle() {
        if started.elapsed() > give_up {
            return None;
        }
        if tcp.write_all(&[*b]).await.is_err() {
            return Some(started.elapsed());
        }
        // Read for a second: EOF or reset means the server hung up.
        match tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {} // e.g. a 408 before closing: keep reading
            Err(_) => {}
        }
    }
    None
}

/// [`drip`] inside a TLS session: the handshake completes, then the
/// request head arrives one byte per second (blocking rustls, on a thread).
fn drip_tls(
    address: String,
    ca_pem: Vec<u8>,
    bytes: &'static [u8],
    give_up: Duration,
) -> Option<Duration> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::io::{ErrorKind, Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap().to_owned();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut sock = std::net::TcpStream::connect(address).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("TLS handshake");
    }
    let started = Instant::now();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let mut buf = [0u8; 1024];
    for b in bytes.iter().cycle() {
        if started.elapsed() > give_up {
            return None;
        }
        if tls.write_all(&[*b]).is_err() {
            return Some(started.elapsed());
        }
        match tls.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

const SLOW_HEAD: &[u8] =
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[tokio::test]
async fn slow_clients_are_cut_off_and_do_not_slow_down_others() {
    for tls in [Tls::Off, Tls::LocalCa] {
        let dir = tempfile::tempdir().unwrap();
        let app = spawn_tuned(dir, tls.clone(), |c| {
            c.header_read_timeout = Duration::from_secs(2)
        })
        .await;
        // Each opens a connection (a TLS session, for TLS) and sends a
        // request head one byte per second: closed within the header limit.
        let ca = std::fs::read(app.dir.path().join("tls/ca.pem")).ok();
        let give_up = Duration::from_secs(10);
        let slow: Vec<_> = (0..64)
            .map(|_| match &ca {
                None => tokio::spawn(drip(addr(&app), SLOW_HEAD, give_up)),
                Some(ca) => {
                    let (address, ca) = (addr(&app), ca.clone());
                    tokio::task::spawn_blocking(move || drip_tls(address, ca, SLOW_HEAD, give_up))
                }
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Meanwhile a normal client is served promptly, again and again.
        for _ in 0..5 {
            let started = Instant::now();
            let r = app
                .http
                .get(format!("{}/healthz", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?} ({tls:?})",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for conn in slow {
            let closed = conn.await.unwrap().expect("the slow connection was closed");
            assert!(
                closed >= Duration::from_millis(1500) && closed <= Duration::from_secs(5),
                "closed after {closed:?} with a 2 s limit ({tls:?})"
            );
        }
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_tuned(dir, Tls::Off, |c| {
        c.header_read_timeout = Duration::from_secs(2)
    })
    .await;
    let mut tcp = TcpStream::connect(addr(&app)).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(6), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(rest.is_ok(), "the idle connection is still open after 6 s");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

/// Read until the server closes the connection (EOF or reset); how long
/// that took, or `None` if it was still open after `give_up`.
async fn closed_within(tcp: &mut TcpStream, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(give_up, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

async fn with_header_timeout(tls: Tls, seconds: u64) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    spawn_tuned(dir, tls, |c| {
        c.header_read_timeout = Duration::from_secs(seconds)
    })
    .await
}

/// A TCP connection that never sends a byte (plain HTTP), or never starts
/// its TLS handshake, is closed once the header-read timeout has passed
/// since accept: the limit does not wait for a first byte.
#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    for tls in [Tls::Off, Tls::LocalCa] {
        let app = with_header_timeout(tls.clone(), 2).await;
        let mut silent = TcpStream::connect(addr(&app)).await.unwrap();
        let closed = closed_within(&mut silent, Duration::from_secs(8))
            .await
            .unwrap_or_else(|| panic!("a silent connection is still open after 8 s ({tls:?})"));
        assert!(
            closed >= Duration::from_millis(1500),
            "closed after {closed:?} with a 2 s limit ({tls:?})"
        );
    }
}

/// A TLS client that completes its handshake and then sends nothing is
/// closed when the header-read timeout has passed since accept.
#[tokio::test]
async fn a_tls_session_without_a_request_is_closed() {
    let app = with_header_timeout(Tls::LocalCa, 2).await;
    let ca = std::fs::read(app.dir.path().join("tls/ca.pem")).unwrap();
    let address = addr(&app);
    let closed = tokio::task::spawn_blocking(move || {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};
        use std::io::{ErrorKind, Read};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("127.0.0.1").unwrap().to_owned();
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let mut sock = std::net::TcpStream::connect(address).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let started = Instant::now();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).expect("TLS handshake");
        }
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let mut buf = [0u8; 1024];
        while started.elapsed() < Duration::from_secs(8) {
            match tls.read(&mut buf) {
                Ok(0) => return Some(started.elapsed()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return Some(started.elapsed()),
            }
        }
        None
    })
    .await
    .unwrap()
    .expect("a TLS session without a request is still open after 8 s");
    assert!(closed >= Duration::from_millis(1500), "{closed:?}");
}

/// An HTTP/2 connection with no stream open is idle, however many PINGs
/// (and SETTINGS) it exchanges: closed after the header-read timeout. A
/// request before that is served on it.
#[tokio::test]
async fn an_http2_connection_that_only_pings_is_closed() {
    let app = with_header_timeout(Tls::Off, 2).await;
    let tcp = TcpStream::connect(addr(&app)).await.unwrap();
    let (mut send, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut pings = connection.ping_pong().expect("ping handle");
    let connection = tokio::spawn(connection);

    let request = axum::http::Request::get(format!("http://{}/healthz", addr(&app)))
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    let response = response.await.expect("served over HTTP/2");
    assert_eq!(response.status(), 200);
    drop(response);

    let idle_from = Instant::now();
    let mut answered = 0;
    while !connection.is_finished() {
        assert!(
            idle_from.elapsed() < Duration::from_secs(8),
            "an HTTP/2 connection that only pings is still open after 8 s ({answered} PINGs answered)"
        );
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(500), pings.ping(h2::Ping::opaque())).await
        {
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let closed = idle_from.elapsed();
    assert!(
        answered >= 2,
        "the server answered PINGs meanwhile: {answered}"
    );
    assert!(closed >= Duration::from_millis(1500), "{closed:?}");
    drop(send);
}

/// Keep-alive still works: requests closer together than the header-read
/// timeout share one connection, however long the connection lives.
#[tokio::test]
async fn keep_alive_between_requests_still_works() {
    let app = with_header_timeout(Tls::Off, 2).await;
    let mut tcp = TcpStream::connect(addr(&app)).await.unwrap();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    for _ in 0..5 {
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    assert!(
        started.elapsed() > Duration::from_secs(5),
        "outlived one limit"
    );
    let closed = closed_within(&mut tcp, Duration::from_secs(6)).await;
    assert!(closed.is_some(), "closed once idle");
}

/// With `--max-connections 3`, three silent connections take every slot:
/// a real client waits in the listen backlog (not refused) until they time
/// out, and is then served; the limit is logged (once) and counted.
#[tokio::test]
async fn at_the_connection_limit_a_real_client_waits_and_is_served() {
    let logs = crate::logs::captured();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_tuned(dir, Tls::Off, |c| {
        c.header_read_timeout = Duration::from_secs(2);
        c.max_connections = Some(3);
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.state.connections.open(), 3);
    let started = Instant::now();
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("served once a slot is free");
    assert_eq!(r.status(), StatusCode::OK);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1200),
        "served after {waited:?}: the limit did not hold"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("\nclavis_connections_max 3\n"),
        "{metrics}"
    );
    let reached: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("clavis_connections_limit_reached_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(reached >= 1, "{metrics}");
    let text = logs.text();
    let warnings = text
        .lines()
        .filter(|l| l.contains("connection limit reached") && l.contains("max_connections=3"))
        .count();
    assert_eq!(warnings, 1, "one warning, not one per connection:\n{text}");
}
