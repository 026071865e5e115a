//! Webhooks cannot reach internal services (issue 12, item 8): internal
//! targets are refused at creation (literal addresses, `localhost`) and at
//! delivery (on the address a name resolves to, so a webhook created while
//! allowed, or a name that resolves elsewhere later, reaches nothing), unless
//! the server runs with `--allow-internal-webhooks`; the delivery log says
//! what failed without network details; readers see a URL's scheme and host
//! only.

use clavis::expiry::ExpiryNotifier;
use clavis::Tls;
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::Duration;

use super::expiry::{app_with_secret, run, s, spawn_allowing_internal, subscribe, Receiver};
use super::helpers::{spawn_app, spawn_tuned, TestApp};

/// The delivery log's newest entry of `hook`.
async fn last_delivery(app: &TestApp, token: &str, hook: &Value) -> Value {
    let path = format!("/v1.0/webhooks/{}/deliveries", s(&hook["id"]));
    let (status, body) = app.get(&path, token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["value"][0].clone()
}

/// A port on 127.0.0.1 where nothing listens.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn internal_targets_are_refused_at_creation_unless_allowed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let internal = [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "https://localhost/hook",
        "https://hooks.localhost/hook",
        "https://10.0.0.1/hook?token=t0k3n",
        "https://172.16.0.1/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://255.255.255.255/hook",
    ];
    for url in internal {
        let (status, err) = app
            .post("/v1.0/webhooks", &admin, json!({ "url": url }))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {err}");
        assert_eq!(err["error"]["code"], "Request_BadRequest");
        let message = s(&err["error"]["message"]);
        assert!(
            message.contains("internal address") && message.contains("--allow-internal-webhooks"),
            "{url}: {message}"
        );
        assert!(
            !message.contains("t0k3n"),
            "the URL is not echoed: {message}"
        );
    }
    let (_, list) = app.get("/v1.0/webhooks", &admin).await;
    assert_eq!(list["value"], json!([]), "nothing stored: {list}");
    for public in [
        "https://hooks.example.com/clavis",
        "https://93.184.216.34/hook",
    ] {
        subscribe(&app, &admin, public, json!({})).await;
    }

    // With the flag, the same targets are accepted.
    let allowing = spawn_allowing_internal().await;
    let admin = allowing.admin_token().await;
    for url in internal {
        subscribe(&allowing, &admin, url, json!({})).await;
    }
}

#[tokio::test]
async fn without_the_flag_delivery_to_this_machine_is_refused_even_by_name() {
    // Subscriptions made while internal targets were allowed (or a name
    // whose address changed since): a node without the flag checks the
    // address it would connect to, and sends nothing.
    let app = spawn_allowing_internal().await;
    let rx = Receiver::start().await;
    let admin = app.admin_token().await;
    let port = rx.url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let by_name = subscribe(
        &app,
        &admin,
        &format!("http://localhost:{port}/hook"),
        json!({}),
    )
    .await;
    let by_address = subscribe(&app, &admin, &rx.url, json!({})).await;
    app_with_secret(&app, &admin, "soon", 5).await;

    let strict = ExpiryNotifier::new(
        app.state.directory.store().clone(),
        app.state.key_provider.clone(),
        app.state.clock.clone(),
        None,
        false,
    );
    assert!(!strict.allows_internal_targets());
    let report = strict.run_once().await.unwrap();
    assert_eq!(
        (report.attempts, report.retrying, report.delivered),
        (2, 2, 0),
        "{report:?}"
    );
    assert!(rx.got().is_empty(), "nothing reached the receiver");
    for hook in [&by_name, &by_address] {
        let d = last_delivery(&app, &admin, hook).await;
        assert_eq!(d["status"], "pending", "{d}");
        assert!(d["lastHttpStatus"].is_null(), "{d}");
        let error = s(&d["lastError"]);
        assert!(
            error.starts_with("refused: the target is an internal address"),
            "{d}"
        );
    }

    // The node with the flag delivers them at the next attempt.
    app.clock.advance(Duration::minutes(1));
    let report = run(&app).await;
    assert_eq!((report.attempts, report.delivered), (2, 2), "{report:?}");
    assert_eq!(rx.got().len(), 2);
}

