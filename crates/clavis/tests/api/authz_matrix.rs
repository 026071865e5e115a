//! The authorization matrix: every management route the live server lists
//! in `/openapi.json`, called by every kind of caller (no token, a token for
//! another resource, each management role alone, `OwnedBy` as owner, as
//! non-owner and on the built-in application, `RotateSelf` on itself and on
//! another app, another tenant's admin), checked against one table. On every answer: no secret value
//! outside the responses that create one, no object of the other tenant,
//! and every refused write is in the audit log.

use std::collections::{BTreeSet, HashMap, HashSet};

use clavis::bootstrap::TenantPlan;
use clavis::secret::format::looks_like_secret;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::helpers::{spawn_app, TestApp};

const MGMT: &str = "api://clavis/.default";

/// The callers, in the order of the table's columns.
const CALLERS: [&str; 13] = [
    "anonymous",      // no Authorization header
    "other_audience", // a valid token, for another resource of the tenant
    "no_role",        // a token for api://clavis without any management role
    "read_all",       // Application.Read.All
    "audit",          // AuditLog.Read.All
    "rw_all",         // Application.ReadWrite.All
    "owner",          // Application.ReadWrite.OwnedBy, on an application it owns
    "non_owner",      // Application.ReadWrite.OwnedBy, on one it does not own
    "self",           // Application.Credentials.RotateSelf, on its own application
    "self_other",     // Application.Credentials.RotateSelf, on another application
    "other_tenant",   // the admin of a second tenant, on this tenant's objects
    "builtin",        // Application.ReadWrite.All, on the built-in api://clavis application
    "owner_builtin",  // Application.ReadWrite.OwnedBy, on the built-in application
];

