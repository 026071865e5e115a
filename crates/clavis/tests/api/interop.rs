//! Interop: MSAL Python and azure-identity get tokens from a real Clavis
//! over HTTPS with the generated local CA, changed in nothing but the
//! authority and the CA to trust; the README's and docs/azure-sdks.md's
//! Python snippets run as written (`snippets.rs`), and PyJWT checks a token.
//! The Python environment is created on first run in `{workspace}/.venv` (or
//! `CLAVIS_INTEROP_PYTHON` names one).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::helpers::{spawn_with, venv_python, workspace};
use super::snippets;

/// A Python with msal, azure-identity and PyJWT, installing them if needed.
pub(super) fn python() -> PathBuf {
    if let Ok(p) = std::env::var("CLAVIS_INTEROP_PYTHON") {
        return PathBuf::from(p);
    }
    venv_python(
        "tests/interop/requirements.txt",
        "import msal, azure.identity, jwt",
    )
}

#[tokio::test]
async fn msal_and_azure_identity_get_tokens() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let admin = app.admin_token().await;
    let (api, role_id) = app
        .register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "python-worker").await;
    let (status, _) = app
        .grant(
            &admin,
            api["appId"].as_str().unwrap(),
            &client.sp_id,
            &role_id,
        )
        .await;
    assert_eq!(status, 201);

    let host = app.base.trim_start_matches("https://").to_owned();
    let script = workspace().join("tests/interop/azure_clients.py");
    let ca = app.data_dir().join("tls/ca.pem");
    let python = python();
    let (tenant, app_id, secret) = (
        app.tenant_id.clone(),
        client.app_id.clone(),
        client.secret.clone(),
    );
    // Run the blocking clients off the runtime that serves them.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("CLAVIS_HOST", host)
            .env("CLAVIS_TENANT", tenant)
            .env("CLAVIS_CLIENT_ID", app_id)
            .env("CLAVIS_CLIENT_SECRET", secret)
            .env("CLAVIS_SCOPE", "api://orders/.default")
            .env("CLAVIS_CA", ca)
            // requests lets these override a session's `verify=` (MSAL's and
            // azure-identity's CA option); the README says so too.
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE")
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "interop script failed:\n{stdout}\n{stderr}"
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for line in &lines[..2] {
        let c = &line["claims"];
        assert_eq!(c["aud"], api["appId"], "{line}");
        assert_eq!(c["azp"], client.app_id);
        assert_eq!(c["roles"], serde_json::json!(["Orders.Read"]));
        assert_eq!(c["iss"], format!("{}/{}/v2.0", app.base, app.tenant_id));
    }
    assert_eq!(lines[2]["error"], "invalid_client");
    assert_eq!(lines[2]["error_codes"][0], 7000215);
}

/// What every Python snippet is given: the names the docs say it uses.
const PY_PRELUDE: &str = "import os\nCLIENT_ID = os.environ[\"CLIENT_ID\"]\nSECRET = os.environ[\"SECRET\"]\nAPI_APP_ID = os.environ.get(\"API_APP_ID\")\nTENANT_ID = os.environ.get(\"TENANT_ID\")\n";

/// The README's and the page's MSAL Python and azure-identity snippets, as
/// written: a token with the right audience and role, and with a wrong
/// secret Clavis's AADSTS text reaches the caller (printed by the MSAL
/// snippet, not a `KeyError`; in azure-identity's exception).
#[tokio::test]
async fn the_documented_python_snippets_print_a_token_or_the_servers_error() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let (api, client) = snippets::orders(&app).await;
    let sandbox = snippets::Sandbox::new(&app);
    let python = python();
    for doc in ["README.md", "docs/azure-sdks.md"] {
        for name in ["msal-python", "azure-identity-python"] {
            let code = snippets::snippet(doc, name);
            for (secret, right) in [
                (client.secret.clone(), true),
                (format!("{}x", client.secret), false),
            ] {
                let mut cmd =
                    sandbox.command(&python, &format!("{name}.py"), PY_PRELUDE, &code, "");
                cmd.env("CLIENT_ID", &client.app_id).env("SECRET", &secret);
                let run = snippets::run(cmd).await;
                let what = format!("{doc} `{name}`, right secret: {right}\n{run}");
                if right {
                    assert!(run.ok, "{what}");
                    snippets::assert_orders_token(&app, &api, &client, run.last_line());
                    continue;
                }
                assert!(!run.stderr.contains("KeyError"), "{what}");
                assert!(
                    !run.stdout.contains(&secret) && !run.stderr.contains(&secret),
                    "{what}"
                );
                if name == "msal-python" {
                    assert!(run.ok, "{what}");
                    assert!(run.stdout.starts_with("AADSTS7000215: "), "{what}");
                } else {
                    assert!(!run.ok, "{what}");
                    assert!(run.stderr.contains("ClientAuthenticationError"), "{what}");
                    assert!(run.stderr.contains("AADSTS7000215: "), "{what}");
                }
            }
        }
    }
}

