//! Hostile and broken input: every bad request gets a clear 4xx in its
//! protocol's own error format (OAuth JSON under `/{tenant}/oauth2/`, Graph
//! JSON under `/v1.0/`), never a 500, never a hang, and never a change to
//! what is stored.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::HeaderValue;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::helpers::{spawn_app, TestApp};

const MGMT_SCOPE: &str = "api://clavis/.default";
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// Raw requests go through a client that gives up after ten seconds.
fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// What the server answered.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("{} is not JSON: {:?}", self.status, self.text))
    }
}

async fn send(
    http: &Client,
    method: Method,
    url: &str,
    content_type: Option<&str>,
    authorization: Option<HeaderValue>,
    body: Vec<u8>,
) -> Answer {
    let mut req = http.request(method.clone(), url);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(auth) = authorization {
        req = req.header("authorization", auth);
    }
    if !body.is_empty() {
        req = req.body(body);
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: no answer: {e}"));
    Answer {
        status: r.status(),
        content_type: r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default(),
        text: r.text().await.expect("body"),
    }
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    serde_urlencoded::to_string(pairs).unwrap().into_bytes()
}

fn valid_form(app: &TestApp) -> Vec<u8> {
    form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &app.admin_id),
        ("client_secret", &app.admin_secret),
        ("scope", MGMT_SCOPE),
    ])
}

fn with(mut body: Vec<u8>, extra: &[u8]) -> Vec<u8> {
    body.extend_from_slice(extra);
    body
}

async fn token_raw(
    app: &TestApp,
    http: &Client,
    tenant: &str,
    content_type: Option<&str>,
    authorization: Option<HeaderValue>,
    body: Vec<u8>,
) -> Answer {
    send(
        http,
        Method::POST,
        &app.token_url(tenant),
        content_type,
        authorization,
        body,
    )
    .await
}

/// An OAuth error (RFC 6749 §5.2 plus Entra's fields) with this status.
#[track_caller]
fn oauth_error(what: &str, a: &Answer, status: u16) -> Value {
    assert_eq!(a.status.as_u16(), status, "{what}: {}", a.text);
    assert!(
        a.content_type.starts_with(JSON),
        "{what}: content-type {:?}",
        a.content_type
    );
    let v = a.json();
    assert!(
        v["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {v}"
    );
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|e| e.starts_with("AADSTS")),
        "{what}: {v}"
    );
    assert!(
        v["error_codes"]
            .as_array()
            .is_some_and(|c| !c.is_empty() && c.iter().all(Value::is_u64)),
        "{what}: {v}"
    );
    assert!(v.get("access_token").is_none(), "{what}: {v}");
    v
}

fn code(v: &Value) -> u64 {
    v["error_codes"][0].as_u64().unwrap()
}