/// Every management route × every caller (columns as in [`CALLERS`]:
/// ano = anonymous, aud = other_audience, nil = no_role, rd = read_all,
/// log = audit, rw = rw_all, own = owner, not = non_owner, slf = self,
/// sot = self_other, t2 = other_tenant, bi = builtin, obi = owner_builtin):
/// `ok` (2xx), `400` (the built-in application cannot be changed), `401`,
/// `403` or `404`. `fresh` routes change or remove their
/// target, so each call gets targets of its own, made just before it.
#[rustfmt::skip]
const TABLE: &[Row] = &[
    // method, path, fresh                                                      ano aud nil rd  log rw  own not slf sot t2  bi  obi
    row("GET", "/v1.0/applications", false,                                    "401 401 403 ok  403 ok  ok  ok  403 403 ok  ok  ok"),
    row("POST", "/v1.0/applications", false,                                   "401 401 403 403 403 ok  ok  ok  403 403 ok  ok  ok"),
    row("GET", "/v1.0/applications/{id}", false,                               "401 401 403 ok  403 ok  ok  403 ok  403 404 ok  403"),
    row("PATCH", "/v1.0/applications/{id}", false,                             "401 401 403 403 403 ok  ok  403 403 403 404 400 403"),
    row("DELETE", "/v1.0/applications/{id}", true,                             "401 401 403 403 403 ok  ok  403 403 403 404 400 403"),
    row("POST", "/v1.0/applications/{id}/addPassword", true,                   "401 401 403 403 403 ok  ok  403 ok  403 404 400 403"),
    row("POST", "/v1.0/applications/{id}/removePassword", true,                "401 401 403 403 403 ok  ok  403 ok  403 404 404 403"),
    row("POST", "/v1.0/applications/{id}/revokeTokens", false,                 "401 401 403 403 403 ok  ok  403 403 403 404 ok  403"),
    row("POST", "/v1.0/applications/{id}/reportCompromisedPassword", true,     "401 401 403 403 403 ok  ok  403 403 403 404 404 403"),
    row("GET", "/v1.0/applications/{id}/credentialPolicy", false,              "401 401 403 ok  403 ok  ok  403 403 403 404 ok  403"),
    row("PATCH", "/v1.0/applications/{id}/credentialPolicy", false,            "401 401 403 403 403 ok  403 403 403 403 404 400 403"),
    row("GET", "/v1.0/servicePrincipals", false,                               "401 401 403 ok  403 ok  ok  ok  403 403 ok  ok  ok"),
    row("GET", "/v1.0/servicePrincipals/{id}", false,                          "401 401 403 ok  403 ok  ok  403 403 403 404 ok  403"),
    row("POST", "/v1.0/servicePrincipals/{id}/appRoleAssignedTo", true,        "401 401 403 403 403 ok  ok  403 403 403 404 ok  403"),
    row("GET", "/v1.0/servicePrincipals/{id}/appRoleAssignedTo", false,        "401 401 403 ok  403 ok  ok  403 403 403 404 ok  403"),
    row("DELETE", "/v1.0/servicePrincipals/{id}/appRoleAssignedTo/{assignment_id}", true,
                                                                               "401 401 403 403 403 ok  ok  403 403 403 404 ok  403"),
    row("GET", "/v1.0/servicePrincipals/{id}/appRoleAssignments", false,       "401 401 403 ok  403 ok  ok  403 403 403 404 ok  403"),
    row("GET", "/v1.0/auditLogs/directoryAudits", false,                       "401 401 403 403 ok  403 403 403 403 403 ok  403 403"),
    row("GET", "/v1.0/auditLogs/signIns", false,                               "401 401 403 403 ok  403 403 403 403 403 ok  403 403"),
    row("GET", "/v1.0/policies/tenantPolicy", false,                           "401 401 403 ok  403 ok  ok  ok  403 403 ok  ok  ok"),
    row("PATCH", "/v1.0/policies/tenantPolicy", false,                         "401 401 403 403 403 ok  403 403 403 403 ok  ok  403"),
    row("GET", "/v1.0/policies/signingKeys", false,                            "401 401 403 ok  403 ok  ok  ok  403 403 ok  ok  ok"),
    row("POST", "/v1.0/policies/signingKeys/rotate", true,                     "401 401 403 403 403 ok  403 403 403 403 ok  ok  403"),
    row("POST", "/v1.0/policies/signingKeys/{kid}/revoke", true,               "401 401 403 403 403 ok  403 403 403 403 404 ok  403"),
    row("GET", "/v1.0/policies/keyEncryptionKeys", false,                      "401 401 403 403 403 ok  403 403 403 403 403 ok  403"),
    row("POST", "/v1.0/policies/keyEncryptionKeys/rewrap", false,              "401 401 403 403 403 ok  403 403 403 403 403 ok  403"),
    row("POST", "/v1.0/webhooks", false,                                       "401 401 403 403 403 ok  403 403 403 403 ok  ok  403"),
    row("GET", "/v1.0/webhooks", false,                                        "401 401 403 ok  403 ok  403 403 403 403 ok  ok  403"),
    row("GET", "/v1.0/webhooks/{id}", false,                                   "401 401 403 ok  403 ok  403 403 403 403 404 ok  403"),
    row("PATCH", "/v1.0/webhooks/{id}", false,                                 "401 401 403 403 403 ok  403 403 403 403 404 ok  403"),
    row("DELETE", "/v1.0/webhooks/{id}", true,                                 "401 401 403 403 403 ok  403 403 403 403 404 ok  403"),
    row("GET", "/v1.0/webhooks/{id}/deliveries", false,                        "401 401 403 ok  403 ok  403 403 403 403 404 ok  403"),
    row("POST", "/v1.0/webhooks/{id}/test", false,                             "401 401 403 403 403 ok  403 403 403 403 404 ok  403"),
];

/// Responses that legitimately carry a secret value: the ones that create it.
const CREATES_SECRETS: [(&str, &str); 3] = [
    ("POST", "/v1.0/applications/{id}/addPassword"),
    ("POST", "/v1.0/applications/{id}/reportCompromisedPassword"),
    ("POST", "/v1.0/webhooks"),
];

struct Row {
    method: &'static str,
    path: &'static str,
    fresh: bool,
    want: &'static str,
}

const fn row(method: &'static str, path: &'static str, fresh: bool, want: &'static str) -> Row {
    Row {
        method,
        path,
        fresh,
        want,
    }
}

/// What a call is aimed at: an application with an app role, a spare
/// secret (used by no token) and one assignment of that role.
#[derive(Debug, Clone)]
struct Target {
    id: String,
    sp_id: String,
    role_id: String,
    key_id: String,
    assignment_id: String,
    /// The principal the matrix's assignment call grants the role to.
    grantee_sp: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// Created by the tenant's admin: owned by nobody among the callers.
    Stranger,
    /// Created by the `OwnedBy` caller.
    Owned,
    /// The `RotateSelf` caller's own application.
    SelfApp,
    /// The built-in management API application.
    Builtin,
}

