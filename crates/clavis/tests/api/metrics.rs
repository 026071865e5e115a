//! `/metrics` is not public: it lists every tenant, application and secret
//! id. It is served only on its own listener (`--metrics-listen`, loopback
//! by default; off loopback only with `CLAVIS_METRICS_TOKEN`), never on the
//! main one, and its secrets' expiry lines follow every change.

use clavis::{App, Config, Tls};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::helpers::{spawn_app, spawn_tuned};

const TOKEN: &str = "metrics-token-0123456789abcdef";

#[tokio::test]
async fn metrics_are_not_served_on_the_main_listener_nor_listed_in_openapi() {
    for tls in [Tls::Off, Tls::LocalCa] {
        let dir = tempfile::tempdir().unwrap();
        let app = spawn_tuned(dir, tls.clone(), |_| {}).await;
        for auth in [None, Some(TOKEN)] {
            let mut request = app.http.get(format!("{}/metrics", app.base));
            if let Some(token) = auth {
                request = request.bearer_auth(token);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{tls:?}");
            let body = r.text().await.unwrap();
            assert!(!body.contains("clavis_"), "{body}");
            assert!(!body.contains(&app.tenant_id), "{body}");
        }
        let doc: Value = app
            .http
            .get(format!("{}/openapi.json", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(doc["paths"].get("/metrics").is_none(), "{}", doc["paths"]);
        // ...and the metrics listener has them, in plain HTTP on loopback.
        let metrics_base = app.metrics_base.as_deref().unwrap();
        assert!(
            metrics_base.starts_with("http://127.0.0.1:"),
            "{metrics_base}"
        );
        assert!(app.metrics().await.contains("clavis_tokens_issued_total"));
    }
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_only() {
    let app = spawn_app().await;
    let base = app.metrics_base.clone().unwrap();
    let r = app
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    for path in [
        "/",
        "/healthz",
        "/openapi.json",
        "/v1.0/applications",
        "/default/oauth2/v2.0/token",
    ] {
        let r = app.http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = app
        .http
        .post(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_metrics_token_is_required_when_set_and_never_logged() {
    let logs = crate::logs::captured();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_tuned(dir, Tls::Off, |c| {
        c.metrics_token = Some(clavis::config::MetricsTokenValue(TOKEN.to_owned().into()));
    })
    .await;
    let url = format!("{}/metrics", app.metrics_base.as_deref().unwrap());
    for (auth, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("Bearer wrong".to_owned()), StatusCode::UNAUTHORIZED),
        (Some(format!("Bearer {TOKEN}x")), StatusCode::UNAUTHORIZED),
        (Some(format!("Basic {TOKEN}")), StatusCode::UNAUTHORIZED),
        (Some(format!("Bearer {TOKEN}")), StatusCode::OK),
        (Some(format!("bearer {TOKEN}")), StatusCode::OK),
    ] {
        let mut request = app.http.get(&url);
        if let Some(auth) = &auth {
            request = request.header("authorization", auth);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), want, "{auth:?}");
        if want == StatusCode::UNAUTHORIZED {
            assert_eq!(
                r.headers()["www-authenticate"],
                "Bearer realm=\"clavis-metrics\""
            );
            let body = r.text().await.unwrap();
            assert!(
                !body.contains("clavis_tokens") && !body.contains(TOKEN),
                "{body}"
            );
        }
    }
    assert!(!logs.text().contains(TOKEN), "the token reached the log");
    assert!(!format!("{:?}", app.state).contains(TOKEN));
}

/// Refused at start: metrics off loopback without a token, and a weak
/// token; the messages say what to do and never quote the token.
#[tokio::test]
async fn metrics_off_loopback_need_a_strong_token() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(clavis::clock::SystemClock);
    let mut config = Config::for_tests(dir.path().to_path_buf(), Tls::Off);
    config.metrics_listen = Some("0.0.0.0:0".parse().unwrap());
    let err = App::build(config.clone(), clock.clone()).await.unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("CLAVIS_METRICS_TOKEN") && err.contains("loopback"),
        "{err}"
    );

    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    config.metrics_token = Some(clavis::config::MetricsTokenValue(
        "hunter2".to_owned().into(),
    ));
    let err = format!("{:#}", App::build(config, clock).await.unwrap_err());
    assert!(
        err.contains("at least 16") && !err.contains("hunter2"),
        "{err}"
    );
}

/// The expiry lines are built once per change, not per scrape: each
/// change (a secret added or removed, an application deleted) is in the
/// very next scrape.
#[tokio::test]
async fn the_expiry_lines_follow_every_change() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "gauge").await;
    let line = |key_id: &str| {
        format!(
            "clavis_client_secret_expiry_seconds{{tenant_id=\"{}\",app_id=\"{}\",key_id=\"{key_id}\"}} ",
            app.tenant_id, client.app_id
        )
    };
    let text = app.metrics().await;
    assert!(text.contains(&line(&client.key_id)), "{text}");
    assert_eq!(text, app.metrics().await, "nothing changed, same answer");

    let (status, added) = app
        .graph(
            Method::POST,
            &format!("/v1.0/applications/{}/addPassword", client.id),
            &admin,
            Some(
                json!({"passwordCredential": {"displayName": "second", "endDateTime":
                (time::OffsetDateTime::now_utc() + time::Duration::days(10))
                    .format(&time::format_description::well_known::Rfc3339).unwrap()}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let second = added["keyId"].as_str().unwrap();
    let text = app.metrics().await;
    let value: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(&line(second)))
        .unwrap_or_else(|| panic!("no line for the new secret:\n{text}"))
        .parse()
        .unwrap();
    assert!((value - 10.0 * 86_400.0).abs() < 120.0, "{value}");

    let (status, _) = app
        .graph(
            Method::POST,
            &format!("/v1.0/applications/{}/removePassword", client.id),
            &admin,
            Some(json!({"keyId": client.key_id})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let text = app.metrics().await;
    assert!(
        !text.contains(&line(&client.key_id)),
        "removed secret still listed"
    );
    assert!(text.contains(&line(second)));

    let (status, _) = app
        .graph(
            Method::DELETE,
            &format!("/v1.0/applications/{}", client.id),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let text = app.metrics().await;
    assert!(
        !text.contains(&client.app_id),
        "deleted application still listed"
    );

    // Time moves without a change: the seconds follow the clock.
    let admin_line = text
        .lines()
        .find(|l| l.starts_with("clavis_client_secret_expiry_seconds{"))
        .unwrap()
        .to_owned();
    let (labels, before) = admin_line.rsplit_once(' ').unwrap();
    app.clock.advance(time::Duration::seconds(1000));
    let text = app.metrics().await;
    let after = text
        .lines()
        .find_map(|l| l.strip_prefix(labels))
        .unwrap()
        .trim();
    assert_eq!(
        before.parse::<i64>().unwrap() - after.parse::<i64>().unwrap(),
        1000
    );
}