/// A Graph error `{"error":{"code":..,"message":..}}` with this status.
#[track_caller]
fn graph_error(what: &str, a: &Answer, status: u16) -> Value {
    assert_eq!(a.status.as_u16(), status, "{what}: {}", a.text);
    assert!(
        a.content_type.starts_with(JSON),
        "{what}: content-type {:?}",
        a.content_type
    );
    let v = a.json();
    assert!(
        v["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: {v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
    v
}

fn bearer(token: &str) -> Option<HeaderValue> {
    Some(HeaderValue::from_str(&format!("Bearer {token}")).unwrap())
}

fn basic(raw: &[u8]) -> Option<HeaderValue> {
    let mut value = b"Basic ".to_vec();
    value.extend_from_slice(STANDARD.encode(raw).as_bytes());
    Some(HeaderValue::from_bytes(&value).unwrap())
}

/// Everything a bad management request could change: the applications
/// (with their credentials and roles), one service principal's grants and
/// the tenant policy.
async fn snapshot(app: &TestApp, http: &Client, admin: &str, sp: &str) -> Value {
    let mut out = Vec::new();
    for path in [
        "/v1.0/applications?$top=999".to_owned(),
        format!("/v1.0/servicePrincipals/{sp}/appRoleAssignedTo"),
        "/v1.0/policies/tenantPolicy".to_owned(),
    ] {
        let a = send(
            http,
            Method::GET,
            &format!("{}{path}", app.base),
            None,
            bearer(admin),
            vec![],
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text);
        let mut v = a.json();
        assert!(v.get("@odata.nextLink").is_none());
        // Last-used times move with the sign-in log's batches, not with the
        // requests under test.
        for app in v["value"].as_array_mut().into_iter().flatten() {
            for c in app["passwordCredentials"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                c.as_object_mut().map(|c| c.remove("lastUsedDateTime"));
            }
        }
        out.push(v);
    }
    Value::Array(out)
}

/// A bad management request and the status it must get.
struct Case {
    what: String,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
}

fn case(
    what: impl Into<String>,
    method: Method,
    path: &str,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: u16,
) -> Case {
    Case {
        what: what.into(),
        method,
        path: path.to_owned(),
        content_type,
        body: body.into(),
        status,
    }
}

fn json_case(what: impl Into<String>, method: Method, path: &str, body: Value) -> Case {
    case(what, method, path, Some(JSON), body.to_string(), 400)
}

/// Objects the management cases aim at.
struct Targets {
    admin: String,
    app_path: String,
    resource_sp: String,
    role_id: String,
    client_sp: String,
}

async fn targets(app: &TestApp) -> Targets {
    let admin = app.admin_token().await;
    let (api, role_id) = app
        .register_api(&admin, "api://target", "Target.Read")
        .await;
    let client = app.register_client(&admin, "client").await;
    let (status, grant) = app
        .grant(
            &admin,
            api["appId"].as_str().unwrap(),
            &client.sp_id,
            &role_id,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    Targets {
        app_path: format!("/v1.0/applications/{}", api["id"].as_str().unwrap()),
        resource_sp: grant["resourceId"].as_str().unwrap().to_owned(),
        admin,
        role_id,
        client_sp: client.sp_id,
    }
}

/// Run each case as the admin; each must get its Graph error and leave the
/// stored state exactly as it was.
async fn run(app: &TestApp, t: &Targets, cases: Vec<Case>) {
    let http = client();
    let before = snapshot(app, &http, &t.admin, &t.resource_sp).await;
    for c in cases {
        let url = format!("{}{}", app.base, c.path);
        let a = send(
            &http,
            c.method.clone(),
            &url,
            c.content_type,
            bearer(&t.admin),
            c.body,
        )
        .await;
        let what = format!("{} {} ({})", c.method, c.path, c.what);
        let v = graph_error(&what, &a, c.status);
        let expected_code = match c.status {
            400 => "Request_BadRequest",
            413 => "Request_EntityTooLarge",
            415 => "Request_UnsupportedMediaType",
            _ => unreachable!(),
        };
        assert_eq!(v["error"]["code"], expected_code, "{what}: {v}");
        assert!(
            a.text.len() < 2048,
            "{what}: a long answer ({} bytes)",
            a.text.len()
        );
        let after = snapshot(app, &http, &t.admin, &t.resource_sp).await;
        assert_eq!(after, before, "{what} changed what is stored");
    }
}

// ------------------------------------------------------------ token endpoint

#[tokio::test]
async fn token_endpoint_caps_the_body_and_wants_a_form() {
    let app = spawn_app().await;
    let http = client();
    let big = with(
        valid_form(&app),
        &[b"&padding=".as_slice(), &vec![b'a'; 70 * 1024]].concat(),
    );
    let a = token_raw(&app, &http, "default", Some(FORM), None, big).await;
    let v = oauth_error("body over 64 KiB", &a, 413);
    assert_eq!(v["error"], "invalid_request");
    assert!(a.text.len() < 2048);

    // Just under the cap is fine (unknown parameters are ignored).
    let near = with(
        valid_form(&app),
        &[b"&padding=".as_slice(), &vec![b'a'; 60 * 1024]].concat(),
    );
    let a = token_raw(&app, &http, "default", Some(FORM), None, near).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);

    let as_json = json!({"grant_type": "client_credentials", "client_id": app.admin_id,
                         "client_secret": app.admin_secret, "scope": MGMT_SCOPE})
    .to_string()
    .into_bytes();
    for (what, ct, body) in [
        ("JSON", Some(JSON), as_json),
        ("no content type", None, valid_form(&app)),
        ("text/plain", Some("text/plain"), valid_form(&app)),
        (
            "multipart",
            Some("multipart/form-data; boundary=x"),
            valid_form(&app),
        ),
        (
            "form prefix",
            Some("application/x-www-form-urlencodedx"),
            valid_form(&app),
        ),
    ] {
        let a = token_raw(&app, &http, "default", ct, None, body).await;
        let v = oauth_error(what, &a, 400);
        assert_eq!(v["error"], "invalid_request", "{what}");
        assert!(
            !a.text.contains(&app.admin_secret),
            "{what}: the secret is echoed"
        );
    }
    // A charset parameter is fine.
    let a = token_raw(
        &app,
        &http,
        "default",
        Some("application/x-www-form-urlencoded; charset=UTF-8"),
        None,
        valid_form(&app),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
}

#[tokio::test]
async fn token_endpoint_refuses_duplicates_and_bad_encodings() {
    let app = spawn_app().await;
    let http = client();
    for param in ["grant_type", "client_id", "scope", "client_secret"] {
        let value = match param {
            "grant_type" => "client_credentials",
            "client_id" => app.admin_id.as_str(),
            "scope" => MGMT_SCOPE,
            _ => app.admin_secret.as_str(),
        };
        let body = with(
            valid_form(&app),
            format!(
                "&{param}={}",
                serde_urlencoded::to_string([("v", value)]).unwrap()[2..].to_owned()
            )
            .as_bytes(),
        );
        let a = token_raw(&app, &http, "default", Some(FORM), None, body).await;
        let v = oauth_error(&format!("duplicated {param}"), &a, 400);
        assert_eq!(code(&v), 9002313);
        assert!(
            v["error_description"].as_str().unwrap().contains(param),
            "{v}"
        );
        assert!(!a.text.contains(&app.admin_secret));
    }
    let mut bad: Vec<(&str, Vec<u8>)> = vec![
        ("%ff in a value", b"&x=%ff".to_vec()),
        ("%ff in a name", b"&%ff=1".to_vec()),
        ("overlong UTF-8", b"&x=%c0%af".to_vec()),
        ("UTF-16 surrogate", b"&x=%ed%a0%80".to_vec()),
        ("raw 0xff in a value", b"&x=\xff".to_vec()),
        ("raw 0xff 0xfe in a name", b"&\xff\xfe=1".to_vec()),
        ("truncated UTF-8", b"&x=%e2%82".to_vec()),
        ("%zz", b"&x=%zz".to_vec()),
        ("%4 at the end", b"&x=%4".to_vec()),
        ("lone %", b"&x=%".to_vec()),
        ("%g1", b"&x=%g1".to_vec()),
        ("%-1", b"&x=%-1".to_vec()),
        ("% space", b"&x=% 1".to_vec()),
    ];
    // The same inside the parameters that matter.
    bad.push((
        "%ff in grant_type",
        b"&grant_type=client_credentials%ff".to_vec(),
    ));
    for (what, extra) in bad {
        let a = token_raw(
            &app,
            &http,
            "default",
            Some(FORM),
            None,
            with(valid_form(&app), &extra),
        )
        .await;
        let v = oauth_error(what, &a, 400);
        assert_eq!(v["error"], "invalid_request", "{what}");
        assert!(
            !a.text.contains(&app.admin_secret),
            "{what}: the secret is echoed"
        );
    }
    // A bad secret encoding does not echo the secret.
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}%ff&scope=api%3A%2F%2Fclavis%2F.default",
        app.admin_id, app.admin_secret
    );
    let a = token_raw(&app, &http, "default", Some(FORM), None, body.into_bytes()).await;
    oauth_error("secret with %ff", &a, 400);
    assert!(!a.text.contains(&app.admin_secret));
    assert!(!a.text.contains(&app.admin_secret[7..]));
}

#[tokio::test]
async fn a_percent_escape_with_a_sign_is_refused() {
    let app = spawn_app().await;
    let http = client();
    for extra in [b"&x=%+1".as_slice(), b"&x=%+f"] {
        let a = token_raw(
            &app,
            &http,
            "default",
            Some(FORM),
            None,
            with(valid_form(&app), extra),
        )
        .await;
        oauth_error(&String::from_utf8_lossy(extra), &a, 400);
    }
}

#[tokio::test]
async fn a_secret_in_a_malformed_query_string_is_still_refused() {
    let app = spawn_app().await;
    let http = client();
    for query in [
        format!("client_secret={}&x=%ff", app.admin_secret),
        format!("client_secret={}%ff", app.admin_secret),
    ] {
        let url = format!("{}?{query}", app.token_url("default"));
        let a = send(
            &http,
            Method::POST,
            &url,
            Some(FORM),
            None,
            valid_form(&app),
        )
        .await;
        oauth_error("secret in a malformed query", &a, 400);
    }
}

#[tokio::test]
async fn an_unknown_tenant_is_not_echoed_in_full() {
    let app = spawn_app().await;
    let http = client();
    let tenant = "t".repeat(30_000);
    let a = token_raw(&app, &http, &tenant, Some(FORM), None, valid_form(&app)).await;
    let v = oauth_error("30 KB tenant", &a, 400);
    assert_eq!(code(&v), 90002);
    assert!(a.text.len() < 2048, "{} bytes", a.text.len());
    let url = format!(
        "{}/{tenant}/v2.0/.well-known/openid-configuration",
        app.base
    );
    let a = send(&http, Method::GET, &url, None, None, vec![]).await;
    assert!(a.text.len() < 2048, "discovery: {} bytes", a.text.len());
}

/// Found by fuzzing (docs/security.md, "Fuzzing"): a long parameter name,
/// JSON field name or JSON value came back whole in the error.
#[tokio::test]
async fn long_names_and_values_are_not_echoed_in_full() {
    let app = spawn_app().await;
    let http = client();
    let name = "n".repeat(30_000);
    let body = format!("{name}=%zz&grant_type=client_credentials").into_bytes();
    let a = token_raw(&app, &http, "default", Some(FORM), None, body).await;
    oauth_error("30 KB parameter name", &a, 400);
    assert!(a.text.len() < 2048, "token: {} bytes", a.text.len());
    assert!(a.text.contains("nnnn"), "{}", a.text);

    let t = targets(&app).await;
    let mut unknown = serde_json::Map::new();
    unknown.insert(name.clone(), json!(1));
    let policy = format!("{}/credentialPolicy", t.app_path);
    run(
        &app,
        &t,
        vec![
            json_case(
                "30 KB unknown field",
                Method::POST,
                "/v1.0/applications",
                Value::Object(unknown),
            ),
            json_case(
                "30 KB string for a number",
                Method::PATCH,
                &policy,
                json!({ "maxSecretLifetimeDays": name }),
            ),
            case(
                "30 KB query option",
                Method::GET,
                &format!("/v1.0/applications?{name}=1"),
                None,
                vec![],
                400,
            ),
        ],
    )
    .await;
}

type TokenCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, u64);