fn kind_of(caller: &str) -> Kind {
    match caller {
        "owner" => Kind::Owned,
        "self" => Kind::SelfApp,
        "builtin" | "owner_builtin" => Kind::Builtin,
        _ => Kind::Stranger,
    }
}

/// Everything the matrix needs, made once per server.
struct Setup {
    admin: String,
    tokens: HashMap<&'static str, Option<String>>,
    owner_token: String,
    self_app: (String, String),
    bystander_sp: String,
    /// Receives the role in the assignment calls of the matrix.
    grantee_sp: String,
    shared: HashMap<Kind, Target>,
    /// The built-in application's object id, service principal and the id
    /// of its `Application.Read.All` role.
    builtin: (String, String, String),
    webhook: String,
    /// Ids of this tenant's objects (none may reach the other tenant).
    ours: BTreeSet<String>,
    /// Ids of the other tenant's objects (none may reach this tenant).
    theirs: BTreeSet<String>,
    /// The other tenant's admin: its service principal and secret's keyId.
    their_admin: (String, String),
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    request_id: Uuid,
) -> (StatusCode, String) {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.base))
        .header("request-id", request_id.to_string());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    (status, r.text().await.expect("body"))
}

/// A call the setup needs to succeed.
async fn must(app: &TestApp, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
    let (status, text) = call(
        app,
        method,
        path,
        Some(token),
        body.as_ref(),
        Uuid::new_v4(),
    )
    .await;
    assert!(
        status.is_success(),
        "setup {method} {path}: {status} {text}"
    );
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("json")
    }
}

fn s(v: &Value) -> String {
    v.as_str().expect("string").to_owned()
}

/// A client holding exactly `role` (if any) on `api://clavis`, and its token.
async fn caller(app: &TestApp, admin: &str, name: &str, role: Option<&str>) -> (Value, String) {
    let client = app.register_client(admin, name).await;
    if let Some(role) = role {
        app.grant_management(admin, &client.sp_id, role).await;
    }
    let token = app.token(&client.app_id, &client.secret, MGMT).await;
    (
        json!({"id": client.id, "appId": client.app_id, "sp": client.sp_id, "keyId": client.key_id}),
        token,
    )
}

/// A new application made by `token`, with a role, a spare secret and one
/// assignment of the role to `bystander_sp`.
async fn new_target(app: &TestApp, token: &str, setup: &Setup) -> Target {
    let (admin, bystander_sp) = (&setup.admin, &setup.bystander_sp);
    let role_id = Uuid::new_v4().to_string();
    let created = must(
        app,
        "POST",
        "/v1.0/applications",
        token,
        Some(json!({"displayName": "matrix target",
                    "identifierUris": [format!("api://matrix-{}", Uuid::new_v4())],
                    "appRoles": [{"id": role_id, "value": "Matrix.Read", "displayName": "Matrix.Read",
                                  "allowedMemberTypes": ["Application"], "isEnabled": true}]})),
    )
    .await;
    let id = s(&created["id"]);
    let cred = app.add_secret(token, &id).await;
    let sp_id = app.sp_of(admin, created["appId"].as_str().unwrap()).await;
    let assignment = must(
        app,
        "POST",
        &format!("/v1.0/servicePrincipals/{sp_id}/appRoleAssignedTo"),
        token,
        Some(json!({"principalId": bystander_sp, "resourceId": sp_id, "appRoleId": role_id})),
    )
    .await;
    Target {
        id,
        sp_id,
        role_id,
        key_id: s(&cred["keyId"]),
        assignment_id: s(&assignment["id"]),
        grantee_sp: setup.grantee_sp.clone(),
    }
}

/// The built-in application, with a new assignment of one of its roles
/// (to remove) and a new client to grant that role to.
async fn builtin_target(app: &TestApp, setup: &Setup) -> Target {
    let (id, sp_id, role_id) = setup.builtin.clone();
    let holder = app.register_client(&setup.admin, "matrix holder").await;
    let grantee = app
        .register_client(&setup.admin, "matrix builtin grantee")
        .await;
    let assignment = must(
        app,
        "POST",
        &format!("/v1.0/servicePrincipals/{sp_id}/appRoleAssignedTo"),
        &setup.admin,
        Some(json!({"principalId": holder.sp_id, "resourceId": sp_id, "appRoleId": role_id})),
    )
    .await;
    Target {
        id,
        sp_id,
        role_id,
        key_id: Uuid::new_v4().to_string(),
        assignment_id: s(&assignment["id"]),
        grantee_sp: grantee.sp_id,
    }
}

