//! Throttling of failed client authentication: a request with the right
//! secret is always served, whatever anyone else sent (a flood from many
//! addresses, from the caller's own address, its /64 or NAT, for as long as
//! it lasts); wrong secrets get 429 with `Retry-After` once their address or
//! application is over the limit, and so learn nothing more. The throttle
//! lifts with time, and on PostgreSQL two nodes share the counts
//! (`throttle_nodes.rs`).

use std::net::{IpAddr, Ipv4Addr};

use clavis::{Config, Tls};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use time::Duration;

use super::helpers::{spawn_tuned, Registered, TestApp};

/// An HTTP client whose requests come from 127.0.0.`last`.
pub(super) fn from(last: u8) -> Client {
    Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .unwrap()
}

/// Ask for a token; `forwarded`: an `X-Forwarded-For` to send.
async fn ask_as(
    http: &Client,
    base: &str,
    client: &Registered,
    secret: &str,
    forwarded: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = http
        .post(format!("{base}/default/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.app_id.as_str()),
            ("client_secret", secret),
            ("scope", "api://throttled/.default"),
        ]);
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, r.json().await.unwrap())
}

pub(super) async fn ask(
    http: &Client,
    base: &str,
    client: &Registered,
    secret: &str,
) -> (StatusCode, Option<String>, Value) {
    ask_as(http, base, client, secret, None).await
}

/// A server tuned by `tune`, a client and the API it asks for.
async fn setup_with(tune: impl FnOnce(&mut Config)) -> (TestApp, Registered) {
    let app = spawn_tuned(tempfile::tempdir().unwrap(), Tls::Off, tune).await;
    let admin = app.admin_token().await;
    app.register_api(&admin, "api://throttled", "Read").await;
    let client = app.register_client(&admin, "throttled client").await;
    (app, client)
}