/// `REQUESTS_CA_BUNDLE` replaces MSAL's `verify=` (requests'
/// `merge_environment_settings` prefers it to a session's `verify`) but not
/// azure-identity's `connection_verify=` (azure-core passes it with each
/// call), as the README and docs/azure-sdks.md say.
#[tokio::test]
async fn requests_ca_bundle_overrides_msal_verify_but_not_azure_identity_connection_verify() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let (api, client) = snippets::orders(&app).await;
    let sandbox = snippets::Sandbox::new(&app);
    let python = python();
    // A bundle of public CAs, without Clavis's.
    let certifi = Command::new(&python)
        .args(["-c", "import certifi; print(certifi.where())"])
        .output()
        .expect("python runs");
    assert!(certifi.status.success());
    let other_cas = String::from_utf8(certifi.stdout).unwrap().trim().to_owned();
    let ours = app.data_dir().join("tls/ca.pem");
    let mut results = Vec::new();
    for name in ["msal-python", "azure-identity-python"] {
        let code = snippets::snippet("README.md", name);
        for bundle in [PathBuf::from(&other_cas), ours.clone()] {
            let mut cmd = sandbox.command(&python, &format!("{name}.py"), PY_PRELUDE, &code, "");
            cmd.env("CLIENT_ID", &client.app_id)
                .env("SECRET", &client.secret)
                .env("REQUESTS_CA_BUNDLE", &bundle);
            let run = snippets::run(cmd).await;
            results.push((name, bundle == ours, run));
        }
    }
    for (name, ours, run) in &results {
        match (*name, *ours) {
            // MSAL trusts the environment's bundle, not its verify=.
            ("msal-python", false) => {
                assert!(!run.ok, "{run}");
                assert!(run.stderr.contains("CERTIFICATE_VERIFY_FAILED"), "{run}");
            }
            // azure-identity trusts its connection_verify= whatever the environment says.
            _ => {
                assert!(run.ok, "{name} with our CA in the bundle: {ours}\n{run}");
                snippets::assert_orders_token(&app, &api, &client, run.last_line());
            }
        }
    }
}

/// docs/azure-sdks.md's PyJWT resource server accepts a Clavis RS256 token
/// for its API (fetching the JWKS over TLS with Clavis's CA) and refuses the
/// same token when it is another API's.
#[tokio::test]
async fn pyjwt_snippet_verifies_a_clavis_token() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let (api, client) = snippets::orders(&app).await;
    let token = app
        .token(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    let sandbox = snippets::Sandbox::new(&app);
    let code = snippets::snippet("docs/azure-sdks.md", "pyjwt");
    let epilogue = "\nimport json\nprint(json.dumps(verify(os.environ[\"TOKEN\"])))\n";
    let python = python();
    let api_app_id = api["appId"].as_str().unwrap();
    for audience in [api_app_id, &client.app_id] {
        let mut cmd = sandbox.command(&python, "pyjwt.py", PY_PRELUDE, &code, epilogue);
        cmd.env("CLIENT_ID", "unused")
            .env("SECRET", "unused")
            .env("API_APP_ID", audience)
            .env("TENANT_ID", &app.tenant_id)
            .env("TOKEN", &token);
        let run = snippets::run(cmd).await;
        if audience == api_app_id {
            assert!(run.ok, "{run}");
            let claims: Value = serde_json::from_str(run.last_line()).expect("claims");
            assert_eq!(claims["roles"], serde_json::json!(["Orders.Read"]));
            assert_eq!(claims["aud"], api["appId"]);
        } else {
            assert!(!run.ok, "{run}");
            assert!(run.stderr.contains("InvalidAudienceError"), "{run}");
        }
    }
}
