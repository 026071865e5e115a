//! `--key-provider pkcs11` end to end on a SoftHSM2 token: the wrapping key
//! and every signing key are made in the token (non-extractable), every
//! signature is the token's, no key file is written, a restart opens the
//! same store, and a token that loses its keys fails closed (503, one clear
//! log line) until a key operation made in the token replaces them — no
//! restart, no software key.

use clavis::keys::kek::{KekSource, Pkcs11Config};
use clavis::keys::pkcs11::testing::SoftHsm;
use clavis::keys::pkcs11::SecretValue;
use clavis::keys::provider::TOKEN_KEY_REF;
use clavis::{App, Config, Tls};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::helpers::{claims, header, spawn_tuned};

const MGMT: &str = "api://clavis/.default";

fn source(hsm: &SoftHsm, pin: &str) -> KekSource {
    KekSource::Pkcs11(Pkcs11Config {
        module: hsm.module.clone(),
        token_label: hsm.label.clone(),
        pin: Some(Zeroizing::new(pin.to_owned())),
        wrapping_label: "clavis-kek".into(),
    })
}

#[tokio::test]
async fn keys_live_in_the_token_and_a_token_that_loses_them_fails_closed_until_replaced() {
    let logs = crate::logs::captured();
    let hsm = SoftHsm::new();
    let dir = tempfile::tempdir().unwrap();
    let kek = source(&hsm, &hsm.pin);
    let mut app = spawn_tuned(dir, Tls::Off, move |c| c.kek = kek).await;
    assert!(
        !app.dir.path().join("kek.key").exists(),
        "no key file with a PKCS#11 provider"
    );
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "worker").await;
    let token = app.token(&client.app_id, &client.secret, MGMT).await;
    assert_eq!(claims(&token)["azp"], client.app_id.as_str());

    // The tenant's signing key is a token object, sensitive and never
    // extractable; the store holds only its reference.
    let tenant_id = app.tenant_id.parse().unwrap();
    let store = app.state.directory.store().clone();
    let keys = store.signing_keys(tenant_id).await.unwrap();
    assert_eq!(keys.len(), 1);
    let key_id = std::str::from_utf8(
        keys[0]
            .encrypted_private_key
            .strip_prefix(TOKEN_KEY_REF)
            .expect("a token reference, not key material"),
    )
    .unwrap()
    .to_owned();
    let hsm_token = app.state.key_provider.token().expect("pkcs11").clone();
    let attributes = hsm_token.key_attributes(&key_id).unwrap();
    assert!(attributes.sensitive && !attributes.extractable && attributes.never_extractable);
    assert_eq!(attributes.secret_value, SecretValue::Sensitive);
    assert_eq!(header(&token)["kid"], keys[0].kid.as_str());

    let (status, keks) = app.get("/v1.0/policies/keyEncryptionKeys", &admin).await;
    assert_eq!(status, 200, "{keks}");
    assert_eq!(keks["provider"], "pkcs11");
    let active = keks["activeKeyId"].as_str().unwrap();
    assert_eq!(active, format!("pkcs11:{}/clavis-kek", hsm.label));
    // The hash key is wrapped by the token's AES key; the signing key is the token's own.
    let rows = keks["keys"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|k| k["keyId"] == active && k["sealedRecords"] == 1),
        "{keks}"
    );
    assert!(
        rows.iter()
            .any(|k| k["keyId"] == "pkcs11-token" && k["sealedRecords"] == 1),
        "{keks}"
    );
    let (status, report) = app
        .post(
            "/v1.0/policies/keyEncryptionKeys/rewrap",
            &admin,
            json!({"newKey": true}),
        )
        .await;
    assert_eq!(status, 400, "the token's key is rotated by label: {report}");
    let (status, report) = app
        .post("/v1.0/policies/keyEncryptionKeys/rewrap", &admin, json!({}))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["failed"], json!([]));

    // Another process deletes the token's signing key: issuance fails
    // closed, verification of the admin's token does not depend on it.
    hsm.pkcs11_tool(&["--delete-object", "--type", "privkey", "--id", &key_id]);
    let r = app.token_post(&client.app_id, &client.secret, MGMT).await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(
        logs.text()
            .contains(&format!("PKCS#11 token '{}'", hsm.label)),
        "one log line names the token"
    );
    // The emergency removal makes a new key in the token: tokens again,
    // without a restart.
    let (status, revoked) = app
        .post(
            &format!("/v1.0/policies/signingKeys/{}/revoke", keys[0].kid),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    let token = app.token(&client.app_id, &client.secret, MGMT).await;
    let new_kid = header(&token)["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, keys[0].kid);

    // Revoking a key that the token still holds destroys it there: no
    // node can sign with it again. (The admin's token was signed by the
    // revoked key: a fresh one.)
    let admin = app.admin_token().await;
    let (status, rotated) = app
        .post(
            "/v1.0/policies/signingKeys/rotate",
            &admin,
            json!({"activateAfterMinutes": 60}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let pending = rotated["kid"].as_str().unwrap().to_owned();
    let stored = store.signing_keys(tenant_id).await.unwrap();
    let pending_id = stored
        .iter()
        .find(|k| k.kid == pending)
        .and_then(|k| k.encrypted_private_key.strip_prefix(TOKEN_KEY_REF))
        .map(|id| String::from_utf8(id.to_vec()).unwrap())
        .unwrap();
    assert!(hsm_token.key_attributes(&pending_id).is_ok());
    let (status, _) = app
        .post(
            &format!("/v1.0/policies/signingKeys/{pending}/revoke"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        hsm_token.key_attributes(&pending_id).is_err(),
        "the revoked key is gone from the token"
    );

    // A restart on the same token opens the same store.
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    let database = app.database.take();
    let url = database.as_ref().map(|d| d.url.clone());
    app.stop().await.unwrap();
    let kek = source(&hsm, &hsm.pin);
    let app = spawn_tuned(dir, Tls::Off, move |c| {
        c.kek = kek;
        if let Some(url) = url {
            c.database_url = url;
        }
    })
    .await;
    let token = app.token(&client.app_id, &client.secret, MGMT).await;
    assert_eq!(header(&token)["kid"], new_kid.as_str());
    drop(database);
}

#[tokio::test]
async fn a_wrong_pin_or_a_missing_token_stops_the_start_without_showing_the_pin() {
    let hsm = SoftHsm::new();
    let dir = tempfile::tempdir().unwrap();
    let start = |kek: KekSource| {
        let mut config = Config::for_tests(dir.path().to_path_buf(), Tls::Off);
        config.kek = kek;
        async move {
            App::build(config, std::sync::Arc::new(clavis::clock::SystemClock))
                .await
                .map(|_| ())
        }
    };
    let wrong = "not-the-pin-4711";
    let err = format!("{:#}", start(source(&hsm, wrong)).await.unwrap_err());
    assert!(err.contains("PIN") && !err.contains(wrong), "{err}");
    let mut missing = Pkcs11Config {
        module: hsm.module.clone(),
        token_label: "no-such-token".into(),
        pin: Some(Zeroizing::new(hsm.pin.clone())),
        wrapping_label: "clavis-kek".into(),
    };
    let err = format!(
        "{:#}",
        start(KekSource::Pkcs11(missing.clone())).await.unwrap_err()
    );
    assert!(
        err.contains("no-such-token") && !err.contains(&hsm.pin),
        "{err}"
    );
    missing.token_label = hsm.label.clone();
    missing.pin = None;
    let err = format!("{:#}", start(KekSource::Pkcs11(missing)).await.unwrap_err());
    assert!(err.contains("CLAVIS_PKCS11_PIN"), "{err}");
    assert!(!dir.path().join("kek.key").exists());
}
