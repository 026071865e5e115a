//! The Rust `azure_identity` crate gets a token from a real Clavis over TLS
//! with docs/azure-sdks.md's snippet: the code between the two markers
//! below, which the page must show verbatim (checked here).

// snippet begin
use std::path::Path;
use std::sync::Arc;

use azure_core::cloud::CustomConfiguration;
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};

/// A token for `scope` from the Clavis at `authority_host`
/// (`https://127.0.0.1:8443`), trusting the CA in `ca_pem`.
async fn clavis_token(
    authority_host: &str,
    ca_pem: &Path,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_pem)?)?;
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()?;
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = authority_host.to_owned();
    let options = ClientSecretCredentialOptions {
        client_options: ClientOptions {
            cloud: Some(Arc::new(cloud.into())),
            transport: Some(Transport::new(Arc::new(http))),
            ..Default::default()
        },
    };
    let credential = ClientSecretCredential::new(
        "default",
        client_id.to_owned(),
        Secret::new(secret.to_owned()),
        Some(options),
    )?;
    let token = credential.get_token(&[scope], None).await?;
    Ok(token.token.secret().to_owned())
}
// snippet end

use super::helpers::spawn_with;
use super::snippets;

#[test]
fn the_page_shows_the_tested_code() {
    let source = include_str!("azure_identity_rs.rs");
    let begin = "// snippet begin\n";
    let from = source.find(begin).expect("begin marker") + begin.len();
    let to = source.find("// snippet end\n").expect("end marker");
    assert_eq!(
        snippets::snippet("docs/azure-sdks.md", "azure-identity-rust"),
        source[from..to],
        "docs/azure-sdks.md's Rust snippet differs from the tested code in azure_identity_rs.rs"
    );
}

#[tokio::test]
async fn azure_identity_crate_gets_a_token_or_the_servers_error() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let (api, client) = snippets::orders(&app).await;
    let ca = app.data_dir().join("tls/ca.pem");
    let scope = "api://orders/.default";
    // Clavis's generated CA is in no system store: a token proves `ca_pem` was used.
    let token = clavis_token(&app.base, &ca, &client.app_id, &client.secret, scope)
        .await
        .expect("a token");
    snippets::assert_orders_token(&app, &api, &client, &token);

    let wrong = format!("{}x", client.secret);
    let err = clavis_token(&app.base, &ca, &client.app_id, &wrong, scope)
        .await
        .expect_err("a wrong secret fails");
    let err = err.to_string();
    assert!(err.contains("AADSTS7000215: "), "{err}");
    assert!(!err.contains(&wrong), "{err}");
}
