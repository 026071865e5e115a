//! The Azure CLI and the Microsoft Graph SDK for Python against a real
//! Clavis over HTTPS, each run from the code blocks of docs/azure-sdks.md
//! (so the page cannot drift from what works). The tools come from PyPI
//! into `{workspace}/.venv` (`tests/azure-sdks/requirements.txt`; `.ci/run`
//! installs them, or this test does on first run).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::helpers::{claims, spawn_with, venv_python, Registered, TestApp};
use super::snippets;

/// The venv's `bin` directory with `az` and a Python with msgraph-sdk,
/// installing them if needed.
fn venv_bin() -> PathBuf {
    let python = venv_python(
        "tests/azure-sdks/requirements.txt",
        "import msgraph, azure.cli.core",
    );
    let bin = python.parent().expect("the venv's bin").to_path_buf();
    assert!(
        bin.join("az").exists(),
        "azure-cli installs `az` in {}",
        bin.display()
    );
    bin
}

/// Run `program args…` with the page's variables for `client`, off the
/// runtime that serves it.
async fn run(
    app: &TestApp,
    client: &Registered,
    secret: &str,
    program: PathBuf,
    args: Vec<String>,
    extra: Vec<(&'static str, String)>,
) -> Output {
    let bin = venv_bin();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("PATH", path),
        ("CLAVIS_URL", app.base.clone()),
        (
            "CLAVIS_CA",
            app.data_dir().join("tls/ca.pem").display().to_string(),
        ),
        ("TENANT", app.tenant_id.clone()),
        ("CLIENT_ID", client.app_id.clone()),
        ("SECRET", secret.to_owned()),
    ];
    tokio::task::spawn_blocking(move || {
        let program = if program.is_relative() {
            bin.join(program)
        } else {
            program
        };
        Command::new(program)
            .args(args)
            .envs(env)
            .envs(extra)
            // Only what the page sets: no CA or Azure settings from outside.
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE")
            .env_remove("SSL_CERT_FILE")
            .env_remove("AZURE_CORE_INSTANCE_DISCOVERY")
            .output()
            .expect("the tool runs")
    })
    .await
    .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A fresh Azure CLI configuration directory (the page's block registers the cloud).
fn az_config(app: &TestApp, name: &str) -> Vec<(&'static str, String)> {
    let dir = app.data_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    vec![
        ("AZURE_CONFIG_DIR", dir.display().to_string()),
        // Not needed to work: keeps az from starting a background upload
        // that would outlive the test.
        ("AZURE_CORE_COLLECT_TELEMETRY", "false".to_owned()),
    ]
}

#[tokio::test]
async fn azure_cli_signs_in_and_calls_clavis_as_the_page_shows() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "az-reader").await;
    app.grant_management(&admin, &client.sp_id, "Application.Read.All")
        .await;
    let script = snippets::snippet("docs/azure-sdks.md", "azure-cli");
    let bash = || -> Vec<String> {
        ["-euo", "pipefail", "-c", &script]
            .map(str::to_owned)
            .to_vec()
    };

    let output = run(
        &app,
        &client,
        &client.secret,
        PathBuf::from("/bin/bash"),
        bash(),
        az_config(&app, "az"),
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "az failed:\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    // `az account get-access-token`: a management API token for this client.
    let token = claims(lines[0]);
    assert_eq!(token["aud"], claims(&admin)["aud"], "{token}");
    assert_eq!(token["azp"], client.app_id);
    assert_eq!(token["tid"], app.tenant_id);
    assert_eq!(token["roles"], serde_json::json!(["Application.Read.All"]));
    // `az rest` on /v1.0/applications with it.
    for name in [
        "Clavis Management API",
        "Clavis bootstrap admin",
        "az-reader",
    ] {
        assert!(lines[1..].contains(&name), "{name} missing from:\n{stdout}");
    }
    assert!(!stdout.contains(&client.secret) && !stderr.contains(&client.secret));

    // A wrong secret: az login fails with Clavis's code, and says so. (The
    // tenant by name this time: az resolves it through discovery first.)
    let mut config = az_config(&app, "az-wrong");
    config.push(("TENANT", "default".to_owned()));
    let output = run(
        &app,
        &client,
        &format!("{}x", client.secret),
        PathBuf::from("/bin/bash"),
        bash(),
        config,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("7000215"), "{stderr}");
}

#[tokio::test]
async fn graph_sdk_lists_applications_and_adds_and_removes_a_secret_as_the_page_shows() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "graph-admin").await;
    app.grant_management(&admin, &client.sp_id, "Application.ReadWrite.All")
        .await;
    let target = app
        .create_app(&admin, serde_json::json!({"displayName": "graph-target"}))
        .await;
    let script = app.data_dir().join("graph_sdk.py");
    std::fs::write(
        &script,
        snippets::snippet("docs/azure-sdks.md", "msgraph-sdk-python"),
    )
    .unwrap();
    let python = |script: &Path| vec![script.display().to_string()];
    let app_name = vec![("APP_NAME", "graph-target".to_owned())];

    let output = run(
        &app,
        &client,
        &client.secret,
        PathBuf::from("python"),
        python(&script),
        app_name.clone(),
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "msgraph-sdk failed:\n{stdout}\n{stderr}"
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let names = lines[0]["applications"].as_array().unwrap();
    assert!(names.contains(&"graph-target".into()), "{stdout}");
    let key_id = lines[1]["added"].as_str().unwrap();
    assert_eq!(lines[1]["hint"].as_str().unwrap().len(), 3);
    assert_eq!(lines[2]["removed"], key_id);
    // The secret was there and is gone: the audit log saw both.
    let (status, read) = app
        .get(
            &format!("/v1.0/applications/{}", target["id"].as_str().unwrap()),
            &admin,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(read["passwordCredentials"], serde_json::json!([]), "{read}");
    let (_, audits) = app.get("/v1.0/auditLogs/directoryAudits", &admin).await;
    let audits = audits.to_string();
    assert!(audits.contains(key_id), "{audits}");

    // Without a role the SDK raises Graph's error (an ODataError) with the
    // status and the message naming the roles.
    let reader = app.register_client(&admin, "graph-no-role").await;
    let output = run(
        &app,
        &reader,
        &reader.secret,
        PathBuf::from("python"),
        python(&script),
        app_name,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("ODataError: Insufficient privileges") && stderr.contains("status 403"),
        "{stderr}"
    );
}
