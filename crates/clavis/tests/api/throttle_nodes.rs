//! Throttling shared by two nodes on one PostgreSQL database (runs in the
//! `postgres` module only): the counts add up across nodes, and the right
//! secret is served by either node throughout.
use super::helpers::{Registered, TestApp};
use super::throttle::*;
use clavis::{App, Config, Tls};
use reqwest::{Client, StatusCode};
use std::sync::Arc;

/// A second node on the PostgreSQL database of `app`, on the same clock.
async fn second_node(app: &TestApp, per_address: u32, per_app: u32) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(app.dir.path().join("kek.key"), dir.path().join("kek.key")).unwrap();
    let mut config = Config::for_tests(dir.path().to_path_buf(), Tls::Off);
    config.database_url = app.database.as_ref().expect("postgres").url.clone();
    config.throttle.per_address = per_address;
    config.throttle.per_app = per_app;
    let node = App::build(config, Arc::new(app.clock.clone()))
        .await
        .unwrap();
    let base = node.base_url().to_owned();
    tokio::spawn(node.run(std::future::pending()));
    (base, dir)
}

/// Ask until `want` comes back (the nodes share counts once a second).
async fn until(
    http: &Client,
    base: &str,
    client: &Registered,
    secret: &str,
    want: StatusCode,
) -> StatusCode {
    let mut status = StatusCode::OK;
    for _ in 0..50 {
        status = ask(http, base, client, secret).await.0;
        if status == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    status
}

#[tokio::test]
async fn two_nodes_share_the_limits() {
    let (a, client) = setup(6, 8).await;
    let (b, _dir) = second_node(&a, 6, 8).await;
    let bad = wrong(&client);

    // Three failures on each node: neither alone is at the limit of 6.
    let attacker = from(80);
    for base in [&a.base, &a.base, &a.base, &b, &b, &b] {
        let (status, _, body) = ask(&attacker, base, &client, &bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // Within about a second each node counts the other's failures: both
    // answer 429 (alone, each would have answered three more 401s).
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for base in [&b, &a.base] {
        assert_throttled(&ask(&attacker, base, &client, &bad).await);
    }
    // The right secret from the throttled address: a token on both nodes.
    for base in [&b, &a.base] {
        let (status, _, body) = ask(&attacker, base, &client, &client.secret).await;
        assert_eq!(status, StatusCode::OK, "{base}: {body}");
    }

    // The per-application limit: a flood from many addresses over both
    // nodes, none of them over its own limit; node B learns A's share and
    // answers a fresh address's wrong secret 429...
    for last in 100..104 {
        ask(&from(last), &a.base, &client, &bad).await;
        ask(&from(last), &b, &client, &bad).await;
    }
    assert_eq!(
        until(&from(110), &b, &client, &bad, StatusCode::TOO_MANY_REQUESTS).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...while the right secret, from an address that never got a token,
    // is served by both.
    for base in [&b, &a.base] {
        let (status, _, body) = ask(&from(111), base, &client, &client.secret).await;
        assert_eq!(status, StatusCode::OK, "{base}: {body}");
    }
}
