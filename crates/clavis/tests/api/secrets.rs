//! Canary: secret values never reach the database file, the logs, or any
//! response other than the one that created them.

use reqwest::StatusCode;
use serde_json::json;

use super::helpers::spawn_app;

pub fn files_contain(dir: &std::path::Path, needle: &str, skip: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in walk(dir) {
        if entry.ends_with(skip) {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap_or_default();
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            hits.push(entry.display().to_string());
        }
    }
    hits
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn no_secret_reaches_the_database_logs_or_later_responses() {
    let logs = crate::logs::captured();

    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "canary").await;
    let mut secrets = vec![app.admin_secret.clone(), client.secret.clone()];

    // Use the secret every way a client can, right and wrong.
    app.token(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    app.http
        .post(app.token_url("default"))
        .basic_auth(&client.app_id, Some(&client.secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "api://orders/.default"),
        ])
        .send()
        .await
        .unwrap();
    let wrong = format!("{}Z", client.secret);
    secrets.push(wrong.clone());
    let r = app
        .token_post(&client.app_id, &wrong, "api://orders/.default")
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let refused: serde_json::Value = r.json().await.unwrap();
    assert!(!refused.to_string().contains(&wrong));
    let refused_trace = refused["trace_id"].as_str().unwrap().to_owned();
    let r = app
        .http
        .post(format!(
            "{}?client_secret={}",
            app.token_url("default"),
            client.secret
        ))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert!(!r.text().await.unwrap().contains(&client.secret));
    let r = app
        .token_post(&client.app_id, &client.secret, "api://missing/.default")
        .await;
    assert!(!r.text().await.unwrap().contains(&client.secret));

    // Later responses: the application, the lists, the audit log.
    let mut later = String::new();
    for path in [
        format!("/v1.0/applications/{}", client.id),
        "/v1.0/applications".to_owned(),
        "/v1.0/servicePrincipals".to_owned(),
        "/v1.0/auditLogs/directoryAudits".to_owned(),
    ] {
        let (status, body) = app.get(&path, &admin).await;
        assert_eq!(status, StatusCode::OK);
        later.push_str(&body.to_string());
    }
    let (_, _) = app
        .post(
            &format!("/v1.0/applications/{}/removePassword", client.id),
            &admin,
            json!({"keyId": client.key_id}),
        )
        .await;
    let (_, audit) = app.get("/v1.0/auditLogs/directoryAudits", &admin).await;
    later.push_str(&audit.to_string());

    drop(app.http.clone());
    let dir = app.data_dir();
    let database = match &app.database {
        Some(db) => dump_postgres(&db.url).await,
        None => String::new(),
    };
    let log_text = logs.text();
    // This test's own requests are in the capture (request spans carry the
    // request id that came back as trace_id).
    assert!(
        log_text.contains(&refused_trace),
        "the canary must see this server's logs"
    );
    for secret in &secrets {
        // The random part alone too: an encoded or truncated form would still leak it.
        let core = &secret[7..40];
        for needle in [secret.as_str(), core] {
            assert!(!log_text.contains(needle), "a secret reached the logs");
            assert!(!later.contains(needle), "a secret reached a later response");
            let hits = files_contain(&dir, needle, "bootstrap-admin.json");
            assert!(hits.is_empty(), "a secret reached {hits:?}");
            assert!(
                !database.contains(needle),
                "a secret reached the PostgreSQL database"
            );
            assert!(
                !database.contains(&hex(needle.as_bytes())),
                "a secret reached the PostgreSQL database (bytea)"
            );
        }
    }
    assert!(
        !database.contains("06072a8648ce3d0201"),
        "plaintext EC key in the PostgreSQL database"
    );
    // The store holds private keys only sealed: the OID of an EC private key
    // (id-ecPublicKey, inside PKCS#8) never appears in the clear.
    const EC_OID: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    for file in walk(&dir)
        .iter()
        .filter(|p| p.to_string_lossy().contains("clavis.db"))
    {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !bytes.windows(EC_OID.len()).any(|w| w == EC_OID),
            "plaintext key in {file:?}"
        );
    }
    drop(app);
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every row of every table, as JSON text (bytea appears as hex).
pub async fn dump_postgres(url: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&mut conn)
            .await
            .expect("tables");
    assert!(
        tables.len() >= 5,
        "expected Clavis's tables, got {tables:?}"
    );
    let mut all = String::new();
    for table in tables {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM \"{table}\" t"))
                .fetch_all(&mut conn)
                .await
                .expect("rows");
        for row in rows {
            all.push_str(&row);
            all.push('\n');
        }
    }
    all
}
