//! The Azure Resource Manager routes the Azure CLI signs in with (cloud
//! metadata, subscriptions, tenants), in ARM's shapes and errors, and
//! Graph's names for the management API at the token endpoint: the same
//! token as for `api://clavis`, taken by `/v1.0` and nowhere else.

use clavis::bootstrap::TenantPlan;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::helpers::{claims, spawn_app, TestApp};

/// GET `path` with an optional bearer token: status, `WWW-Authenticate`, body.
async fn arm_get(app: &TestApp, path: &str, token: Option<&str>) -> (StatusCode, String, Value) {
    let mut request = app.http.get(format!("{}{path}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.expect("request");
    let status = r.status();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, r.json().await.expect("json body"))
}

#[tokio::test]
async fn cloud_metadata_points_the_azure_cli_here() {
    let app = spawn_app().await;
    for path in [
        "/metadata/endpoints?api-version=2022-09-01",
        // `az cloud register --endpoint-resource-manager https://host/` asks this.
        "//metadata/endpoints?api-version=2022-09-01",
    ] {
        let (status, _, doc) = arm_get(&app, path, None).await;
        assert_eq!(status, 200, "{path}: {doc}");
        assert_eq!(doc["authentication"]["loginEndpoint"], app.base);
        assert_eq!(doc["authentication"]["audiences"], json!(["api://clavis"]));
        assert_eq!(doc["resourceManager"], format!("{}/", app.base));
        assert_eq!(
            doc["microsoftGraphResourceId"],
            "https://graph.microsoft.com/"
        );
        assert_eq!(doc["name"], "Clavis");
        assert!(doc["suffixes"].is_object(), "{doc}");
    }
    for (path, code) in [
        ("/metadata/endpoints", "MissingApiVersionParameter"),
        ("//metadata/endpoints?x=1", "MissingApiVersionParameter"),
        (
            "/metadata/endpoints?api-version=latest",
            "InvalidApiVersionParameter",
        ),
        (
            "/metadata/endpoints?api-version=2022-09-01&api-version=2022-09-01",
            "InvalidApiVersionParameter",
        ),
        ("/metadata/endpoints?api-version=%zz", "InvalidRequestUri"),
    ] {
        let (status, _, body) = arm_get(&app, path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 20);
    }
    // Another method: 405 in ARM's shape, on every spelling of every route.
    for path in [
        "/metadata/endpoints",
        "//metadata/endpoints",
        "/subscriptions",
        "/tenants",
    ] {
        let r = app
            .http
            .post(format!("{}{path}?api-version=2022-12-01", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "MethodNotAllowed", "{path}: {body}");
    }
}

#[tokio::test]
async fn subscriptions_and_tenants_answer_management_tokens_only() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    // Any application of the tenant may sign in with az: no role needed.
    let client = app.register_client(&admin, "az-caller").await;
    let token = app
        .token(&client.app_id, &client.secret, "api://clavis/.default")
        .await;

    let (status, _, subscriptions) =
        arm_get(&app, "/subscriptions?api-version=2022-12-01", Some(&token)).await;
    assert_eq!(status, 200, "{subscriptions}");
    assert_eq!(subscriptions, json!({"value": []}));
    let (status, _, tenants) = arm_get(&app, "/tenants?api-version=2022-12-01", Some(&token)).await;
    assert_eq!(status, 200, "{tenants}");
    let tenants = tenants["value"].as_array().unwrap();
    assert_eq!(tenants.len(), 1, "{tenants:?}");
    assert_eq!(tenants[0]["id"], format!("/tenants/{}", app.tenant_id));
    assert_eq!(tenants[0]["tenantId"], app.tenant_id);
    assert_eq!(tenants[0]["displayName"], "default");
    assert_eq!(tenants[0]["tenantCategory"], "Home");

    // Another tenant's admin sees its own tenant, never this one.
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
            ("client_id", &plan.admin_app_id.to_string()),
            ("client_secret", plan.admin_secret.expose()),
            ("scope", "api://clavis/.default"),
        ])
        .send()
        .await
        .unwrap();
    let theirs: Value = r.json().await.unwrap();
    let theirs = theirs["access_token"].as_str().unwrap();
    let (status, _, tenants) = arm_get(&app, "/tenants?api-version=2022-12-01", Some(theirs)).await;
    assert_eq!(status, 200);
    assert_eq!(tenants["value"][0]["tenantId"], plan.tenant.id.to_string());
    assert_eq!(tenants["value"].as_array().unwrap().len(), 1);

    // A token for another API of the tenant.
    let (api, role) = app
        .register_api(&admin, "api://orders", "Orders.Read")
        .await;
    app.grant(&admin, api["appId"].as_str().unwrap(), &client.sp_id, &role)
        .await;
    let orders = app
        .token(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    let wrong_audience = "InvalidAuthenticationTokenAudience";
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for path in [
        "/subscriptions?api-version=2022-12-01",
        "/tenants?api-version=2022-12-01",
    ] {
        for (token, code) in [
            (None, "AuthenticationFailed"),
            (Some("not-a-jwt"), "InvalidAuthenticationToken"),
            (Some(tampered.as_str()), "InvalidAuthenticationToken"),
            (Some(orders.as_str()), wrong_audience),
        ] {
            let (status, challenge, body) = arm_get(&app, path, token).await;
            assert_eq!(status, 401, "{path} {code}: {body}");
            assert_eq!(body["error"]["code"], code, "{path}: {body}");
            assert!(
                challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
                "{challenge}"
            );
            // Never the token back.
            if let Some(token) = token {
                assert!(!body.to_string().contains(token) && !challenge.contains(token));
            }
        }
        // A valid token without an api-version: ARM's 400.
        let bare = path.split('?').next().unwrap();
        let (status, _, body) = arm_get(&app, bare, Some(&token)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "MissingApiVersionParameter");
    }

    // Removing the credential the token came from cuts it off at once.
    let (status, _) = app
        .post(
            &format!("/v1.0/applications/{}/removePassword", client.id),
            &admin,
            json!({"keyId": client.key_id}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, body) = arm_get(&app, "/tenants?api-version=2022-12-01", Some(&token)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn graph_names_get_management_api_tokens() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let management = claims(&admin);
    for scope in [
        "https://graph.microsoft.com/.default",
        // `az account get-access-token --resource-type ms-graph` writes this.
        "https://graph.microsoft.com//.default",
        "HTTPS://GRAPH.MICROSOFT.COM/.default",
        "00000003-0000-0000-c000-000000000000/.default",
    ] {
        let token = app.token(&app.admin_id, &app.admin_secret, scope).await;
        let c = claims(&token);
        assert_eq!(c["aud"], management["aud"], "{scope}");
        assert_eq!(c["roles"], management["roles"], "{scope}");
        let (status, list) = app.get("/v1.0/applications", &token).await;
        assert_eq!(status, 200, "{scope}: {list}");
    }
    // Near misses are other resources, unknown here.
    for scope in [
        "https://graph.microsoft.com///.default",
        "https://graph.microsoft.us/.default",
        "https://graph.microsoft.com.example/.default",
    ] {
        let r = app
            .token_post(&app.admin_id, &app.admin_secret, scope)
            .await;
        assert_eq!(r.status(), 400, "{scope}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error_codes"][0], 500011, "{scope}: {body}");
    }
    // No application can take Graph's name for itself.
    let (status, body) = app
        .post(
            "/v1.0/applications",
            &admin,
            json!({"displayName": "fake graph", "identifierUris": ["https://graph.microsoft.com"]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reserved"),
        "{body}"
    );
    // And /v1.0 still refuses a token for any other API.
    let client = app.register_client(&admin, "orders-client").await;
    let (api, role) = app
        .register_api(&admin, "api://orders", "Orders.Read")
        .await;
    app.grant(&admin, api["appId"].as_str().unwrap(), &client.sp_id, &role)
        .await;
    let orders = app
        .token(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    let (status, body) = app.get("/v1.0/applications", &orders).await;
    assert_eq!(status, 401, "{body}");
}
