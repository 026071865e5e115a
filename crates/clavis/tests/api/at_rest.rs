//! Proof that nothing recoverable is written in the clear: after using every
//! feature that handles a secret (client secrets, a webhook signing secret,
//! signing keys of all three algorithms, a key-encryption-key rotation), every
//! byte Clavis wrote — the data directory (SQLite file and WAL included), a
//! `clavis backup` of the running installation, for PostgreSQL a `pg_dump`
//! of the store and the backup archive's content, and the logs — is searched
//! for every secret value, private key, data-key-wrapping key and the hash
//! key, raw and in hex and base64. PostgreSQL's backup is then restored into
//! an empty database and serves tokens with the old secrets.

use std::path::PathBuf;
use std::process::Command;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use clavis::keys::provider::{server_secret_context, signing_key_context, SECRET_HASH_KEY};
use clavis::Tls;
use serde_json::json;

use super::helpers::{spawn_app, spawn_tuned, TestDatabase};
use super::secrets::{hex, walk};

const MGMT: &str = "api://clavis/.default";

fn clavis(args: &[&str]) -> String {
    let (ok, text) = super::helpers::run_clavis(args);
    assert!(ok, "clavis {args:?}: {text}");
    text
}

fn tool(name: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(name).args(args).output().expect(name);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The private part of a PKCS#8 key: the EC scalar or Ed25519 seed (the
/// first `04 20` octet string), or for RSA the tail of the DER (the CRT
/// coefficient, private).
fn private_part(pkcs8: &[u8], alg: &str) -> Vec<u8> {
    if alg == "RS256" {
        return pkcs8[pkcs8.len() - 32..].to_vec();
    }
    let at = pkcs8
        .windows(2)
        .position(|w| w == [0x04, 0x20])
        .expect("an octet string of 32 bytes");
    pkcs8[at + 2..at + 34].to_vec()
}

/// Each needle as it could appear: raw, hex (both cases), base64, base64url.
fn encodings(needle: &[u8]) -> Vec<Vec<u8>> {
    vec![
        needle.to_vec(),
        hex(needle).into_bytes(),
        hex(needle).to_uppercase().into_bytes(),
        STANDARD
            .encode(needle)
            .trim_end_matches('=')
            .as_bytes()
            .to_vec(),
        URL_SAFE_NO_PAD.encode(needle).into_bytes(),
    ]
}

fn find(haystack: &[u8], needles: &[(String, Vec<u8>)]) -> Vec<String> {
    needles
        .iter()
        .filter(|(_, n)| {
            encodings(n)
                .iter()
                .any(|e| haystack.windows(e.len()).any(|w| w == e.as_slice()))
        })
        .map(|(what, _)| what.clone())
        .collect()
}

#[tokio::test]
async fn no_secret_or_private_key_is_in_any_byte_clavis_writes() {
    let logs = crate::logs::captured();
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "proof").await;
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("admin secret".into(), app.admin_secret.clone().into_bytes()),
        ("client secret".into(), client.secret.clone().into_bytes()),
        (
            "client secret's random part".into(),
            client.secret.as_bytes()[7..40].to_vec(),
        ),
    ];
    let (status, hook) = app
        .post(
            "/v1.0/webhooks",
            &admin,
            json!({"url": "https://hooks.example.com/proof", "displayName": "proof"}),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let webhook_secret = hook["signingSecret"]
        .as_str()
        .expect("shown once")
        .to_owned();
    needles.push(("webhook secret".into(), webhook_secret.into_bytes()));
    // Keys of every algorithm: the tenant switches twice and issues a token
    // each time; then a pending key.
    for alg in ["RS256", "EdDSA", "ES256"] {
        let (status, body) = app
            .graph(
                reqwest::Method::PATCH,
                "/v1.0/policies/tenantPolicy",
                &admin,
                Some(json!({"signingAlgorithm": alg})),
            )
            .await;
        assert!(status.is_success(), "{body}");
        app.token(&client.app_id, &client.secret, MGMT).await;
    }
    let admin = app.admin_token().await;
    let (status, _) = app
        .post("/v1.0/policies/signingKeys/rotate", &admin, json!({}))
        .await;
    assert_eq!(status, 200);
    // A rotation of the key-encryption key: the old one stays in kek.key.
    let (status, report) = app
        .post(
            "/v1.0/policies/keyEncryptionKeys/rewrap",
            &admin,
            json!({"newKey": true}),
        )
        .await;
    assert_eq!(status, 200, "{report}");

    // What only the provider can open.
    let provider = &app.state.key_provider;
    let store = app.state.directory.store().clone();
    let tenant_id = app.tenant_id.parse().unwrap();
    let keys = store.signing_keys(tenant_id).await.unwrap();
    let algs: std::collections::BTreeSet<&str> = keys.iter().map(|k| k.alg.as_str()).collect();
    assert_eq!(algs.len(), 3, "keys of every algorithm: {algs:?}");
    for key in &keys {
        let pkcs8 = provider
            .open(&signing_key_context(&key.kid), &key.encrypted_private_key)
            .unwrap();
        needles.push((
            format!("{} private key {}", key.alg, key.kid),
            private_part(&pkcs8, &key.alg),
        ));
    }
    let sealed = store.server_secret(SECRET_HASH_KEY).await.unwrap().unwrap();
    let hash_key = provider
        .open(&server_secret_context(SECRET_HASH_KEY), &sealed)
        .unwrap();
    needles.push(("secret hash key".into(), hash_key.to_vec()));
    let kek_file = std::fs::read_to_string(app.dir.path().join("kek.key")).unwrap();
    for (i, line) in kek_file
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .enumerate()
    {
        let raw: Vec<u8> = (0..line.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
            .collect();
        needles.push((format!("key-encryption key {i}"), raw));
    }
    assert_eq!(needles.len(), 4 + keys.len() + 1 + 2);

    // Every file Clavis wrote, and its backups.
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("clavis.backup");
    let backup_arg = backup.to_str().unwrap().to_owned();
    let mut scanned: Vec<(String, Vec<u8>)> = Vec::new();
    let database_url = app.database.as_ref().map(|d| d.url.clone());
    match &database_url {
        None => {
            let data = app.dir.path().to_str().unwrap().to_owned();
            clavis(&["backup", "--data-dir", &data, "--to", &backup_arg]);
        }
        Some(url) => {
            clavis(&["backup", "--database-url", url, "--to", &backup_arg]);
            scanned.push((
                "pg_dump of the store".into(),
                tool("pg_dump", &["--format=plain", "--dbname", url]),
            ));
            scanned.push((
                "the backup archive's content".into(),
                tool("pg_restore", &["--file=-", &backup_arg]),
            ));
        }
    }
    let mut files: Vec<PathBuf> = walk(app.dir.path());
    files.push(backup.clone());
    let exempt = ["kek.key", "bootstrap-admin.json"];
    for file in files {
        if exempt.iter().any(|e| file.ends_with(e)) {
            continue;
        }
        scanned.push((file.display().to_string(), std::fs::read(&file).unwrap()));
    }
    assert!(
        scanned.iter().any(|(name, _)| name.ends_with("clavis.db")) || database_url.is_some(),
        "the SQLite file is scanned"
    );
    scanned.push(("the logs".into(), logs.text().into_bytes()));
    // The bootstrap file holds the admin's secret by design (0600), and nothing else.
    let bootstrap = std::fs::read(app.dir.path().join("bootstrap-admin.json")).unwrap();
    let mut leaks: Vec<String> = find(&bootstrap, &needles[1..])
        .into_iter()
        .map(|what| format!("{what} in bootstrap-admin.json"))
        .collect();
    for (name, bytes) in &scanned {
        leaks.extend(
            find(bytes, &needles)
                .into_iter()
                .map(|what| format!("{what} in {name}")),
        );
    }
    assert!(leaks.is_empty(), "found in the clear: {leaks:#?}");

    // The PostgreSQL backup restores into an empty database and serves the
    // old secrets with the old key-encryption keys.
    if database_url.is_some() {
        let fresh = TestDatabase::create().await;
        let target = tempfile::tempdir().unwrap();
        let kek = app.dir.path().join("kek.key");
        let out = clavis(&[
            "restore",
            "--from",
            &backup_arg,
            "--data-dir",
            target.path().to_str().unwrap(),
            "--database-url",
            &fresh.url,
            "--kek-file",
            kek.to_str().unwrap(),
        ]);
        assert!(out.contains("1 tenant(s)"), "{out}");
        let other = scratch.path().join("other");
        let (ok, text) = super::helpers::run_clavis(&[
            "restore",
            "--from",
            &backup_arg,
            "--data-dir",
            other.to_str().unwrap(),
            "--database-url",
            &fresh.url,
        ]);
        assert!(!ok && text.contains("empty database"), "{text}");
        std::fs::copy(
            app.dir.path().join("bootstrap-admin.json"),
            target.path().join("bootstrap-admin.json"),
        )
        .unwrap();
        let url = fresh.url.clone();
        let restored = spawn_tuned(target, Tls::Off, move |c| c.database_url = url).await;
        restored.token(&client.app_id, &client.secret, MGMT).await;
        drop(restored);
        drop(fresh);
    }
    let _ = app.database.take();
}
