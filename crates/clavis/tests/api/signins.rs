//! The sign-in log: every token issued and every refused request, with the
//! credential used, the source address and user agent; readable with
//! AuditLog.Read.All, filtered by application, credential and outcome.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::helpers::spawn_app;

#[tokio::test]
async fn tokens_and_refusals_are_logged_and_filterable() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "worker").await;
    let r = app
        .http
        .post(app.token_url("default"))
        .header("user-agent", "bench-agent/1.0")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.app_id.as_str()),
            ("client_secret", client.secret.as_str()),
            ("scope", "api://orders/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let wrong = format!("{}x", client.secret);
    let r = app
        .token_post(&client.app_id, &wrong, "api://orders/.default")
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.state.sign_ins.flush().await;

    let (status, all) = app.get("/v1.0/auditLogs/signIns", &admin).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert!(
        !all.to_string().contains(&client.secret),
        "no secret in the sign-in log"
    );
    let of_client = |v: &Value| -> Vec<Value> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["appId"] == client.app_id)
            .cloned()
            .collect()
    };
    let rows = of_client(&all);
    assert_eq!(rows.len(), 2, "{all}");
    // (The test clock stands still: both have the same time, so find them by outcome.)
    let failed = rows.iter().find(|r| r["status"]["errorCode"] != 0).unwrap();
    let ok = rows.iter().find(|r| r["status"]["errorCode"] == 0).unwrap();
    assert_eq!(failed["status"]["errorCode"], 7000215);
    assert!(failed["servicePrincipalCredentialKeyId"].is_null());
    assert_eq!(ok["status"]["errorCode"], 0);
    assert_eq!(ok["servicePrincipalCredentialKeyId"], client.key_id);
    assert_eq!(ok["ipAddress"], "127.0.0.1");
    assert_eq!(ok["userAgent"], "bench-agent/1.0");
    assert_eq!(ok["clientCredentialType"], "clientSecret");

    let filtered = |filter: String| {
        let (app, admin) = (&app, admin.clone());
        async move {
            let (status, body) = app
                .get(
                    &format!(
                        "/v1.0/auditLogs/signIns?$filter={}",
                        filter.replace(' ', "%20")
                    ),
                    &admin,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["value"].as_array().unwrap().len()
        }
    };
    assert_eq!(filtered(format!("appId eq '{}'", client.app_id)).await, 2);
    assert_eq!(
        filtered(format!(
            "appId eq '{}' and status/errorCode ne 0",
            client.app_id
        ))
        .await,
        1
    );
    assert_eq!(
        filtered(format!(
            "servicePrincipalCredentialKeyId eq '{}'",
            client.key_id
        ))
        .await,
        1
    );
    let (status, _) = app
        .get("/v1.0/auditLogs/signIns?$filter=bogus", &admin)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Reading it needs AuditLog.Read.All.
    let reader = app.register_client(&admin, "reader").await;
    app.grant_management(&admin, &reader.sp_id, "Application.Read.All")
        .await;
    let token = app
        .token(&reader.app_id, &reader.secret, "api://clavis/.default")
        .await;
    assert_eq!(
        app.get("/v1.0/auditLogs/signIns", &token).await.0,
        StatusCode::FORBIDDEN
    );
}

/// Authenticating at `/introspect` or `/revoke` is a sign-in like one at the
/// token endpoint: a success names the credential (and moves its
/// `lastUsedDateTime`, and the compromise report sees it), a failure is
/// logged with its code. A stolen secret cannot be tried there unseen.
#[tokio::test]
async fn introspection_and_revocation_are_sign_ins() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "prober").await;
    let last_used = |admin: String| {
        let (app, id) = (&app, client.id.clone());
        async move {
            let (status, body) = app.get(&format!("/v1.0/applications/{id}"), &admin).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["passwordCredentials"][0]["lastUsedDateTime"].clone()
        }
    };
    assert!(last_used(admin.clone()).await.is_null(), "never used yet");

    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 5]))
        .user_agent("probe/1.0")
        .build()
        .unwrap();
    let call = |endpoint: &str, secret: &str| {
        http.post(format!("{}/default/oauth2/v2.0/{endpoint}", app.base))
            .form(&[
                ("client_id", client.app_id.as_str()),
                ("client_secret", secret),
                ("token", "not-a-token"),
            ])
            .send()
    };
    let wrong = format!("{}x", client.secret);
    assert_eq!(
        call("introspect", &client.secret).await.unwrap().status(),
        200
    );
    assert_eq!(call("revoke", &client.secret).await.unwrap().status(), 200);
    assert_eq!(call("introspect", &wrong).await.unwrap().status(), 401);
    assert_eq!(call("revoke", &wrong).await.unwrap().status(), 401);
    app.state.sign_ins.flush().await;

    let (status, all) = app
        .get(
            &format!(
                "/v1.0/auditLogs/signIns?$filter=appId%20eq%20'{}'",
                client.app_id
            ),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let rows = all["value"].as_array().unwrap();
    let total = |ok: bool| -> u64 {
        rows.iter()
            .filter(|r| (r["status"]["errorCode"] == 0) == ok)
            .map(|r| r["requestCount"].as_u64().unwrap())
            .sum()
    };
    assert_eq!((total(true), total(false)), (2, 2), "{all}");
    for row in rows {
        assert_eq!(row["ipAddress"], "127.0.0.5", "{row}");
        assert_eq!(row["userAgent"], "probe/1.0", "{row}");
        // No token was minted: no resource.
        assert!(row["resourceId"].is_null(), "{row}");
        if row["status"]["errorCode"] == 0 {
            assert_eq!(row["servicePrincipalCredentialKeyId"], client.key_id);
        } else {
            assert_eq!(row["status"]["errorCode"], 7000215);
        }
    }
    // The credential was used.
    let used = last_used(admin.clone()).await;
    assert_eq!(
        used,
        json!(clavis::graph::shapes::rfc3339(clavis::clock::Clock::now(
            &app.clock
        ))),
        "lastUsedDateTime"
    );
    // The compromise report sees the uses and where they came from.
    let (status, body) = app
        .post(
            &format!("/v1.0/applications/{}/reportCompromisedPassword", client.id),
            &admin,
            json!({"keyId": client.key_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = &body["report"];
    assert_eq!(report["lastUsedDateTime"], used, "{report}");
    assert_eq!(
        report["distinctClientIps"],
        json!(["127.0.0.5"]),
        "{report}"
    );
    assert_eq!(report["failedAttempts"]["count"], 2, "{report}");
    assert!(!body.to_string().contains(&client.secret));
}