/// The `RotateSelf` caller's own application, with a fresh spare secret.
async fn self_target(app: &TestApp, setup: &Setup) -> Target {
    let self_app = &setup.self_app;
    let cred = app.add_secret(&setup.admin, &self_app.0).await;
    Target {
        id: self_app.0.clone(),
        sp_id: self_app.1.clone(),
        role_id: Uuid::new_v4().to_string(),
        key_id: s(&cred["keyId"]),
        assignment_id: Uuid::new_v4().to_string(),
        grantee_sp: setup.grantee_sp.clone(),
    }
}

async fn target(app: &TestApp, setup: &Setup, kind: Kind) -> Target {
    match kind {
        Kind::Stranger => new_target(app, &setup.admin, setup).await,
        Kind::Owned => new_target(app, &setup.owner_token, setup).await,
        Kind::SelfApp => self_target(app, setup).await,
        Kind::Builtin => builtin_target(app, setup).await,
    }
}

async fn signing_keys(app: &TestApp, admin: &str) -> Vec<Value> {
    let list = must(app, "GET", "/v1.0/policies/signingKeys", admin, None).await;
    list["value"].as_array().expect("keys").clone()
}

/// The kid of a pending signing key of this tenant (made if there is none):
/// revoking it touches no token.
async fn pending_kid(app: &TestApp, admin: &str) -> String {
    if let Some(k) = signing_keys(app, admin)
        .await
        .iter()
        .find(|k| k["state"] == "pending")
    {
        return s(&k["kid"]);
    }
    let key = must(
        app,
        "POST",
        "/v1.0/policies/signingKeys/rotate",
        admin,
        Some(json!({"activateAfterMinutes": 60})),
    )
    .await;
    s(&key["kid"])
}

/// Revoke pending keys, so a rotation is not refused for one.
async fn no_pending_key(app: &TestApp, admin: &str) {
    for k in signing_keys(app, admin).await {
        if k["state"] == "pending" {
            let kid = s(&k["kid"]);
            must(
                app,
                "POST",
                &format!("/v1.0/policies/signingKeys/{kid}/revoke"),
                admin,
                None,
            )
            .await;
        }
    }
}

