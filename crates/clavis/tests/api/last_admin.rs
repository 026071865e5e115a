//! The last administrator cannot lock everyone out (issue 12, item 10):
//! removing the caller's own last valid secret, and every route that would
//! leave the tenant without a live holder of Application.ReadWrite.All
//! (removing the grant, deleting the application, removing its last secret),
//! is refused with a message that says why and what to do first. A holder
//! whose secrets have all expired does not count. A leaked secret can still
//! be reported (and so removed), whoever holds it.

use clavis::clock::Clock as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::Duration;

use super::helpers::{spawn_app, Registered, TestApp};

const SCOPE: &str = "api://clavis/.default";

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

async fn remove_password(
    app: &TestApp,
    token: &str,
    id: &str,
    key_id: &str,
) -> (StatusCode, Value) {
    app.post(
        &format!("/v1.0/applications/{id}/removePassword"),
        token,
        json!({ "keyId": key_id }),
    )
    .await
}

async fn delete(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    app.graph(Method::DELETE, path, token, None).await
}

/// A 400 whose message contains `needle`.
#[track_caller]
fn refused(status: StatusCode, body: &Value, needle: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "Request_BadRequest", "{body}");
    let message = s(&body["error"]["message"]);
    assert!(message.contains(needle), "{needle:?} in {message}");
}

