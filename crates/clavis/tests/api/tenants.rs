//! Tenant isolation: a second tenant's clients, resources and objects are
//! invisible from the first, on the token endpoint and the management API.

use clavis::bootstrap::TenantPlan;
use reqwest::StatusCode;
use serde_json::json;

use super::helpers::{claims, spawn_app};

#[tokio::test]
async fn tenants_see_nothing_of_each_other() {
    let app = spawn_app().await;
    let plan = TenantPlan::new("second", &app.state.hasher, app.state.clock.now());
    app.state
        .directory
        .commit(&plan.mutations, &plan.audit)
        .await
        .expect("second tenant");
    let (other_id, other_secret) = (
        plan.admin_app_id.to_string(),
        plan.admin_secret.expose().to_owned(),
    );

    let admin = app.admin_token().await;
    let (api, _) = app
        .register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "first-tenant-client").await;

    // The second tenant's admin, by name and by GUID.
    for tenant in ["second", "SECOND", &plan.tenant.id.to_string()] {
        let r = app
            .http
            .post(app.token_url(tenant))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", other_id.as_str()),
                ("client_secret", other_secret.as_str()),
                ("scope", "api://clavis/.default"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{tenant}");
    }
    // The second tenant's admin is unknown in the default tenant.
    let r = app
        .token_post(&other_id, &other_secret, "api://clavis/.default")
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error_codes"][0],
        700016
    );

    let other_token: String = app
        .http
        .post(app.token_url("second"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", other_id.as_str()),
            ("client_secret", other_secret.as_str()),
            ("scope", "api://clavis/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(claims(&other_token)["tid"], plan.tenant.id.to_string());
    assert!(claims(&other_token)["iss"]
        .as_str()
        .unwrap()
        .contains(&plan.tenant.id.to_string()));

    // A first-tenant client cannot get tokens from the second tenant, nor for its resources.
    let r = app
        .http
        .post(app.token_url("second"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.app_id.as_str()),
            ("client_secret", client.secret.as_str()),
            ("scope", "api://clavis/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error_codes"][0],
        700016
    );

    // The second tenant's admin sees none of the first tenant's objects: 404, empty lists.
    let api_id = api["id"].as_str().unwrap();
    for path in [
        format!("/v1.0/applications/{api_id}"),
        format!("/v1.0/servicePrincipals/{}", client.sp_id),
    ] {
        let (status, body) = app.get(&path, &other_token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    }
    let (status, _) = app
        .post(
            &format!("/v1.0/applications/{api_id}/addPassword"),
            &other_token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/v1.0/applications", &other_token).await;
    let names: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["displayName"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"first-tenant-client") && !names.contains(&"api api://orders"),
        "{names:?}"
    );
    let (_, audit) = app
        .get("/v1.0/auditLogs/directoryAudits", &other_token)
        .await;
    assert!(!audit.to_string().contains("first-tenant-client"));

    // Its own registrations are separate: the same identifier URI is free there.
    let (status, _) = app
        .post(
            "/v1.0/applications",
            &other_token,
            json!({"displayName": "orders two", "identifierUris": ["api://orders"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // And a first-tenant management token is no good in the second tenant's objects.
    let (_, theirs) = app
        .get(
            "/v1.0/applications?$filter=displayName%20eq%20'orders%20two'",
            &other_token,
        )
        .await;
    let theirs = theirs["value"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .get(&format!("/v1.0/applications/{theirs}"), &admin)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