#[tokio::test]
async fn token_endpoint_missing_or_malformed_parameters_get_entra_codes() {
    let app = spawn_app().await;
    let http = client();
    let (id, secret) = (app.admin_id.as_str(), app.admin_secret.as_str());
    // (what, form fields, status, Entra code)
    let cases: Vec<TokenCase> = vec![
        (
            "no grant_type",
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("scope", MGMT_SCOPE),
            ],
            400,
            900144,
        ),
        (
            "empty grant_type",
            vec![
                ("grant_type", ""),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", MGMT_SCOPE),
            ],
            400,
            900144,
        ),
        (
            "no client_id",
            vec![
                ("grant_type", "client_credentials"),
                ("client_secret", secret),
                ("scope", MGMT_SCOPE),
            ],
            400,
            900144,
        ),
        (
            "no client_secret",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("scope", MGMT_SCOPE),
            ],
            401,
            7000218,
        ),
        (
            "empty client_secret",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", ""),
                ("scope", MGMT_SCOPE),
            ],
            401,
            7000218,
        ),
        (
            "no scope",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ],
            400,
            900144,
        ),
        (
            "only openid",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "openid profile"),
            ],
            400,
            900144,
        ),
        ("empty body", vec![], 400, 900144),
        (
            "non-GUID client_id",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "my-app"),
                ("client_secret", secret),
                ("scope", MGMT_SCOPE),
            ],
            400,
            700038,
        ),
        (
            "two resources",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "api://clavis/.default api://other/.default"),
            ],
            400,
            70011,
        ),
        (
            "scope without /.default",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "api://clavis"),
            ],
            400,
            1002012,
        ),
    ];
    for (what, pairs, status, want) in cases {
        let a = token_raw(&app, &http, "default", Some(FORM), None, form(&pairs)).await;
        let v = oauth_error(what, &a, status);
        assert_eq!(code(&v), want, "{what}: {v}");
        assert!(!a.text.contains(secret), "{what}: the secret is echoed");
    }

    // Unknown tenants, by name and by GUID; a tenant segment that is not UTF-8.
    for tenant in ["no-such-tenant".to_owned(), Uuid::new_v4().to_string()] {
        let a = token_raw(&app, &http, &tenant, Some(FORM), None, valid_form(&app)).await;
        let v = oauth_error(&tenant, &a, 400);
        assert_eq!(code(&v), 90002);
        assert_eq!(v["error"], "invalid_tenant");
    }
    let a = token_raw(&app, &http, "%ff%fe", Some(FORM), None, valid_form(&app)).await;
    oauth_error("non-UTF-8 tenant", &a, 400);
    let a = token_raw(
        &app,
        &http,
        &"t".repeat(5000),
        Some(FORM),
        None,
        valid_form(&app),
    )
    .await;
    oauth_error("long tenant", &a, 400);
    assert!(
        a.text.len() < 8 * 1024,
        "a long tenant comes back whole ({} bytes)",
        a.text.len()
    );

    // Huge scopes: refused, and not echoed back in full.
    let huge = [
        ("x".repeat(60_000), 1002012),
        (format!("api://{}/.default", "a".repeat(60_000)), 1002012),
        (format!("{}/.default", "a".repeat(60_000)), 1002012),
        ("x/.default ".repeat(4_500), 70011),
    ];
    for (scope, want) in huge {
        let a = token_raw(
            &app,
            &http,
            "default",
            Some(FORM),
            None,
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", &scope),
            ]),
        )
        .await;
        let v = oauth_error("60 KB scope", &a, 400);
        assert_eq!(code(&v), want, "{v}");
        assert!(
            a.text.len() < 2048,
            "the answer to a 60 KB scope is {} bytes",
            a.text.len()
        );
    }
    // Still fine afterwards.
    app.admin_token().await;
}