async fn setup(app: &TestApp) -> Setup {
    let admin = app.admin_token().await;
    let mut ours = BTreeSet::from([app.tenant_id.clone(), app.admin_id.clone()]);

    // The other tenant and a few of its objects.
    let plan = TenantPlan::new("matrix-two", &app.state.hasher, app.state.clock.now());
    app.state
        .directory
        .commit(&plan.mutations, &plan.audit)
        .await
        .expect("second tenant");
    let r = app
        .http
        .post(app.token_url("matrix-two"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", plan.admin_app_id.to_string().as_str()),
            ("client_secret", plan.admin_secret.expose()),
            ("scope", MGMT),
        ])
        .send()
        .await
        .expect("token");
    let body: Value = r.json().await.expect("json");
    let tenant2 = s(&body["access_token"]);
    let mut theirs = BTreeSet::from([plan.tenant.id.to_string(), plan.admin_app_id.to_string()]);
    let their_app = must(
        app,
        "POST",
        "/v1.0/applications",
        &tenant2,
        Some(json!({"displayName": "theirs"})),
    )
    .await;
    theirs.insert(s(&their_app["id"]));
    theirs.insert(s(&their_app["appId"]));
    let their_hook = must(
        app,
        "POST",
        "/v1.0/webhooks",
        &tenant2,
        Some(json!({"url": "https://hooks.example.com/theirs", "displayName": "theirs"})),
    )
    .await;
    theirs.insert(s(&their_hook["id"]));
    for k in signing_keys(app, &tenant2).await {
        theirs.insert(s(&k["kid"]));
    }
    let their_admin = (
        app.sp_of(&tenant2, &plan.admin_app_id.to_string()).await,
        plan.admin_key_id.to_string(),
    );
    theirs.extend([their_admin.0.clone(), their_admin.1.clone()]);

    // This tenant's callers.
    let mut tokens: HashMap<&'static str, Option<String>> = HashMap::new();
    tokens.insert("anonymous", None);
    let roles = [
        ("no_role", None),
        ("read_all", Some("Application.Read.All")),
        ("audit", Some("AuditLog.Read.All")),
        ("rw_all", Some("Application.ReadWrite.All")),
        ("owner", Some("Application.ReadWrite.OwnedBy")),
        ("self", Some("Application.Credentials.RotateSelf")),
    ];
    let mut clients = HashMap::new();
    for (name, role) in roles {
        let (client, token) = caller(app, &admin, &format!("matrix {name}"), role).await;
        for field in ["id", "appId", "sp", "keyId"] {
            ours.insert(s(&client[field]));
        }
        clients.insert(name, client);
        tokens.insert(name, Some(token));
    }
    tokens.insert("non_owner", tokens["owner"].clone());
    tokens.insert("self_other", tokens["self"].clone());
    tokens.insert("other_tenant", Some(tenant2));
    tokens.insert("builtin", tokens["rw_all"].clone());
    tokens.insert("owner_builtin", tokens["owner"].clone());
    // A valid token of this tenant, for another resource.
    let (api, _) = app
        .register_api(&admin, "api://matrix-orders", "Orders.Read")
        .await;
    ours.insert(s(&api["id"]));
    let rw = &clients["rw_all"];
    let secret = app.add_secret(&admin, &s(&rw["id"])).await;
    let other_audience = app
        .token(
            &s(&rw["appId"]),
            &s(&secret["secretText"]),
            "api://matrix-orders/.default",
        )
        .await;
    tokens.insert("other_audience", Some(other_audience));

    let bystander = app.register_client(&admin, "matrix bystander").await;
    ours.extend([
        bystander.id.clone(),
        bystander.app_id.clone(),
        bystander.sp_id.clone(),
    ]);
    let grantee = app.register_client(&admin, "matrix grantee").await;
    ours.extend([
        grantee.id.clone(),
        grantee.app_id.clone(),
        grantee.sp_id.clone(),
    ]);
    let self_app = (s(&clients["self"]["id"]), s(&clients["self"]["sp"]));
    let owner_token = tokens["owner"].clone().expect("owner token");
    let hook = must(
        app,
        "POST",
        "/v1.0/webhooks",
        &admin,
        Some(json!({"url": "https://hooks.example.com/ours", "displayName": "ours"})),
    )
    .await;
    let webhook = s(&hook["id"]);
    ours.insert(webhook.clone());
    for k in signing_keys(app, &admin).await {
        ours.insert(s(&k["kid"]));
    }
    let list = must(
        app,
        "GET",
        "/v1.0/applications?$filter=identifierUris/any(x:x%20eq%20'api://clavis')",
        &admin,
        None,
    )
    .await;
    let mgmt = &list["value"][0];
    let read_role = mgmt["appRoles"]
        .as_array()
        .expect("roles")
        .iter()
        .find(|r| r["value"] == "Application.Read.All")
        .expect("Application.Read.All");
    let builtin = (
        s(&mgmt["id"]),
        app.sp_of(&admin, mgmt["appId"].as_str().expect("appId"))
            .await,
        s(&read_role["id"]),
    );
    ours.extend([builtin.0.clone(), builtin.1.clone(), s(&mgmt["appId"])]);
    let mut setup = Setup {
        builtin,
        admin,
        tokens,
        owner_token,
        self_app,
        bystander_sp: bystander.sp_id,
        grantee_sp: grantee.sp_id,
        shared: HashMap::new(),
        webhook,
        ours,
        theirs,
        their_admin,
    };
    for kind in [Kind::Stranger, Kind::Owned, Kind::SelfApp, Kind::Builtin] {
        let t = target(app, &setup, kind).await;
        setup.ours.extend([
            t.id.clone(),
            t.sp_id.clone(),
            t.key_id.clone(),
            t.assignment_id.clone(),
        ]);
        setup.shared.insert(kind, t);
    }
    setup
}

/// The path with its parameters filled in from `t`.
fn fill(path: &str, t: &Target, webhook: &str, kid: &str) -> String {
    let id = if path.starts_with("/v1.0/applications/") {
        &t.id
    } else if path.starts_with("/v1.0/servicePrincipals/") {
        &t.sp_id
    } else {
        webhook
    };
    path.replace("{id}", id)
        .replace("{assignment_id}", &t.assignment_id)
        .replace("{kid}", kid)
}

