//! The server accepts what `/openapi.json` says is valid and refuses what it
//! forbids. Each test here is a case that `tests/schemathesis/run` found
//! (issue #7, item 2), kept as a regression test of the fix.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::helpers::spawn_app;

/// JSON has one kind of number: `30.0` is the integer 30, as JSON Schema's
/// `"type": "integer"` says. A fraction is still refused.
#[tokio::test]
async fn a_whole_number_written_with_a_fraction_is_an_integer() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (status, body) = app
        .graph(
            Method::PATCH,
            "/v1.0/policies/tenantPolicy",
            &token,
            Some(json!({"maxSecretLifetimeDays": 400.0, "defaultSecretLifetimeDays": 30.0})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, policy) = app.get("/v1.0/policies/tenantPolicy", &token).await;
    assert_eq!(policy["maxSecretLifetimeDays"], 400, "{policy}");
    assert_eq!(policy["defaultSecretLifetimeDays"], 30, "{policy}");

    let (status, body) = app
        .graph(
            Method::PATCH,
            "/v1.0/policies/tenantPolicy",
            &token,
            Some(json!({"maxSecretLifetimeDays": 30.5})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, policy) = app.get("/v1.0/policies/tenantPolicy", &token).await;
    assert_eq!(policy["maxSecretLifetimeDays"], 400, "unchanged: {policy}");
}

/// `and` inside a quoted literal does not split a `$filter`.
#[tokio::test]
async fn a_filter_literal_may_contain_and() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let filter =
        "activityDisplayName eq 'Search and replace' and activityDateTime ge 2026-01-01T00:00:00Z";
    let path = format!(
        "/v1.0/auditLogs/directoryAudits?$filter={}",
        urlencoding(filter)
    );
    let (status, body) = app.get(&path, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], json!([]), "{body}");

    let created = app
        .create_app(&token, json!({"displayName": "Fish and chips"}))
        .await;
    let filter = format!(
        "targetResources/any(t:t/id eq '{}') and activityDisplayName eq 'Add application'",
        created["id"].as_str().unwrap()
    );
    let (status, body) = app
        .get(
            &format!(
                "/v1.0/auditLogs/directoryAudits?$filter={}",
                urlencoding(&filter)
            ),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"].as_array().map(Vec::len), Some(1), "{body}");
}

/// `thresholdDays` holds at most ten values, as the schema's `maxItems`
/// says, even when fewer of them are distinct.
#[tokio::test]
async fn more_than_ten_thresholds_are_refused_even_when_repeated() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (status, body) = app
        .post(
            "/v1.0/webhooks",
            &token,
            json!({"url": "https://hooks.example.com/x", "thresholdDays": vec![1; 11]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, list) = app.get("/v1.0/webhooks", &token).await;
    assert_eq!(list["value"], json!([]), "nothing stored: {list}");

    let (status, body) = app
        .post(
            "/v1.0/webhooks",
            &token,
            json!({"url": "https://hooks.example.com/x", "thresholdDays": [7, 7, 1]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["thresholdDays"], json!([7, 1]), "{body}");
}

/// A webhook URL follows the grammar the document states: a URL parser
/// alone took `https://A*` (host `a*`, which no DNS name can be).
#[tokio::test]
async fn a_webhook_url_must_name_a_real_host() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    for url in [
        "https://A*",
        "https://example.com./x",
        "https://example.com:/x",
    ] {
        let (status, body) = app
            .post("/v1.0/webhooks", &token, json!({ "url": url }))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
    }
    let (_, list) = app.get("/v1.0/webhooks", &token).await;
    assert_eq!(list["value"], json!([]), "nothing stored: {list}");
    let (status, body) = app
        .post(
            "/v1.0/webhooks",
            &token,
            json!({ "url": "https://A.example:8443/hook?x=1" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Internal targets fit the grammar but need --allow-internal-webhooks
    // (webhook_egress.rs); with it, they are accepted.
    let allowing =
        super::helpers::spawn_tuned(tempfile::tempdir().unwrap(), clavis::Tls::Off, |c| {
            c.allow_internal_webhooks = true
        })
        .await;
    let token = allowing.admin_token().await;
    for url in ["https://10.0.0.1/h", "http://localhost:9/h"] {
        let (status, body) = allowing
            .post("/v1.0/webhooks", &token, json!({ "url": url }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{url}: {body}");
    }
}

/// The document itself: unique operation ids (OpenAPI requires them), and
/// every management call documents Graph's errors with their schema.
#[tokio::test]
async fn the_openapi_document_is_valid_and_documents_errors() {
    let app = spawn_app().await;
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "{method} {path}: {id} twice");
            if path.starts_with("/v1.0/") {
                for status in ["400", "401", "403"] {
                    assert_eq!(
                        op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/GraphError",
                        "{method} {path} {status}"
                    );
                }
                if op.get("requestBody").is_some() {
                    assert!(op["responses"]["415"].is_object(), "{method} {path}");
                }
            }
        }
    }
    let name = &doc["components"]["schemas"]["CreateApplication"]["properties"]["displayName"];
    assert_eq!(name["minLength"], 1, "{name}");
    assert!(name["pattern"].is_string(), "{name}");
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