#[tokio::test]
async fn token_endpoint_refuses_malformed_basic_headers() {
    let app = spawn_app().await;
    let http = client();
    let scope_only = form(&[("grant_type", "client_credentials"), ("scope", MGMT_SCOPE)]);
    let headers: Vec<(&str, HeaderValue)> = vec![
        ("Basic alone", HeaderValue::from_static("Basic")),
        ("Basic and spaces", HeaderValue::from_static("Basic    ")),
        ("Basic !!!", HeaderValue::from_static("Basic !!!")),
        ("base64 without colon", basic(b"nocolonhere").unwrap()),
        ("Bearer", HeaderValue::from_static("Bearer x")),
        ("Digest", HeaderValue::from_static("Digest username=\"x\"")),
        (
            "non-UTF-8 after decoding",
            basic(&[0xff, 0xfe, b':', b'A']).unwrap(),
        ),
        (
            "non-UTF-8 secret after decoding",
            basic(&[b'a', b':', 0xff]).unwrap(),
        ),
        (
            "empty id",
            basic(format!(":{}", app.admin_secret).as_bytes()).unwrap(),
        ),
        (
            "empty secret",
            basic(format!("{}:", app.admin_id).as_bytes()).unwrap(),
        ),
        ("bad % in id", basic(b"%zz:secret").unwrap()),
        (
            "non-UTF-8 header bytes",
            HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
        ),
        (
            "huge",
            HeaderValue::from_str(&format!("Basic {}", "QUJD".repeat(4000))).unwrap(),
        ),
    ];
    for (what, header) in headers {
        let a = token_raw(
            &app,
            &http,
            "default",
            Some(FORM),
            Some(header),
            scope_only.clone(),
        )
        .await;
        assert!(
            a.status.is_client_error(),
            "{what}: {} {}",
            a.status,
            a.text
        );
        oauth_error(what, &a, a.status.as_u16());
        assert!(
            !a.text.contains(&app.admin_secret),
            "{what}: the secret is echoed"
        );
    }

    // Basic and client_secret in the body.
    let creds = format!("{}:{}", app.admin_id, app.admin_secret);
    let a = token_raw(
        &app,
        &http,
        "default",
        Some(FORM),
        basic(creds.as_bytes()),
        valid_form(&app),
    )
    .await;
    let v = oauth_error("Basic and client_secret", &a, 400);
    assert_eq!(code(&v), 9002313);
    // A different client_id in the body.
    let other = Uuid::new_v4().to_string();
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &other),
        ("scope", MGMT_SCOPE),
    ]);
    let a = token_raw(
        &app,
        &http,
        "default",
        Some(FORM),
        basic(creds.as_bytes()),
        body,
    )
    .await;
    let v = oauth_error("client_id differs from Basic", &a, 400);
    assert_eq!(code(&v), 9002313);
    // The same client_id in both is fine.
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &app.admin_id),
        ("scope", MGMT_SCOPE),
    ]);
    let a = token_raw(
        &app,
        &http,
        "default",
        Some(FORM),
        basic(creds.as_bytes()),
        body,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // A client secret in the query string is refused even with Basic.
    let url = format!("{}?client_secret=x", app.token_url("default"));
    let a = send(
        &http,
        Method::POST,
        &url,
        Some(FORM),
        basic(creds.as_bytes()),
        scope_only,
    )
    .await;
    oauth_error("secret in the query", &a, 400);
}