/// A valid body for each route that takes one.
fn body(method: &str, path: &str, t: &Target) -> Option<Value> {
    Some(match (method, path) {
        ("POST", "/v1.0/applications") => json!({"displayName": "matrix created"}),
        ("PATCH", "/v1.0/applications/{id}") => json!({"displayName": "matrix target"}),
        ("POST", "/v1.0/applications/{id}/addPassword") => {
            json!({"passwordCredential": {"displayName": "matrix"}})
        }
        ("POST", "/v1.0/applications/{id}/removePassword")
        | ("POST", "/v1.0/applications/{id}/reportCompromisedPassword") => {
            json!({"keyId": t.key_id})
        }
        ("PATCH", "/v1.0/applications/{id}/credentialPolicy") => {
            json!({"passwordCredentialsAllowed": true})
        }
        ("POST", "/v1.0/servicePrincipals/{id}/appRoleAssignedTo") => {
            json!({"principalId": t.grantee_sp, "resourceId": t.sp_id, "appRoleId": t.role_id})
        }
        ("PATCH", "/v1.0/policies/tenantPolicy") => json!({"passwordCredentialsAllowed": true}),
        ("POST", "/v1.0/policies/signingKeys/rotate") => json!({"activateAfterMinutes": 60}),
        ("POST", "/v1.0/webhooks") => {
            json!({"url": "https://hooks.example.com/matrix", "displayName": "matrix"})
        }
        ("PATCH", "/v1.0/webhooks/{id}") => json!({"paused": true}),
        _ => return None,
    })
}

/// The routes the live server documents, as (method, path template).
async fn documented_routes(app: &TestApp) -> BTreeSet<(String, String)> {
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() && path.starts_with("/v1.0/") {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// Secret values in a body: `secretText`/`signingSecret` fields with a value,
/// and anything shaped like a Clavis client secret or webhook signing secret.
fn secret_values(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        fields(&v, &mut found);
    }
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || "-._~".contains(c))) {
        if looks_like_secret(word) || word.starts_with("whsec_") {
            found.push(word.to_owned());
        }
    }
    found
}

fn fields(v: &Value, found: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if (k == "secretText" || k == "signingSecret") && !v.is_null() {
                    found.push(format!("{k}: {v}"));
                }
                fields(v, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| fields(i, found)),
        _ => {}
    }
}

fn allowed(want: &str, status: StatusCode) -> bool {
    match want {
        "ok" => status.is_success(),
        code => status.as_str() == code,
    }
}