/// The bootstrap admin's application (object id) and its secret's key id.
async fn bootstrap_admin(app: &TestApp, token: &str) -> (String, String) {
    let (status, list) = app
        .get(
            &format!("/v1.0/applications?$filter=appId%20eq%20'{}'", app.admin_id),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let me = &list["value"][0];
    (s(&me["id"]), s(&me["passwordCredentials"][0]["keyId"]))
}

/// The grant of Application.ReadWrite.All to `principal`, by id.
async fn admin_grant_of(app: &TestApp, token: &str, principal: &str) -> (String, String) {
    let (_, list) = app
        .get(
            "/v1.0/servicePrincipals?$filter=servicePrincipalNames/any(x:x%20eq%20'api://clavis')",
            token,
        )
        .await;
    let management_sp = s(&list["value"][0]["id"]);
    let (status, grants) = app
        .get(
            &format!("/v1.0/servicePrincipals/{management_sp}/appRoleAssignedTo"),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{grants}");
    let grant = grants["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["principalId"] == principal
                && g["appRoleId"] == "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9"
        })
        .unwrap_or_else(|| panic!("no Application.ReadWrite.All grant for {principal}: {grants}"));
    (management_sp, s(&grant["id"]))
}

async fn token_of(app: &TestApp, who: &Registered) -> String {
    app.token(&who.app_id, &who.secret, SCOPE).await
}

#[tokio::test]
async fn the_caller_s_own_last_valid_secret_is_not_removed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (me, in_use) = bootstrap_admin(&app, &admin).await;
    let (status, body) = remove_password(&app, &admin, &me, &in_use).await;
    refused(
        status,
        &body,
        "last valid client secret of the application you are signed in as",
    );
    assert!(
        s(&body["error"]["message"]).contains("addPassword"),
        "{body}"
    );
    app.admin_token().await; // still works

    // A second secret that has expired does not count.
    let end = (app.clock.now() + Duration::days(1))
        .format(&Rfc3339)
        .unwrap();
    let (status, short) = app
        .post(
            &format!("/v1.0/applications/{me}/addPassword"),
            &admin,
            json!({"passwordCredential": {"endDateTime": end}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{short}");
    app.clock.advance(Duration::days(2));
    let admin = app.admin_token().await;
    let (status, body) = remove_password(&app, &admin, &me, &in_use).await;
    refused(status, &body, "last valid client secret");
    // Removing the expired one is fine.
    let (status, body) = remove_password(&app, &admin, &me, &s(&short["keyId"])).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // With a new, valid secret, the old one may go.
    let new = app.add_secret(&admin, &me).await;
    let (status, body) = remove_password(&app, &admin, &me, &in_use).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    app.token(&app.admin_id, &s(&new["secretText"]), SCOPE)
        .await;

    // The same for a caller that only rotates its own secrets.
    let admin = app
        .token(&app.admin_id, &s(&new["secretText"]), SCOPE)
        .await;
    let agent = app.register_client(&admin, "agent").await;
    app.grant_management(&admin, &agent.sp_id, "Application.Credentials.RotateSelf")
        .await;
    let token = token_of(&app, &agent).await;
    let (status, body) = remove_password(&app, &token, &agent.id, &agent.key_id).await;
    refused(status, &body, "last valid client secret");

    // The refusals are in the audit log.
    let (_, audit) = app
        .get(
            "/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'Remove%20password%20credential'",
            &admin,
        )
        .await;
    let failures = audit["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["result"] == "failure" && s(&e["resultReason"]).contains("last valid"))
        .count();
    assert_eq!(failures, 3, "{audit}");
}

#[tokio::test]
async fn no_route_removes_the_tenant_s_last_live_administrator() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (me, _) = bootstrap_admin(&app, &admin).await;
    let me_sp = app.sp_of(&admin, &app.admin_id).await;
    let (management_sp, my_grant) = admin_grant_of(&app, &admin, &me_sp).await;
    let grant_path =
        format!("/v1.0/servicePrincipals/{management_sp}/appRoleAssignedTo/{my_grant}");

    // Alone: neither the grant nor the application can go.
    let (status, body) = delete(&app, &admin, &grant_path).await;
    refused(status, &body, "last Application.ReadWrite.All");
    assert!(
        s(&body["error"]["message"]).contains("clavis role grant"),
        "{body}"
    );
    assert!(
        s(&body["error"]["message"]).contains("clavis admin recover"),
        "{body}"
    );
    let (status, body) = delete(&app, &admin, &format!("/v1.0/applications/{me}")).await;
    refused(status, &body, "last holder of Application.ReadWrite.All");

    // A second administrator whose only secret has expired does not count.
    let end = (app.clock.now() + Duration::days(1))
        .format(&Rfc3339)
        .unwrap();
    let stale = app
        .create_app(&admin, json!({"displayName": "stale admin"}))
        .await;
    let (status, _) = app
        .post(
            &format!("/v1.0/applications/{}/addPassword", s(&stale["id"])),
            &admin,
            json!({"passwordCredential": {"endDateTime": end}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let stale_sp = app.sp_of(&admin, &s(&stale["appId"])).await;
    app.grant_management(&admin, &stale_sp, "Application.ReadWrite.All")
        .await;
    app.clock.advance(Duration::days(2));
    let admin = app.admin_token().await;
    let (status, body) = delete(&app, &admin, &grant_path).await;
    refused(status, &body, "last Application.ReadWrite.All");

    // A live one: an application owned by an OwnedBy caller.
    let owner = app.register_client(&admin, "owner").await;
    app.grant_management(&admin, &owner.sp_id, "Application.ReadWrite.OwnedBy")
        .await;
    let owner_token = token_of(&app, &owner).await;
    let successor = app
        .create_app(&owner_token, json!({"displayName": "successor"}))
        .await;
    let successor_id = s(&successor["id"]);
    let successor_secret = app.add_secret(&owner_token, &successor_id).await;
    let successor_sp = app.sp_of(&admin, &s(&successor["appId"])).await;
    app.grant_management(&admin, &successor_sp, "Application.ReadWrite.All")
        .await;
    // Now the bootstrap admin may step down.
    let (status, body) = delete(&app, &admin, &grant_path).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // The successor is the last live one: its owner can neither remove its
    // secret nor delete it; the successor cannot drop its own grant.
    let (status, body) = remove_password(
        &app,
        &owner_token,
        &successor_id,
        &s(&successor_secret["keyId"]),
    )
    .await;
    refused(status, &body, "last holder of Application.ReadWrite.All");
    let (status, body) = delete(
        &app,
        &owner_token,
        &format!("/v1.0/applications/{successor_id}"),
    )
    .await;
    refused(status, &body, "last holder of Application.ReadWrite.All");
    let successor_token = app
        .token(
            &s(&successor["appId"]),
            &s(&successor_secret["secretText"]),
            SCOPE,
        )
        .await;
    let (_, successor_grant) = admin_grant_of(&app, &successor_token, &successor_sp).await;
    let (status, body) = delete(
        &app,
        &successor_token,
        &format!("/v1.0/servicePrincipals/{management_sp}/appRoleAssignedTo/{successor_grant}"),
    )
    .await;
    refused(status, &body, "last Application.ReadWrite.All");
    // Other changes go through: the stale admin's grant, other applications.
    let (_, stale_grant) = admin_grant_of(&app, &successor_token, &stale_sp).await;
    let (status, body) = delete(
        &app,
        &successor_token,
        &format!("/v1.0/servicePrincipals/{management_sp}/appRoleAssignedTo/{stale_grant}"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = delete(
        &app,
        &successor_token,
        &format!("/v1.0/applications/{}", s(&stale["id"])),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = delete(&app, &successor_token, &format!("/v1.0/applications/{me}")).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "the old admin no longer holds the role: {body}"
    );

    // A leaked secret is always removable, even the last administrator's:
    // the way back is `clavis admin recover` (recovery.rs).
    let (status, body) = app
        .post(
            &format!("/v1.0/applications/{successor_id}/reportCompromisedPassword"),
            &owner_token,
            json!({"keyId": successor_secret["keyId"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Not a bug, a property to know (docs/security.md): ownership of an
/// application that holds management roles is privileged, as in Entra. An
/// `OwnedBy` caller adds a secret to an application it owns that holds
/// Application.ReadWrite.All, and acts with that role through it.
#[tokio::test]
async fn an_owner_of_a_privileged_application_acts_with_its_roles() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let owner = app.register_client(&admin, "owner").await;
    app.grant_management(&admin, &owner.sp_id, "Application.ReadWrite.OwnedBy")
        .await;
    let owner_token = token_of(&app, &owner).await;
    let privileged = app
        .create_app(&owner_token, json!({"displayName": "privileged"}))
        .await;
    let privileged_sp = app.sp_of(&admin, &s(&privileged["appId"])).await;
    app.grant_management(&admin, &privileged_sp, "Application.ReadWrite.All")
        .await;
    // The owner sees only what it owns...
    let (_, own_view) = app.get("/v1.0/applications", &owner_token).await;
    assert_eq!(own_view["value"].as_array().unwrap().len(), 1, "{own_view}");
    // ...until it acts through the privileged application.
    let secret = app.add_secret(&owner_token, &s(&privileged["id"])).await;
    let token = app
        .token(&s(&privileged["appId"]), &s(&secret["secretText"]), SCOPE)
        .await;
    let (status, all) = app.get("/v1.0/applications", &token).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert!(all["value"].as_array().unwrap().len() >= 4, "{all}");
    // The new secret is in the audit log, with the owner as its author.
    let (_, audit) = app
        .get(
            "/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'Add%20password%20credential'",
            &admin,
        )
        .await;
    assert!(
        audit["value"].as_array().unwrap().iter().any(|e| {
            e["initiatedBy"]["app"]["appId"] == owner.app_id.as_str()
                && e["targetResources"][0]["id"] == privileged["id"]
        }),
        "{audit}"
    );
}
