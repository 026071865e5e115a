//! Key-encryption-key rotation: `POST /v1.0/policies/keyEncryptionKeys/rewrap`
//! with a new key while tokens are being issued — no token request fails,
//! every sealed record moves to the new key, and after a restart with only
//! the new key everything still opens. A record under a key the server does
//! not hold fails closed (503), is reported and is left unchanged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clavis::clock::Clock;
use clavis::keys::kek::{KekSet, KeyEncryptionKey};
use clavis::keys::{Algorithm, KeyProvider};
use clavis::Tls;
use clavis_store::{Mutation, SigningKeyRecord};
use serde_json::{json, Value};

use super::helpers::{spawn_app, spawn_tuned, TestApp};

const MGMT: &str = "api://clavis/.default";

fn total(keks: &Value) -> u64 {
    keks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["sealedRecords"].as_u64().unwrap())
        .sum()
}

fn records_of(keks: &Value, id: &str) -> u64 {
    keks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyId"] == id)
        .map_or(0, |k| k["sealedRecords"].as_u64().unwrap())
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let doc: Value = app
        .http
        .get(format!(
            "{}/{}/discovery/v2.0/keys",
            app.base, app.tenant_id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut kids: Vec<String> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

#[tokio::test]
async fn rewrap_under_a_new_key_while_serving_loses_nothing_and_the_old_key_can_go() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "worker").await;
    // Sealed records of every kind: the hash key, two signing keys, a webhook secret.
    let (status, _) = app
        .post(
            "/v1.0/webhooks",
            &admin,
            json!({"url": "https://hooks.example.com/ops", "displayName": "ops"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = app
        .post("/v1.0/policies/signingKeys/rotate", &admin, json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, before) = app.get("/v1.0/policies/keyEncryptionKeys", &admin).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["provider"], "file");
    let old_id = before["activeKeyId"].as_str().unwrap().to_owned();
    let sealed = total(&before);
    assert!(sealed >= 4, "{before}");
    assert_eq!(records_of(&before, &old_id), sealed);
    let kids = jwks_kids(&app).await;

    // Token requests run throughout the rewrap.
    let running = Arc::new(AtomicBool::new(true));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (http, url, running) = (
            app.http.clone(),
            app.token_url(&app.tenant_id),
            running.clone(),
        );
        let form = [
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", client.app_id.clone()),
            ("client_secret", client.secret.clone()),
            ("scope", MGMT.to_owned()),
        ];
        load.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while running.load(Ordering::Relaxed) || statuses.len() < 5 {
                let r = http.post(&url).form(&form).send().await.unwrap();
                statuses.push(r.status().as_u16());
            }
            statuses
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (status, report) = app
        .post(
            "/v1.0/policies/keyEncryptionKeys/rewrap",
            &admin,
            json!({"newKey": true}),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    running.store(false, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for task in load {
        statuses.extend(task.await.unwrap());
    }
    assert_eq!(status, 200, "{report}");
    assert!(
        statuses.iter().all(|&s| s == 200),
        "token requests failed during the rewrap: {statuses:?}"
    );
    assert!(statuses.len() >= 10);
    assert_eq!(report["newKey"], true);
    assert_eq!(report["rewrapped"].as_u64(), Some(sealed), "{report}");
    assert_eq!(report["failed"], json!([]));
    let keks = &report["keyEncryptionKeys"];
    let new_id = keks["activeKeyId"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    assert_eq!(records_of(keks, &new_id), sealed);
    assert_eq!(records_of(keks, &old_id), 0, "{keks}");

    // The key file holds the new key first and the old one after it.
    let path = app.dir.path().join("kek.key");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 2, "new key, then the old");
    // The operator retires the old key; the server restarts with the new alone.
    std::fs::write(&path, format!("{}\n", lines[0])).unwrap();
    let database = app.database.take();
    let url = database.as_ref().map(|d| d.url.clone());
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    app.stop().await.unwrap();
    let app = spawn_tuned(dir, Tls::Off, move |c| {
        if let Some(url) = url {
            c.database_url = url;
        }
    })
    .await;
    app.token(&client.app_id, &client.secret, MGMT).await;
    assert_eq!(jwks_kids(&app).await, kids, "the same signing keys, opened");
    let admin = app.admin_token().await;
    let (status, again) = app
        .post("/v1.0/policies/keyEncryptionKeys/rewrap", &admin, json!({}))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["rewrapped"], 0);
    assert_eq!(
        again["failed"],
        json!([]),
        "every record opens under the new key"
    );
    assert_eq!(again["alreadyCurrent"].as_u64(), Some(sealed));
    drop(database);
}

#[tokio::test]
async fn a_record_under_a_key_the_server_lacks_fails_closed_and_is_left_unchanged() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "worker").await;
    app.token(&client.app_id, &client.secret, MGMT).await;

    // A signing key sealed under a key-encryption key this server never had
    // becomes the tenant's current key.
    let foreign = KeyProvider::software(KekSet::single(KeyEncryptionKey::generate()), None);
    // In the tenant's own algorithm, so it is its current key.
    let (key, sealed) = foreign.generate_signing_key(Algorithm::DEFAULT).unwrap();
    let store = app.state.directory.store().clone();
    let tenant_id = app.tenant_id.parse().unwrap();
    let existing = store.signing_keys(tenant_id).await.unwrap();
    let now = app.clock.now();
    let record = SigningKeyRecord {
        kid: key.kid().to_owned(),
        tenant_id,
        alg: Algorithm::DEFAULT.as_str().into(),
        public_jwk: key.public_jwk().to_string(),
        encrypted_private_key: sealed.blob.clone(),
        kek_id: sealed.kek_id.clone(),
        // Newer than every stored key, and signing already.
        created_at: existing
            .iter()
            .map(|r| r.created_at)
            .max()
            .unwrap()
            .max(now)
            + time::Duration::milliseconds(1),
        activates_at: now,
        revoked_at: None,
        certificate: None,
    };
    store
        .commit(
            &[Mutation::InsertSigningKeyIfCurrent {
                key: record,
                current: existing.first().map(|r| r.kid.clone()),
            }],
            &[],
        )
        .await
        .unwrap();
    app.state.keyring.invalidate();

    let response = app.token_post(&client.app_id, &client.secret, MGMT).await;
    assert_eq!(response.status(), 503, "fail closed, never another key");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");

    // Management still works (its token was issued before); the rewrap
    // reports the record and leaves it as it was.
    let (status, report) = app
        .post("/v1.0/policies/keyEncryptionKeys/rewrap", &admin, json!({}))
        .await;
    assert_eq!(status, 200, "{report}");
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["kind"], "signingKey");
    assert_eq!(failed[0]["id"], key.kid());
    let unknown = report["keyEncryptionKeys"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyId"] == sealed.kek_id.as_str())
        .cloned()
        .expect("the foreign key is listed");
    assert_eq!(unknown["configured"], false);
    assert_eq!(unknown["sealedRecords"], 1);
    let stored = store.signing_keys(tenant_id).await.unwrap();
    let kept = stored.iter().find(|r| r.kid == key.kid()).unwrap();
    assert_eq!(kept.encrypted_private_key, sealed.blob, "left unchanged");

    // Creating a webhook needs the provider too, and still works: only the
    // record it cannot open is refused.
    let (status, _) = app
        .post(
            "/v1.0/webhooks",
            &admin,
            json!({"url": "https://hooks.example.com/ops", "displayName": "ops"}),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn rewrap_is_for_the_installation_operator_and_env_keys_cannot_be_made() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    // An env-provider server cannot make a key: it says how to rotate instead.
    let provider = KeyProvider::software(KekSet::single(KeyEncryptionKey::generate()), None);
    let err = provider.add_active_kek().unwrap_err().to_string();
    assert!(err.contains("CLAVIS_KEK_PREVIOUS"), "{err}");
    // A bad body is a Graph 400, not a change.
    let (status, body) = app
        .post(
            "/v1.0/policies/keyEncryptionKeys/rewrap",
            &admin,
            json!({"newKey": "yes"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // newKey with keyId contradict each other: 400 saying so (a rule across
    // two fields, listed in tests/schemathesis/schemathesis.toml).
    let (status, body) = app
        .post(
            "/v1.0/policies/keyEncryptionKeys/rewrap",
            &admin,
            json!({"newKey": true, "keyId": "x"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not both"),
        "{body}"
    );
    // A well-formed key id the node does not hold (even an empty one) is the
    // installation's state, not the request: 409 with what to do.
    for id in ["", "not-a-key-this-node-holds"] {
        let (status, body) = app
            .post(
                "/v1.0/policies/keyEncryptionKeys/rewrap",
                &admin,
                json!({"keyId": id}),
            )
            .await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "Request_Conflict", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Add the key to every node first"),
            "{body}"
        );
    }
    // The optional body may be JSON null (the schema says so): the defaults.
    let r = app
        .http
        .post(format!(
            "{}/v1.0/policies/keyEncryptionKeys/rewrap",
            app.base
        ))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, keks) = app.get("/v1.0/policies/keyEncryptionKeys", &admin).await;
    assert_eq!(keks["keys"].as_array().unwrap().len(), 1, "{keks}");
}
