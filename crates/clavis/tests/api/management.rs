//! The management API through its Microsoft Graph shapes: applications and
//! their secrets, service principals and app role grants, the four
//! management roles, token validation, the audit log and `/openapi.json`.

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use clavis::clock::Clock;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::helpers::{claims, spawn_app, Registered, TestApp};

const MGMT_SCOPE: &str = "api://clavis/.default";
const READ_ALL: &str = "Application.Read.All";
const READ_WRITE_ALL: &str = "Application.ReadWrite.All";
const OWNED_BY: &str = "Application.ReadWrite.OwnedBy";
const AUDIT_READ: &str = "AuditLog.Read.All";

// ---------------------------------------------------------------- helpers

fn is_guid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| Uuid::try_parse(s).is_ok())
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
        .to_owned()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn parse_time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("a date-time string"), &Rfc3339)
        .unwrap_or_else(|_| panic!("not RFC 3339: {v}"))
}

fn close(a: OffsetDateTime, b: OffsetDateTime) -> bool {
    (a - b).abs() < Duration::seconds(2)
}

/// A Graph error: `{"error":{"code":..,"message":..}}` with this status and code.
#[track_caller]
fn assert_graph_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// `v` without its `createdDateTime` fields (see
/// `create_responses_match_later_reads`).
fn without_created(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "createdDateTime")
                .map(|(k, v)| (k.clone(), without_created(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_created).collect()),
        other => other.clone(),
    }
}

fn app_path(id: &str) -> String {
    format!("/v1.0/applications/{id}")
}

async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    app.graph(Method::PATCH, path, token, Some(body)).await
}

async fn delete(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    app.graph(Method::DELETE, path, token, None).await
}

async fn add_password(app: &TestApp, token: &str, id: &str, cred: Value) -> (StatusCode, Value) {
    app.post(
        &format!("{}/addPassword", app_path(id)),
        token,
        json!({ "passwordCredential": cred }),
    )
    .await
}

/// Every item of a collection, following `@odata.nextLink`; also the number
/// of pages read.
async fn list_all(app: &TestApp, first: &str, token: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut path = first.to_owned();
    for page in 1..=200 {
        let (status, body) = app.get(&path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(body["@odata.context"].is_string(), "{body}");
        items.extend(
            body["value"]
                .as_array()
                .expect("value array")
                .iter()
                .cloned(),
        );
        match body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&app.base), "{next}");
                path = next[app.base.len()..].to_owned();
            }
            None => return (items, page),
        }
    }
    panic!("@odata.nextLink never ends, starting from {first}");
}

/// What callers wrote: the items without `lastUsedDateTime`, which the
/// sign-in log fills in on its own a moment after a token is issued.
fn written<T: serde::Serialize + ?Sized>(items: &T) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("lastUsedDateTime");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(items).expect("JSON");
    strip(&mut value);
    value
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| s(&i["id"])).collect()
}

/// A client granted exactly `roles` on `api://clavis`, and its management token.
async fn caller_with(
    app: &TestApp,
    admin: &str,
    name: &str,
    roles: &[&str],
) -> (Registered, String) {
    let client = app.register_client(admin, name).await;
    for role in roles {
        app.grant_management(admin, &client.sp_id, role).await;
    }
    let token = app.token(&client.app_id, &client.secret, MGMT_SCOPE).await;
    let mut got: Vec<String> = claims(&token)["roles"]
        .as_array()
        .map(|r| r.iter().map(s).collect())
        .unwrap_or_default();
    got.sort();
    let mut want: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    (client, token)
}

/// The built-in `api://clavis` application.
async fn management_app(app: &TestApp, admin: &str) -> Value {
    let (status, list) = app
        .get(
            "/v1.0/applications?$filter=identifierUris/any(x:x%20eq%20'api://clavis')",
            admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["value"].as_array().unwrap().len(), 1, "{list}");
    list["value"][0].clone()
}

fn role_json(id: &str, value: &str, enabled: bool) -> Value {
    json!({"id": id, "value": value, "displayName": value, "description": format!("{value} role"),
           "allowedMemberTypes": ["Application"], "isEnabled": enabled})
}

/// Objects every role check runs against, all created by the admin.
struct Fixture {
    /// A client application with one secret.
    target: Registered,
    /// Service principal of an API with two roles.
    resource_sp: String,
    /// An existing grant of the API's first role to `target`.
    assignment: String,
    /// The API's second role, not granted yet.
    free_role: String,
}

async fn fixture(app: &TestApp, admin: &str) -> Fixture {
    let target = app.register_client(admin, "fixture target").await;
    let (granted, free) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let api = app
        .create_app(
            admin,
            json!({"displayName": "fixture api",
                   "identifierUris": [format!("api://fixture-{}", Uuid::new_v4())],
                   "appRoles": [role_json(&granted, "Fixture.A", true), role_json(&free, "Fixture.B", true)]}),
        )
        .await;
    let (status, assignment) = app
        .grant(admin, &s(&api["appId"]), &target.sp_id, &granted)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{assignment}");
    Fixture {
        resource_sp: s(&assignment["resourceId"]),
        assignment: s(&assignment["id"]),
        target,
        free_role: free,
    }
}

/// Call every management route with `token`, reads first and the delete
/// last; returns (route name, status, body).
async fn probe(app: &TestApp, token: &str, fx: &Fixture) -> Vec<(&'static str, StatusCode, Value)> {
    let target = app_path(&fx.target.id);
    let res = format!("/v1.0/servicePrincipals/{}", fx.resource_sp);
    let mut out = Vec::new();
    let reads: [(&str, String); 8] = [
        ("list applications", "/v1.0/applications".into()),
        ("get application", target.clone()),
        ("list servicePrincipals", "/v1.0/servicePrincipals".into()),
        (
            "get servicePrincipal",
            format!("/v1.0/servicePrincipals/{}", fx.target.sp_id),
        ),
        ("list appRoleAssignedTo", format!("{res}/appRoleAssignedTo")),
        (
            "list appRoleAssignments",
            format!(
                "/v1.0/servicePrincipals/{}/appRoleAssignments",
                fx.target.sp_id
            ),
        ),
        ("get tenantPolicy", "/v1.0/policies/tenantPolicy".into()),
        ("read audit log", "/v1.0/auditLogs/directoryAudits".into()),
    ];
    for (name, path) in reads {
        let (status, body) = app.get(&path, token).await;
        out.push((name, status, body));
    }
    let writes: [(&str, Method, String, Option<Value>); 9] = [
        (
            "create application",
            Method::POST,
            "/v1.0/applications".into(),
            Some(json!({"displayName": "probe"})),
        ),
        (
            "patch application",
            Method::PATCH,
            target.clone(),
            Some(json!({"displayName": "probed"})),
        ),
        (
            "addPassword",
            Method::POST,
            format!("{target}/addPassword"),
            Some(json!({"passwordCredential": {}})),
        ),
        (
            "removePassword",
            Method::POST,
            format!("{target}/removePassword"),
            Some(json!({"keyId": fx.target.key_id})),
        ),
        (
            "assign role",
            Method::POST,
            format!("{res}/appRoleAssignedTo"),
            Some(
                json!({"principalId": fx.target.sp_id, "resourceId": fx.resource_sp, "appRoleId": fx.free_role}),
            ),
        ),
        (
            "unassign role",
            Method::DELETE,
            format!("{res}/appRoleAssignedTo/{}", fx.assignment),
            None,
        ),
        (
            "patch tenantPolicy",
            Method::PATCH,
            "/v1.0/policies/tenantPolicy".into(),
            Some(json!({"defaultSecretLifetimeDays": 180})),
        ),
        ("delete application", Method::DELETE, target.clone(), None),
        // After a successful delete this is a 404; with no right, still a 403.
        ("get deleted application", Method::GET, target, None),
    ];
    for (name, method, path, body) in writes {
        let (status, body) = app.graph(method, &path, token, body).await;
        out.push((name, status, body));
    }
    out
}