#[tokio::test]
async fn wrong_methods_on_known_routes_are_a_json_405() {
    let app = spawn_app().await;
    let http = client();
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let a = send(
            &http,
            method.clone(),
            &app.token_url("default"),
            None,
            None,
            vec![],
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}: {}",
            a.text
        );
        assert!(
            a.content_type.starts_with(JSON),
            "{method}: {}",
            a.content_type
        );
        assert!(
            !a.text.trim_start().starts_with('<'),
            "{method}: {}",
            a.text
        );
        // RFC 6749 §5.2 fields (Entra's extras: see `a_405_at_the_token_endpoint_has_entra_fields`).
        let v = a.json();
        assert_eq!(v["error"], "invalid_request", "{method}: {v}");
        assert!(v["error_description"].is_string(), "{method}: {v}");
    }
    // GET with the credentials in the query string never issues a token.
    let url = format!(
        "{}?grant_type=client_credentials&client_id={}&client_secret={}&scope={MGMT_SCOPE}",
        app.token_url("default"),
        app.admin_id,
        app.admin_secret
    );
    let a = send(&http, Method::GET, &url, None, None, vec![]).await;
    assert!(a.status.is_client_error());
    assert!(!a.text.contains("access_token"));
    assert!(!a.text.contains(&app.admin_secret));

    // The management API answers in Graph's format.
    let admin = app.admin_token().await;
    let id = Uuid::new_v4();
    for (method, path) in [
        (Method::PUT, "/v1.0/applications".to_owned()),
        (Method::DELETE, "/v1.0/applications".to_owned()),
        (Method::POST, format!("/v1.0/applications/{id}")),
        (Method::GET, format!("/v1.0/applications/{id}/addPassword")),
        (Method::PUT, "/v1.0/policies/tenantPolicy".to_owned()),
    ] {
        let url = format!("{}{path}", app.base);
        let a = send(
            &http,
            method.clone(),
            &url,
            Some(JSON),
            bearer(&admin),
            b"{}".to_vec(),
        )
        .await;
        graph_error(&format!("{method} {path}"), &a, 405);
    }
}

#[tokio::test]
async fn a_405_at_the_token_endpoint_has_entra_fields() {
    let app = spawn_app().await;
    let http = client();
    let a = send(
        &http,
        Method::GET,
        &app.token_url("default"),
        None,
        None,
        vec![],
    )
    .await;
    let v = oauth_error("GET token endpoint", &a, 405);
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(v[field].is_string(), "{field}: {v}");
    }
}

// ----------------------------------------------------------- management API

#[tokio::test]
async fn management_bodies_must_be_small_valid_json_of_the_right_shape() {
    let app = spawn_app().await;
    let t = targets(&app).await;
    let apps = "/v1.0/applications";
    let one = t.app_path.as_str();
    let add = format!("{one}/addPassword");
    let remove = format!("{one}/removePassword");
    let assign = format!(
        "/v1.0/servicePrincipals/{}/appRoleAssignedTo",
        t.resource_sp
    );
    let policy = "/v1.0/policies/tenantPolicy";
    let big = format!("{{\"displayName\":\"{}\"}}", "a".repeat(100 * 1024));
    let mut cases = Vec::new();
    for (method, path) in [
        (Method::POST, apps),
        (Method::PATCH, one),
        (Method::POST, add.as_str()),
        (Method::POST, remove.as_str()),
        (Method::POST, assign.as_str()),
        (Method::PATCH, policy),
    ] {
        cases.extend([
            case(
                "malformed JSON",
                method.clone(),
                path,
                Some(JSON),
                "{\"displayName\":",
                400,
            ),
            case(
                "trailing garbage",
                method.clone(),
                path,
                Some(JSON),
                "{} {}",
                400,
            ),
            case("empty body", method.clone(), path, Some(JSON), "", 400),
            case("JSON null", method.clone(), path, Some(JSON), "null", 400),
            case(
                "JSON string",
                method.clone(),
                path,
                Some(JSON),
                "\"x\"",
                400,
            ),
            case(
                "invalid UTF-8",
                method.clone(),
                path,
                Some(JSON),
                b"{\"displayName\":\"\xff\xfe\"}".to_vec(),
                400,
            ),
            case(
                "unknown field",
                method.clone(),
                path,
                Some(JSON),
                "{\"color\":\"red\"}",
                400,
            ),
            case(
                "duplicated key",
                method.clone(),
                path,
                Some(JSON),
                "{\"displayName\":\"a\",\"displayName\":\"b\"}",
                400,
            ),
            case(
                "byte order mark",
                method.clone(),
                path,
                Some(JSON),
                b"\xef\xbb\xbf{}".to_vec(),
                400,
            ),
            case(
                "text/plain",
                method.clone(),
                path,
                Some("text/plain"),
                "{}",
                415,
            ),
            case(
                "form",
                method.clone(),
                path,
                Some(FORM),
                "displayName=x",
                415,
            ),
            case("no content type", method.clone(), path, None, "{}", 415),
            case(
                "JSON-ish type",
                method.clone(),
                path,
                Some("application/jsonx"),
                "{}",
                415,
            ),
            case(
                "over 64 KiB",
                method.clone(),
                path,
                Some(JSON),
                big.clone(),
                413,
            ),
        ]);
    }
    // (A JSON array for addPassword: see `json_arrays_are_not_objects`.)
    for (method, path) in [
        (Method::POST, apps),
        (Method::PATCH, one),
        (Method::POST, remove.as_str()),
        (Method::POST, assign.as_str()),
        (Method::PATCH, policy),
    ] {
        cases.push(case("JSON array", method, path, Some(JSON), "[]", 400));
    }
    let wrong_types = [
        (Method::POST, apps, json!({"displayName": 5})),
        (Method::POST, apps, json!({"displayName": ["x"]})),
        (Method::POST, apps, json!({"displayName": null})),
        (
            Method::POST,
            apps,
            json!({"displayName": "x", "identifierUris": "api://x"}),
        ),
        (
            Method::POST,
            apps,
            json!({"displayName": "x", "identifierUris": [1]}),
        ),
        (
            Method::POST,
            apps,
            json!({"displayName": "x", "appRoles": {}}),
        ),
        (
            Method::POST,
            apps,
            json!({"displayName": "x", "appRoles": [{"id": "not-a-guid", "value": "A", "displayName": "A", "allowedMemberTypes": ["Application"]}]}),
        ),
        (
            Method::POST,
            apps,
            json!({"displayName": "x", "appRoles": [{"id": Uuid::new_v4(), "value": "A", "displayName": "A", "allowedMemberTypes": ["Application"], "isEnabled": "yes"}]}),
        ),
        (
            Method::POST,
            apps,
            json!({"displayName": "x", "appRoles": [{"value": "A", "displayName": "A", "allowedMemberTypes": ["Application"]}]}),
        ),
        (
            Method::POST,
            apps,
            json!({"displayName": "x", "appRoles": [{"id": Uuid::new_v4(), "value": "A", "displayName": "A", "allowedMemberTypes": ["Application"], "extra": 1}]}),
        ),
        (
            Method::POST,
            apps,
            json!({"displayName": "x", "passwordCredentials": []}),
        ),
        (
            Method::POST,
            apps,
            json!({"displayName": "x", "id": Uuid::new_v4()}),
        ),
        (Method::PATCH, one, json!({"displayName": 5})),
        (Method::PATCH, one, json!({"identifierUris": "api://x"})),
        (Method::PATCH, one, json!({"appId": Uuid::new_v4()})),
        (
            Method::POST,
            add.as_str(),
            json!({"passwordCredential": "x"}),
        ),
        (
            Method::POST,
            add.as_str(),
            json!({"passwordCredential": {"endDateTime": 5}}),
        ),
        (
            Method::POST,
            add.as_str(),
            json!({"passwordCredential": {"endDateTime": "2030-01-01"}}),
        ),
        (
            Method::POST,
            add.as_str(),
            json!({"passwordCredential": {"endDateTime": "tomorrow"}}),
        ),
        (
            Method::POST,
            add.as_str(),
            json!({"passwordCredential": {"startDateTime": "2030-13-45T99:00:00Z"}}),
        ),
        (
            Method::POST,
            add.as_str(),
            json!({"passwordCredential": {"displayName": "a\u{7}b"}}),
        ),
        (
            Method::POST,
            add.as_str(),
            json!({"passwordCredential": {"displayName": "x".repeat(300)}}),
        ),
        (
            Method::POST,
            add.as_str(),
            json!({"passwordCredential": {"secretText": "clavis_chosen"}}),
        ),
        (
            Method::POST,
            add.as_str(),
            json!({"passwordCredential": {"expires": "never"}}),
        ),
        (
            Method::POST,
            add.as_str(),
            json!({"passwordCredentials": {}}),
        ),
        (Method::POST, remove.as_str(), json!({})),
        (Method::POST, remove.as_str(), json!({"keyId": "nope"})),
        (Method::POST, remove.as_str(), json!({"keyId": 5})),
        (Method::POST, remove.as_str(), json!({"keyId": null})),
        (
            Method::POST,
            assign.as_str(),
            json!({"principalId": 5, "resourceId": t.resource_sp, "appRoleId": t.role_id}),
        ),
        (
            Method::POST,
            assign.as_str(),
            json!({"resourceId": t.resource_sp, "appRoleId": t.role_id}),
        ),
        (
            Method::POST,
            assign.as_str(),
            json!({"principalId": t.client_sp, "resourceId": t.resource_sp, "appRoleId": t.role_id, "x": 1}),
        ),
        (Method::PATCH, policy, json!({"maxSecretLifetimeDays": 0})),
        (
            Method::PATCH,
            policy,
            json!({"maxSecretLifetimeDays": "30"}),
        ),
        (
            Method::PATCH,
            policy,
            json!({"maxSecretLifetimeDays": 1e30}),
        ),
        (
            Method::PATCH,
            policy,
            json!({"defaultSecretLifetimeDays": -1}),
        ),
        (
            Method::PATCH,
            policy,
            json!({"defaultSecretLifetimeDays": 3000}),
        ),
        (Method::PATCH, policy, json!({"signingAlgorithm": "HS256"})),
        (Method::PATCH, policy, json!({"signingAlgorithm": "none"})),
    ];
    for (method, path, body) in wrong_types {
        cases.push(json_case(
            format!("{body}").chars().take(100).collect::<String>(),
            method,
            path,
            body,
        ));
    }
    // A huge number is not a crash.
    cases.push(case(
        "huge number",
        Method::PATCH,
        policy,
        Some(JSON),
        "{\"maxSecretLifetimeDays\":99999999999999999999999}",
        400,
    ));
    // Deep nesting is not a stack overflow.
    cases.push(case(
        "deep nesting",
        Method::POST,
        apps,
        Some(JSON),
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        400,
    ));
    run(&app, &t, cases).await;
}

