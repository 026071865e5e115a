//! Signing like Entra: new tenants sign RS256 with 2048-bit keys, every
//! published key carries its self-signed certificate (`x5c`, and its SHA-1
//! thumbprint `x5t`) made once and stored, tokens name it in their `x5t`
//! header, ES256 and EdDSA are one policy change away (and back), and a
//! tenant made with the old ES256 default keeps ES256 after the upgrade,
//! its key getting one certificate that every node publishes.

use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use clavis::clock::Clock;
use clavis::keys::{jws, Algorithm, VerifyingKey};
use clavis::Tls;
use clavis_store::{Mutation, Store};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::helpers::{header, spawn_app, spawn_tuned, TestApp, TestDatabase};

const MGMT: &str = "api://clavis/.default";

async fn jwks(app: &TestApp) -> Vec<Value> {
    let r = app
        .http
        .get(format!("{}/default/discovery/v2.0/keys", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["keys"].as_array().unwrap().clone()
}

/// The published key's certificate: base64 (not url-safe) DER whose SHA-1
/// is `x5t` and which holds the JWK's own public key. Returns the DER.
fn certificate_of(jwk: &Value) -> Vec<u8> {
    let x5c = jwk["x5c"].as_array().expect("x5c is published");
    assert_eq!(x5c.len(), 1, "{jwk}");
    let der = STANDARD
        .decode(x5c[0].as_str().unwrap())
        .expect("x5c is standard base64");
    let x5t = B64.encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, &der));
    assert_eq!(jwk["x5t"], x5t, "x5t is the certificate's SHA-1 thumbprint");
    let part = |name: &str| B64.decode(jwk[name].as_str().unwrap()).unwrap();
    let public = match jwk["kty"].as_str().unwrap() {
        "RSA" => part("n"),
        "EC" => [vec![4u8], part("x"), part("y")].concat(),
        _ => part("x"),
    };
    assert!(
        der.windows(public.len()).any(|w| w == public),
        "the certificate holds the JWK's public key: {jwk}"
    );
    der
}

/// Verify `token` against the JWKS; its header's `x5t` names its key's certificate.
async fn verify(app: &TestApp, token: &str) -> Value {
    let keys = jwks(app).await;
    let head = header(token);
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == head["kid"])
        .expect("the token's kid is published");
    certificate_of(jwk);
    assert_eq!(head["x5t"], jwk["x5t"], "{head}");
    let key = VerifyingKey::from_jwk(jwk).unwrap();
    jws::decode::<Value>(token, &key).expect("signature verifies")
}

async fn tenant_of(store: &dyn Store, id: uuid::Uuid) -> clavis_store::Tenant {
    let tenants = store.tenants().await.unwrap();
    tenants.into_iter().find(|t| t.id == id).unwrap()
}

