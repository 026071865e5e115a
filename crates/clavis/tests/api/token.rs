//! The token service: discovery, JWKS, client credentials (post and Basic),
//! claims and roles, signature algorithms, and every Entra error code.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clavis::keys::{jws, VerifyingKey};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::helpers::{claims, header, spawn_app, TestApp};

async fn verify(app: &TestApp, token: &str) -> Value {
    let jwks: Value = app
        .http
        .get(format!("{}/default/discovery/v2.0/keys", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = header(token)["kid"].as_str().unwrap().to_owned();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("token kid is published in the JWKS");
    let key = VerifyingKey::from_jwk(jwk).unwrap();
    jws::decode::<Value>(token, &key).expect("signature verifies")
}

#[tokio::test]
async fn discovery_by_name_and_guid() {
    let app = spawn_app().await;
    for tenant in ["default", "DEFAULT", app.tenant_id.as_str()] {
        let r = app
            .http
            .get(format!(
                "{}/{tenant}/v2.0/.well-known/openid-configuration",
                app.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let doc: Value = r.json().await.unwrap();
        assert_eq!(
            doc["issuer"],
            format!("{}/{}/v2.0", app.base, app.tenant_id)
        );
        assert_eq!(
            doc["token_endpoint"],
            format!("{}/{}/oauth2/v2.0/token", app.base, app.tenant_id)
        );
        assert!(doc["authorization_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/oauth2/v2.0/authorize"));
        assert!(doc["jwks_uri"]
            .as_str()
            .unwrap()
            .ends_with("/discovery/v2.0/keys"));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!(["client_secret_post", "client_secret_basic"])
        );
    }
    let r = app
        .http
        .get(format!(
            "{}/nope/v2.0/.well-known/openid-configuration",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_codes"], json!([90002]));
}

#[tokio::test]
async fn client_gets_a_token_with_roles_by_uri_and_by_app_id() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (api, role_id) = app
        .register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "worker").await;
    let (status, body) = app
        .grant(
            &admin,
            api["appId"].as_str().unwrap(),
            &client.sp_id,
            &role_id,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let r = app
        .token_post(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["ext_expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();
    let c = verify(&app, token).await;
    assert_eq!(header(token)["alg"], "RS256");
    assert_eq!(c["iss"], format!("{}/{}/v2.0", app.base, app.tenant_id));
    assert_eq!(c["aud"], api["appId"]);
    assert_eq!(c["azp"], client.app_id);
    assert_eq!(c["sub"], client.sp_id);
    assert_eq!(c["oid"], client.sp_id);
    assert_eq!(c["tid"], app.tenant_id);
    assert_eq!(c["roles"], json!(["Orders.Read"]));
    assert_eq!(c["ver"], "2.0");
    assert_eq!(c["credential_id"], client.key_id);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
    assert!(c["jti"].is_string());

    // By appId, and without any role: no roles claim at all.
    let other = app.register_client(&admin, "no-roles").await;
    let t = app
        .token(
            &other.app_id,
            &other.secret,
            &format!("{}/.default", api["appId"].as_str().unwrap()),
        )
        .await;
    let c = claims(&t);
    assert_eq!(c["aud"], api["appId"]);
    assert!(c.get("roles").is_none());
}

#[tokio::test]
async fn basic_auth_works_url_encoded_or_not() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "basic").await;
    for (id, secret) in [
        (client.app_id.clone(), client.secret.clone()),
        // openid-client style: each part form-encoded (no-op for our alphabet, but '%5F' is '_').
        (client.app_id.clone(), client.secret.replace('_', "%5F")),
    ] {
        let r = app
            .http
            .post(app.token_url("default"))
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
            )
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "api://orders/.default"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn entra_error_codes() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "c").await;
    let code = |v: &Value| v["error_codes"][0].as_i64().unwrap();

    // Wrong secret: 401, no WWW-Authenticate with client_secret_post.
    let r = app
        .token_post(
            &client.app_id,
            &format!("{}x", client.secret),
            "api://orders/.default",
        )
        .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(code(&body), 7000215);
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{field}");
    }
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215:"));

    // Same with Basic: WWW-Authenticate present.
    let r = app
        .http
        .post(app.token_url("default"))
        .basic_auth(&client.app_id, Some("wrong"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "api://orders/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));

    let unknown = uuid::Uuid::new_v4().to_string();
    let r = app
        .token_post(&unknown, &client.secret, "api://orders/.default")
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(code(&r.json().await.unwrap()), 700016);

    let r = app
        .token_post(&client.app_id, &client.secret, "api://missing/.default")
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str().unwrap(), code(&body)),
        ("invalid_resource", 500011)
    );

    let r = app
        .token_post(&client.app_id, &client.secret, "api://orders/read")
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str().unwrap(), code(&body)),
        ("invalid_scope", 1002012)
    );

    let r = app
        .http
        .post(app.token_url("default"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", client.app_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );

    let r = app
        .http
        .post(app.token_url("no-such-tenant"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.app_id.as_str()),
            ("client_secret", client.secret.as_str()),
            ("scope", "api://orders/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(code(&r.json().await.unwrap()), 90002);

    // A secret in the URL query is refused even when the body is fine.
    let r = app
        .http
        .post(format!(
            "{}?client_secret={}",
            app.token_url("default"),
            client.secret
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.app_id.as_str()),
            ("client_secret", client.secret.as_str()),
            ("scope", "api://orders/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(!body.to_string().contains(&client.secret));
}

#[tokio::test]
async fn expired_secret_gets_7000222_and_many_secrets_work_at_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "c").await;
    // A second, longer-lived secret on the same app: both work.
    let (status, second) = app
        .post(&format!("/v1.0/applications/{}/addPassword", client.id), &admin,
              json!({"passwordCredential": {"endDateTime": (time::OffsetDateTime::now_utc() + time::Duration::days(400)).format(&time::format_description::well_known::Rfc3339).unwrap()}}))
        .await;
    assert_eq!(status, 200);
    let second = second["secretText"].as_str().unwrap().to_owned();
    app.token(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    app.token(&client.app_id, &second, "api://orders/.default")
        .await;

    app.clock.advance(time::Duration::days(181));
    let r = app
        .token_post(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_codes"][0], 7000222);
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains(&client.key_id));
    app.token(&client.app_id, &second, "api://orders/.default")
        .await;
}

#[tokio::test]
async fn removed_secret_and_deleted_app_stop_working_at_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "c").await;
    // Warm the cache first.
    app.token(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    let (status, _) = app
        .post(
            &format!("/v1.0/applications/{}/removePassword", client.id),
            &admin,
            json!({"keyId": client.key_id}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let r = app
        .token_post(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error_codes"][0], 7000215);

    let other = app.register_client(&admin, "d").await;
    app.token(&other.app_id, &other.secret, "api://orders/.default")
        .await;
    let (status, _) = app
        .graph(
            reqwest::Method::DELETE,
            &format!("/v1.0/applications/{}", other.id),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let r = app
        .token_post(&other.app_id, &other.secret, "api://orders/.default")
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error_codes"][0], 700016);
}

#[tokio::test]
async fn every_signing_algorithm_is_selectable_and_old_keys_stay_published() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "c").await;
    let first = app
        .token(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    for alg in ["ES256", "EdDSA", "RS256"] {
        let (status, body) = app
            .graph(
                reqwest::Method::PATCH,
                "/v1.0/policies/tenantPolicy",
                &admin,
                Some(json!({"signingAlgorithm": alg})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let t = app
            .token(&client.app_id, &client.secret, "api://orders/.default")
            .await;
        assert_eq!(header(&t)["alg"], alg);
        verify(&app, &t).await;
    }
    // The first key still verifies tokens it signed.
    verify(&app, &first).await;
    let (status, _) = app
        .graph(
            reqwest::Method::PATCH,
            "/v1.0/policies/tenantPolicy",
            &admin,
            Some(json!({"signingAlgorithm": "HS256"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn https_with_the_generated_local_ca() {
    let app = super::helpers::spawn_with(clavis::Tls::LocalCa).await;
    assert!(app.base.starts_with("https://127.0.0.1:"));
    let ca = app.data_dir().join("tls/ca.pem");
    assert!(ca.exists());
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(app.data_dir().join("bootstrap-admin.json")).unwrap(),
    )
    .unwrap();
    assert!(boot["caFile"].as_str().unwrap().ends_with("tls/ca.pem"));
    let token = app.admin_token().await;
    assert_eq!(claims(&token)["roles"].as_array().unwrap().len(), 2);
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await.expect("graceful shutdown");
}

#[tokio::test]
async fn metrics_count_tokens_and_show_seconds_to_expiry() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "c").await;
    app.token(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    let _ = app
        .token_post(&client.app_id, "clavis_wrong", "api://orders/.default")
        .await;
    let text = app.metrics().await;
    let value = |text: &str, prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    assert_eq!(
        value(&text, "clavis_tokens_issued_total"),
        2.0,
        "admin + client"
    );
    assert_eq!(value(&text, "clavis_token_requests_refused_total"), 1.0);
    let line = format!(
        "clavis_client_secret_expiry_seconds{{tenant_id=\"{}\",app_id=\"{}\",key_id=\"{}\"}}",
        app.tenant_id, client.app_id, client.key_id
    );
    let left = value(&text, &line);
    assert!((left - 180.0 * 86400.0).abs() < 120.0, "{left}");
    assert!(!text.contains(&client.secret) && !text.contains(&app.admin_secret));
    app.clock.advance(time::Duration::days(181));
    assert!(value(&app.metrics().await, &line) < 0.0);
}

/// An unknown client id is remembered as missing (so probing costs no
/// database round-trip), and forgotten as soon as the directory changes.
#[tokio::test]
async fn a_client_remembered_as_unknown_works_once_registered() {
    let app = spawn_app().await;
    let tenant: uuid::Uuid = app.tenant_id.parse().unwrap();
    let app_id = uuid::Uuid::new_v4();
    let directory = &app.state.directory;
    assert!(directory.client(tenant, app_id).await.unwrap().is_none());
    assert!(
        directory.client(tenant, app_id).await.unwrap().is_none(),
        "remembered"
    );
    let now = time::OffsetDateTime::now_utc();
    let registered = clavis_store::Application {
        id: uuid::Uuid::new_v4(),
        tenant_id: tenant,
        app_id,
        service_principal_id: uuid::Uuid::new_v4(),
        display_name: "late".into(),
        identifier_uris: vec![],
        app_roles: vec![],
        owners: vec![],
        password_credentials: vec![],
        credential_policy: Default::default(),
        builtin: false,
        created_at: now,
    };
    directory
        .commit(
            &[clavis_store::Mutation::InsertApplication(registered)],
            &[],
        )
        .await
        .unwrap();
    let found = directory.client(tenant, app_id).await.unwrap();
    assert_eq!(found.map(|c| c.app.app_id), Some(app_id));
}

#[tokio::test]
async fn a_flood_of_unknown_client_ids_does_not_push_real_clients_out_of_the_cache() {
    let app = spawn_app().await;
    let tenant: uuid::Uuid = app.tenant_id.parse().unwrap();
    let admin: uuid::Uuid = app.admin_id.parse().unwrap();
    let directory = &app.state.directory;
    directory.set_unknown_limit(8);
    // Start-up commits move the change feed, which drops the cache a
    // moment later: ask until the client stays cached.
    let mut cached = false;
    for _ in 0..100 {
        app.admin_token().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if directory.caches_client(tenant, admin) {
            cached = true;
            break;
        }
    }
    assert!(cached, "a known client is cached once it got a token");
    for _ in 0..50 {
        let r = app
            .token_post(
                &uuid::Uuid::new_v4().to_string(),
                "clavis_wrong",
                "api://clavis/.default",
            )
            .await;
        assert!(r.status().is_client_error());
    }
    assert!(
        directory.caches_client(tenant, admin),
        "50 unknown client ids (past a limit of 8) cleared the cache of known clients"
    );
}