#[tokio::test]
async fn json_arrays_are_not_objects() {
    let app = spawn_app().await;
    let t = targets(&app).await;
    let add = format!("{}/addPassword", t.app_path);
    run(
        &app,
        &t,
        vec![
            case(
                "positional create",
                Method::POST,
                "/v1.0/applications",
                Some(JSON),
                "[\"positional\"]",
                400,
            ),
            case("JSON array", Method::POST, &add, Some(JSON), "[]", 400),
            case("JSON array", Method::POST, &add, Some(JSON), "[null]", 400),
        ],
    )
    .await;
}

#[tokio::test]
async fn management_refuses_bad_names_uris_and_app_roles() {
    let app = spawn_app().await;
    let t = targets(&app).await;
    let apps = "/v1.0/applications";
    let role = |id: Uuid, value: &str| json!({"id": id, "value": value, "displayName": value, "allowedMemberTypes": ["Application"], "isEnabled": true});
    let names = [
        "x".repeat(257),
        "é".repeat(300),
        "a\u{7}b".into(),
        "line\nbreak".into(),
        "nul\u{0}byte".into(),
        "\u{1b}[31mred".into(),
        "next\u{85}line".into(),
        "del\u{7f}".into(),
        String::new(),
        "   ".into(),
    ];
    let uris = [
        "orders",
        "//orders",
        "api://",
        "api:/orders",
        "http://orders.example",
        "ftp://orders",
        "api://a b",
        "api://tab\there",
        "api://x/.default",
        "api://x/",
        "api://x?y=1",
        "api://x#frag",
        "api://*",
        "api://nul\u{0}",
        "api://clavis",
    ];
    let dup = Uuid::new_v4();
    let bad_roles = [
        json!([role(Uuid::new_v4(), "has space")]),
        json!([role(Uuid::new_v4(), "tab\there")]),
        json!([role(Uuid::new_v4(), "")]),
        json!([role(Uuid::new_v4(), ".dot")]),
        json!([role(Uuid::new_v4(), &"r".repeat(121))]),
        json!([role(dup, "One"), role(dup, "Two")]),
        json!([role(Uuid::new_v4(), "Same"), role(Uuid::new_v4(), "same")]),
        json!([{"id": Uuid::new_v4(), "value": "A", "displayName": "A", "allowedMemberTypes": []}]),
        json!([{"id": Uuid::new_v4(), "value": "A", "displayName": "A", "allowedMemberTypes": ["Robot"]}]),
        json!([{"id": Uuid::new_v4(), "value": "A", "displayName": "", "allowedMemberTypes": ["Application"]}]),
        json!([{"id": Uuid::new_v4(), "value": "A", "displayName": "a\u{7}", "allowedMemberTypes": ["Application"]}]),
        Value::Array(
            (0..251)
                .map(|i| role(Uuid::new_v4(), &format!("R{i}")))
                .collect(),
        ),
    ];
    let mut cases = Vec::new();
    for name in &names {
        let shown: String = name.chars().take(20).collect();
        cases.push(json_case(
            format!("create, displayName {shown:?}"),
            Method::POST,
            apps,
            json!({"displayName": name}),
        ));
        cases.push(json_case(
            format!("patch, displayName {shown:?}"),
            Method::PATCH,
            &t.app_path,
            json!({"displayName": name}),
        ));
    }
    let long_uri = format!("api://{}", "u".repeat(300));
    let many_uris: Vec<String> = (0..51).map(|i| format!("api://many-{i}")).collect();
    for uri in uris.iter().copied().chain([long_uri.as_str()]) {
        cases.push(json_case(
            format!("create, identifierUri {uri:?}"),
            Method::POST,
            apps,
            json!({"displayName": "x", "identifierUris": [uri]}),
        ));
        cases.push(json_case(
            format!("patch, identifierUri {uri:?}"),
            Method::PATCH,
            &t.app_path,
            json!({"identifierUris": [uri]}),
        ));
    }
    cases.push(json_case(
        "51 identifierUris",
        Method::POST,
        apps,
        json!({"displayName": "x", "identifierUris": many_uris}),
    ));
    cases.push(json_case(
        "identifierUri of another app",
        Method::POST,
        apps,
        json!({"displayName": "x", "identifierUris": ["api://target"]}),
    ));
    for roles in &bad_roles {
        let shown: String = roles.to_string().chars().take(80).collect();
        cases.push(json_case(
            format!("create, appRoles {shown}"),
            Method::POST,
            apps,
            json!({"displayName": "x", "appRoles": roles}),
        ));
        cases.push(json_case(
            format!("patch, appRoles {shown}"),
            Method::PATCH,
            &t.app_path,
            json!({"appRoles": roles}),
        ));
    }
    // A valid change alongside an invalid one changes nothing either.
    cases.push(json_case(
        "valid name with a bad URI",
        Method::PATCH,
        &t.app_path,
        json!({"displayName": "renamed", "identifierUris": ["nope"]}),
    ));
    run(&app, &t, cases).await;
}

