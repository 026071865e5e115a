//! Signing-key rotation: a new key is in the JWKS well before it signs,
//! the old one stays until its last token expired, an emergency revocation
//! drops a key at once and ends its tokens, the schedule rotates by itself,
//! and nothing private ever leaves the server.

use reqwest::StatusCode;
use serde_json::{json, Value};
use time::Duration;

use super::helpers::{header, spawn_app, spawn_tuned, Registered, TestApp};
use clavis::keys::lifecycle::Schedule;
use clavis::Tls;

const MGMT: &str = "api://clavis/.default";
const KEYS: &str = "/v1.0/policies/signingKeys";

/// The kids the tenant's JWKS publishes now.
async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app
        .http
        .get(format!("{}/default/discovery/v2.0/keys", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().expect("keys");
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k.get(private).is_none(), "private member {private} in {k}");
        }
    }
    keys.iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid(token: &str) -> String {
    header(token)["kid"].as_str().unwrap().to_owned()
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

/// The tenant's keys by kid: (state, published).
async fn states(app: &TestApp, admin: &str) -> Vec<(String, String, bool)> {
    let (status, body) = app.get(KEYS, admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let allowed = [
        "kid",
        "algorithm",
        "state",
        "published",
        "createdDateTime",
        "activatesDateTime",
        "retiredDateTime",
        "publishedUntilDateTime",
        "revokedDateTime",
    ];
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            for field in k.as_object().unwrap().keys() {
                assert!(allowed.contains(&field.as_str()), "unexpected {field}");
            }
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
                k["published"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn st(kid: &str, state: &str, published: bool) -> (String, String, bool) {
    (kid.to_owned(), state.to_owned(), published)
}

/// A client holding a token for the management API (any audience will do).
async fn client(app: &TestApp, admin: &str) -> Registered {
    app.register_client(admin, "client").await
}

#[tokio::test]
async fn a_rotated_key_is_published_first_signs_later_and_retires_after_its_tokens() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let old = kid(&admin);
    assert_eq!(jwks_kids(&app).await, [old.as_str()]);

    let (status, body) = app.post(&format!("{KEYS}/rotate"), &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["kid"].as_str().unwrap().to_owned();
    assert_eq!(body["state"], "pending");
    assert_ne!(new, old);
    let activates = time::OffsetDateTime::parse(
        body["activatesDateTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expected = app.state.clock.now() + Duration::hours(24);
    assert!(
        (activates - expected).abs() < Duration::seconds(2),
        "{body}"
    );

    // Published at once, on every read of the JWKS; not signing yet.
    assert_eq!(jwks_kids(&app).await, [new.clone(), old.clone()]);
    let c = client(&app, &admin).await;
    assert_eq!(kid(&app.token(&c.app_id, &c.secret, MGMT).await), old);
    assert_eq!(
        states(&app, &admin).await,
        [st(&new, "pending", true), st(&old, "current", true)]
    );

    // Ten minutes before activation: a token from the old key...
    app.clock
        .advance(Duration::hours(24) - Duration::minutes(10));
    let last_old = app.token(&c.app_id, &c.secret, MGMT).await;
    assert_eq!(kid(&last_old), old);
    let old_admin = app.admin_token().await;
    // ...which still verifies after the new key took over.
    app.clock.advance(Duration::minutes(11));
    let first_new = app.token(&c.app_id, &c.secret, MGMT).await;
    assert_eq!(kid(&first_new), new, "signs from activatesDateTime on");
    assert!(
        active(&app, &last_old).await,
        "old tokens verify while published"
    );
    let (status, _) = app.get(KEYS, &old_admin).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the management API accepts them too"
    );
    assert_eq!(jwks_kids(&app).await, [new.clone(), old.clone()]);
    let admin = app.admin_token().await;
    assert_eq!(
        states(&app, &admin).await,
        [st(&new, "current", true), st(&old, "retired", true)]
    );

    // Token lifetime (1 h) plus 10 min skew after retirement (a minute ago), it is gone.
    app.clock.advance(Duration::minutes(68));
    assert_eq!(jwks_kids(&app).await, [new.clone(), old.clone()]);
    app.clock.advance(Duration::minutes(2));
    assert_eq!(jwks_kids(&app).await, [new.as_str()]);
    let admin = app.admin_token().await;
    assert_eq!(
        states(&app, &admin).await,
        [st(&new, "current", true), st(&old, "retired", false)]
    );

    // activateAfterMinutes: 0 signs at once.
    let (status, body) = app
        .post(
            &format!("{KEYS}/rotate"),
            &admin,
            json!({"activateAfterMinutes": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "current");
    let now = app.token(&c.app_id, &c.secret, MGMT).await;
    assert_eq!(kid(&now), body["kid"].as_str().unwrap());
}

#[tokio::test]
async fn revoking_a_key_drops_it_at_once_and_ends_its_tokens() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let old = kid(&admin);
    let c = client(&app, &admin).await;
    let token = app.token(&c.app_id, &c.secret, MGMT).await;
    assert!(active(&app, &token).await);

    let (status, body) = app
        .post(&format!("{KEYS}/{old}/revoke"), &admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"]["kid"], old.as_str());
    assert_eq!(body["revoked"]["state"], "revoked");
    assert!(body["revoked"]["revokedDateTime"].is_string());
    let replacement = body["replacement"]["kid"].as_str().unwrap().to_owned();
    assert_eq!(body["replacement"]["state"], "current");

    // Gone from the JWKS at once; the replacement signs at once.
    assert_eq!(jwks_kids(&app).await, [replacement.as_str()]);
    assert!(!active(&app, &token).await, "its tokens are inactive");
    let (status, refused) = app.get(KEYS, &admin).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{refused}"
    );
    let admin = app.admin_token().await;
    assert_eq!(kid(&admin), replacement);
    let fresh = app.token(&c.app_id, &c.secret, MGMT).await;
    assert!(active(&app, &fresh).await);

    // Revoking a pending key: gone from the JWKS, the current key keeps signing.
    let (_, pending) = app.post(&format!("{KEYS}/rotate"), &admin, json!({})).await;
    let pending = pending["kid"].as_str().unwrap().to_owned();
    assert_eq!(
        jwks_kids(&app).await,
        [pending.clone(), replacement.clone()]
    );
    let (status, body) = app
        .post(&format!("{KEYS}/{pending}/revoke"), &admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["replacement"].is_null(), "{body}");
    assert_eq!(jwks_kids(&app).await, [replacement.as_str()]);
    app.clock.advance(Duration::days(2));
    let admin = app.admin_token().await;
    assert_eq!(
        kid(&admin),
        replacement,
        "a revoked pending key never signs"
    );
    // Revoking again answers the same, changes nothing.
    let (status, again) = app
        .post(&format!("{KEYS}/{pending}/revoke"), &admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["revoked"]["state"], "revoked");

    let (_, audit) = app
        .get("/v1.0/auditLogs/directoryAudits?$top=999", &admin)
        .await;
    let revocations = audit["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["activityDisplayName"] == "Revoke signing key" && e["result"] == "success")
        .count();
    assert_eq!(revocations, 2, "{audit}");
}

#[tokio::test]
async fn the_schedule_publishes_the_successor_ahead_and_it_signs_when_due() {
    let app = spawn_tuned(tempfile::tempdir().unwrap(), Tls::Off, |c| {
        c.signing_keys = Schedule {
            rotate_after: Some(Duration::days(2)),
            prepublish: Duration::hours(6),
        };
    })
    .await;
    let admin = app.admin_token().await;
    let old = kid(&admin);
    assert!(clavis::keys::rotation::rotate_due_keys(&app.state)
        .await
        .is_empty());

    app.clock.advance(Duration::hours(41));
    assert!(
        clavis::keys::rotation::rotate_due_keys(&app.state)
            .await
            .is_empty(),
        "not yet: seven hours before the rotation age"
    );
    app.clock.advance(Duration::hours(1));
    let made = clavis::keys::rotation::rotate_due_keys(&app.state).await;
    assert_eq!(made.len(), 1, "{made:?}");
    let new = made[0].clone();
    assert!(
        clavis::keys::rotation::rotate_due_keys(&app.state)
            .await
            .is_empty(),
        "one pending key at a time"
    );
    assert_eq!(jwks_kids(&app).await, [new.clone(), old.clone()]);
    assert_eq!(kid(&app.admin_token().await), old);

    app.clock.advance(Duration::hours(6));
    let admin = app.admin_token().await;
    assert_eq!(kid(&admin), new, "the successor signs when due");
    let (_, audit) = app
        .get("/v1.0/auditLogs/directoryAudits?$top=999", &admin)
        .await;
    assert!(
        audit["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["activityDisplayName"] == "Add signing key"
                && e["targetResources"][0]["id"] == new.as_str()),
        "{audit}"
    );
}

#[tokio::test]
async fn bad_requests_and_missing_roles_get_graph_errors() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_owned();

    let (status, body) = app
        .post(&format!("{KEYS}/no-such-kid/revoke"), &admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "Request_ResourceNotFound");

    for bad in [
        json!({"activateAfterMinutes": -1}),
        json!({"activateAfterMinutes": 600_000}),
        json!({"activateAfterMinutes": "soon"}),
        json!({"activateAfter": 5}),
        json!([1]),
    ] {
        let (status, body) = app
            .post(&format!("{KEYS}/rotate"), &admin, bad.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(code(&body), "Request_BadRequest");
    }
    let r = app
        .http
        .post(format!("{}{KEYS}/rotate", app.base))
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body("activate now")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // An empty body takes the defaults; a second rotation waits for the first.
    let r = app
        .http
        .post(format!("{}{KEYS}/rotate", app.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, body) = app.post(&format!("{KEYS}/rotate"), &admin, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already pending"),
        "{body}"
    );

    // A reader may list, not rotate or revoke; refusals are audited.
    let reader = app.register_client(&admin, "reader").await;
    app.grant_management(&admin, &reader.sp_id, "Application.Read.All")
        .await;
    let token = app.token(&reader.app_id, &reader.secret, MGMT).await;
    let (status, _) = app.get(KEYS, &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.post(&format!("{KEYS}/rotate"), &token, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "Authorization_RequestDenied");
    let current = kid(&admin);
    let (status, _) = app
        .post(&format!("{KEYS}/{current}/revoke"), &token, json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(jwks_kids(&app).await.len(), 2, "nothing changed");
    let (_, audit) = app
        .get("/v1.0/auditLogs/directoryAudits?$top=999", &admin)
        .await;
    let refused: Vec<&str> = audit["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["result"] == "failure")
        .map(|e| e["activityDisplayName"].as_str().unwrap())
        .collect();
    assert!(refused.contains(&"Rotate signing key"), "{refused:?}");
    assert!(refused.contains(&"Revoke signing key"), "{refused:?}");

    // Every route is in the OpenAPI document.
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, method) in [
        (KEYS.to_owned(), "get"),
        (format!("{KEYS}/rotate"), "post"),
        (format!("{KEYS}/{{kid}}/revoke"), "post"),
    ] {
        assert!(doc["paths"][&path][method].is_object(), "{method} {path}");
    }
}

#[tokio::test]
async fn no_private_key_material_in_responses_or_logs() {
    let logs = crate::logs::captured();
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, rotated) = app
        .post(
            &format!("{KEYS}/rotate"),
            &admin,
            json!({"activateAfterMinutes": 0}),
        )
        .await;
    let (_, listed) = app.get(KEYS, &admin).await;
    let kid = rotated["kid"].as_str().unwrap().to_owned();
    let (_, revoked) = app
        .post(&format!("{KEYS}/{kid}/revoke"), &admin, json!({}))
        .await;
    // The sealed private keys as stored: none of their bytes, in any
    // encoding, appears in a response or the log.
    let records = app
        .state
        .directory
        .store()
        .signing_keys(app.state.directory.tenant("default").unwrap().id)
        .await
        .unwrap();
    use base64::Engine;
    let text = format!("{rotated}{listed}{revoked}{}", logs.text());
    for r in &records {
        for encoded in [
            base64::engine::general_purpose::STANDARD.encode(&r.encrypted_private_key),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&r.encrypted_private_key),
            r.encrypted_private_key
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        ] {
            assert!(!text.contains(&encoded[..32]), "sealed key of {}", r.kid);
        }
    }
    assert!(!text.contains("\"d\":"), "no private JWK member");
}