async fn set_algorithm(app: &TestApp, admin: &str, alg: &str) {
    let (status, body) = app
        .graph(
            reqwest::Method::PATCH,
            "/v1.0/policies/tenantPolicy",
            admin,
            Some(json!({ "signingAlgorithm": alg })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// Stop `app` and start it again on the same data directory and database
/// (`url`: the PostgreSQL database the test owns, `None` on SQLite).
async fn restart(mut app: TestApp, url: Option<String>) -> TestApp {
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    app.stop().await.unwrap();
    spawn_tuned(dir, Tls::Off, move |c| {
        if let Some(url) = url {
            c.database_url = url;
        }
    })
    .await
}

/// Take the test's own database from `app`, so restarts keep it.
fn own_database(app: &mut TestApp) -> (Option<TestDatabase>, Option<String>) {
    let database = app.database.take();
    let url = database.as_ref().map(|d| d.url.clone());
    (database, url)
}

#[tokio::test]
async fn new_tenants_sign_rs256_and_every_key_publishes_its_certificate() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    assert_eq!(header(&admin)["alg"], "RS256");
    let claims = verify(&app, &admin).await;
    assert_eq!(claims["tid"], app.tenant_id);
    let keys = jwks(&app).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS256");
    assert_eq!(keys[0]["e"], "AQAB");
    let n = B64.decode(keys[0]["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len() * 8, 2048, "2048-bit RSA, as Entra");
    let (status, policy) = app.get("/v1.0/policies/tenantPolicy", &admin).await;
    assert_eq!(status, 200);
    assert_eq!(policy["signingAlgorithm"], "RS256");

    // ES256 and EdDSA are one policy change away, and RS256 one change back;
    // tokens verify after each switch and every key keeps its certificate.
    let client = app.register_client(&admin, "worker").await;
    let mut tokens = Vec::new();
    for alg in ["ES256", "EdDSA", "RS256"] {
        set_algorithm(&app, &admin, alg).await;
        let token = app.token(&client.app_id, &client.secret, MGMT).await;
        assert_eq!(header(&token)["alg"], alg);
        verify(&app, &token).await;
        tokens.push(token);
    }
    let keys = jwks(&app).await;
    assert_eq!(
        keys.len(),
        4,
        "the old keys stay published for their tokens"
    );
    let certificates: Vec<Vec<u8>> = keys.iter().map(certificate_of).collect();
    for token in tokens.iter().chain([&admin]) {
        verify(&app, token).await;
    }

    // Stored with the keys: the same certificates after a restart.
    let (_database, url) = own_database(&mut app);
    let app = restart(app, url).await;
    let again: Vec<Vec<u8>> = jwks(&app).await.iter().map(certificate_of).collect();
    assert_eq!(again, certificates);
    let token = app.token(&client.app_id, &client.secret, MGMT).await;
    assert_eq!(header(&token)["alg"], "RS256");
    assert_eq!(header(&token)["kid"], header(&tokens[2])["kid"]);
    verify(&app, &token).await;
}

#[tokio::test]
async fn a_tenant_made_with_the_old_es256_default_keeps_it_and_gets_one_certificate() {
    let mut app = spawn_app().await;
    let (_database, url) = own_database(&mut app);
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "worker").await;

    // What an installation made before this version holds: the tenant's
    // stored algorithm is ES256 (the old default) and its current key,
    // made then, has no certificate.
    let store = app.state.directory.store().clone();
    let tenant_id = app.tenant_id.parse().unwrap();
    let mut tenant = tenant_of(&*store, tenant_id).await;
    tenant.signing_alg = "ES256".into();
    let existing = store.signing_keys(tenant_id).await.unwrap();
    let now = app.clock.now();
    let mut old = app
        .state
        .keyring
        .new_record(&tenant, Algorithm::Es256, now, &existing)
        .unwrap();
    old.certificate = None;
    let old_kid = old.kid.clone();
    store
        .commit(
            &[
                Mutation::UpdateTenant(tenant),
                Mutation::InsertSigningKeyIfCurrent {
                    key: old,
                    current: existing.first().map(|r| r.kid.clone()),
                },
            ],
            &[],
        )
        .await
        .unwrap();

    // The upgraded server keeps signing ES256 with the same key, which now
    // has a certificate, made once and stored.
    let app = restart(app, url.clone()).await;
    let token = app.token(&client.app_id, &client.secret, MGMT).await;
    assert_eq!(header(&token)["alg"], "ES256");
    assert_eq!(header(&token)["kid"], old_kid);
    verify(&app, &token).await;
    let store = app.state.directory.store().clone();
    let stored = store.signing_keys(tenant_id).await.unwrap();
    let stored = stored.iter().find(|r| r.kid == old_kid).unwrap();
    let der = stored.certificate.clone().expect("stored with the key");
    let published = jwks(&app).await;
    let jwk = published.iter().find(|k| k["kid"] == old_kid).unwrap();
    assert_eq!(certificate_of(jwk), der);
    let admin = app.admin_token().await;
    let (_, policy) = app.get("/v1.0/policies/tenantPolicy", &admin).await;
    assert_eq!(policy["signingAlgorithm"], "ES256");

    // Made once: another start publishes the same certificate.
    let app = restart(app, url).await;
    assert_eq!(jwks(&app).await, published);
    let token = app.token(&client.app_id, &client.secret, MGMT).await;
    assert_eq!(header(&token)["alg"], "ES256");
}

/// Nodes that meet a key without a certificate at the same moment agree:
/// one certificate is stored and every node publishes that one.
#[tokio::test]
async fn nodes_that_certify_an_old_key_at_once_publish_the_same_certificate() {
    if super::BACKEND != crate::Backend::Postgres {
        return;
    }
    let app = spawn_app().await;
    let store = app.state.directory.store().clone();
    let tenant_id = app.tenant_id.parse().unwrap();
    let tenant = tenant_of(&*store, tenant_id).await;
    let existing = store.signing_keys(tenant_id).await.unwrap();
    let mut old = app
        .state
        .keyring
        .new_record(&tenant, Algorithm::Rs256, app.clock.now(), &existing)
        .unwrap();
    old.certificate = None;
    store
        .commit(
            &[Mutation::InsertSigningKeyIfCurrent {
                key: old,
                current: existing.first().map(|r| r.kid.clone()),
            }],
            &[],
        )
        .await
        .unwrap();
    let url = app.database.as_ref().unwrap().url.clone();
    app.state.keyring.invalidate();
    let node = || {
        let dir = tempfile::tempdir().unwrap();
        for file in ["kek.key", "bootstrap-admin.json"] {
            std::fs::copy(app.dir.path().join(file), dir.path().join(file)).unwrap();
        }
        let url = url.clone();
        spawn_tuned(dir, Tls::Off, move |c| c.database_url = url)
    };
    let (a, b) = tokio::join!(node(), node());
    let (ka, kb) = tokio::join!(jwks(&a), jwks(&b));
    assert_eq!(ka, kb, "every node publishes the same certificates");
    assert!(ka.iter().all(|k| k.get("x5c").is_some()), "{ka:?}");
    assert_eq!(jwks(&app).await, ka, "the first node too");
}
