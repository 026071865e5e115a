//! Introspection (RFC 7662) and revocation (RFC 7009): a token stops being
//! active when its credential is removed, its application deleted, it is
//! revoked, or all of its application's tokens are; only its holder, its
//! audience or a tenant admin may ask about it or revoke it.

use clavis::clock::Clock;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::helpers::{spawn_app, Registered, TestApp};

async fn introspect(app: &TestApp, caller: &Registered, token: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .post(format!("{}/default/oauth2/v2.0/introspect", app.base))
        .basic_auth(&caller.app_id, Some(&caller.secret))
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn revoke(app: &TestApp, caller: &Registered, token: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .post(format!("{}/default/oauth2/v2.0/revoke", app.base))
        .form(&[
            ("token", token),
            ("client_id", caller.app_id.as_str()),
            ("client_secret", caller.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

struct World {
    app: TestApp,
    admin: String,
    api: Registered,
    client: Registered,
    stranger: Registered,
}

async fn world() -> World {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (api_json, _) = app
        .register_api(&admin, "api://orders", "Orders.Read")
        .await;
    // The API needs a secret of its own to introspect tokens sent to it.
    let cred = app
        .add_secret(&admin, api_json["id"].as_str().unwrap())
        .await;
    let api = Registered {
        id: api_json["id"].as_str().unwrap().into(),
        app_id: api_json["appId"].as_str().unwrap().into(),
        sp_id: app.sp_of(&admin, api_json["appId"].as_str().unwrap()).await,
        secret: cred["secretText"].as_str().unwrap().into(),
        key_id: cred["keyId"].as_str().unwrap().into(),
    };
    let client = app.register_client(&admin, "client").await;
    let stranger = app.register_client(&admin, "stranger").await;
    World {
        app,
        admin,
        api,
        client,
        stranger,
    }
}

#[tokio::test]
async fn discovery_advertises_both_endpoints() {
    let app = spawn_app().await;
    let doc: Value = app
        .http
        .get(format!(
            "{}/default/v2.0/.well-known/openid-configuration",
            app.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["introspection_endpoint"]
        .as_str()
        .unwrap()
        .ends_with("/oauth2/v2.0/introspect"));
    assert!(doc["revocation_endpoint"]
        .as_str()
        .unwrap()
        .ends_with("/oauth2/v2.0/revoke"));
}

#[tokio::test]
async fn active_tokens_are_described_to_holder_audience_and_admin_only() {
    let w = world().await;
    let token = w
        .app
        .token(&w.client.app_id, &w.client.secret, "api://orders/.default")
        .await;
    for who in [&w.api, &w.client] {
        let (status, body) = introspect(&w.app, who, &token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["active"], true, "{body}");
        assert_eq!(body["client_id"], w.client.app_id);
        assert_eq!(body["aud"], w.api.app_id);
        assert_eq!(body["credential_id"], w.client.key_id);
        assert_eq!(body["token_type"], "Bearer");
    }
    // A stranger learns nothing.
    assert_eq!(
        introspect(&w.app, &w.stranger, &token).await.1,
        json!({"active": false})
    );
    // Garbage is simply inactive.
    assert_eq!(
        introspect(&w.app, &w.client, "not.a.token").await.1,
        json!({"active": false})
    );
    // No or wrong authentication: 401.
    let r = w
        .app
        .http
        .post(format!("{}/default/oauth2/v2.0/introspect", w.app.base))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let wrong = Registered {
        secret: format!("{}x", w.client.secret),
        ..w.client.clone()
    };
    assert_eq!(
        introspect(&w.app, &wrong, &token).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Expired tokens are inactive.
    w.app.clock.advance(time::Duration::hours(2));
    assert_eq!(
        introspect(&w.app, &w.client, &token).await.1["active"],
        false
    );
}

#[tokio::test]
async fn a_revoked_token_is_inactive_and_only_its_own() {
    let w = world().await;
    let first = w
        .app
        .token(&w.client.app_id, &w.client.secret, "api://orders/.default")
        .await;
    let second = w
        .app
        .token(&w.client.app_id, &w.client.secret, "api://orders/.default")
        .await;
    // A stranger may not revoke it: its attempt leaves the token alone,
    // with the answer garbage gets (see `revoke_answers_alike...`).
    let (status, body) = revoke(&w.app, &w.stranger, &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        introspect(&w.app, &w.client, &first).await.1["active"],
        true
    );
    // Its holder may.
    assert_eq!(revoke(&w.app, &w.client, &first).await.0, StatusCode::OK);
    assert_eq!(introspect(&w.app, &w.api, &first).await.1["active"], false);
    assert_eq!(introspect(&w.app, &w.api, &second).await.1["active"], true);
    // Revoking again, or revoking garbage, is fine (RFC 7009 §2.2).
    assert_eq!(revoke(&w.app, &w.client, &first).await.0, StatusCode::OK);
    assert_eq!(revoke(&w.app, &w.client, "garbage").await.0, StatusCode::OK);
    // Audited.
    let (_, audit) = w
        .app
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'Revoke%20access%20token'", &w.admin)
        .await;
    assert_eq!(audit["value"].as_array().unwrap().len(), 1, "{audit}");
}

#[tokio::test]
async fn removing_the_credential_or_the_application_ends_its_tokens() {
    let w = world().await;
    let token = w
        .app
        .token(&w.client.app_id, &w.client.secret, "api://orders/.default")
        .await;
    let (status, _) = w
        .app
        .post(
            &format!("/v1.0/applications/{}/removePassword", w.client.id),
            &w.admin,
            json!({"keyId": w.client.key_id}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(introspect(&w.app, &w.api, &token).await.1["active"], false);

    let other = w.app.register_client(&w.admin, "other").await;
    let token = w
        .app
        .token(&other.app_id, &other.secret, "api://orders/.default")
        .await;
    assert_eq!(introspect(&w.app, &w.api, &token).await.1["active"], true);
    let (status, _) = w
        .app
        .graph(
            reqwest::Method::DELETE,
            &format!("/v1.0/applications/{}", other.id),
            &w.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(introspect(&w.app, &w.api, &token).await.1["active"], false);
}

#[tokio::test]
async fn revoking_all_of_an_applications_tokens() {
    let w = world().await;
    let old = w
        .app
        .token(&w.client.app_id, &w.client.secret, "api://orders/.default")
        .await;
    // The client also holds a management role: its management token dies too.
    w.app
        .grant_management(&w.admin, &w.client.sp_id, "Application.Read.All")
        .await;
    let management = w
        .app
        .token(&w.client.app_id, &w.client.secret, "api://clavis/.default")
        .await;
    assert_eq!(
        w.app.get("/v1.0/applications", &management).await.0,
        StatusCode::OK
    );

    // Only writers may do it.
    let (status, _) = w
        .app
        .post(
            &format!("/v1.0/applications/{}/revokeTokens", w.client.id),
            &management,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = w
        .app
        .post(
            &format!("/v1.0/applications/{}/revokeTokens", w.client.id),
            &w.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(introspect(&w.app, &w.api, &old).await.1["active"], false);
    let (status, body) = w.app.get("/v1.0/applications", &management).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Tokens issued afterwards work (a millisecond later is enough: see
    // `a_token_issued_right_after_a_revocation_works`).
    w.app.clock.advance(time::Duration::milliseconds(1));
    let new = w
        .app
        .token(&w.client.app_id, &w.client.secret, "api://orders/.default")
        .await;
    assert_eq!(introspect(&w.app, &w.api, &new).await.1["active"], true);
    // Another application's tokens are untouched.
    let theirs = w
        .app
        .token(
            &w.stranger.app_id,
            &w.stranger.secret,
            "api://orders/.default",
        )
        .await;
    assert_eq!(introspect(&w.app, &w.api, &theirs).await.1["active"], true);
}

#[tokio::test]
async fn bad_requests_get_oauth_errors() {
    let w = world().await;
    for (path, form) in [
        (
            "introspect",
            vec![
                ("client_id", w.client.app_id.as_str()),
                ("client_secret", w.client.secret.as_str()),
            ],
        ),
        (
            "revoke",
            vec![
                ("client_id", w.client.app_id.as_str()),
                ("client_secret", w.client.secret.as_str()),
                ("token", "a"),
                ("token", "b"),
            ],
        ),
    ] {
        let r = w
            .app
            .http
            .post(format!("{}/default/oauth2/v2.0/{path}", w.app.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}: {body}");
    }
    let r = w
        .app
        .http
        .post(format!(
            "{}/default/oauth2/v2.0/introspect?client_secret={}",
            w.app.base, w.client.secret
        ))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = w
        .app
        .http
        .get(format!("{}/default/oauth2/v2.0/introspect", w.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// Status, headers (but the per-request id and the date) and body of a
/// revocation as `caller`.
async fn revoke_raw(
    app: &TestApp,
    caller: &Registered,
    token: &str,
) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
    let r = app
        .http
        .post(format!("{}/default/oauth2/v2.0/revoke", app.base))
        .basic_auth(&caller.app_id, Some(&caller.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(name, _)| !["request-id", "date"].contains(&name.as_str()))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn revoke_answers_alike_for_another_client_s_live_token_and_for_garbage() {
    let w = world().await;
    let live = w
        .app
        .token(&w.client.app_id, &w.client.secret, "api://orders/.default")
        .await;
    let revoked = w
        .app
        .token(&w.client.app_id, &w.client.secret, "api://orders/.default")
        .await;
    assert_eq!(revoke(&w.app, &w.client, &revoked).await.0, StatusCode::OK);
    // A stranger tries: another client's live token, a revoked one, a
    // forged one (a live token with its signature broken), garbage.
    let mut forged = live.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let answers = [
        revoke_raw(&w.app, &w.stranger, &live).await,
        revoke_raw(&w.app, &w.stranger, &revoked).await,
        revoke_raw(&w.app, &w.stranger, &forged).await,
        revoke_raw(&w.app, &w.stranger, "garbage").await,
    ];
    assert_eq!(answers[0].0, StatusCode::OK, "{:?}", answers[0]);
    for other in &answers[1..] {
        assert_eq!(other, &answers[0], "the answers differ");
    }
    // The holder's own revocation of garbage reads the same too.
    assert_eq!(revoke_raw(&w.app, &w.client, "garbage").await, answers[0]);
    // And the live token was left alone.
    assert_eq!(introspect(&w.app, &w.client, &live).await.1["active"], true);
}

/// `revokeTokens` (and the compromise response) cut off at the instant of
/// the revocation, to the millisecond: a token issued in the same second
/// but before it is inactive, one issued after it active. Tie rule: a token
/// issued in the very millisecond of the revocation counts as before it.
#[tokio::test]
async fn a_token_issued_right_after_a_revocation_works() {
    let w = world().await;
    let ms = time::Duration::milliseconds;
    // Stand at a whole second plus 100 ms.
    let now = w.app.clock.now();
    w.app.clock.advance(
        time::Duration::seconds(1) - time::Duration::nanoseconds(now.nanosecond().into()) + ms(100),
    );
    let second = w.app.clock.now().unix_timestamp();
    let token = || {
        w.app
            .token(&w.client.app_id, &w.client.secret, "api://orders/.default")
    };
    let before = token().await;
    w.app.clock.advance(ms(200));
    let revoke_all = || async {
        let (status, body) = w
            .app
            .post(
                &format!("/v1.0/applications/{}/revokeTokens", w.client.id),
                &w.admin,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    };
    revoke_all().await;
    // Issued at the revocation's very instant, and later within its
    // millisecond: inactive (the tie rule).
    let same_instant = token().await;
    w.app.clock.advance(time::Duration::microseconds(999));
    let same_millisecond = token().await;
    // A millisecond after, and later in the same second: active.
    w.app.clock.advance(time::Duration::microseconds(1));
    let next_millisecond = token().await;
    w.app.clock.advance(ms(500));
    let later = token().await;
    assert_eq!(w.app.clock.now().unix_timestamp(), second, "one second");
    for (name, token, active) in [
        ("before", &before, false),
        ("same instant", &same_instant, false),
        ("same millisecond", &same_millisecond, false),
        ("next millisecond", &next_millisecond, true),
        ("later", &later, true),
    ] {
        let (_, body) = introspect(&w.app, &w.api, token).await;
        assert_eq!(body["active"], active, "{name}: {body}");
        assert_eq!(body.get("iat").is_some(), active, "{name}");
    }
    // The compromise response's revocation of all tokens cuts off the
    // same way (tokens of the application's other secret, which stays).
    let other = w.app.add_secret(&w.admin, &w.client.id).await;
    let other = other["secretText"].as_str().unwrap().to_owned();
    let token = || {
        w.app
            .token(&w.client.app_id, &other, "api://orders/.default")
    };
    w.app.clock.advance(ms(1));
    let before = token().await;
    w.app.clock.advance(ms(1));
    let (status, body) = w
        .app
        .post(
            &format!(
                "/v1.0/applications/{}/reportCompromisedPassword",
                w.client.id
            ),
            &w.admin,
            json!({"keyId": w.client.key_id, "revokeAllTokens": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    w.app.clock.advance(ms(1));
    let after = token().await;
    assert_eq!(introspect(&w.app, &w.api, &before).await.1["active"], false);
    assert_eq!(introspect(&w.app, &w.api, &after).await.1["active"], true);
}

/// The revocation's audit event says who revoked, with which credential,
/// from where, and the caller's own request id beside the server's.
#[tokio::test]
async fn the_revocation_audit_event_names_the_caller_s_address_and_key() {
    let w = world().await;
    let token = w
        .app
        .token(&w.client.app_id, &w.client.secret, "api://orders/.default")
        .await;
    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 9]))
        .build()
        .unwrap();
    let r = http
        .post(format!("{}/default/oauth2/v2.0/revoke", w.app.base))
        .header("client-request-id", "revoker-7")
        .form(&[
            ("token", token.as_str()),
            ("client_id", w.client.app_id.as_str()),
            ("client_secret", w.client.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ours = r.headers()["request-id"].to_str().unwrap().to_owned();
    let (_, audit) = w
        .app
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'Revoke%20access%20token'", &w.admin)
        .await;
    let event = &audit["value"][0];
    let detail = |key: &str| {
        event["additionalDetails"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["key"] == key)
            .map(|d| d["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(detail("ClientIpAddress"), "127.0.0.9", "{event}");
    assert_eq!(
        detail("ActorCredentialKeyId"),
        json!(w.client.key_id),
        "{event}"
    );
    assert_eq!(event["initiatedBy"]["app"]["ipAddress"], "127.0.0.9");
    assert_eq!(event["correlationId"], json!(ours), "{event}");
    assert_eq!(event["clientRequestId"], "revoker-7", "{event}");
}