/// Check `probe` results against expected statuses; every 403 must be
/// Graph's `Authorization_RequestDenied`.
#[track_caller]
fn expect(who: &str, results: &[(&'static str, StatusCode, Value)], want: &[(&str, u16)]) {
    assert_eq!(results.len(), want.len());
    for ((name, status, body), (want_name, want_status)) in results.iter().zip(want) {
        assert_eq!(name, want_name);
        assert_eq!(status.as_u16(), *want_status, "{who}: {name} → {body}");
        if *want_status == 403 {
            assert_graph_error(
                *status,
                body,
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
            );
        }
    }
}

const ALL_DENIED: [(&str, u16); 17] = [
    ("list applications", 403),
    ("get application", 403),
    ("list servicePrincipals", 403),
    ("get servicePrincipal", 403),
    ("list appRoleAssignedTo", 403),
    ("list appRoleAssignments", 403),
    ("get tenantPolicy", 403),
    ("read audit log", 403),
    ("create application", 403),
    ("patch application", 403),
    ("addPassword", 403),
    ("removePassword", 403),
    ("assign role", 403),
    ("unassign role", 403),
    ("patch tenantPolicy", 403),
    ("delete application", 403),
    ("get deleted application", 403),
];

/// `ALL_DENIED` with some routes allowed.
fn denied_except(allowed: &[(&str, u16)]) -> Vec<(&'static str, u16)> {
    ALL_DENIED
        .iter()
        .map(|&(name, status)| {
            allowed
                .iter()
                .find(|(n, _)| *n == name)
                .map_or((name, status), |&(_, s)| (name, s))
        })
        .collect()
}

async fn raw_get(
    app: &TestApp,
    path: &str,
    authorization: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = app.http.get(format!("{}{path}", app.base));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).expect("json body");
    (status, www, body)
}

// ------------------------------------------------------------ applications

#[tokio::test]
async fn applications_are_created_read_and_listed_in_graph_shapes() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role_id = Uuid::new_v4().to_string();
    let created = app
        .create_app(
            &admin,
            json!({"displayName": "Orders API", "identifierUris": ["api://orders"],
                   "appRoles": [role_json(&role_id, "Orders.Read", true)]}),
        )
        .await;
    assert!(is_guid(&created["id"]), "{created}");
    assert!(is_guid(&created["appId"]), "{created}");
    assert_ne!(created["id"], created["appId"]);
    assert_eq!(created["displayName"], "Orders API");
    assert_eq!(created["identifierUris"], json!(["api://orders"]));
    assert_eq!(created["passwordCredentials"], json!([]));
    let role = &created["appRoles"][0];
    assert_eq!(created["appRoles"].as_array().unwrap().len(), 1);
    assert_eq!(role["id"], role_id);
    assert_eq!(role["value"], "Orders.Read");
    assert_eq!(role["displayName"], "Orders.Read");
    assert_eq!(role["description"], "Orders.Read role");
    assert_eq!(role["allowedMemberTypes"], json!(["Application"]));
    assert_eq!(role["isEnabled"], true);
    let orders_id = s(&created["id"]);

    let (status, got) = app.get(&app_path(&orders_id), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(without_created(&got), without_created(&created));

    // A display name is trimmed, appRoles and identifierUris default to empty.
    let bare = app
        .create_app(&admin, json!({"displayName": "  bare  "}))
        .await;
    assert_eq!(bare["displayName"], "bare");
    assert_eq!(bare["identifierUris"], json!([]));
    assert_eq!(bare["appRoles"], json!([]));

    let mut mine: HashSet<String> = HashSet::from([orders_id.clone(), s(&bare["id"])]);
    for i in 0..4 {
        mine.insert(s(&app
            .create_app(&admin, json!({"displayName": format!("page app {i}")}))
            .await["id"]));
    }
    for _ in 0..2 {
        mine.insert(s(&app
            .create_app(&admin, json!({"displayName": "twin"}))
            .await["id"]));
    }

    // One page by default: the 8 apps above, the built-in API and the bootstrap admin.
    let (everything, pages) = list_all(&app, "/v1.0/applications", &admin).await;
    assert_eq!(pages, 1);
    let all: HashSet<String> = ids(&everything).into_iter().collect();
    assert_eq!(all.len(), everything.len(), "no duplicates");
    assert_eq!(everything.len(), 10);
    assert!(mine.is_subset(&all));
    assert!(everything
        .iter()
        .any(|a| a["appId"] == app.admin_id.as_str()));

    // $top pages through everything exactly once.
    let (first_status, first) = app.get("/v1.0/applications?$top=3", &admin).await;
    assert_eq!(first_status, StatusCode::OK);
    assert_eq!(first["value"].as_array().unwrap().len(), 3);
    assert!(s(&first["@odata.nextLink"]).starts_with(&format!("{}/v1.0/applications?", app.base)));
    let (paged, pages) = list_all(&app, "/v1.0/applications?$top=3", &admin).await;
    assert_eq!(pages, 4);
    assert_eq!(ids(&paged), ids(&everything), "same apps in the same order");
    let (paged, _) = list_all(&app, "/v1.0/applications?$top=1", &admin).await;
    assert_eq!(ids(&paged), ids(&everything));

    // $filter on appId, displayName, identifierUris.
    let (status, by_app_id) = app
        .get(
            &format!(
                "/v1.0/applications?$filter=appId%20eq%20'{}'",
                s(&created["appId"])
            ),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        without_created(&by_app_id["value"]),
        without_created(&json!([created]))
    );
    let (_, by_name) = app
        .get(
            "/v1.0/applications?$filter=displayName%20eq%20'page%20app%202'",
            &admin,
        )
        .await;
    assert_eq!(by_name["value"].as_array().unwrap().len(), 1, "{by_name}");
    assert_eq!(by_name["value"][0]["displayName"], "page app 2");
    let (_, by_uri) = app
        .get(
            "/v1.0/applications?$filter=identifierUris/any(x:x%20eq%20'api://orders')",
            &admin,
        )
        .await;
    assert_eq!(ids(by_uri["value"].as_array().unwrap()), vec![orders_id]);
    for nothing in [
        format!("appId%20eq%20'{}'", Uuid::new_v4()),
        "displayName%20eq%20'nobody'".into(),
        "identifierUris/any(x:x%20eq%20'api://nowhere')".into(),
    ] {
        let (status, body) = app
            .get(&format!("/v1.0/applications?$filter={nothing}"), &admin)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["value"], json!([]), "{nothing}");
        assert!(body.get("@odata.nextLink").is_none());
    }
    // A filter survives pagination.
    let (twins, pages) = list_all(
        &app,
        "/v1.0/applications?$top=1&$filter=displayName%20eq%20'twin'",
        &admin,
    )
    .await;
    assert_eq!(twins.len(), 2);
    assert!(pages >= 2);
    assert!(twins.iter().all(|t| t["displayName"] == "twin"));
    assert_ne!(twins[0]["id"], twins[1]["id"]);
    // OData's doubled quote.
    let quoted = app
        .create_app(&admin, json!({"displayName": "O'Brien"}))
        .await;
    let (status, body) = app
        .get(
            "/v1.0/applications?$filter=displayName%20eq%20'O''Brien'",
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        ids(body["value"].as_array().unwrap()),
        vec![s(&quoted["id"])]
    );
}

#[tokio::test]
async fn identifier_uri_filter_pagination_terminates() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let orders = app
        .create_app(
            &admin,
            json!({"displayName": "orders", "identifierUris": ["api://orders"]}),
        )
        .await;
    let (items, _) = list_all(
        &app,
        "/v1.0/applications?$top=1&$filter=identifierUris/any(x:x%20eq%20'api://orders')",
        &admin,
    )
    .await;
    assert_eq!(ids(&items), vec![s(&orders["id"])]);
}

