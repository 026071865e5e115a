//! Credential policies: the tenant's rules for client secrets and one
//! application's exceptions, enforced on addPassword with a 400 that names
//! the rule; each credential's last-used time; sign-in retention.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use clavis::clock::Clock as _;

use super::helpers::{spawn_app, TestApp};

async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    app.graph(Method::PATCH, path, token, Some(body)).await
}

async fn add(app: &TestApp, token: &str, id: &str, credential: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/v1.0/applications/{id}/addPassword"),
        token,
        json!({ "passwordCredential": credential }),
    )
    .await
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

fn end_of(credential: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(credential["endDateTime"].as_str().unwrap(), &Rfc3339).unwrap()
}

#[tokio::test]
async fn tenant_rules_limit_secrets_and_can_forbid_them() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (status, policy) = app.get("/v1.0/policies/tenantPolicy", &admin).await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy["maxSecretsPerApplication"], 10);
    assert_eq!(policy["passwordCredentialsAllowed"], true);

    let client = app.register_client(&admin, "worker").await;
    let (status, body) = patch(
        &app,
        "/v1.0/policies/tenantPolicy",
        &admin,
        json!({"maxSecretsPerApplication": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, second) = add(&app, &admin, &client.id, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let (status, third) = add(&app, &admin, &client.id, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{third}");
    assert_eq!(third["error"]["code"], "Request_BadRequest");
    let text = message(&third);
    assert!(text.contains("maxSecretsPerApplication = 2"), "{text}");
    assert!(text.contains("tenant credential policy"), "{text}");
    assert!(text.contains("removePassword"), "{text}");

    let (status, _) = patch(
        &app,
        "/v1.0/policies/tenantPolicy",
        &admin,
        json!({"maxSecretsPerApplication": 10, "passwordCredentialsAllowed": false}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, refused) = add(&app, &admin, &client.id, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        message(&refused).contains("passwordCredentialsAllowed"),
        "{refused}"
    );
    // Secrets already held keep working until they are removed.
    app.token(&client.app_id, &client.secret, "api://clavis/.default")
        .await;
    let (_, read) = app
        .get(&format!("/v1.0/applications/{}", client.id), &admin)
        .await;
    assert_eq!(read["passwordCredentials"].as_array().unwrap().len(), 2);

    for bad in [
        json!({"maxSecretsPerApplication": 0}),
        json!({"maxSecretsPerApplication": 101}),
        json!({"maxSecretsPerApplication": "3"}),
        json!({"passwordCredentialsAllowed": "no"}),
    ] {
        let (status, body) = patch(&app, "/v1.0/policies/tenantPolicy", &admin, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (_, policy) = app.get("/v1.0/policies/tenantPolicy", &admin).await;
    assert_eq!(
        policy["maxSecretsPerApplication"], 10,
        "bad input changed nothing"
    );
    assert_eq!(policy["passwordCredentialsAllowed"], false);
}

#[tokio::test]
async fn application_exceptions_override_the_tenant_and_are_named() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "worker").await;
    let path = format!("/v1.0/applications/{}/credentialPolicy", client.id);

    let (status, policy) = app.get(&path, &admin).await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert!(policy["maxSecretLifetimeDays"].is_null(), "{policy}");
    assert_eq!(policy["effective"]["maxSecretLifetimeDays"], 730);
    assert_eq!(policy["effective"]["defaultSecretLifetimeDays"], 180);
    assert_eq!(policy["effective"]["maxSecretsPerApplication"], 10);

    let (status, policy) = patch(
        &app,
        &path,
        &admin,
        json!({"maxSecretLifetimeDays": 30, "defaultSecretLifetimeDays": 7, "maxSecretsPerApplication": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy["maxSecretLifetimeDays"], 30);
    assert_eq!(policy["effective"]["maxSecretLifetimeDays"], 30);
    assert_eq!(policy["effective"]["defaultSecretLifetimeDays"], 7);

    let now = app.clock.now();
    let (status, added) = add(&app, &admin, &client.id, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(end_of(&added) - now, Duration::days(7), "{added}");
    let too_long = (now + Duration::days(31)).format(&Rfc3339).unwrap();
    let (status, refused) = add(&app, &admin, &client.id, json!({"endDateTime": too_long})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let text = message(&refused);
    assert!(text.contains("application credential policy"), "{text}");
    assert!(text.contains("30 days"), "{text}");
    let (status, _) = add(&app, &admin, &client.id, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, refused) = add(&app, &admin, &client.id, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&refused).contains("maxSecretsPerApplication = 3"));

    // Another application is not affected.
    let other = app.register_client(&admin, "other").await;
    let (status, _) = add(
        &app,
        &admin,
        &other.id,
        json!({"endDateTime": (now + Duration::days(300)).format(&Rfc3339).unwrap()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // null returns a rule to the tenant's; absent fields stay.
    let (status, policy) = patch(
        &app,
        &path,
        &admin,
        json!({"maxSecretsPerApplication": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert!(policy["maxSecretsPerApplication"].is_null());
    assert_eq!(policy["effective"]["maxSecretsPerApplication"], 10);
    assert_eq!(policy["maxSecretLifetimeDays"], 30, "untouched");

    // An application may be the one exception to a tenant that forbids secrets.
    patch(
        &app,
        "/v1.0/policies/tenantPolicy",
        &admin,
        json!({"passwordCredentialsAllowed": false}),
    )
    .await;
    let (status, _) = add(&app, &admin, &other.id, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    patch(
        &app,
        &path,
        &admin,
        json!({"passwordCredentialsAllowed": true}),
    )
    .await;
    let (status, _) = add(&app, &admin, &client.id, json!({})).await;
    assert_eq!(status, StatusCode::OK);

    // Every change is audited.
    let (_, audit) = app
        .get(
            "/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'Update%20application%20credential%20policy'",
            &admin,
        )
        .await;
    assert_eq!(audit["value"].as_array().unwrap().len(), 3, "{audit}");
}

#[tokio::test]
async fn application_policy_refuses_bad_input_and_wrong_callers() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "worker").await;
    let path = format!("/v1.0/applications/{}/credentialPolicy", client.id);
    for bad in [
        json!({"maxSecretLifetimeDays": 0}),
        json!({"maxSecretLifetimeDays": 3651}),
        json!({"defaultSecretLifetimeDays": 800}),
        json!({"maxSecretsPerApplication": -1}),
        json!({"maxSecretsPerApplication": 2.5}),
        json!({"passwordCredentialsAllowed": 1}),
        json!({"maxSecrets": 3}),
        json!([]),
    ] {
        let (status, body) = patch(&app, &path, &admin, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(!message(&body).is_empty(), "{body}");
    }
    let (_, policy) = app.get(&path, &admin).await;
    assert!(
        policy["maxSecretLifetimeDays"].is_null(),
        "nothing changed: {policy}"
    );

    let ghost = format!(
        "/v1.0/applications/{}/credentialPolicy",
        uuid::Uuid::new_v4()
    );
    let (status, _) = app.get(&ghost, &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = patch(&app, &ghost, &admin, json!({"maxSecretsPerApplication": 3})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = patch(
        &app,
        "/v1.0/applications/nope/credentialPolicy",
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // An owner (Application.ReadWrite.OwnedBy) may read its application's
    // policy but not loosen it.
    let owner = app.register_client(&admin, "owner").await;
    app.grant_management(&admin, &owner.sp_id, "Application.ReadWrite.OwnedBy")
        .await;
    let owner_token = app
        .token(&owner.app_id, &owner.secret, "api://clavis/.default")
        .await;
    let owned = app
        .create_app(&owner_token, json!({"displayName": "owned"}))
        .await;
    let owned_path = format!(
        "/v1.0/applications/{}/credentialPolicy",
        owned["id"].as_str().unwrap()
    );
    let (status, _) = app.get(&owned_path, &owner_token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = patch(
        &app,
        &owned_path,
        &owner_token,
        json!({"maxSecretLifetimeDays": 3650}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        message(&body).contains("Application.ReadWrite.All"),
        "{body}"
    );
    let (status, _) = app.get(&path, &owner_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not its application");
}

#[tokio::test]
async fn last_used_time_follows_tokens() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "worker").await;
    let (_, spare) = add(&app, &admin, &client.id, json!({"displayName": "spare"})).await;
    let (_, fresh) = app
        .get(&format!("/v1.0/applications/{}", client.id), &admin)
        .await;
    for c in fresh["passwordCredentials"].as_array().unwrap() {
        assert!(c["lastUsedDateTime"].is_null(), "{c}");
    }

    app.clock.advance(Duration::minutes(5));
    let used_at = app.clock.now();
    app.token(&client.app_id, &client.secret, "api://clavis/.default")
        .await;
    let wrong = format!("{}x", client.secret);
    app.token_post(&client.app_id, &wrong, "api://clavis/.default")
        .await;
    app.state.sign_ins.flush().await;

    let (_, read) = app
        .get(&format!("/v1.0/applications/{}", client.id), &admin)
        .await;
    let by_key = |key: &str| {
        read["passwordCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["keyId"] == key)
            .unwrap()
            .clone()
    };
    let used = by_key(&client.key_id);
    let last = OffsetDateTime::parse(used["lastUsedDateTime"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!((last - used_at).abs() < Duration::milliseconds(1), "{used}");
    assert!(
        by_key(spare["keyId"].as_str().unwrap())["lastUsedDateTime"].is_null(),
        "a failed attempt is not a use"
    );
}

#[tokio::test]
async fn sign_ins_past_retention_are_deleted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "worker").await;
    app.token(&client.app_id, &client.secret, "api://clavis/.default")
        .await;
    app.state.sign_ins.flush().await;
    app.clock.advance(Duration::days(29));
    app.token(&client.app_id, &client.secret, "api://clavis/.default")
        .await;
    app.state.sign_ins.flush().await;
    let count = |body: &Value| {
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["appId"] == client.app_id)
            .count()
    };

    let gone = clavis::signin_log::purge_expired(&app.state).await.unwrap();
    assert_eq!(gone, 0, "nothing is 30 days old yet");
    app.clock.advance(Duration::days(2));
    let gone = clavis::signin_log::purge_expired(&app.state).await.unwrap();
    assert!(
        gone >= 2,
        "the first tokens (the admin's and the worker's) went: {gone}"
    );
    let admin = app.admin_token().await;
    let (_, left) = app.get("/v1.0/auditLogs/signIns", &admin).await;
    assert_eq!(count(&left), 1, "{left}");
}

/// Found in a review (issue 12, item 9): a secret could start up to the
/// longest lifetime in the future and then live that long again. Its end is
/// now capped at now + the longest lifetime, by the tenant's rule and by an
/// application's exception alike.
#[tokio::test]
async fn a_secret_starting_later_still_ends_within_the_longest_lifetime() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let created = app
        .create_app(&admin, json!({"displayName": "later"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let now = app.state.clock.now();
    let at = |d: OffsetDateTime| d.format(&Rfc3339).unwrap();
    let start = now + Duration::days(700);

    let (status, body) = add(
        &app,
        &admin,
        id,
        json!({"startDateTime": at(start), "endDateTime": at(start + Duration::days(730))}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("730 days from now"), "{body}");

    let (status, body) = add(&app, &admin, id, json!({"startDateTime": at(start)})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let close = |a: OffsetDateTime, b: OffsetDateTime| (a - b).abs() < Duration::seconds(1);
    assert!(close(end_of(&body), now + Duration::days(730)), "{body}");

    let (status, body) = add(
        &app,
        &admin,
        id,
        json!({"startDateTime": at(now + Duration::days(730))}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // An application's own longest lifetime counts from now too.
    let (status, body) = patch(
        &app,
        &format!("/v1.0/applications/{id}/credentialPolicy"),
        &admin,
        json!({"maxSecretLifetimeDays": 30, "defaultSecretLifetimeDays": 30}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let start = now + Duration::days(20);
    let (status, body) = add(
        &app,
        &admin,
        id,
        json!({"startDateTime": at(start), "endDateTime": at(start + Duration::days(30))}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        message(&body).contains("application credential policy"),
        "{body}"
    );
    let (status, body) = add(&app, &admin, id, json!({"startDateTime": at(start)})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(close(end_of(&body), now + Duration::days(30)), "{body}");
}
