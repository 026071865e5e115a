//! Secret expiry warnings: `/v1.0/webhooks`, one signed `secret.expiring`
//! per threshold and one `secret.expired` (with one audit event) per
//! secret, retries with backoff, the delivery log, the signing secret shown
//! once, and two nodes on one PostgreSQL database sending each notice once.
//! Time moves with the injectable clock; the scheduler runs by `run_once`.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::hmac;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use clavis::expiry::RunReport;
use clavis::Tls;
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::Duration;

use super::helpers::{spawn_app, spawn_tuned, TestApp};

/// A server that may send webhooks to internal addresses
/// (`--allow-internal-webhooks`): the receivers of these tests listen on
/// 127.0.0.1. Without the flag such targets are refused (`webhook_egress.rs`).
pub(super) async fn spawn_allowing_internal() -> TestApp {
    spawn_tuned(tempfile::tempdir().unwrap(), Tls::Off, |config| {
        config.allow_internal_webhooks = true;
    })
    .await
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(super) struct Got {
    pub(super) signature: String,
    pub(super) delivery: String,
    pub(super) body: String,
}

impl Got {
    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

/// A tiny webhook receiver on a random loopback port that records what it
/// gets and answers with `status`.
pub(super) struct Receiver {
    pub(super) url: String,
    pub(super) got: Arc<Mutex<Vec<Got>>>,
    pub(super) status: Arc<AtomicU16>,
}

impl Receiver {
    pub(super) async fn start() -> Receiver {
        type Shared = (Arc<Mutex<Vec<Got>>>, Arc<AtomicU16>);
        async fn hook(
            State((got, status)): State<Shared>,
            headers: HeaderMap,
            body: String,
        ) -> AxumStatus {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            got.lock().unwrap().push(Got {
                signature: header("clavis-signature"),
                delivery: header("clavis-delivery"),
                body,
            });
            AxumStatus::from_u16(status.load(Ordering::SeqCst)).unwrap()
        }
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(204));
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state((got.clone(), status.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { url, got, status }
    }

    pub(super) fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    pub(super) fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

/// Check `Clavis-Signature: t=…,v1=…` against the body and the secret.
pub(super) fn assert_signed(got: &Got, secret: &str) {
    let (t, v1) = got
        .signature
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed signature header {:?}", got.signature));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mac: Vec<u8> = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v1[i..i + 2], 16).unwrap())
        .collect();
    hmac::verify(&key, format!("{t}.{}", got.body).as_bytes(), &mac)
        .expect("the signature verifies");
    assert_eq!(got.delivery, got.json()["id"].as_str().unwrap());
}

pub(super) async fn subscribe(app: &TestApp, token: &str, url: &str, extra: Value) -> Value {
    let mut body = json!({"url": url, "displayName": "ops"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, hook) = app.post("/v1.0/webhooks", token, body).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    assert!(hook["signingSecret"]
        .as_str()
        .unwrap()
        .starts_with("whsec_"));
    hook
}

/// An application with one secret ending `days` from the clock's now,
/// which started a year ago (an old secret near its end, as if the clock
/// had moved since; written to the store directly): a secret
/// whose whole life is shorter than a threshold gets no warning at creation
/// (`a_secret_shorter_than_a_threshold_is_not_warned_at_creation`).
pub(super) async fn app_with_secret(
    app: &TestApp,
    token: &str,
    name: &str,
    days: i64,
) -> (Value, Value) {
    let created = app.create_app(token, json!({"displayName": name})).await;
    let now = app.state.clock.now();
    // Whole seconds: the store keeps microseconds, the API shows them.
    let end = (now + Duration::days(days)).replace_nanosecond(0).unwrap();
    let secret = clavis::secret::ClientSecret::generate();
    let key_id = uuid::Uuid::new_v4();
    let tenant = app.state.directory.tenant("default").unwrap();
    app.state
        .directory
        .commit(
            &[clavis_store::Mutation::AddPassword {
                tenant_id: tenant.id,
                application_id: s(&created["id"]).parse().unwrap(),
                credential: clavis_store::PasswordCredential {
                    key_id,
                    display_name: "ci".into(),
                    hint: secret.hint(),
                    secret_hash: app.state.hasher.hash(&secret),
                    start_at: now - Duration::days(365),
                    end_at: end,
                    created_at: now - Duration::days(365),
                    last_used_at: None,
                },
            }],
            &[],
        )
        .await
        .unwrap();
    let cred = json!({
        "keyId": key_id,
        "displayName": "ci",
        "hint": secret.hint(),
        "endDateTime": end.format(&Rfc3339).unwrap(),
        "secretText": secret.expose(),
    });
    (created, cred)
}

pub(super) fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

pub(super) async fn run(app: &TestApp) -> RunReport {
    app.state.expiry.run_once().await.expect("run_once")
}

pub(super) async fn expired_events(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app
        .get(
            "/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'Password%20credential%20expired'",
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["value"].as_array().unwrap().clone()
}

#[tokio::test]
pub(super) async fn one_signed_warning_per_threshold_then_one_expiry_with_one_audit_event() {
    let app = spawn_allowing_internal().await;
    let rx = Receiver::start().await;
    let admin = app.admin_token().await;
    let hook = subscribe(&app, &admin, &rx.url, json!({})).await;
    assert_eq!(hook["thresholdDays"], json!([30, 7, 1]));
    let secret = s(&hook["signingSecret"]);
    let (orders, cred) = app_with_secret(&app, &admin, "orders", 40).await;
    let key_id = s(&cred["keyId"]);

    assert_eq!(
        run(&app).await,
        RunReport::default(),
        "40 days left: nothing"
    );
    app.clock.advance(Duration::days(10) + Duration::minutes(1));
    let report = run(&app).await;
    assert_eq!((report.notices, report.delivered), (1, 1), "{report:?}");
    let got = rx.got();
    assert_eq!(got.len(), 1);
    assert_signed(&got[0], &secret);
    let body = got[0].json();
    assert_eq!(body["type"], "secret.expiring");
    assert_eq!(body["thresholdDays"], 30);
    assert_eq!(body["daysRemaining"], 29);
    assert_eq!(body["keyId"], key_id);
    assert_eq!(body["applicationId"], orders["id"]);
    assert_eq!(body["appId"], orders["appId"]);
    assert_eq!(body["displayName"], "orders");
    assert_eq!(body["tenantId"], app.tenant_id);
    assert_eq!(body["hint"], cred["hint"]);
    assert_eq!(body["endDateTime"], cred["endDateTime"]);

    // Again at the same time: nothing new.
    assert_eq!(run(&app).await, RunReport::default());
    assert_eq!(rx.got().len(), 1);

    for (advance, threshold) in [(Duration::days(23), 7), (Duration::days(6), 1)] {
        app.clock.advance(advance);
        run(&app).await;
        run(&app).await;
        let got = rx.got();
        let last = got.last().unwrap();
        assert_eq!(got.len() as u32, if threshold == 7 { 2 } else { 3 });
        assert_signed(last, &secret);
        assert_eq!(last.json()["thresholdDays"], threshold);
    }

    // Past the end: secret.expired, and exactly one audit event.
    app.clock.advance(Duration::days(1));
    let admin = app.admin_token().await;
    run(&app).await;
    app.clock.advance(Duration::hours(1));
    run(&app).await;
    let got = rx.got();
    assert_eq!(got.len(), 4);
    let expired = got[3].json();
    assert_eq!(expired["type"], "secret.expired");
    assert_eq!(expired["daysRemaining"], 0);
    assert_signed(&got[3], &secret);
    let events = expired_events(&app, &admin).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["category"], "ApplicationManagement");
    assert_eq!(e["result"], "success");
    assert_eq!(e["targetResources"][0]["id"], orders["id"]);
    assert!(
        e.to_string().contains(&key_id),
        "the event names the credential: {e}"
    );
    assert!(e["initiatedBy"]["app"]["appId"].is_null(), "{e}");

    // The delivery log: newest first, each delivered at the first attempt.
    let (status, log) = app
        .get(
            &format!("/v1.0/webhooks/{}/deliveries", s(&hook["id"])),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let rows = log["value"].as_array().unwrap();
    let types: Vec<_> = rows.iter().map(|r| s(&r["eventType"])).collect();
    assert_eq!(
        types,
        [
            "secret.expired",
            "secret.expiring",
            "secret.expiring",
            "secret.expiring"
        ]
    );
    for r in rows {
        assert_eq!(
            (s(&r["status"]), &r["attempts"]),
            ("delivered".into(), &json!(1))
        );
        assert_eq!(r["lastHttpStatus"], 204);
        assert_eq!(r["keyId"], key_id);
        assert!(r["nextAttemptDateTime"].is_null());
    }
    let (_, page) = app
        .get(
            &format!("/v1.0/webhooks/{}/deliveries?$top=3", s(&hook["id"])),
            &admin,
        )
        .await;
    assert_eq!(page["value"].as_array().unwrap().len(), 3);
    let next = s(&page["@odata.nextLink"]);
    let path = next.strip_prefix(&app.base).unwrap();
    let (_, rest) = app.get(path, &admin).await;
    assert_eq!(rest["value"][0]["id"], rows[3]["id"]);
}

#[tokio::test]
pub(super) async fn a_secret_shorter_than_a_threshold_is_not_warned_at_creation() {
    let app = spawn_allowing_internal().await;
    let rx = Receiver::start().await;
    let admin = app.admin_token().await;
    subscribe(&app, &admin, &rx.url, json!({})).await;
    // A 7-day secret (an agent's healthy rotation), made through the API.
    let created = app
        .create_app(&admin, json!({"displayName": "rotated"}))
        .await;
    let end = (app.state.clock.now() + Duration::days(7))
        .format(&Rfc3339)
        .unwrap();
    let (status, cred) = app
        .post(
            &format!("/v1.0/applications/{}/addPassword", s(&created["id"])),
            &admin,
            json!({"passwordCredential": {"displayName": "agent", "endDateTime": end}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cred}");
    // Neither the 30-day nor the 7-day warning, at creation or later.
    assert_eq!(run(&app).await, RunReport::default());
    app.clock.advance(Duration::days(5));
    assert_eq!(run(&app).await, RunReport::default());
    assert!(rx.got().is_empty());
    // Still there a day before its end (not rotated): the 1-day warning.
    app.clock.advance(Duration::days(1) + Duration::minutes(1));
    run(&app).await;
    let got = rx.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["thresholdDays"], 1);
    assert_eq!(got[0].json()["keyId"], cred["keyId"]);
}

#[tokio::test]
pub(super) async fn a_secret_created_late_gets_only_its_most_urgent_warning() {
    let app = spawn_allowing_internal().await;
    let rx = Receiver::start().await;
    let admin = app.admin_token().await;
    subscribe(&app, &admin, &rx.url, json!({"thresholdDays": [1, 30, 7]})).await;
    app_with_secret(&app, &admin, "late", 5).await;
    run(&app).await;
    let got = rx.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["thresholdDays"], 7);
}

#[tokio::test]
pub(super) async fn failures_are_retried_with_backoff_until_delivered_or_failed() {
    let app = spawn_allowing_internal().await;
    let rx = Receiver::start().await;
    let admin = app.admin_token().await;
    let flaky = subscribe(&app, &admin, &rx.url, json!({})).await;
    // Nothing listens there: connections are refused.
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = subscribe(
        &app,
        &admin,
        &format!("http://127.0.0.1:{dead_port}/hook"),
        json!({}),
    )
    .await;
    rx.answer(500);
    app_with_secret(&app, &admin, "flaky", 5).await;

    let report = run(&app).await;
    assert_eq!((report.attempts, report.retrying), (2, 2), "{report:?}");
    assert_eq!(rx.got().len(), 1);
    // Not before the backoff has passed.
    app.clock.advance(Duration::seconds(59));
    assert_eq!(run(&app).await.attempts, 0);
    app.clock.advance(Duration::seconds(1));
    assert_eq!(run(&app).await.attempts, 2);
    assert_eq!(rx.got().len(), 2);
    rx.answer(200);
    // 2, 4, 8, 16, 32 and 60 minutes after the second attempt.
    for minutes in [2, 4, 8, 16, 32, 60] {
        app.clock.advance(Duration::minutes(minutes));
        assert!(
            run(&app).await.attempts >= 1,
            "an attempt after {minutes} min"
        );
    }
    app.clock.advance(Duration::hours(2));
    assert_eq!(run(&app).await.attempts, 0, "no attempt after the eighth");

    let admin = app.admin_token().await;
    let log = |hook: &Value| {
        let path = format!("/v1.0/webhooks/{}/deliveries", s(&hook["id"]));
        let app = &app;
        let admin = admin.clone();
        async move {
            let (status, body) = app.get(&path, &admin).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["value"][0].clone()
        }
    };
    let ok = log(&flaky).await;
    assert_eq!(ok["status"], "delivered");
    assert_eq!(ok["attempts"], 3);
    assert_eq!(ok["lastHttpStatus"], 200);
    let failed = log(&dead).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"], 8);
    assert!(failed["lastHttpStatus"].is_null());
    assert!(
        s(&failed["lastError"]).contains("connect"),
        "{}",
        failed["lastError"]
    );
    assert!(failed["nextAttemptDateTime"].is_null());
    assert_eq!(rx.got().len(), 3);
}

#[tokio::test]
pub(super) async fn a_secret_removed_before_its_end_never_warns() {
    let app = spawn_allowing_internal().await;
    let rx = Receiver::start().await;
    let admin = app.admin_token().await;
    subscribe(&app, &admin, &rx.url, json!({})).await;
    let (created, cred) = app_with_secret(&app, &admin, "gone", 40).await;
    let (status, _) = app
        .post(
            &format!("/v1.0/applications/{}/removePassword", s(&created["id"])),
            &admin,
            json!({"keyId": cred["keyId"]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for days in [11, 30, 5] {
        app.clock.advance(Duration::days(days));
        assert_eq!(run(&app).await, RunReport::default());
    }
    assert!(rx.got().is_empty());
    let admin = app.admin_token().await;
    assert!(expired_events(&app, &admin).await.is_empty());
}

#[tokio::test]
pub(super) async fn webhook_requests_are_checked_and_audited() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for (body, needle) in [
        (json!({"url": "http://example.com/hook"}), "https"),
        (json!({"url": "http://10.1.2.3/hook"}), "https"),
        (json!({"url": "ftp://example.com/"}), "https"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": ""}), "url"),
        (json!({"url": "https://u:p@example.com/"}), "password"),
        (
            json!({"url": "https://h.example/", "thresholdDays": []}),
            "thresholdDays",
        ),
        (
            json!({"url": "https://h.example/", "thresholdDays": [0]}),
            "thresholdDays",
        ),
        (
            json!({"url": "https://h.example/", "thresholdDays": [3651]}),
            "thresholdDays",
        ),
        (
            json!({"url": "https://h.example/", "thresholdDays": (1..=11).collect::<Vec<_>>()}),
            "thresholdDays",
        ),
        (
            json!({"url": "https://h.example/", "thresholdDays": ["7"]}),
            "invalid type",
        ),
        (
            json!({"url": "https://h.example/", "secret": "mine"}),
            "secret",
        ),
        (
            json!({"url": "https://h.example/", "displayName": ""}),
            "displayName",
        ),
        (json!({}), "url"),
    ] {
        let (status, err) = app.post("/v1.0/webhooks", &admin, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {err}");
        assert_eq!(err["error"]["code"], "Request_BadRequest");
        assert!(
            s(&err["error"]["message"]).contains(needle),
            "{body} -> {err}"
        );
    }
    let hook = subscribe(
        &app,
        &admin,
        "https://hooks.example/clavis",
        json!({"thresholdDays": [7, 90, 7]}),
    )
    .await;
    assert_eq!(hook["thresholdDays"], json!([90, 7]));
    let id = s(&hook["id"]);

    // Readers read; only Application.ReadWrite.All changes.
    let reader = app.register_client(&admin, "reader").await;
    app.grant_management(&admin, &reader.sp_id, "Application.Read.All")
        .await;
    let owner = app.register_client(&admin, "owner").await;
    app.grant_management(&admin, &owner.sp_id, "Application.ReadWrite.OwnedBy")
        .await;
    let read = app
        .token(&reader.app_id, &reader.secret, "api://clavis/.default")
        .await;
    let owned = app
        .token(&owner.app_id, &owner.secret, "api://clavis/.default")
        .await;
    let (status, list) = app.get("/v1.0/webhooks", &read).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let (status, _) = app.get(&format!("/v1.0/webhooks/{id}"), &read).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/v1.0/webhooks", &owned).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            "/v1.0/webhooks",
            &read,
            json!({"url": "https://x.example/"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .graph(
            reqwest::Method::DELETE,
            &format!("/v1.0/webhooks/{id}"),
            &read,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Ids: malformed 400, unknown 404, delete once 204.
    let (status, _) = app.get("/v1.0/webhooks/nope", &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.get("/v1.0/webhooks/nope/deliveries", &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let unknown = uuid::Uuid::new_v4();
    let (status, _) = app.get(&format!("/v1.0/webhooks/{unknown}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(&format!("/v1.0/webhooks/{unknown}/deliveries"), &admin)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(
            &format!("/v1.0/webhooks/{id}/deliveries?$skiptoken=x"),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .graph(
            reqwest::Method::DELETE,
            &format!("/v1.0/webhooks/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .graph(
            reqwest::Method::DELETE,
            &format!("/v1.0/webhooks/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Audited: the add, the refusal, the delete.
    let (_, audit) = app.get("/v1.0/auditLogs/directoryAudits", &admin).await;
    let seen: Vec<(String, String)> = audit["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| s(&e["activityDisplayName"]).contains("webhook"))
        .map(|e| (s(&e["activityDisplayName"]), s(&e["result"])))
        .collect();
    for expected in [
        ("Add webhook subscription", "success"),
        ("Add webhook subscription", "failure"),
        ("Delete webhook subscription", "failure"),
        ("Delete webhook subscription", "success"),
    ] {
        assert!(
            seen.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {seen:?}"
        );
    }

    // In the OpenAPI document.
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, methods) in [
        ("/v1.0/webhooks", &["get", "post"][..]),
        ("/v1.0/webhooks/{id}", &["get", "delete"][..]),
        ("/v1.0/webhooks/{id}/deliveries", &["get"][..]),
    ] {
        for m in methods {
            assert!(doc["paths"][path][m].is_object(), "{m} {path}");
        }
    }
}

#[tokio::test]
pub(super) async fn the_signing_secret_is_shown_once_and_stored_only_sealed() {
    let logs = crate::logs::captured();
    let app = spawn_allowing_internal().await;
    let rx = Receiver::start().await;
    let admin = app.admin_token().await;
    let hook = subscribe(&app, &admin, &rx.url, json!({})).await;
    let secret = s(&hook["signingSecret"]);
    app_with_secret(&app, &admin, "canary", 3).await;
    run(&app).await;
    assert_eq!(rx.got().len(), 1);
    assert_signed(&rx.got()[0], &secret);

    let mut later = String::new();
    for path in [
        "/v1.0/webhooks".to_owned(),
        format!("/v1.0/webhooks/{}", s(&hook["id"])),
        format!("/v1.0/webhooks/{}/deliveries", s(&hook["id"])),
        "/v1.0/auditLogs/directoryAudits".to_owned(),
    ] {
        let (status, body) = app.get(&path, &admin).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.get("signingSecret").is_none());
        later.push_str(&body.to_string());
    }
    let database = match &app.database {
        Some(db) => super::secrets::dump_postgres(&db.url).await,
        None => String::new(),
    };
    let core = &secret["whsec_".len()..];
    let log_text = logs.text();
    assert!(
        log_text.contains("secret expiry notice"),
        "the canary sees this server's logs"
    );
    for needle in [secret.as_str(), core] {
        assert!(
            !later.contains(needle),
            "the signing secret in a later response"
        );
        assert!(!log_text.contains(needle), "the signing secret in the logs");
        let hits = super::secrets::files_contain(&app.data_dir(), needle, "\0");
        assert!(hits.is_empty(), "the signing secret in {hits:?}");
        assert!(
            !database.contains(needle),
            "the signing secret in PostgreSQL"
        );
        assert!(
            !database.contains(&super::secrets::hex(needle.as_bytes())),
            "the signing secret in PostgreSQL (bytea)"
        );
    }
    assert!(!format!("{:?}", app.state).contains(core));
}

#[tokio::test]
pub(super) async fn the_background_task_checks_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_tuned(dir, Tls::Off, |config| {
        config.expiry_check_interval = Some(std::time::Duration::from_millis(50));
        config.allow_internal_webhooks = true;
    })
    .await;
    let rx = Receiver::start().await;
    let admin = app.admin_token().await;
    subscribe(&app, &admin, &rx.url, json!({})).await;
    app_with_secret(&app, &admin, "soon", 2).await;
    let start = std::time::Instant::now();
    while rx.got().is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "no warning from the background task"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(rx.got()[0].json()["thresholdDays"], 7);
}

/// Issue 13: a paused webhook (as `clavis restore` leaves them) is sent
/// nothing. A warning that falls due while it is paused is recorded, not
/// sent — not on resume either (the original installation sent it) — and
/// the next one after resuming is sent. Pausing and resuming are audited.
#[tokio::test]
pub(super) async fn a_paused_webhook_gets_nothing_until_resumed() {
    let app = spawn_allowing_internal().await;
    let rx = Receiver::start().await;
    let admin = app.admin_token().await;
    let hook = subscribe(&app, &admin, &rx.url, json!({"thresholdDays": [7, 1]})).await;
    let path = format!("/v1.0/webhooks/{}", s(&hook["id"]));
    let patch = |paused: bool| {
        app.graph(
            reqwest::Method::PATCH,
            &path,
            &admin,
            Some(json!({ "paused": paused })),
        )
    };
    let (status, paused) = patch(true).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["paused"], true, "{paused}");
    assert!(paused["pausedDateTime"].is_string(), "{paused}");

    app_with_secret(&app, &admin, "paused", 5).await;
    run(&app).await;
    assert!(rx.got().is_empty(), "a paused webhook got {:?}", rx.got());

    let (status, resumed) = patch(false).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["paused"], false);
    assert!(resumed["pausedDateTime"].is_null());
    run(&app).await;
    assert!(
        rx.got().is_empty(),
        "the warning that fell due while paused is not sent late: {:?}",
        rx.got()
    );

    app.clock.advance(Duration::days(4) + Duration::minutes(1));
    run(&app).await;
    let got = rx.got();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].json()["thresholdDays"], 1);

    let admin = app.admin_token().await;
    let (status, bad) = app
        .graph(
            reqwest::Method::PATCH,
            &path,
            &admin,
            Some(json!({ "paused": "yes" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let (status, audit) = app
        .get("/v1.0/auditLogs/directoryAudits?$top=999", &admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    let activities: Vec<String> = audit["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["activityDisplayName"]))
        .collect();
    for activity in ["Pause webhook subscription", "Resume webhook subscription"] {
        assert!(activities.iter().any(|a| a == activity), "{activities:?}");
    }
}

#[tokio::test]
pub(super) async fn a_test_ping_is_signed_sent_at_once_and_logged() {
    let app = spawn_allowing_internal().await;
    let rx = Receiver::start().await;
    let admin = app.admin_token().await;
    let hook = subscribe(&app, &admin, &rx.url, json!({})).await;
    let (id, secret) = (s(&hook["id"]), s(&hook["signingSecret"]));
    let test = format!("/v1.0/webhooks/{id}/test");

    let (status, d) = app.post(&test, &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["eventType"], "ping");
    assert_eq!(d["lastHttpStatus"], 204, "the receiver's answer");
    assert_eq!(d["attempts"], 1);
    assert!(d["keyId"].is_null(), "{d}");
    let got = rx.got();
    assert_eq!(got.len(), 1);
    assert_signed(&got[0], &secret);
    assert_eq!(got[0].json()["type"], "ping");
    assert_eq!(got[0].json()["webhookId"], id.as_str());
    assert_eq!(got[0].delivery, s(&d["id"]));

    // The receiver refuses: failed at once, with its status; never retried.
    rx.answer(503);
    app.clock.advance(Duration::seconds(1));
    let (status, failed) = app.post(&test, &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["lastHttpStatus"], 503);
    assert!(failed["nextAttemptDateTime"].is_null());
    app.clock.advance(Duration::hours(2));
    assert_eq!(run(&app).await.attempts, 0, "a ping is not retried");

    // Both are in the delivery log, newest first.
    let (_, log) = app
        .get(
            &format!("/v1.0/webhooks/{id}/deliveries"),
            &app.admin_token().await,
        )
        .await;
    let ids: Vec<String> = log["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| s(&d["id"]))
        .collect();
    assert_eq!(ids, [s(&failed["id"]), s(&d["id"])]);

    // Nobody listening: failed, saying why.
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let admin = app.admin_token().await;
    let dead = subscribe(
        &app,
        &admin,
        &format!("http://127.0.0.1:{dead_port}/hook"),
        json!({}),
    )
    .await;
    let (status, d) = app
        .post(
            &format!("/v1.0/webhooks/{}/test", s(&dead["id"])),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["lastHttpStatus"].is_null(), "{d}");
    assert!(!s(&d["lastError"]).is_empty(), "{d}");

    // An unknown webhook, a malformed id.
    let (status, body) = app
        .post(
            &format!("/v1.0/webhooks/{}/test", uuid::Uuid::new_v4()),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound", "{body}");
    let (status, body) = app
        .post("/v1.0/webhooks/nope/test", &admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
