//! Resource servers written for Entra verify Clavis tokens unchanged: PyJWT
//! (`PyJWKClient`, `algorithms=["RS256"]`, as Microsoft's samples) and
//! jose for Node (`createRemoteJWKSet` + `jwtVerify`, `algorithms:
//! ['RS256']`), fetching the JWKS over HTTPS with Clavis's local CA. Both
//! also check each key's certificate (`x5c`, `x5t`), and both refuse a
//! token of a tenant switched to ES256: why new tenants sign RS256.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

use super::helpers::{header, npm_project, spawn_with, venv_python, workspace};

/// The venv of the interop test, with PyJWT (from its requirements).
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("CLAVIS_INTEROP_PYTHON") {
        return PathBuf::from(p);
    }
    venv_python("tests/interop/requirements.txt", "import jwt, cryptography")
}

/// `tests/resource-servers` with its locked packages (`npm ci`).
fn node_project() -> PathBuf {
    npm_project("tests/resource-servers")
}

/// The JSON lines a verifier printed; its output in the panic if it failed.
fn lines(name: &str, output: &Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} failed:\n{stdout}\n{stderr}"
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn run(mut command: Command, env: &[(&str, String)], ca: &Path) -> Output {
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .env("NODE_EXTRA_CA_CERTS", ca)
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .output()
        .expect("verifier runs")
}

#[tokio::test]
async fn pyjwt_and_jose_verify_rs256_tokens_and_each_keys_certificate() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let admin = app.admin_token().await;
    let (api, role_id) = app
        .register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "orders-worker").await;
    let api_id = api["appId"].as_str().unwrap().to_owned();
    let (status, _) = app.grant(&admin, &api_id, &client.sp_id, &role_id).await;
    assert_eq!(status, 201);
    let scope = "api://orders/.default";
    let rs256 = app.token(&client.app_id, &client.secret, scope).await;
    assert_eq!(header(&rs256)["alg"], "RS256", "the default");

    // The same tenant switched to ES256 (one policy change): its tokens
    // verify for code that allows ES256, and RS256-only code refuses them.
    let (status, body) = app
        .graph(
            reqwest::Method::PATCH,
            "/v1.0/policies/tenantPolicy",
            &admin,
            Some(json!({"signingAlgorithm": "ES256"})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let es256 = app.token(&client.app_id, &client.secret, scope).await;
    assert_eq!(header(&es256)["alg"], "ES256");

    let ca = app.data_dir().join("tls/ca.pem");
    let env = [
        (
            "CLAVIS_JWKS_URL",
            format!("{}/{}/discovery/v2.0/keys", app.base, app.tenant_id),
        ),
        (
            "CLAVIS_ISSUER",
            format!("{}/{}/v2.0", app.base, app.tenant_id),
        ),
        ("CLAVIS_AUDIENCE", api_id.clone()),
        ("CLAVIS_CA", ca.display().to_string()),
        ("CLAVIS_RS256_TOKEN", rs256),
        ("CLAVIS_ES256_TOKEN", es256),
    ];
    let python = python();
    let node = node_project();
    let script = workspace().join("tests/interop/resource_server.py");
    // Run the blocking verifiers off the runtime that serves them.
    let (py, js) = tokio::task::spawn_blocking(move || {
        let mut py = Command::new(python);
        py.arg(script);
        let mut js = Command::new("node");
        js.arg("verify.mjs").current_dir(node);
        (run(py, &env, &ca), run(js, &env, &ca))
    })
    .await
    .unwrap();

    for (name, output) in [("PyJWT", py), ("jose", js)] {
        let lines = lines(name, &output);
        assert_eq!(lines.len(), 2, "{name}: {lines:?}");
        let claims = &lines[0]["claims"];
        assert_eq!(claims["aud"], api_id, "{name}");
        assert_eq!(claims["azp"], client.app_id, "{name}");
        assert_eq!(claims["roles"], json!(["Orders.Read"]), "{name}");
        assert!(lines[1].get("refused").is_some(), "{name}: {}", lines[1]);
    }
}