#[tokio::test]
async fn every_route_answers_every_caller_as_the_table_says() {
    let app = spawn_app().await;
    let setup = setup(&app).await;

    // The table covers exactly the documented routes.
    let documented = documented_routes(&app).await;
    let table: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    for (method, path) in &documented {
        assert!(
            table.contains(&(method.clone(), path.clone())),
            "route {method} {path} has no expectation in the authorization matrix"
        );
    }
    for (method, path) in &table {
        assert!(
            documented.contains(&(method.clone(), path.clone())),
            "the matrix has a row for {method} {path}, which /openapi.json does not list"
        );
    }

    let mut failures = Vec::new();
    let mut refused_writes = Vec::new();
    let mut refused_reads_without_role = Vec::new();
    for row in TABLE {
        let wants: Vec<&str> = row.want.split_whitespace().collect();
        assert_eq!(
            wants.len(),
            CALLERS.len(),
            "{} {}: one column per caller",
            row.method,
            row.path
        );
        for (caller, want) in CALLERS.iter().zip(wants) {
            let kind = kind_of(caller);
            // The caller's own application cannot be made afresh: it gets a
            // new spare secret when the call may remove one.
            let removes_key = row.path.ends_with("Password")
                && row.method == "POST"
                && !row.path.ends_with("/addPassword");
            let t = if row.fresh && (kind != Kind::SelfApp || removes_key) {
                target(&app, &setup, kind).await
            } else {
                setup.shared[&kind].clone()
            };
            let kid = if row.path.contains("{kid}") {
                pending_kid(&app, &setup.admin).await
            } else {
                String::new()
            };
            if row.path.ends_with("/rotate") {
                no_pending_key(&app, &setup.admin).await;
            }
            let webhook = if row.fresh && row.path.starts_with("/v1.0/webhooks/") {
                let hook = must(
                    &app,
                    "POST",
                    "/v1.0/webhooks",
                    &setup.admin,
                    Some(json!({"url": "https://hooks.example.com/fresh", "displayName": "fresh"})),
                )
                .await;
                s(&hook["id"])
            } else {
                setup.webhook.clone()
            };
            let path = fill(row.path, &t, &webhook, &kid);
            let body = body(row.method, row.path, &t);
            let request_id = Uuid::new_v4();
            let token = setup.tokens[caller].as_deref();
            let (status, text) =
                call(&app, row.method, &path, token, body.as_ref(), request_id).await;
            let what = format!("{} {path} as {caller}", row.method);

            let secrets = secret_values(&text);
            if !allowed(want, status) {
                let shown = if secrets.is_empty() {
                    text.as_str()
                } else {
                    "[a body with a secret value]"
                };
                failures.push(format!("{what}: want {want}, got {status}: {shown}"));
            }
            // No secret value except in the response that creates it.
            let creates = status.is_success() && CREATES_SECRETS.contains(&(row.method, row.path));
            if creates && !row.path.ends_with("/reportCompromisedPassword") {
                // (Which also shows that the detector finds them.)
                assert!(
                    !secrets.is_empty(),
                    "{what}: no secret value in a create response"
                );
            } else {
                assert!(
                    secrets.is_empty(),
                    "{what} returned a secret value ({status})"
                );
            }
            // No object of the other tenant (ids named in the request aside).
            let foreign = if *caller == "other_tenant" {
                &setup.ours
            } else {
                &setup.theirs
            };
            let asked = format!(
                "{path} {}",
                body.as_ref().map(Value::to_string).unwrap_or_default()
            );
            for id in foreign {
                assert!(
                    asked.contains(id.as_str()) || !text.contains(id.as_str()),
                    "{what}: the answer names {id}, an object of the other tenant: {text}"
                );
            }
            // Errors are Graph errors.
            if !status.is_success() {
                let err: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{what}: {status} without a JSON body: {text}"));
                assert!(err["error"]["code"].is_string(), "{what}: {text}");
            }
            if status == StatusCode::FORBIDDEN && row.method != "GET" {
                refused_writes.push((*caller, what, request_id));
            } else if status == StatusCode::FORBIDDEN && *caller == "no_role" {
                // (A few reads audit their refusals too.)
                refused_reads_without_role.push(request_id);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells differ from the table:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // A body naming an object the URL's object does not hold reaches
    // nothing: another tenant's principal or secret, another application's
    // secret or assignment, the management API's roles.
    let stranger = target(&app, &setup, Kind::Stranger).await;
    let owned = target(&app, &setup, Kind::Owned).await;
    let builtin = target(&app, &setup, Kind::Builtin).await;
    let (their_sp, their_key) = &setup.their_admin;
    let (rw, owner, me) = ("rw_all", "owner", "self");
    let cases = [
        (
            rw,
            "POST",
            format!(
                "/v1.0/servicePrincipals/{}/appRoleAssignedTo",
                stranger.sp_id
            ),
            json!({"principalId": their_sp, "resourceId": stranger.sp_id, "appRoleId": stranger.role_id}),
            400,
        ),
        (
            rw,
            "POST",
            format!("/v1.0/applications/{}/removePassword", stranger.id),
            json!({"keyId": their_key}),
            404,
        ),
        (
            rw,
            "POST",
            format!(
                "/v1.0/applications/{}/reportCompromisedPassword",
                stranger.id
            ),
            json!({"keyId": their_key}),
            404,
        ),
        (
            owner,
            "POST",
            format!("/v1.0/applications/{}/removePassword", owned.id),
            json!({"keyId": stranger.key_id}),
            404,
        ),
        (
            owner,
            "POST",
            format!("/v1.0/applications/{}/reportCompromisedPassword", owned.id),
            json!({"keyId": stranger.key_id}),
            404,
        ),
        (
            me,
            "POST",
            format!("/v1.0/applications/{}/removePassword", setup.self_app.0),
            json!({"keyId": stranger.key_id}),
            404,
        ),
        (
            owner,
            "DELETE",
            format!(
                "/v1.0/servicePrincipals/{}/appRoleAssignedTo/{}",
                owned.sp_id, builtin.assignment_id
            ),
            Value::Null,
            404,
        ),
        (
            owner,
            "POST",
            format!("/v1.0/servicePrincipals/{}/appRoleAssignedTo", owned.sp_id),
            json!({"principalId": setup.grantee_sp, "resourceId": builtin.sp_id, "appRoleId": builtin.role_id}),
            400,
        ),
        (
            owner,
            "POST",
            format!("/v1.0/servicePrincipals/{}/appRoleAssignedTo", owned.sp_id),
            json!({"principalId": setup.grantee_sp, "resourceId": owned.sp_id, "appRoleId": builtin.role_id}),
            400,
        ),
    ];
    for (who, method, path, body, want) in cases {
        let body = (!body.is_null()).then_some(body);
        let token = setup.tokens[who].as_deref();
        let (status, text) = call(&app, method, &path, token, body.as_ref(), Uuid::new_v4()).await;
        assert_eq!(
            status.as_u16(),
            want,
            "{method} {path} {body:?} as {who}: {text}"
        );
    }
    // ...and changed nothing: the builtin assignment is still there.
    let list = must(
        &app,
        "GET",
        &format!(
            "/v1.0/servicePrincipals/{}/appRoleAssignedTo",
            builtin.sp_id
        ),
        &setup.admin,
        None,
    )
    .await;
    assert!(list.to_string().contains(&builtin.assignment_id), "{list}");

    // Every refused write left a failure event in the audit log: its own
    // for a caller holding any management role; for a caller holding none
    // (`no_role`), only the first few a minute are itemised and the rest
    // are counted in a summary event (so that such a caller cannot grow the
    // audit log without bound): their number must add up.
    app.state
        .refusals
        .flush(
            app.state.directory.store().as_ref(),
            clavis::clock::Clock::now(&app.clock),
        )
        .await;
    let mut summarised: u64 = 0;
    let mut failed = HashSet::new();
    let mut next = Some(format!(
        "{}/v1.0/auditLogs/directoryAudits?$top=999",
        app.base
    ));
    while let Some(url) = next {
        let page: Value = app
            .http
            .get(&url)
            .bearer_auth(&setup.admin)
            .send()
            .await
            .expect("audit")
            .json()
            .await
            .expect("json");
        for e in page["value"].as_array().expect("events") {
            if e["result"] == "failure" {
                // The caller's `request-id` comes back as clientRequestId
                // (the correlationId is always the server's own).
                // Events of requests sent without one (setup, summaries)
                // have none.
                if let Some(id) = e["clientRequestId"].as_str() {
                    failed.insert(id.to_owned());
                }
            }
            if e["activityDisplayName"] == clavis::audit_refusals::SUMMARY_ACTIVITY {
                let reason = s(&e["resultReason"]);
                let n = reason.split(' ').next().and_then(|n| n.parse::<u64>().ok());
                summarised += n.unwrap_or_else(|| panic!("a summary says how many: {reason}"));
            }
        }
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    // A refusal is recorded in the caller's own tenant: the other tenant's
    // admin's in the other tenant's log.
    let store = app.state.directory.store();
    for tenant in store.tenants().await.expect("tenants") {
        let query = clavis_store::AuditQuery {
            tenant_id: tenant.id,
            since: None,
            until: None,
            activity: None,
            target_id: None,
            actor_app_id: None,
            before: None,
            limit: 10_000,
        };
        for e in store.audit_events(&query).await.expect("audit") {
            if e.result == clavis_store::AuditResult::Failure
                && tenant.id.to_string() != app.tenant_id
            {
                failed.extend(e.client_request_id);
            }
        }
    }
    assert!(!refused_writes.is_empty());
    let unaudited: Vec<&String> = refused_writes
        .iter()
        .filter(|(caller, _, id)| *caller != "no_role" && !failed.contains(&id.to_string()))
        .map(|(_, what, _)| what)
        .collect();
    assert!(
        unaudited.is_empty(),
        "refused without an audit failure event: {unaudited:#?}"
    );
    let (itemised, counted): (Vec<_>, Vec<_>) = refused_writes
        .iter()
        .filter(|(caller, _, _)| *caller == "no_role")
        .partition(|(_, _, id)| failed.contains(&id.to_string()));
    assert!(!itemised.is_empty(), "the first refusals are itemised");
    let reads_counted = refused_reads_without_role
        .iter()
        .filter(|id| !failed.contains(&id.to_string()))
        .count();
    assert!(
        (counted.len()..=counted.len() + reads_counted).contains(&(summarised as usize)),
        "the others are counted in summary events: {} writes (and up to {reads_counted} \
         reads) not itemised, {summarised} counted",
        counted.len()
    );
}
