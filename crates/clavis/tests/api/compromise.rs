//! `reportCompromisedPassword`: one call removes a leaked secret (its tokens
//! turn inactive), optionally revokes every token of the application and
//! replaces its other secrets (new values shown once), and reports what the
//! secret was used for from the sign-in and audit logs.

use clavis::bootstrap::TenantPlan;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::helpers::{spawn_app, Registered, TestApp};

const ACTIVITY: &str = "Report compromised password credential";

/// A client that connects from `ip` (any 127.0.0.0/8 address reaches the
/// server on loopback) and sends `agent` as its User-Agent.
fn client_from(ip: [u8; 4], agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .user_agent(agent)
        .build()
        .unwrap()
}

async fn token_with(
    app: &TestApp,
    http: &reqwest::Client,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> reqwest::Response {
    http.post(app.token_url("default"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap()
}

/// Is `token` active, asked by the tenant admin at the introspection endpoint?
async fn active(app: &TestApp, token: &str) -> bool {
    let r = app
        .http
        .post(format!("{}/default/oauth2/v2.0/introspect", app.base))
        .basic_auth(&app.admin_id, Some(&app.admin_secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["active"] == true
}

async fn report(app: &TestApp, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/v1.0/applications/{id}/reportCompromisedPassword"),
        token,
        body,
    )
    .await
}

async fn key_ids(app: &TestApp, admin: &str, id: &str) -> Vec<String> {
    let (status, body) = app.get(&format!("/v1.0/applications/{id}"), admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["passwordCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["keyId"].as_str().unwrap().to_owned())
        .collect()
}

async fn audit_events(app: &TestApp, admin: &str, activity: &str) -> Vec<Value> {
    let (status, body) = app
        .get(
            &format!(
                "/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'{}'",
                activity.replace(' ', "%20")
            ),
            admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["value"].as_array().unwrap().clone()
}

fn detail<'a>(event: &'a Value, key: &str) -> &'a Value {
    event["additionalDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == key)
        .map(|d| &d["value"])
        .unwrap_or(&Value::Null)
}

/// A worker with two secrets: `a` (to be reported) and `b`.
struct World {
    app: TestApp,
    admin: String,
    worker: Registered,
    b_secret: String,
    b_key: String,
}

async fn world() -> World {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let worker = app.register_client(&admin, "worker").await;
    let b = app.add_secret(&admin, &worker.id).await;
    World {
        b_secret: b["secretText"].as_str().unwrap().to_owned(),
        b_key: b["keyId"].as_str().unwrap().to_owned(),
        app,
        admin,
        worker,
    }
}

#[tokio::test]
async fn reporting_a_secret_removes_it_and_reports_its_use() {
    let World {
        app,
        admin,
        worker,
        b_secret,
        b_key,
    } = world().await;
    let a = &worker.secret;
    app.grant_management(&admin, &worker.sp_id, "Application.ReadWrite.OwnedBy")
        .await;

    // The worker, from 127.0.0.1: a management token and an action with A.
    let manage_a = app.token(&worker.app_id, a, "api://clavis/.default").await;
    app.create_app(&manage_a, json!({"displayName": "made with A"}))
        .await;
    app.clock.advance(time::Duration::seconds(5));
    let worker_http = client_from([127, 0, 0, 1], "worker/2.0");
    let r = token_with(
        &app,
        &worker_http,
        &worker.app_id,
        a,
        "api://orders/.default",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let orders_a: String = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .into();
    // Someone else, from 127.0.0.2, with A; and a wrong guess.
    app.clock.advance(time::Duration::seconds(5));
    let attacker = client_from([127, 0, 0, 2], "attacker/1.0");
    let r = token_with(&app, &attacker, &worker.app_id, a, "api://orders/.default").await;
    assert_eq!(r.status(), StatusCode::OK);
    let stolen: String = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .into();
    let wrong = format!("{a}x");
    let r = token_with(
        &app,
        &attacker,
        &worker.app_id,
        &wrong,
        "api://orders/.default",
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // B: a token and an action, not the compromised credential's.
    let orders_b = app
        .token(&worker.app_id, &b_secret, "api://orders/.default")
        .await;
    let manage_b = app
        .token(&worker.app_id, &b_secret, "api://clavis/.default")
        .await;
    app.create_app(&manage_b, json!({"displayName": "made with B"}))
        .await;
    app.clock.advance(time::Duration::seconds(5));

    let r = app
        .http
        .post(format!(
            "{}/v1.0/applications/{}/reportCompromisedPassword",
            app.base, worker.id
        ))
        .bearer_auth(&admin)
        .json(&json!({"keyId": worker.key_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["application"]["appId"], worker.app_id);
    assert_eq!(body["application"]["displayName"], "worker");
    assert_eq!(body["keyId"], worker.key_id);
    assert_eq!(body["hint"], a[7..10]);
    assert_eq!(body["tokensRevoked"], false);
    assert_eq!(body["newSecrets"], json!([]));
    assert!(body["revokedDateTime"].is_string());

    // A is gone, and so are its tokens; B still works.
    assert_eq!(key_ids(&app, &admin, &worker.id).await, [b_key.as_str()]);
    assert_eq!(
        app.token_post(&worker.app_id, a, "api://orders/.default")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(!active(&app, &orders_a).await);
    assert!(!active(&app, &stolen).await);
    let (status, _) = app.get("/v1.0/applications", &manage_a).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(active(&app, &orders_b).await);
    app.token(&worker.app_id, &b_secret, "api://orders/.default")
        .await;

    // The report: exactly A's tokens, newest first.
    let report = &body["report"];
    assert_eq!(report["credential"]["keyId"], worker.key_id);
    assert_eq!(report["credential"]["displayName"], "test");
    assert_eq!(report["tokensIssuedCount"], 3, "{report}");
    assert_eq!(report["truncated"], false);
    let tokens = report["tokensIssued"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = tokens
        .iter()
        .map(|t| {
            (
                t["clientIp"].as_str().unwrap(),
                t["userAgent"].as_str().unwrap_or(""),
                t["resourceDisplayName"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("127.0.0.2", "attacker/1.0", "api api://orders"),
            ("127.0.0.1", "worker/2.0", "api api://orders"),
            ("127.0.0.1", "", "Clavis Management API"),
        ],
        "{report}"
    );
    assert_eq!(report["firstUsedDateTime"], tokens[2]["time"]);
    assert_eq!(report["lastUsedDateTime"], tokens[0]["time"]);
    assert_ne!(tokens[0]["time"], tokens[2]["time"]);
    assert_eq!(
        report["distinctClientIps"],
        json!(["127.0.0.1", "127.0.0.2"])
    );
    let failed = &report["failedAttempts"];
    assert_eq!(failed["count"], 1);
    assert_eq!(
        failed["byClientIp"],
        json!([{"clientIp": "127.0.0.2", "count": 1}])
    );
    assert_eq!(failed["first"], failed["last"]);
    let actions: Vec<(&str, &str, bool)> = report["managementActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["activity"].as_str().unwrap(),
                m["target"]["displayName"].as_str().unwrap(),
                m["usedCompromisedCredential"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("Add application", "made with B", false),
            ("Add application", "made with A", true),
        ]
    );
    assert_eq!(report["managementActions"][1]["keyId"], worker.key_id);

    // Audited, with the credential and the admin as actor.
    let events = audit_events(&app, &admin, ACTIVITY).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["result"], "success");
    assert_eq!(detail(&events[0], "KeyId"), &json!(worker.key_id));
    assert_eq!(events[0]["initiatedBy"]["app"]["appId"], app.admin_id);
    assert_eq!(events[0]["targetResources"][0]["id"], worker.id);
}

#[tokio::test]
async fn rotating_and_revoking_replace_the_other_secrets_once() {
    let logs = crate::logs::captured();
    let World {
        app,
        admin,
        worker,
        b_secret,
        b_key,
    } = world().await;
    let (_, before) = app
        .get(&format!("/v1.0/applications/{}", worker.id), &admin)
        .await;
    let b_end = before["passwordCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["keyId"] == b_key)
        .unwrap()["endDateTime"]
        .clone();
    let orders_b = app
        .token(&worker.app_id, &b_secret, "api://orders/.default")
        .await;
    app.clock.advance(time::Duration::seconds(1));

    let (status, body) = report(
        &app,
        &admin,
        &worker.id,
        json!({"keyId": worker.key_id, "rotateOtherSecrets": true, "revokeAllTokens": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tokensRevoked"], true);
    let new = body["newSecrets"].as_array().unwrap();
    assert_eq!(new.len(), 1, "{body}");
    let new = &new[0];
    assert_eq!(new["replacesKeyId"], b_key);
    assert_eq!(new["displayName"], "test (rotated)");
    assert_eq!(new["endDateTime"], b_end, "same remaining lifetime");
    let value = new["secretText"].as_str().unwrap().to_owned();
    assert!(value.starts_with("clavis_"));
    assert_eq!(new["hint"], value[7..10]);
    let new_key = new["keyId"].as_str().unwrap().to_owned();

    // Only the new secret is left, and it works; B and B's token do not.
    assert_eq!(key_ids(&app, &admin, &worker.id).await, [new_key.as_str()]);
    assert!(
        !active(&app, &orders_b).await,
        "revokeAllTokens reaches B's tokens"
    );
    assert_eq!(
        app.token_post(&worker.app_id, &b_secret, "api://orders/.default")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    app.clock.advance(time::Duration::seconds(1));
    let fresh = app
        .token(&worker.app_id, &value, "api://orders/.default")
        .await;
    assert!(active(&app, &fresh).await);

    // Every step is in the audit log, with key ids and never the value.
    for (activity, key) in [
        (ACTIVITY, worker.key_id.as_str()),
        ("Add password credential", new_key.as_str()),
        ("Remove password credential", b_key.as_str()),
    ] {
        let events = audit_events(&app, &admin, activity).await;
        assert!(
            events.iter().any(|e| detail(e, "KeyId") == key),
            "{activity}: {events:?}"
        );
    }
    assert_eq!(
        audit_events(&app, &admin, "Revoke application tokens")
            .await
            .len(),
        1
    );
    let mut later = String::new();
    for path in [
        format!("/v1.0/applications/{}", worker.id),
        "/v1.0/auditLogs/directoryAudits".to_owned(),
        "/v1.0/auditLogs/signIns".to_owned(),
    ] {
        let (status, body) = app.get(&path, &admin).await;
        assert_eq!(status, StatusCode::OK);
        later.push_str(&body.to_string());
    }
    // A second report (of the new secret) shows no value either.
    let (status, again) = report(&app, &admin, &worker.id, json!({"keyId": new_key})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    later.push_str(&again.to_string());
    let log_text = logs.text();
    assert!(
        log_text.contains("client secret reported compromised"),
        "the canary must see this server's logs"
    );
    for needle in [value.as_str(), &value[7..40]] {
        assert!(
            !later.contains(needle),
            "the new secret reached a later response"
        );
        assert!(
            !log_text.contains(needle),
            "the new secret reached the logs"
        );
    }
}

#[tokio::test]
async fn refusals_change_nothing() {
    let World {
        app,
        admin,
        worker,
        b_key,
        ..
    } = world().await;
    let mut before = vec![worker.key_id.clone(), b_key.clone()];
    before.sort();

    // Unknown keyId: 404.
    let (status, body) = report(
        &app,
        &admin,
        &worker.id,
        json!({"keyId": uuid::Uuid::new_v4(), "rotateOtherSecrets": true, "revokeAllTokens": true}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    // Unknown application: 404.
    let (status, _) = report(
        &app,
        &admin,
        &uuid::Uuid::new_v4().to_string(),
        json!({"keyId": worker.key_id}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bad bodies and ids: 400 in Graph's format.
    for bad in [
        json!({}),
        json!({"keyId": "not-a-guid"}),
        json!({"keyId": worker.key_id, "rotateOtherSecrets": "yes"}),
        json!({"keyId": worker.key_id, "unexpected": 1}),
        json!([worker.key_id]),
    ] {
        let (status, body) = report(&app, &admin, &worker.id, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "Request_BadRequest");
    }
    let (status, _) = report(&app, &admin, "not-an-id", json!({"keyId": worker.key_id})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A reader may not: 403, audited.
    let reader = app.register_client(&admin, "reader").await;
    app.grant_management(&admin, &reader.sp_id, "Application.Read.All")
        .await;
    let read_only = app
        .token(&reader.app_id, &reader.secret, "api://clavis/.default")
        .await;
    let (status, body) = report(
        &app,
        &read_only,
        &worker.id,
        json!({"keyId": worker.key_id}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let events = audit_events(&app, &admin, ACTIVITY).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["result"], "failure");
    assert_eq!(events[0]["initiatedBy"]["app"]["appId"], reader.app_id);

    // Another tenant's admin: 404, as if the application did not exist.
    let plan = TenantPlan::new("second", &app.state.hasher, app.state.clock.now());
    app.state
        .directory
        .commit(&plan.mutations, &plan.audit)
        .await
        .expect("second tenant");
    let r = app
        .http
        .post(app.token_url("second"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", plan.admin_app_id.to_string().as_str()),
            ("client_secret", plan.admin_secret.expose()),
            ("scope", "api://clavis/.default"),
        ])
        .send()
        .await
        .unwrap();
    let foreign: String = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .into();
    let (status, _) = report(&app, &foreign, &worker.id, json!({"keyId": worker.key_id})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Nothing changed: both secrets there and working.
    let mut after = key_ids(&app, &admin, &worker.id).await;
    after.sort();
    assert_eq!(after, before);
    app.token(&worker.app_id, &worker.secret, "api://orders/.default")
        .await;
    assert!(audit_events(&app, &admin, ACTIVITY)
        .await
        .iter()
        .all(|e| e["result"] == "failure"));
}

#[tokio::test]
async fn the_route_is_in_the_openapi_document() {
    let app = spawn_app().await;
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op = &doc["paths"]["/v1.0/applications/{id}/reportCompromisedPassword"]["post"];
    assert!(op.is_object(), "{}", doc["paths"]);
    let schemas = &doc["components"]["schemas"];
    for name in [
        "ReportCompromisedPassword",
        "CompromiseResponse",
        "CompromiseReport",
    ] {
        assert!(schemas[name].is_object(), "{name} missing");
    }
}