#[tokio::test]
async fn patch_changes_fields_and_enabled_roles_must_be_disabled_before_removal() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (r1, r2) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let created = app
        .create_app(
            &admin,
            json!({"displayName": "before", "identifierUris": ["api://before"], "appRoles": [role_json(&r1, "One", true)]}),
        )
        .await;
    let path = app_path(&s(&created["id"]));

    let (status, body) = patch(
        &app,
        &path,
        &admin,
        json!({"displayName": "after", "identifierUris": ["api://after", "urn:after"],
               "appRoles": [role_json(&r1, "One", true), role_json(&r2, "Two", true)]}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
    let (_, got) = app.get(&path, &admin).await;
    assert_eq!(got["displayName"], "after");
    assert_eq!(got["identifierUris"], json!(["api://after", "urn:after"]));
    assert_eq!(
        ids(got["appRoles"].as_array().unwrap()),
        vec![r1.clone(), r2.clone()]
    );
    assert_eq!(got["id"], created["id"]);
    assert_eq!(got["appId"], created["appId"]);

    // Only the fields given change.
    let (status, _) = patch(&app, &path, &admin, json!({"displayName": "renamed"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, got) = app.get(&path, &admin).await;
    assert_eq!(got["displayName"], "renamed");
    assert_eq!(got["identifierUris"], json!(["api://after", "urn:after"]));
    assert_eq!(got["appRoles"].as_array().unwrap().len(), 2);
    // The old URI is free again; the new one is taken.
    app.create_app(
        &admin,
        json!({"displayName": "reuse", "identifierUris": ["api://before"]}),
    )
    .await;

    // Removing an enabled role is refused, and nothing changes.
    let before = got;
    let (status, body) = patch(
        &app,
        &path,
        &admin,
        json!({"displayName": "should not stick", "appRoles": [role_json(&r2, "Two", true)]}),
    )
    .await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    assert!(s(&body["error"]["message"]).contains("disabled"), "{body}");
    let (_, after) = app.get(&path, &admin).await;
    assert_eq!(written(&after), written(&before));

    // Changing the value of an enabled role is refused too.
    let (status, body) = patch(
        &app,
        &path,
        &admin,
        json!({"appRoles": [role_json(&r1, "Renamed", true), role_json(&r2, "Two", true)]}),
    )
    .await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    assert_eq!(app.get(&path, &admin).await.1, before);

    // Disable, then remove.
    let (status, body) = patch(
        &app,
        &path,
        &admin,
        json!({"appRoles": [role_json(&r1, "One", false), role_json(&r2, "Two", true)]}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, got) = app.get(&path, &admin).await;
    assert_eq!(got["appRoles"][0]["isEnabled"], false);
    let (status, body) = patch(
        &app,
        &path,
        &admin,
        json!({"appRoles": [role_json(&r2, "Two", true)]}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, got) = app.get(&path, &admin).await;
    assert_eq!(ids(got["appRoles"].as_array().unwrap()), vec![r2]);
}

#[tokio::test]
async fn delete_removes_the_service_principal_and_grants_and_frees_the_identifier_uri() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (api, role_id) = app
        .register_api(&admin, "api://inventory", "Inventory.Read")
        .await;
    let api_sp = app.sp_of(&admin, &s(&api["appId"])).await;
    let client = app.register_client(&admin, "worker").await;
    let (status, body) = app
        .grant(&admin, &s(&api["appId"]), &client.sp_id, &role_id)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = app
        .token(&client.app_id, &client.secret, "api://inventory/.default")
        .await;
    assert_eq!(claims(&token)["roles"], json!(["Inventory.Read"]));

    let (status, body) = delete(&app, &app_path(&s(&api["id"])), &admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);

    let (status, body) = app.get(&app_path(&s(&api["id"])), &admin).await;
    assert_graph_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
    let (status, body) = app
        .get(&format!("/v1.0/servicePrincipals/{api_sp}"), &admin)
        .await;
    assert_graph_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
    let (status, body) = app
        .get(
            &format!(
                "/v1.0/servicePrincipals?$filter=appId%20eq%20'{}'",
                s(&api["appId"])
            ),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], json!([]));
    let (_, grants) = app
        .get(
            &format!(
                "/v1.0/servicePrincipals/{}/appRoleAssignments",
                client.sp_id
            ),
            &admin,
        )
        .await;
    assert_eq!(
        grants["value"],
        json!([]),
        "the grant went with the resource"
    );
    let (status, body) = delete(&app, &app_path(&s(&api["id"])), &admin).await;
    assert_graph_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );

    let r = app
        .token_post(&client.app_id, &client.secret, "api://inventory/.default")
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_codes"],
        json!([500011])
    );

    // The identifier URI can be used again, by an app with no grants.
    let again = app
        .create_app(
            &admin,
            json!({"displayName": "inventory v2", "identifierUris": ["api://inventory"]}),
        )
        .await;
    let token = app
        .token(&client.app_id, &client.secret, "api://inventory/.default")
        .await;
    assert_eq!(claims(&token)["aud"], again["appId"]);
    assert!(claims(&token).get("roles").is_none());
}

// ------------------------------------------------------------------ secrets

#[tokio::test]
async fn add_password_shows_the_secret_once_and_never_again() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let created = app
        .create_app(&admin, json!({"displayName": "vaulted"}))
        .await;
    let id = s(&created["id"]);
    let r = app
        .http
        .post(format!("{}{}/addPassword", app.base, app_path(&id)))
        .bearer_auth(&admin)
        .json(&json!({"passwordCredential": {"displayName": "ci"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cred: Value = r.json().await.unwrap();
    let secret = s(&cred["secretText"]);
    assert!(secret.starts_with("clavis_"), "{secret}");
    assert!(is_guid(&cred["keyId"]));
    assert_eq!(cred["displayName"], "ci");
    assert_eq!(cred["hint"], &secret[7..10]);
    let now = app.clock.now();
    let (start, end) = (
        parse_time(&cred["startDateTime"]),
        parse_time(&cred["endDateTime"]),
    );
    assert!(close(start, now), "{start} vs {now}");
    assert!(close(end, start + Duration::days(180)), "{end}");

    // A second secret with no details: default name and lifetime.
    let (status, second) = app
        .post(&format!("{}/addPassword", app_path(&id)), &admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second_secret = s(&second["secretText"]);
    assert_ne!(second_secret, secret);
    assert_ne!(second["keyId"], cred["keyId"]);

    let (_, got) = app.get(&app_path(&id), &admin).await;
    let creds = got["passwordCredentials"].as_array().unwrap();
    assert_eq!(creds.len(), 2, "{got}");
    let listed = creds
        .iter()
        .find(|c| c["keyId"] == cred["keyId"])
        .expect("credential listed");
    assert_eq!(listed["hint"], cred["hint"]);
    assert_eq!(listed["displayName"], "ci");
    assert!(listed["secretText"].is_null(), "{listed}");
    assert!(close(parse_time(&listed["endDateTime"]), end));
    // No secret value anywhere a reader can look afterwards.
    let (everything, _) = list_all(&app, "/v1.0/applications", &admin).await;
    let (sp, _) = app
        .get(
            &format!(
                "/v1.0/servicePrincipals?$filter=appId%20eq%20'{}'",
                s(&created["appId"])
            ),
            &admin,
        )
        .await;
    for text in [
        got.to_string(),
        Value::Array(everything).to_string(),
        sp.to_string(),
    ] {
        for value in [&secret, &second_secret] {
            assert!(!text.contains(value.as_str()), "secret leaked: {text}");
            assert!(!text.contains(&value[7..]), "secret body leaked: {text}");
        }
    }
    // Both work.
    app.token(&s(&created["appId"]), &secret, MGMT_SCOPE).await;
    app.token(&s(&created["appId"]), &second_secret, MGMT_SCOPE)
        .await;
}

#[tokio::test]
async fn add_password_end_dates_follow_the_tenant_policy() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = s(&app
        .create_app(&admin, json!({"displayName": "lifetimes"}))
        .await["id"]);
    let now = app.clock.now();

    let (status, body) = add_password(
        &app,
        &admin,
        &id,
        json!({"endDateTime": rfc3339(now + Duration::days(731))}),
    )
    .await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    assert!(s(&body["error"]["message"]).contains("730 days"), "{body}");

    let (status, body) = add_password(
        &app,
        &admin,
        &id,
        json!({"endDateTime": rfc3339(now + Duration::days(729))}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(close(
        parse_time(&body["endDateTime"]),
        now + Duration::days(729)
    ));

    let refused = [
        json!({"secretText": "clavis_mine"}),
        json!({"startDateTime": rfc3339(now + Duration::days(10)), "endDateTime": rfc3339(now + Duration::days(5))}),
        json!({"endDateTime": rfc3339(now - Duration::days(1))}),
        json!({"startDateTime": rfc3339(now - Duration::days(1))}),
        json!({"endDateTime": "next tuesday"}),
    ];
    for cred in refused {
        let (status, body) = add_password(&app, &admin, &id, cred.clone()).await;
        assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
        assert!(body.get("secretText").is_none());
        if cred.get("secretText").is_some() {
            assert!(
                s(&body["error"]["message"]).contains("secretText"),
                "{body}"
            );
        }
    }

    let (status, policy) = app.get("/v1.0/policies/tenantPolicy", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        policy,
        json!({"signingAlgorithm": "RS256", "maxSecretLifetimeDays": 730, "defaultSecretLifetimeDays": 180,
               "maxSecretsPerApplication": 10, "passwordCredentialsAllowed": true,
               "effectiveDefaultSecretLifetimeDays": 180})
    );

    // Lowering only the maximum keeps the configured default; new secrets
    // get the smaller of the two.
    let (status, body) = patch(
        &app,
        "/v1.0/policies/tenantPolicy",
        &admin,
        json!({"maxSecretLifetimeDays": 30}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, policy) = app.get("/v1.0/policies/tenantPolicy", &admin).await;
    assert_eq!(policy["maxSecretLifetimeDays"], 30);
    assert_eq!(policy["defaultSecretLifetimeDays"], 180, "{policy}");
    assert_eq!(policy["effectiveDefaultSecretLifetimeDays"], 30, "{policy}");
    // A default above the maximum, asked for, is a contradiction: refused,
    // nothing changed.
    let (status, body) = patch(
        &app,
        "/v1.0/policies/tenantPolicy",
        &admin,
        json!({"maxSecretLifetimeDays": 20, "defaultSecretLifetimeDays": 90}),
    )
    .await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    assert!(s(&body["error"]["message"]).contains("20 days"), "{body}");
    let (_, unchanged) = app.get("/v1.0/policies/tenantPolicy", &admin).await;
    assert_eq!(unchanged, policy);

    let (status, body) = add_password(
        &app,
        &admin,
        &id,
        json!({"endDateTime": rfc3339(now + Duration::days(60))}),
    )
    .await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    assert!(s(&body["error"]["message"]).contains("30 days"), "{body}");
    let (status, body) = add_password(
        &app,
        &admin,
        &id,
        json!({"endDateTime": rfc3339(now + Duration::days(29))}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = add_password(&app, &admin, &id, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let lifetime = parse_time(&body["endDateTime"]) - parse_time(&body["startDateTime"]);
    assert!(
        lifetime <= Duration::days(30),
        "default is capped by the maximum: {body}"
    );
    // Raising the maximum again brings the configured default back.
    let (status, body) = patch(
        &app,
        "/v1.0/policies/tenantPolicy",
        &admin,
        json!({"maxSecretLifetimeDays": 365}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, policy) = app.get("/v1.0/policies/tenantPolicy", &admin).await;
    assert_eq!(
        policy["effectiveDefaultSecretLifetimeDays"], 180,
        "{policy}"
    );

    // Only the three accepted requests made credentials.
    let (_, got) = app.get(&app_path(&id), &admin).await;
    assert_eq!(
        got["passwordCredentials"].as_array().unwrap().len(),
        3,
        "{got}"
    );
}

#[tokio::test]
async fn remove_password_deletes_exactly_one_credential() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "rotating").await;
    let second = app.add_secret(&admin, &client.id).await;
    let second_secret = s(&second["secretText"]);
    app.token(&client.app_id, &client.secret, MGMT_SCOPE).await;

    let remove = format!("{}/removePassword", app_path(&client.id));
    let (status, body) = app
        .post(&remove, &admin, json!({"keyId": client.key_id}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
    let (_, got) = app.get(&app_path(&client.id), &admin).await;
    let creds = got["passwordCredentials"].as_array().unwrap();
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0]["keyId"], second["keyId"]);

    let r = app
        .token_post(&client.app_id, &client.secret, MGMT_SCOPE)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_codes"],
        json!([7000215])
    );
    app.token(&client.app_id, &second_secret, MGMT_SCOPE).await;

    for key in [client.key_id.clone(), Uuid::new_v4().to_string()] {
        let (status, body) = app.post(&remove, &admin, json!({"keyId": key})).await;
        assert_graph_error(
            status,
            &body,
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
        );
    }
    let (_, after) = app.get(&app_path(&client.id), &admin).await;
    assert_eq!(after, got);
}

// ----------------------------------------------------------- built-in API

#[tokio::test]
async fn the_builtin_management_api_cannot_be_changed_or_claimed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mgmt = management_app(&app, &admin).await;
    let path = app_path(&s(&mgmt["id"]));
    assert_eq!(mgmt["identifierUris"], json!(["api://clavis"]));
    let values: HashSet<String> = mgmt["appRoles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(&r["value"]))
        .collect();
    assert_eq!(
        values,
        HashSet::from(
            [
                READ_ALL,
                READ_WRITE_ALL,
                OWNED_BY,
                AUDIT_READ,
                "Application.Credentials.RotateSelf"
            ]
            .map(String::from)
        )
    );

    let (status, body) = patch(&app, &path, &admin, json!({"displayName": "mine now"})).await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let (status, body) = patch(&app, &path, &admin, json!({"appRoles": []})).await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let (status, body) = delete(&app, &path, &admin).await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let (status, body) = add_password(&app, &admin, &s(&mgmt["id"]), json!({})).await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    assert!(body.get("secretText").is_none());
    assert_eq!(management_app(&app, &admin).await, mgmt);

    let (before, _) = list_all(&app, "/v1.0/applications", &admin).await;
    for uri in ["api://clavis", "API://Clavis"] {
        let (status, body) = app
            .post(
                "/v1.0/applications",
                &admin,
                json!({"displayName": "impostor", "identifierUris": [uri]}),
            )
            .await;
        assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    }
    let other = app
        .create_app(&admin, json!({"displayName": "other"}))
        .await;
    let (status, body) = patch(
        &app,
        &app_path(&s(&other["id"])),
        &admin,
        json!({"identifierUris": ["api://clavis"]}),
    )
    .await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let (after, _) = list_all(&app, "/v1.0/applications", &admin).await;
    assert_eq!(after.len(), before.len() + 1);
    // Tokens for the management API still work.
    app.admin_token().await;
}

#[tokio::test]
async fn an_identifier_uri_belongs_to_one_application() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let first = app
        .create_app(
            &admin,
            json!({"displayName": "first", "identifierUris": ["api://shared"]}),
        )
        .await;
    let (before, _) = list_all(&app, "/v1.0/applications", &admin).await;
    for uris in [
        json!(["api://shared"]),
        json!(["api://fresh", "api://shared"]),
        json!(["api://x", "API://X"]),
    ] {
        let (status, body) = app
            .post(
                "/v1.0/applications",
                &admin,
                json!({"displayName": "second", "identifierUris": uris}),
            )
            .await;
        assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    }
    let (after, _) = list_all(&app, "/v1.0/applications", &admin).await;
    assert_eq!(after, before, "nothing created");
    // api://fresh was not half-taken by the refused request.
    let third = app
        .create_app(
            &admin,
            json!({"displayName": "third", "identifierUris": ["api://fresh"]}),
        )
        .await;
    let (status, body) = patch(
        &app,
        &app_path(&s(&third["id"])),
        &admin,
        json!({"identifierUris": ["api://shared"]}),
    )
    .await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let (_, got) = app.get(&app_path(&s(&third["id"])), &admin).await;
    assert_eq!(without_created(&got), without_created(&third));
    let (_, got) = app.get(&app_path(&s(&first["id"])), &admin).await;
    assert_eq!(without_created(&got), without_created(&first));
}

#[tokio::test]
async fn identifier_uris_are_unique_regardless_of_case() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_app(
        &admin,
        json!({"displayName": "lower", "identifierUris": ["api://orders"]}),
    )
    .await;
    let (status, body) = app
        .post(
            "/v1.0/applications",
            &admin,
            json!({"displayName": "upper", "identifierUris": ["API://Orders"]}),
        )
        .await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
}

#[tokio::test]
async fn create_responses_match_later_reads() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (api, role_id) = app
        .register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let (_, got) = app.get(&app_path(&s(&api["id"])), &admin).await;
    assert_eq!(got, api);
    let client = app.register_client(&admin, "worker").await;
    let (_, cred) = add_password(&app, &admin, &client.id, json!({})).await;
    let (_, got) = app.get(&app_path(&client.id), &admin).await;
    let listed = got["passwordCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["keyId"] == cred["keyId"])
        .unwrap()
        .clone();
    assert_eq!(listed["startDateTime"], cred["startDateTime"]);
    assert_eq!(listed["endDateTime"], cred["endDateTime"]);
    let (_, assignment) = app
        .grant(&admin, &s(&api["appId"]), &client.sp_id, &role_id)
        .await;
    let (_, list) = app
        .get(
            &format!(
                "/v1.0/servicePrincipals/{}/appRoleAssignments",
                client.sp_id
            ),
            &admin,
        )
        .await;
    assert_eq!(list["value"], json!([assignment]));
}

// ------------------------------------------------------ service principals

#[tokio::test]
async fn service_principals_and_app_role_assignments() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (api, role_id) = app
        .register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "worker").await;

    // One service principal per application, found by appId.
    let (status, list) = app
        .get(
            &format!(
                "/v1.0/servicePrincipals?$filter=appId%20eq%20'{}'",
                client.app_id
            ),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["value"].as_array().unwrap().len(), 1, "{list}");
    let sp = &list["value"][0];
    assert_eq!(sp["id"], client.sp_id);
    assert_eq!(sp["appId"], client.app_id);
    assert_eq!(sp["displayName"], "worker");
    assert_eq!(sp["servicePrincipalType"], "Application");
    assert_eq!(sp["accountEnabled"], true);
    assert!(sp["servicePrincipalNames"]
        .as_array()
        .unwrap()
        .contains(&json!(client.app_id)));
    assert_ne!(
        sp["id"],
        json!(client.id),
        "the service principal is its own object"
    );
    let (status, got) = app
        .get(&format!("/v1.0/servicePrincipals/{}", client.sp_id), &admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&got, sp);

    let api_sp = app.sp_of(&admin, &s(&api["appId"])).await;
    let (_, api_sp_json) = app
        .get(&format!("/v1.0/servicePrincipals/{api_sp}"), &admin)
        .await;
    assert!(api_sp_json["servicePrincipalNames"]
        .as_array()
        .unwrap()
        .contains(&json!("api://orders")));
    assert_eq!(api_sp_json["appRoles"][0]["id"], role_id);

    let (apps, _) = list_all(&app, "/v1.0/applications", &admin).await;
    let (sps, _) = list_all(&app, "/v1.0/servicePrincipals?$top=2", &admin).await;
    let app_ids = |v: &[Value]| v.iter().map(|x| s(&x["appId"])).collect::<HashSet<_>>();
    assert_eq!(sps.len(), apps.len());
    assert_eq!(app_ids(&sps), app_ids(&apps));

    // Grant.
    let assigned_to = format!("/v1.0/servicePrincipals/{api_sp}/appRoleAssignedTo");
    let grant = json!({"principalId": client.sp_id, "resourceId": api_sp, "appRoleId": role_id});
    let (status, assignment) = app.post(&assigned_to, &admin, grant.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{assignment}");
    assert!(is_guid(&assignment["id"]));
    assert_eq!(assignment["appRoleId"], role_id);
    assert_eq!(assignment["principalId"], client.sp_id);
    assert_eq!(assignment["principalDisplayName"], "worker");
    assert_eq!(assignment["principalType"], "ServicePrincipal");
    assert_eq!(assignment["resourceId"], api_sp);
    assert_eq!(assignment["resourceDisplayName"], "api api://orders");
    parse_time(&assignment["createdDateTime"]);

    let refused = [
        ("duplicate", grant.clone()),
        (
            "role not on the resource",
            json!({"principalId": client.sp_id, "resourceId": api_sp, "appRoleId": Uuid::new_v4()}),
        ),
        (
            "resourceId differs from the URL",
            json!({"principalId": client.sp_id, "resourceId": client.sp_id, "appRoleId": role_id}),
        ),
        (
            "unknown principal",
            json!({"principalId": Uuid::new_v4(), "resourceId": api_sp, "appRoleId": role_id}),
        ),
    ];
    for (why, body) in refused {
        let (status, body) = app.post(&assigned_to, &admin, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
    }

    let (status, list) = app.get(&assigned_to, &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        without_created(&list["value"]),
        without_created(&json!([assignment]))
    );
    let (status, list) = app
        .get(
            &format!(
                "/v1.0/servicePrincipals/{}/appRoleAssignments",
                client.sp_id
            ),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        without_created(&list["value"]),
        without_created(&json!([assignment]))
    );
    let token = app
        .token(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    assert_eq!(claims(&token)["roles"], json!(["Orders.Read"]));

    // Revoke: the next token has no role.
    let one = format!("{assigned_to}/{}", s(&assignment["id"]));
    let (status, body) = delete(&app, &one, &admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let token = app
        .token(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    assert!(claims(&token).get("roles").is_none(), "{}", claims(&token));
    assert_eq!(app.get(&assigned_to, &admin).await.1["value"], json!([]));
    let (status, body) = delete(&app, &one, &admin).await;
    assert_graph_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );

    // A disabled role cannot be granted.
    let (status, body) = patch(
        &app,
        &app_path(&s(&api["id"])),
        &admin,
        json!({"appRoles": [role_json(&role_id, "Orders.Read", false)]}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = app.post(&assigned_to, &admin, grant).await;
    assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
}

// ------------------------------------------------------ authentication

#[tokio::test]
async fn management_calls_need_a_valid_token_for_api_clavis() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let for_orders = app
        .token(&app.admin_id, &app.admin_secret, "api://orders/.default")
        .await;

    // A forged token: the admin's header and signature over changed claims.
    let parts: Vec<&str> = admin.split('.').collect();
    let mut forged_claims = claims(&admin);
    forged_claims["azp"] = json!(Uuid::new_v4());
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(forged_claims.to_string()),
        parts[2]
    );
    // An unsigned token.
    let none_header = B64.encode(
        json!({"alg": "none", "typ": "JWT", "kid": super::helpers::header(&admin)["kid"]})
            .to_string(),
    );
    let unsigned = format!("{none_header}.{}.", parts[1]);
    // The right token with its signature cut off.
    let truncated = format!("{}.{}.", parts[0], parts[1]);

    let bad: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("empty bearer", Some("Bearer ".into())),
        ("garbage", Some("Bearer garbage".into())),
        ("three garbage parts", Some("Bearer a.b.c".into())),
        (
            "basic",
            Some(format!(
                "Basic {}",
                B64.encode(format!("{}:{}", app.admin_id, app.admin_secret))
            )),
        ),
        (
            "token for another resource",
            Some(format!("Bearer {for_orders}")),
        ),
        ("forged claims", Some(format!("Bearer {forged}"))),
        ("alg none", Some(format!("Bearer {unsigned}"))),
        ("no signature", Some(format!("Bearer {truncated}"))),
        ("huge", Some(format!("Bearer {}", "a".repeat(20_000)))),
    ];
    for path in [
        "/v1.0/applications",
        "/v1.0/auditLogs/directoryAudits",
        "/v1.0/servicePrincipals",
    ] {
        for (why, auth) in &bad {
            let (status, www, body) = raw_get(&app, path, auth.as_deref()).await;
            assert_graph_error(
                status,
                &body,
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
            );
            assert!(
                www.as_deref().is_some_and(|w| w.starts_with("Bearer")),
                "{why}: {www:?}"
            );
            assert!(!body.to_string().contains(&app.admin_secret), "{why}");
        }
    }
    // A write without a token is refused before its body is looked at.
    let r = app
        .http
        .post(format!("{}/v1.0/applications", app.base))
        .json(&json!({"displayName": "anonymous"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The real token works; two hours later it has expired.
    let (status, _, _) =
        raw_get(&app, "/v1.0/applications", Some(&format!("Bearer {admin}"))).await;
    assert_eq!(status, StatusCode::OK);
    app.clock.advance(Duration::hours(2));
    let (status, www, body) =
        raw_get(&app, "/v1.0/applications", Some(&format!("Bearer {admin}"))).await;
    assert_graph_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    );
    assert!(www.unwrap().starts_with("Bearer"));
    assert!(s(&body["error"]["message"]).contains("expired"), "{body}");
    // A fresh one works again.
    let fresh = app.admin_token().await;
    assert_eq!(
        app.get("/v1.0/applications", &fresh).await.0,
        StatusCode::OK
    );
    // Nothing above created anything.
    let (all, _) = list_all(&app, "/v1.0/applications", &fresh).await;
    assert_eq!(all.len(), 3);
}

#[tokio::test]
async fn removing_the_callers_credential_or_the_caller_cuts_off_its_token() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (reader, token) = caller_with(&app, &admin, "reader", &[READ_ALL]).await;
    assert_eq!(
        app.get("/v1.0/applications", &token).await.0,
        StatusCode::OK
    );
    // Another secret of the same app keeps working.
    let spare = app.add_secret(&admin, &reader.id).await;
    let (status, body) = app
        .post(
            &format!("{}/removePassword", app_path(&reader.id)),
            &admin,
            json!({"keyId": reader.key_id}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = app.get("/v1.0/applications", &token).await;
    assert_graph_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    );
    let spare_token = app
        .token(&reader.app_id, &s(&spare["secretText"]), MGMT_SCOPE)
        .await;
    assert_eq!(
        app.get("/v1.0/applications", &spare_token).await.0,
        StatusCode::OK
    );

    let (deleted, token) = caller_with(&app, &admin, "to be deleted", &[READ_WRITE_ALL]).await;
    assert_eq!(
        app.get("/v1.0/applications", &token).await.0,
        StatusCode::OK
    );
    let (status, _) = delete(&app, &app_path(&deleted.id), &admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for (status, body) in [
        app.get("/v1.0/applications", &token).await,
        app.post(
            "/v1.0/applications",
            &token,
            json!({"displayName": "ghost"}),
        )
        .await,
    ] {
        assert_graph_error(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
        );
    }
    let (status, body) = app
        .get(
            "/v1.0/applications?$filter=displayName%20eq%20'ghost'",
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], json!([]));
}

// ---------------------------------------------------------------- roles

#[tokio::test]
async fn no_management_role_is_refused_everywhere() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, token) = caller_with(&app, &admin, "nobody", &[]).await;
    let fx = fixture(&app, &admin).await;
    let (before, _) = list_all(&app, "/v1.0/applications", &admin).await;
    let results = probe(&app, &token, &fx).await;
    expect("no role", &results, &ALL_DENIED);
    let (after, _) = list_all(&app, "/v1.0/applications", &admin).await;
    assert_eq!(written(&after), written(&before));
}

#[tokio::test]
async fn application_read_all_reads_but_never_writes() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, token) = caller_with(&app, &admin, "reader", &[READ_ALL]).await;
    let fx = fixture(&app, &admin).await;
    let (before, _) = list_all(&app, "/v1.0/applications", &admin).await;
    let results = probe(&app, &token, &fx).await;
    expect(
        READ_ALL,
        &results,
        &denied_except(&[
            ("list applications", 200),
            ("get application", 200),
            ("list servicePrincipals", 200),
            ("get servicePrincipal", 200),
            ("list appRoleAssignedTo", 200),
            ("list appRoleAssignments", 200),
            ("get tenantPolicy", 200),
            ("get deleted application", 200),
        ]),
    );
    // It sees every application, never a secret value.
    assert_eq!(
        results[0].2["value"].as_array().unwrap().len(),
        before.len()
    );
    let everything = results.iter().map(|r| r.2.to_string()).collect::<String>();
    assert!(!everything.contains(&fx.target.secret));
    assert!(!everything.contains("\"secretText\":\"clavis_"));
    let (after, _) = list_all(&app, "/v1.0/applications", &admin).await;
    assert_eq!(written(&after), written(&before));
}

#[tokio::test]
async fn application_read_write_all_manages_everything_but_the_audit_log() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, token) = caller_with(&app, &admin, "writer", &[READ_WRITE_ALL]).await;
    let writes_ok = [
        ("list applications", 200),
        ("get application", 200),
        ("list servicePrincipals", 200),
        ("get servicePrincipal", 200),
        ("list appRoleAssignedTo", 200),
        ("list appRoleAssignments", 200),
        ("get tenantPolicy", 200),
        ("create application", 201),
        ("patch application", 204),
        ("addPassword", 200),
        ("removePassword", 204),
        ("assign role", 201),
        ("unassign role", 204),
        ("patch tenantPolicy", 204),
        ("delete application", 204),
        ("get deleted application", 404),
    ];
    let fx = fixture(&app, &admin).await;
    let results = probe(&app, &token, &fx).await;
    expect(READ_WRITE_ALL, &results, &denied_except(&writes_ok));

    // With AuditLog.Read.All as well, the audit log too.
    let (_, token) = caller_with(
        &app,
        &admin,
        "writer and auditor",
        &[READ_WRITE_ALL, AUDIT_READ],
    )
    .await;
    let fx = fixture(&app, &admin).await;
    let results = probe(&app, &token, &fx).await;
    let mut all_ok = writes_ok.to_vec();
    all_ok.push(("read audit log", 200));
    expect(
        "ReadWrite.All + AuditLog.Read.All",
        &results,
        &denied_except(&all_ok),
    );
}

#[tokio::test]
async fn audit_log_read_all_reads_the_audit_log_only() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, token) = caller_with(&app, &admin, "auditor", &[AUDIT_READ]).await;
    let fx = fixture(&app, &admin).await;
    let (before, _) = list_all(&app, "/v1.0/applications", &admin).await;
    let results = probe(&app, &token, &fx).await;
    expect(
        AUDIT_READ,
        &results,
        &denied_except(&[("read audit log", 200)]),
    );
    let (after, _) = list_all(&app, "/v1.0/applications", &admin).await;
    assert_eq!(written(&after), written(&before));
}

#[tokio::test]
async fn owned_by_manages_only_the_applications_it_created() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (owner, token) = caller_with(&app, &admin, "owner", &[OWNED_BY]).await;
    let role = Uuid::new_v4().to_string();
    let mine = app
        .create_app(
            &token,
            json!({"displayName": "mine", "identifierUris": ["api://mine"], "appRoles": [role_json(&role, "Mine.Use", true)]}),
        )
        .await;
    let mine_path = app_path(&s(&mine["id"]));
    let mine_sp = app.sp_of(&token, &s(&mine["appId"])).await;

    // It sees only its own application and service principal.
    let (listed, _) = list_all(&app, "/v1.0/applications", &token).await;
    assert_eq!(ids(&listed), vec![s(&mine["id"])]);
    let (listed, _) = list_all(&app, "/v1.0/servicePrincipals", &token).await;
    assert_eq!(ids(&listed), vec![mine_sp.clone()]);
    for filter in [
        format!("appId%20eq%20'{}'", owner.app_id),
        format!("appId%20eq%20'{}'", app.admin_id),
        "identifierUris/any(x:x%20eq%20'api://clavis')".into(),
    ] {
        let (status, body) = app
            .get(&format!("/v1.0/applications?$filter={filter}"), &token)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["value"], json!([]), "{filter}");
    }

    // It manages its own.
    assert_eq!(app.get(&mine_path, &token).await.0, StatusCode::OK);
    assert_eq!(
        app.get(&format!("/v1.0/servicePrincipals/{mine_sp}"), &token)
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = patch(
        &app,
        &mine_path,
        &token,
        json!({"displayName": "mine, renamed"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, cred) =
        add_password(&app, &token, &s(&mine["id"]), json!({"displayName": "own"})).await;
    assert_eq!(status, StatusCode::OK, "{cred}");
    app.token(
        &s(&mine["appId"]),
        &s(&cred["secretText"]),
        "api://mine/.default",
    )
    .await;
    let (status, body) = app
        .post(
            &format!("{mine_path}/removePassword"),
            &token,
            json!({"keyId": cred["keyId"]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // It can grant its own API's roles.
    let fx = fixture(&app, &admin).await;
    let (status, body) = app
        .post(
            &format!("/v1.0/servicePrincipals/{mine_sp}/appRoleAssignedTo"),
            &token,
            json!({"principalId": fx.target.sp_id, "resourceId": mine_sp, "appRoleId": role}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Everything the admin created is off limits.
    let results = probe(&app, &token, &fx).await;
    expect(
        OWNED_BY,
        &results,
        &denied_except(&[
            ("list applications", 200),
            ("list servicePrincipals", 200),
            ("get tenantPolicy", 200),
            ("create application", 201),
        ]),
    );
    assert_eq!(
        results[0].2["value"].as_array().unwrap().len(),
        1,
        "{}",
        results[0].2
    );
    let (_, target) = app.get(&app_path(&fx.target.id), &admin).await;
    assert_eq!(target["displayName"], "fixture target");
    assert_eq!(target["passwordCredentials"].as_array().unwrap().len(), 1);

    // It cannot grant itself a management role.
    let mgmt = management_app(&app, &admin).await;
    let mgmt_sp = app.sp_of(&admin, &s(&mgmt["appId"])).await;
    for role in [READ_WRITE_ALL, AUDIT_READ, READ_ALL] {
        let role_id = mgmt["appRoles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["value"] == role)
            .unwrap()["id"]
            .clone();
        let (status, body) = app
            .post(
                &format!("/v1.0/servicePrincipals/{mgmt_sp}/appRoleAssignedTo"),
                &token,
                json!({"principalId": owner.sp_id, "resourceId": mgmt_sp, "appRoleId": role_id}),
            )
            .await;
        assert_graph_error(
            status,
            &body,
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
        );
    }
    let (status, body) = patch(
        &app,
        "/v1.0/policies/tenantPolicy",
        &token,
        json!({"maxSecretLifetimeDays": 3650}),
    )
    .await;
    assert_graph_error(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    let again = app.token(&owner.app_id, &owner.secret, MGMT_SCOPE).await;
    assert_eq!(claims(&again)["roles"], json!([OWNED_BY]));
    // Nor change itself (it does not own its own registration).
    let (status, body) = add_password(&app, &token, &owner.id, json!({})).await;
    assert_graph_error(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );

    // It deletes its own.
    let (status, body) = delete(&app, &mine_path, &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = app.get(&mine_path, &admin).await;
    assert_graph_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
}

// ------------------------------------------------------------------- ids

#[tokio::test]
async fn unknown_object_ids_are_404_and_malformed_ones_400() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "real").await;
    let nobody = Uuid::new_v4();
    let missing: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, app_path(&nobody.to_string()), None),
        (
            Method::PATCH,
            app_path(&nobody.to_string()),
            Some(json!({"displayName": "x"})),
        ),
        (Method::DELETE, app_path(&nobody.to_string()), None),
        (
            Method::POST,
            format!("/v1.0/applications/{nobody}/addPassword"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/v1.0/applications/{nobody}/removePassword"),
            Some(json!({"keyId": Uuid::new_v4()})),
        ),
        // A service principal id is not an application id, nor the reverse.
        (Method::GET, app_path(&client.sp_id), None),
        (
            Method::GET,
            format!("/v1.0/servicePrincipals/{}", client.id),
            None,
        ),
        (
            Method::GET,
            format!("/v1.0/servicePrincipals/{nobody}"),
            None,
        ),
        (
            Method::GET,
            format!("/v1.0/servicePrincipals/{nobody}/appRoleAssignedTo"),
            None,
        ),
        (
            Method::GET,
            format!("/v1.0/servicePrincipals/{nobody}/appRoleAssignments"),
            None,
        ),
        (
            Method::POST,
            format!("/v1.0/servicePrincipals/{nobody}/appRoleAssignedTo"),
            Some(
                json!({"principalId": client.sp_id, "resourceId": nobody, "appRoleId": Uuid::new_v4()}),
            ),
        ),
        (
            Method::DELETE,
            format!(
                "/v1.0/servicePrincipals/{}/appRoleAssignedTo/{nobody}",
                client.sp_id
            ),
            None,
        ),
    ];
    for (method, path, body) in missing {
        let (status, body) = app.graph(method.clone(), &path, &admin, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_graph_error(
            status,
            &body,
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
        );
    }
    let malformed: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1.0/applications/not-a-guid".into(), None),
        (
            Method::PATCH,
            "/v1.0/applications/not-a-guid".into(),
            Some(json!({"displayName": "x"})),
        ),
        (Method::DELETE, "/v1.0/applications/not-a-guid".into(), None),
        (
            Method::POST,
            "/v1.0/applications/not-a-guid/addPassword".into(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1.0/applications/not-a-guid/removePassword".into(),
            Some(json!({"keyId": nobody})),
        ),
        (
            Method::GET,
            "/v1.0/applications/%7B00000000-0000-0000-0000-00000000000%7D".into(),
            None,
        ),
        (Method::GET, "/v1.0/applications/%ff%fe".into(), None),
        (
            Method::GET,
            format!("/v1.0/applications/{}", "9".repeat(500)),
            None,
        ),
        (
            Method::GET,
            "/v1.0/servicePrincipals/not-a-guid".into(),
            None,
        ),
        (
            Method::GET,
            "/v1.0/servicePrincipals/not-a-guid/appRoleAssignedTo".into(),
            None,
        ),
        (
            Method::GET,
            "/v1.0/servicePrincipals/not-a-guid/appRoleAssignments".into(),
            None,
        ),
        (
            Method::DELETE,
            format!(
                "/v1.0/servicePrincipals/{}/appRoleAssignedTo/not-a-guid",
                client.sp_id
            ),
            None,
        ),
    ];
    for (method, path, body) in malformed {
        let (status, body) = app.graph(method.clone(), &path, &admin, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {body}");
        assert_graph_error(status, &body, StatusCode::BAD_REQUEST, "Request_BadRequest");
        assert!(s(&body["error"]["message"]).len() < 400, "{body}");
    }
    // The real client is untouched.
    let (_, got) = app.get(&app_path(&client.id), &admin).await;
    assert_eq!(got["displayName"], "real");
}

// ------------------------------------------------------------------ audit

fn detail(event: &Value, key: &str) -> Option<Value> {
    event["additionalDetails"]
        .as_array()?
        .iter()
        .find(|d| d["key"] == key)
        .map(|d| d["value"].clone())
}

fn find<'a>(events: &'a [Value], activity: &str, target: &str, result: &str) -> &'a Value {
    events
        .iter()
        .find(|e| {
            e["activityDisplayName"] == activity
                && e["targetResources"][0]["id"] == target
                && e["result"] == result
        })
        .unwrap_or_else(|| {
            panic!(
                "no {result} '{activity}' event on {target} in {}",
                Value::Array(events.to_vec())
            )
        })
}

#[tokio::test]
async fn the_audit_log_records_who_did_what_from_where_without_secrets() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut secrets = vec![app.admin_secret.clone()];

    let audited = app
        .create_app(&admin, json!({"displayName": "audited"}))
        .await;
    let audited_id = s(&audited["id"]);
    let cred = app.add_secret(&admin, &audited_id).await;
    secrets.push(s(&cred["secretText"]));
    let key_id = s(&cred["keyId"]);
    let (status, _) = app
        .post(
            &format!("{}/removePassword", app_path(&audited_id)),
            &admin,
            json!({"keyId": key_id}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (api, role_id) = app
        .register_api(&admin, "api://audited", "Audited.Read")
        .await;
    let audited_sp = app.sp_of(&admin, &s(&audited["appId"])).await;
    let (status, assignment) = app
        .grant(&admin, &s(&api["appId"]), &audited_sp, &role_id)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let api_sp = s(&assignment["resourceId"]);
    let (status, _) = delete(
        &app,
        &format!(
            "/v1.0/servicePrincipals/{api_sp}/appRoleAssignedTo/{}",
            s(&assignment["id"])
        ),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = delete(&app, &app_path(&audited_id), &admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A refusal.
    let (reader, reader_token) = caller_with(&app, &admin, "reader", &[READ_ALL]).await;
    secrets.push(reader.secret.clone());
    let (status, _) = patch(
        &app,
        &app_path(&s(&api["id"])),
        &reader_token,
        json!({"displayName": "nope"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (events, _) = list_all(&app, "/v1.0/auditLogs/directoryAudits", &admin).await;
    let admin_actor = |e: &Value| {
        assert_eq!(e["initiatedBy"]["app"]["appId"], app.admin_id, "{e}");
        assert_eq!(
            detail(e, "ClientIpAddress"),
            Some(json!("127.0.0.1")),
            "{e}"
        );
        assert_eq!(e["result"], "success", "{e}");
        assert!(is_guid(&e["id"]) && is_guid(&e["correlationId"]), "{e}");
        parse_time(&e["activityDateTime"]);
    };
    let created = find(&events, "Add application", &audited_id, "success");
    admin_actor(created);
    assert_eq!(created["targetResources"][0]["displayName"], "audited");
    assert_eq!(created["category"], "ApplicationManagement");
    let added = find(&events, "Add password credential", &audited_id, "success");
    admin_actor(added);
    assert_eq!(detail(added, "KeyId"), Some(json!(key_id)));
    let removed = find(
        &events,
        "Remove password credential",
        &audited_id,
        "success",
    );
    admin_actor(removed);
    assert_eq!(detail(removed, "KeyId"), Some(json!(key_id)));
    let assigned = find(
        &events,
        "Add app role assignment to service principal",
        &api_sp,
        "success",
    );
    admin_actor(assigned);
    let unassigned = find(
        &events,
        "Remove app role assignment from service principal",
        &s(&assignment["id"]),
        "success",
    );
    admin_actor(unassigned);
    let deleted = find(&events, "Delete application", &audited_id, "success");
    admin_actor(deleted);
    let refused = find(&events, "Update application", &s(&api["id"]), "failure");
    assert_eq!(refused["initiatedBy"]["app"]["appId"], reader.app_id);
    assert!(!s(&refused["resultReason"]).is_empty(), "{refused}");
    assert!(
        !events
            .iter()
            .any(|e| e["activityDisplayName"] == "Update application" && e["result"] == "success"),
        "the refused change did not happen"
    );

    // Pages of two hold the same events in the same order.
    let (paged, pages) = list_all(&app, "/v1.0/auditLogs/directoryAudits?$top=2", &admin).await;
    assert!(
        pages >= events.len() / 2,
        "{pages} pages for {} events",
        events.len()
    );
    assert_eq!(ids(&paged), ids(&events));
    let (_, first) = app
        .get("/v1.0/auditLogs/directoryAudits?$top=2", &admin)
        .await;
    assert_eq!(first["value"].as_array().unwrap().len(), 2);
    assert!(s(&first["@odata.nextLink"]).contains("$top=2"));

    // $filter, also across pages.
    let wanted = events
        .iter()
        .filter(|e| e["activityDisplayName"] == "Add application")
        .count();
    assert!(wanted >= 3);
    for query in [
        "$filter=activityDisplayName%20eq%20'Add%20application'",
        "$top=1&$filter=activityDisplayName%20eq%20'Add%20application'",
    ] {
        let (filtered, _) = list_all(
            &app,
            &format!("/v1.0/auditLogs/directoryAudits?{query}"),
            &admin,
        )
        .await;
        assert_eq!(filtered.len(), wanted, "{query}");
        assert!(filtered
            .iter()
            .all(|e| e["activityDisplayName"] == "Add application"));
    }
    let (on_app, _) = list_all(
        &app,
        &format!("/v1.0/auditLogs/directoryAudits?$filter=targetResources/any(t:t/id%20eq%20'{audited_id}')"),
        &admin,
    )
    .await;
    assert_eq!(on_app.len(), 4, "add, addPassword, removePassword, delete");

    // No secret value anywhere in the audit log.
    let text = Value::Array(events).to_string();
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret is in the audit log"
        );
        assert!(
            !text.contains(&secret[7..]),
            "a secret's body is in the audit log"
        );
    }
    assert!(
        !text.contains("clavis_"),
        "something secret-shaped is in the audit log"
    );
}

#[tokio::test]
async fn a_refused_create_is_audited_as_a_failure() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (reader, token) = caller_with(&app, &admin, "reader", &[READ_ALL]).await;
    let (status, _) = app
        .post(
            "/v1.0/applications",
            &token,
            json!({"displayName": "refused"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (events, _) = list_all(&app, "/v1.0/auditLogs/directoryAudits", &admin).await;
    assert!(
        events
            .iter()
            .any(|e| e["activityDisplayName"] == "Add application"
                && e["result"] == "failure"
                && e["initiatedBy"]["app"]["appId"] == reader.app_id.as_str()),
        "{}",
        Value::Array(events)
    );
}

// ---------------------------------------------------------------- OpenAPI

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = serde_json::from_str(&r.text().await.unwrap()).expect("valid JSON");
    assert!(s(&doc["openapi"]).starts_with("3."), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().expect("paths");
    let routes: [(&str, &[&str]); 13] = [
        ("/{tenant}/oauth2/v2.0/token", &["post"]),
        ("/{tenant}/v2.0/.well-known/openid-configuration", &["get"]),
        ("/{tenant}/discovery/v2.0/keys", &["get"]),
        ("/v1.0/applications", &["get", "post"]),
        ("/v1.0/applications/{id}", &["get", "patch", "delete"]),
        ("/v1.0/applications/{id}/addPassword", &["post"]),
        ("/v1.0/applications/{id}/removePassword", &["post"]),
        ("/v1.0/servicePrincipals", &["get"]),
        ("/v1.0/servicePrincipals/{id}", &["get"]),
        (
            "/v1.0/servicePrincipals/{id}/appRoleAssignedTo",
            &["get", "post"],
        ),
        ("/v1.0/servicePrincipals/{id}/appRoleAssignments", &["get"]),
        ("/v1.0/auditLogs/directoryAudits", &["get"]),
        ("/v1.0/policies/tenantPolicy", &["get", "patch"]),
    ];
    for (path, methods) in routes {
        let item = paths.get(path).unwrap_or_else(|| {
            panic!("{path} missing from {:?}", paths.keys().collect::<Vec<_>>())
        });
        for m in methods {
            assert!(item.get(*m).is_some(), "{m} {path}");
        }
    }
    assert!(
        paths.iter().any(|(p, item)| p
            .starts_with("/v1.0/servicePrincipals/{id}/appRoleAssignedTo/")
            && item.get("delete").is_some()),
        "unassign route"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn revoking_a_management_role_takes_effect_before_the_token_expires() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, token) = caller_with(&app, &admin, "writer", &["Application.ReadWrite.All"]).await;
    let (status, _) = app.get("/v1.0/applications", &token).await;
    assert_eq!(status, StatusCode::OK);

    // Revoke the grant: the same (unexpired) token loses the role at once.
    let mgmt = management_app(&app, &admin).await;
    let mgmt_sp = app.sp_of(&admin, &s(&mgmt["appId"])).await;
    let (_, grants) = app
        .get(
            &format!("/v1.0/servicePrincipals/{mgmt_sp}/appRoleAssignedTo"),
            &admin,
        )
        .await;
    let grant = grants["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["principalDisplayName"] == "writer")
        .unwrap();
    let (status, _) = delete(
        &app,
        &format!(
            "/v1.0/servicePrincipals/{mgmt_sp}/appRoleAssignedTo/{}",
            s(&grant["id"])
        ),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/v1.0/applications", &token).await;
    assert_graph_error(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
}

#[tokio::test]
async fn a_caller_without_write_roles_cannot_probe_which_ids_exist() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, auditor) = caller_with(&app, &admin, "auditor", &["AuditLog.Read.All"]).await;
    let existing = app
        .create_app(&admin, json!({"displayName": "exists"}))
        .await;
    let missing = uuid::Uuid::new_v4().to_string();
    for id in [s(&existing["id"]), missing] {
        for (method, path, body) in [
            (
                reqwest::Method::PATCH,
                app_path(&id),
                Some(json!({"displayName": "x"})),
            ),
            (reqwest::Method::DELETE, app_path(&id), None),
            (
                reqwest::Method::POST,
                format!("{}/addPassword", app_path(&id)),
                Some(json!({})),
            ),
            (
                reqwest::Method::POST,
                format!("{}/removePassword", app_path(&id)),
                Some(json!({"keyId": id})),
            ),
            (reqwest::Method::GET, app_path(&id), None),
        ] {
            let (status, body) = app.graph(method.clone(), &path, &auditor, body).await;
            assert_graph_error(
                status,
                &body,
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
            );
        }
    }
}

#[tokio::test]
async fn every_spelling_of_an_app_id_or_uri_names_the_same_resource() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (api, _) = app
        .register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "c").await;
    let app_id = s(&api["appId"]);
    for resource in [
        app_id.clone(),
        app_id.to_uppercase(),
        app_id.replace('-', ""),
        format!("{{{app_id}}}"),
        "api://orders".to_owned(),
        "API://Orders".to_owned(),
    ] {
        let token = app
            .token(
                &client.app_id,
                &client.secret,
                &format!("{resource}/.default"),
            )
            .await;
        assert_eq!(claims(&token)["aud"], api["appId"], "{resource}");
    }
}

/// The audit log's `correlationId` is always the server's own id for the
/// request (the `request-id` it answers with), whatever the caller sent;
/// the caller's own id (`client-request-id`, as MSAL sends, else its
/// `request-id`) is kept apart as `clientRequestId`, sanitised and capped.
#[tokio::test]
async fn a_caller_s_request_id_is_kept_apart_from_the_correlation_id() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let theirs = Uuid::new_v4().to_string();
    let junk = reqwest::header::HeaderValue::from_bytes(
        format!("msal trace\u{fc}-42;{}", "x".repeat(200)).as_bytes(),
    )
    .unwrap();
    let cases: [(&str, Vec<(&str, reqwest::header::HeaderValue)>); 4] = [
        (
            "request-id only",
            vec![("request-id", theirs.parse().unwrap())],
        ),
        (
            "client-request-id first",
            vec![
                ("client-request-id", "msal-1".parse().unwrap()),
                ("request-id", theirs.parse().unwrap()),
            ],
        ),
        ("junk", vec![("client-request-id", junk)]),
        ("none", vec![]),
    ];
    let mut answered = Vec::new();
    for (name, headers) in cases {
        let mut request = app
            .http
            .post(format!("{}/v1.0/applications", app.base))
            .bearer_auth(&admin)
            .json(&json!({"displayName": name}));
        for (header, value) in headers {
            request = request.header(header, value);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{name}");
        let ours = r.headers()["request-id"].to_str().unwrap().to_owned();
        assert!(
            Uuid::try_parse(&ours).is_ok() && ours != theirs,
            "{name}: {ours}"
        );
        let id = s(&r.json::<Value>().await.unwrap()["id"]);
        answered.push((name, id, ours));
    }
    let (events, _) = list_all(&app, "/v1.0/auditLogs/directoryAudits", &admin).await;
    let expected = [
        json!(theirs),
        json!("msal-1"),
        json!(format!("msaltrace-42;{}", "x".repeat(64 - 13))),
        Value::Null,
    ];
    for ((name, id, ours), client_request_id) in answered.iter().zip(expected) {
        let event = find(&events, "Add application", id, "success");
        assert_eq!(event["correlationId"], json!(ours), "{name}: {event}");
        assert_eq!(
            event["clientRequestId"], client_request_id,
            "{name}: {event}"
        );
    }
}