#[tokio::test]
async fn non_ascii_identifier_uris_are_a_400() {
    let app = spawn_app().await;
    let t = targets(&app).await;
    let cases = ["€€€€", "abc€x", "ürn:x", "api://bücher"]
        .into_iter()
        .map(|uri| {
            json_case(
                format!("{uri:?}"),
                Method::POST,
                "/v1.0/applications",
                json!({"displayName": "x", "identifierUris": [uri]}),
            )
        })
        .collect();
    run(&app, &t, cases).await;
}

#[tokio::test]
async fn management_query_options_are_strict() {
    let app = spawn_app().await;
    let t = targets(&app).await;
    let list_queries = [
        "$top=0",
        "$top=abc",
        "$top=1000",
        "$top=-1",
        "$top=1.5",
        "$top=",
        "$top=99999999999",
        "$top=%ff",
        "$top=1&$top=2",
        "$filter=x&$filter=y",
        "$select=id&$select=appId",
        "$count=true",
        "$orderby=displayName",
        "$expand=owners",
        "$search=%22x%22",
        "foo=bar",
        "$filter=startswith(displayName,'a')",
        "$filter=appId%20eq%20'nope'",
        "$filter=displayName%20eq%20'unterminated",
        "$filter=displayName%20eq%20'a'%20or%20displayName%20eq%20'b'",
        "$filter=",
        "$filter=%zz",
        "$skiptoken=garbage",
    ];
    let mut cases = Vec::new();
    for q in list_queries {
        for base in [
            "/v1.0/applications",
            "/v1.0/servicePrincipals",
            "/v1.0/auditLogs/directoryAudits",
        ] {
            cases.push(case(
                format!("query {q}"),
                Method::GET,
                &format!("{base}?{q}"),
                None,
                vec![],
                400,
            ));
        }
    }
    for q in [
        "$filter=activityDateTime%20ge%20yesterday",
        "$filter=result%20eq%20'failure'",
        "$filter=activityDisplayName%20eq%20'x'%20or%20activityDisplayName%20eq%20'y'",
        "$skiptoken=1_nope",
        "$skiptoken=abc_00000000-0000-0000-0000-000000000000",
        "$skiptoken=99999999999999999999_00000000-0000-0000-0000-000000000000",
    ] {
        cases.push(case(
            format!("audit query {q}"),
            Method::GET,
            &format!("/v1.0/auditLogs/directoryAudits?{q}"),
            None,
            vec![],
            400,
        ));
    }
    run(&app, &t, cases).await;
}