/// A server with these limits, a client and the API it asks for.
pub(super) async fn setup(per_address: u32, per_app: u32) -> (TestApp, Registered) {
    setup_with(|c| {
        c.throttle.per_address = per_address;
        c.throttle.per_app = per_app;
    })
    .await
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

/// A throttled answer: 429, Entra's code, an honest `Retry-After`.
pub(super) fn assert_throttled(answer: &(StatusCode, Option<String>, Value)) {
    let (status, retry, body) = answer;
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(body["error_codes"][0], 90055);
    let retry: u64 = retry.as_deref().expect("Retry-After").parse().unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
}

#[tokio::test]
async fn a_flood_from_many_addresses_never_stops_the_right_secret() {
    let logs = crate::logs::captured();
    let (app, client) = setup(100, 5).await;
    let bad = wrong(&client);
    // The flood: wrong secrets from many addresses, past the application's limit.
    for last in 40..45 {
        let (status, _, body) = ask(&from(last), &app.base, &client, &bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error_codes"][0], 7000215);
    }
    for last in 45..60 {
        assert_throttled(&ask(&from(last), &app.base, &client, &bad).await);
    }
    // The right secret, from a flooded address and from one never seen
    // (no success before the flood), gets its token; every request cost
    // one hash, refused or not: the secret is always checked.
    let hashes = app.state.hasher.computed();
    for http in [from(41), from(50), from(61)] {
        let (status, _, body) = ask(&http, &app.base, &client, &client.secret).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(app.state.hasher.computed(), hashes + 3);
    // Ten minutes on, the flood still going: a fresh address with the right
    // secret is served, a wrong secret is still 429.
    for minute in 1..=10 {
        app.clock.advance(Duration::minutes(1));
        for last in 40..50 {
            let _ = ask(&from(last), &app.base, &client, &bad).await;
        }
        if minute == 10 {
            assert_throttled(&ask(&from(62), &app.base, &client, &bad).await);
        }
    }
    let (status, _, body) = ask(&from(63), &app.base, &client, &client.secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Another application of the tenant is not concerned.
    let admin = app.admin_token().await;
    let other = app.register_client(&admin, "bystander").await;
    let (status, _, body) = ask(&from(64), &app.base, &other, &wrong(&other)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // The limit lifts once the flood stops.
    app.clock.advance(Duration::minutes(2));
    let (status, _, body) = ask(&from(65), &app.base, &client, &bad).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!logs.text().contains(&client.secret));
    assert!(!logs.text().contains(&bad));
}

#[tokio::test]
async fn a_flood_from_one_address_stops_neither_its_right_secret_nor_its_neighbours() {
    let logs = crate::logs::captured();
    let (app, client) = setup(5, 0).await;
    let admin = app.admin_token().await;
    // Another application behind the same address (a NAT, a node).
    let neighbour = app.register_client(&admin, "neighbour").await;
    let shared = from(21);
    let bad = wrong(&client);
    for _ in 0..5 {
        let (status, _, body) = ask(&shared, &app.base, &client, &bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    for _ in 0..20 {
        assert_throttled(&ask(&shared, &app.base, &client, &bad).await);
    }
    // The address is over its limit: a wrong secret for any application,
    // or an unknown client id, from it gets 429 (nothing to learn)...
    assert_throttled(&ask(&shared, &app.base, &neighbour, &wrong(&neighbour)).await);
    let unknown = Registered {
        app_id: uuid::Uuid::new_v4().to_string(),
        ..client.clone()
    };
    assert_throttled(&ask(&shared, &app.base, &unknown, &bad).await);
    // ...but the right secret of either application, from that very
    // address, gets its token.
    for (who, secret) in [(&client, &client.secret), (&neighbour, &neighbour.secret)] {
        let (status, _, body) = ask(&shared, &app.base, who, secret).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Elsewhere, nothing is throttled: an unknown client id gets 700016.
    let (status, _, body) = ask(&from(22), &app.base, &unknown, &bad).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error_codes"][0], 700016);

    // No permanent lockout: two minutes later the address may fail again.
    app.clock.advance(Duration::minutes(2));
    let (status, _, body) = ask(&shared, &app.base, &client, &bad).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Counted (for /metrics) and in the sign-in log (as failures, code 90055).
    assert_eq!(
        app.state
            .throttle
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed),
        22
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
    assert_eq!(throttled, 20);
    assert!(!logs.text().contains(&client.secret));
    assert!(!logs.text().contains(&neighbour.secret));
    assert!(!logs.text().contains(&bad));
}

#[tokio::test]
async fn an_ipv6_flood_counts_by_the_configured_prefix_and_spares_the_right_secret() {
    // Behind a trusted proxy on loopback, addresses come from X-Forwarded-For.
    let (app, client) = setup_with(|c| {
        c.throttle.per_address = 3;
        c.throttle.per_app = 0;
        c.throttle.ipv6_prefix = 48;
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let bad = wrong(&client);
    let http = from(1);
    // Three failures from three /64s of one /48.
    for hop in ["2001:db8:1:1::1", "2001:db8:1:2::1", "2001:db8:1:3::1"] {
        let (status, _, body) = ask_as(&http, &app.base, &client, &bad, Some(hop)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // The whole /48 is over its limit; the next /48 is not.
    assert_throttled(&ask_as(&http, &app.base, &client, &bad, Some("2001:db8:1:ffff::9")).await);
    let (status, _, body) = ask_as(&http, &app.base, &client, &bad, Some("2001:db8:2::1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The right secret from inside the flooded /48 gets its token.
    let (status, _, body) = ask_as(
        &http,
        &app.base,
        &client,
        &client.secret,
        Some("2001:db8:1:2::77"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_matching_secret_is_answered_on_its_merits_even_during_a_flood() {
    let (app, client) = setup(3, 3).await;
    // The client's secret expires (secrets live 180 days by default).
    app.clock.advance(Duration::days(181));
    let bad = wrong(&client);
    let attacker = from(31);
    for _ in 0..10 {
        let _ = ask(&attacker, &app.base, &client, &bad).await;
    }
    assert_throttled(&ask(&attacker, &app.base, &client, &bad).await);
    // The expired secret still hears why it fails (not 429), from the
    // flooded address too: only a secret that matches nothing is throttled.
    for http in [&attacker, &from(32)] {
        let (status, _, body) = ask(http, &app.base, &client, &client.secret).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error_codes"][0], 7000222, "{body}");
    }
}

/// Introspection and revocation authenticate the caller the same way, and
/// follow the same rule.
#[tokio::test]
async fn introspection_and_revocation_follow_the_same_rule() {
    let (app, client) = setup(3, 0).await;
    let attacker = from(70);
    let bad = wrong(&client);
    let call = |endpoint: &'static str, secret: String| {
        let (attacker, base, app_id) = (attacker.clone(), app.base.clone(), client.app_id.clone());
        async move {
            let r = attacker
                .post(format!("{base}/default/oauth2/v2.0/{endpoint}"))
                .form(&[
                    ("client_id", app_id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("token", "x"),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = r.json().await.unwrap_or(json!(null));
            (status, retry, body)
        }
    };
    for _ in 0..3 {
        assert_eq!(
            call("introspect", bad.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_throttled(&call("introspect", bad.clone()).await);
    assert_throttled(&call("revoke", bad.clone()).await);
    // The right secret from the throttled address is served.
    let (status, _, body) = call("introspect", client.secret.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"active": false}));
    assert_eq!(
        call("revoke", client.secret.clone()).await.0,
        StatusCode::OK
    );
}
