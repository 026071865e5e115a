//! Interop: MSAL Python and azure-identity get tokens from a real Clavis
//! over HTTPS with the generated local CA, changed in nothing but the
//! authority and the CA to trust. The Python environment is created on first
//! run in `{workspace}/.venv` (or `CLAVIS_INTEROP_PYTHON` names one).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::helpers::spawn_with;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Python with msal and azure-identity, installing them if needed.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("CLAVIS_INTEROP_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace().join(".venv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import msal, azure.identity"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed for the interop test (apt-get install python3-venv)")
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(workspace().join("tests/interop/requirements.txt"))
            .status()
            .expect("pip runs")
            .success();
        assert!(ok, "pip install of msal and azure-identity failed");
    }
    python
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
