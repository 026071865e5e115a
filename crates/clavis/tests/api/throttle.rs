//! Throttling of failed client authentication: a flood of wrong secrets gets
//! 429 with `Retry-After` (and costs no hash), the holder of the right
//! secret keeps getting tokens, the throttle lifts with time, and on
//! PostgreSQL two nodes share the counts.

use std::net::{IpAddr, Ipv4Addr};

use clavis::Tls;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use time::Duration;

use super::helpers::{spawn_tuned, Registered, TestApp};

/// An HTTP client whose requests come from 127.0.0.`last`.
pub(super) fn from(last: u8) -> Client {
    Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .unwrap()
}

pub(super) async fn ask(
    http: &Client,
    base: &str,
    client: &Registered,
    secret: &str,
) -> (StatusCode, Option<String>, Value) {
    let r = http
        .post(format!("{base}/default/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.app_id.as_str()),
            ("client_secret", secret),
            ("scope", "api://throttled/.default"),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, r.json().await.unwrap())
}

/// A server with these limits, a client and the API it asks for.
pub(super) async fn setup(per_address: u32, per_app: u32) -> (TestApp, Registered) {
    let app = spawn_tuned(tempfile::tempdir().unwrap(), Tls::Off, |c| {
        c.throttle.per_address = per_address;
        c.throttle.per_app = per_app;
    })
    .await;
    let admin = app.admin_token().await;
    app.register_api(&admin, "api://throttled", "Read").await;
    let client = app.register_client(&admin, "throttled client").await;
    (app, client)
}

pub(super) fn wrong(client: &Registered) -> String {
    // Well-formed, but not the secret.
    let mut s = client.secret.clone();
    s.pop();
    s.push(if client.secret.ends_with('A') {
        'B'
    } else {
        'A'
    });
    s
}

#[tokio::test]
pub(super) async fn a_flood_from_one_address_gets_429_and_the_right_secret_elsewhere_still_works() {
    let logs = crate::logs::captured();
    let (app, client) = setup(5, 0).await;
    let attacker = from(21);
    let bad = wrong(&client);
    for _ in 0..5 {
        let (status, _, body) = ask(&attacker, &app.base, &client, &bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error_codes"][0], 7000215);
    }
    let hashes = app.state.hasher.computed();
    for _ in 0..20 {
        let (status, retry, body) = ask(&attacker, &app.base, &client, &bad).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"], "temporarily_unavailable");
        assert_eq!(body["error_codes"][0], 90055);
        let retry: u64 = retry.expect("Retry-After").parse().unwrap();
        assert!((1..=120).contains(&retry), "{retry}");
    }
    // Even the right secret from the throttled address waits...
    let (status, _, _) = ask(&attacker, &app.base, &client, &client.secret).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // ...and none of the refused requests cost a hash.
    assert_eq!(app.state.hasher.computed(), hashes);

    // The holder of the right secret, elsewhere, is not concerned.
    let (status, _, body) = ask(&from(22), &app.base, &client, &client.secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // No permanent lockout: two minutes later the address may try again.
    app.clock.advance(Duration::minutes(2));
    let (status, _, body) = ask(&attacker, &app.base, &client, &client.secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Counted in /metrics and in the sign-in log.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("clavis_token_requests_throttled_total 21"),
        "{metrics}"
    );
    app.state.sign_ins.flush().await;
    let query = clavis_store::SignInQuery {
        tenant_id: app.tenant_id.parse().unwrap(),
        app_id: Some(client.app_id.parse().unwrap()),
        key_id: None,
        result: Some(clavis_store::AuditResult::Failure),
        since: None,
        until: None,
        before: None,
        limit: 100,
    };
    let failures = app.state.directory.store().sign_ins(&query).await.unwrap();
    let throttled: u32 = failures
        .iter()
        .filter(|s| s.error_code == Some(90055))
        .map(|s| s.count)
        .sum();
    assert_eq!(throttled, 21);
    assert!(!logs.text().contains(&client.secret));
    assert!(!logs.text().contains(&bad));
}

#[tokio::test]
pub(super) async fn a_distributed_flood_cannot_lock_out_the_real_client() {
    let (app, client) = setup(100, 5).await;
    // The real client got a token before the flood.
    let real = from(30);
    let (status, _, _) = ask(&real, &app.base, &client, &client.secret).await;
    assert_eq!(status, StatusCode::OK);

    let bad = wrong(&client);
    for last in 40..45 {
        let (status, _, _) = ask(&from(last), &app.base, &client, &bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let hashes = app.state.hasher.computed();
    for last in 45..60 {
        let (status, retry, body) = ask(&from(last), &app.base, &client, &bad).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert!(retry.is_some());
    }
    assert_eq!(app.state.hasher.computed(), hashes, "throttled: no hash");

    // The real client keeps getting tokens (one hash each)...
    for _ in 0..3 {
        let (status, _, body) = ask(&real, &app.base, &client, &client.secret).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(app.state.hasher.computed(), hashes + 3);
    // ...and so does every other application.
    let admin = app.admin_token().await;
    assert!(!admin.is_empty());

    // The limit lifts once the flood stops.
    app.clock.advance(Duration::minutes(2));
    let (status, _, body) = ask(&from(61), &app.base, &client, &client.secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
pub(super) async fn introspection_is_throttled_too() {
    let (app, client) = setup(3, 0).await;
    let attacker = from(70);
    let bad = wrong(&client);
    let mut last = StatusCode::OK;
    for _ in 0..5 {
        last = attacker
            .post(format!("{}/default/oauth2/v2.0/introspect", app.base))
            .form(&[
                ("client_id", client.app_id.as_str()),
                ("client_secret", bad.as_str()),
                ("token", "x"),
            ])
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}