#[tokio::test]
async fn audit_skiptoken_overflow_is_a_400() {
    let app = spawn_app().await;
    let t = targets(&app).await;
    let q = "$skiptoken=1000000000000000000000000000000000000_00000000-0000-0000-0000-000000000000";
    run(
        &app,
        &t,
        vec![case(
            q,
            Method::GET,
            &format!("/v1.0/auditLogs/directoryAudits?{q}"),
            None,
            vec![],
            400,
        )],
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let app = spawn_app().await;
    let http = client();
    let admin = app.admin_token().await;
    let id = Uuid::new_v4();
    for (method, path) in [
        (Method::GET, "/".to_owned()),
        (Method::GET, "/nope".to_owned()),
        (Method::GET, "/v1.0".to_owned()),
        (Method::GET, "/v1.0/nope".to_owned()),
        (Method::GET, "/v1.0/users".to_owned()),
        (Method::POST, format!("/v1.0/applications/{id}/addKey")),
        (Method::GET, format!("/v1.0/applications/{id}/owners")),
        (Method::GET, "/default/oauth2/v2.0/nope".to_owned()),
        (Method::POST, "/default/oauth2/v2.0/token/extra".to_owned()),
        (Method::POST, "/default/oauth2/token".to_owned()),
        (Method::GET, "/default/v2.0/.well-known/nope".to_owned()),
        (Method::GET, format!("/{}", "a/".repeat(2000))),
    ] {
        let a = send(
            &http,
            method.clone(),
            &format!("{}{path}", app.base),
            Some(JSON),
            bearer(&admin),
            b"{}".to_vec(),
        )
        .await;
        let what = format!("{method} {}", &path[..path.len().min(60)]);
        let v = graph_error(&what, &a, 404);
        assert_eq!(v["error"]["code"], "Request_ResourceNotFound", "{what}");
        assert!(a.text.len() < 8 * 1024, "{what}: {} bytes", a.text.len());
    }
}

#[tokio::test]
async fn a_burst_of_bad_requests_leaves_the_server_healthy() {
    let app = spawn_app().await;
    let t = targets(&app).await;
    let http = client();
    let before = snapshot(&app, &http, &t.admin, &t.resource_sp).await;
    let mut handles = Vec::new();
    for i in 0..50 {
        let http = http.clone();
        let base = app.base.clone();
        let token_url = app.token_url("default");
        let admin = t.admin.clone();
        let app_path = t.app_path.clone();
        let admin_id = app.admin_id.clone();
        handles.push(tokio::spawn(async move {
            let graph = |p: &str| format!("{base}{p}");
            let big = [
                b"grant_type=client_credentials&x=".as_slice(),
                &vec![b'a'; 80 * 1024],
            ]
            .concat();
            let (what, a) = match i % 10 {
                0 => (
                    "oversized token body",
                    send(&http, Method::POST, &token_url, Some(FORM), None, big).await,
                ),
                1 => (
                    "JSON to the token endpoint",
                    send(
                        &http,
                        Method::POST,
                        &token_url,
                        Some(JSON),
                        None,
                        b"{}".to_vec(),
                    )
                    .await,
                ),
                2 => (
                    "wrong secret",
                    send(
                        &http,
                        Method::POST,
                        &token_url,
                        Some(FORM),
                        None,
                        form(&[
                            ("grant_type", "client_credentials"),
                            ("client_id", &admin_id),
                            ("client_secret", "wrong"),
                            ("scope", MGMT_SCOPE),
                        ]),
                    )
                    .await,
                ),
                3 => (
                    "garbage bearer",
                    send(
                        &http,
                        Method::GET,
                        &graph("/v1.0/applications"),
                        None,
                        bearer("garbage"),
                        vec![],
                    )
                    .await,
                ),
                4 => (
                    "malformed JSON",
                    send(
                        &http,
                        Method::POST,
                        &graph("/v1.0/applications"),
                        Some(JSON),
                        bearer(&admin),
                        b"{".to_vec(),
                    )
                    .await,
                ),
                5 => (
                    "bad $top",
                    send(
                        &http,
                        Method::GET,
                        &graph("/v1.0/applications?$top=abc"),
                        None,
                        bearer(&admin),
                        vec![],
                    )
                    .await,
                ),
                6 => (
                    "unknown route",
                    send(&http, Method::GET, &graph("/v1.0/nope"), None, None, vec![]).await,
                ),
                7 => (
                    "long display name",
                    send(
                        &http,
                        Method::PATCH,
                        &graph(&app_path),
                        Some(JSON),
                        bearer(&admin),
                        json!({"displayName": "x".repeat(300)})
                            .to_string()
                            .into_bytes(),
                    )
                    .await,
                ),
                8 => (
                    "bad Basic",
                    send(
                        &http,
                        Method::POST,
                        &token_url,
                        Some(FORM),
                        Some(HeaderValue::from_static("Basic !!!")),
                        b"grant_type=client_credentials".to_vec(),
                    )
                    .await,
                ),
                _ => (
                    "oversized management body",
                    send(
                        &http,
                        Method::POST,
                        &graph("/v1.0/applications"),
                        Some(JSON),
                        bearer(&admin),
                        vec![b' '; 80 * 1024],
                    )
                    .await,
                ),
            };
            (what, a)
        }));
    }
    for h in handles {
        let (what, a) = h.await.expect("task");
        assert!(
            a.status.is_client_error(),
            "{what}: {} {}",
            a.status,
            a.text
        );
        assert!(
            a.content_type.starts_with(JSON),
            "{what}: {:?}",
            a.content_type
        );
    }
    let a = send(
        &http,
        Method::GET,
        &format!("{}/healthz", app.base),
        None,
        None,
        vec![],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(
        &http,
        Method::GET,
        &format!("{}/readyz", app.base),
        None,
        None,
        vec![],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let token = app.admin_token().await;
    assert_eq!(snapshot(&app, &http, &token, &t.resource_sp).await, before);
}