#[tokio::test]
async fn a_test_ping_obeys_the_egress_rules() {
    // Made while internal targets were allowed; pinged by a node without
    // the flag: refused, and the answer says so.
    let app = spawn_allowing_internal().await;
    let rx = Receiver::start().await;
    let admin = app.admin_token().await;
    let hook = subscribe(&app, &admin, &rx.url, json!({})).await;
    let strict = ExpiryNotifier::new(
        app.state.directory.store().clone(),
        app.state.key_provider.clone(),
        app.state.clock.clone(),
        None,
        false,
    );
    let tenant = app.state.directory.tenant("default").unwrap();
    let sub = app
        .state
        .directory
        .store()
        .webhook(tenant.id, s(&hook["id"]).parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let d = strict.ping(&sub).await;
    assert_eq!(d.status, clavis_store::DeliveryStatus::Failed);
    assert_eq!(d.last_status, None);
    assert!(
        d.last_error
            .as_deref()
            .unwrap_or_default()
            .starts_with("refused: the target is an internal address"),
        "{d:?}"
    );
    assert!(rx.got().is_empty(), "nothing reached the receiver");
}

#[tokio::test]
async fn delivery_errors_say_what_failed_without_network_details() {
    // A TLS server whose certificate the webhook client does not trust:
    // Clavis itself, with its local CA.
    let app = spawn_tuned(tempfile::tempdir().unwrap(), Tls::LocalCa, |c| {
        c.allow_internal_webhooks = true;
    })
    .await;
    let admin = app.admin_token().await;
    let rx = Receiver::start().await;
    rx.answer(500);
    let dead = dead_port();
    let tls_port = app.base.rsplit(':').next().unwrap().to_owned();
    let refused = subscribe(
        &app,
        &admin,
        &format!("http://127.0.0.1:{dead}/hook"),
        json!({}),
    )
    .await;
    let untrusted = subscribe(
        &app,
        &admin,
        &format!("https://127.0.0.1:{tls_port}/hook"),
        json!({}),
    )
    .await;
    let failing = subscribe(&app, &admin, &rx.url, json!({})).await;
    app_with_secret(&app, &admin, "soon", 5).await;
    let report = run(&app).await;
    assert_eq!((report.attempts, report.retrying), (3, 3), "{report:?}");

    let mut shown = String::new();
    for (hook, error, http) in [
        (&refused, "connection failed", Value::Null),
        (&untrusted, "TLS handshake failed", Value::Null),
        (&failing, "HTTP 500", json!(500)),
    ] {
        let d = last_delivery(&app, &admin, hook).await;
        assert_eq!(d["lastError"], error, "{d}");
        assert_eq!(d["lastHttpStatus"], http, "{d}");
        shown.push_str(&d.to_string());
    }
    for detail in [
        "os error",
        "refused",
        "certificate",
        "UnknownIssuer",
        "issuer",
        "127.0.0.1",
        &dead.to_string(),
        &tls_port,
    ] {
        assert!(
            !shown.contains(detail),
            "{detail:?} in the delivery log: {shown}"
        );
    }
}

#[tokio::test]
async fn readers_see_only_the_scheme_and_host_of_a_webhook_url() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let url = "https://hooks.example.com:8443/clavis/t0k3n?sig=s3cr3t";
    let hook = subscribe(&app, &admin, url, json!({})).await;
    assert_eq!(hook["url"], url, "the creator sees it whole");
    let id = s(&hook["id"]);
    let reader = app.register_client(&admin, "reader").await;
    app.grant_management(&admin, &reader.sp_id, "Application.Read.All")
        .await;
    let read = app
        .token(&reader.app_id, &reader.secret, "api://clavis/.default")
        .await;
    let (status, list) = app.get("/v1.0/webhooks", &read).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let (status, one) = app.get(&format!("/v1.0/webhooks/{id}"), &read).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(list["value"][0]["url"], "https://hooks.example.com:8443");
    assert_eq!(one["url"], "https://hooks.example.com:8443");
    for body in [&list, &one] {
        let text = body.to_string();
        assert!(
            !text.contains("t0k3n") && !text.contains("s3cr3t"),
            "{text}"
        );
    }
    // Writers see it whole.
    let (_, list) = app.get("/v1.0/webhooks", &admin).await;
    assert_eq!(list["value"][0]["url"], url);
    let (_, one) = app.get(&format!("/v1.0/webhooks/{id}"), &admin).await;
    assert_eq!(one["url"], url);
}
