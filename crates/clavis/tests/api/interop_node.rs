//! Interop on Node.js: docs/azure-sdks.md's msal-node, @azure/identity and
//! jose snippets, run as written (`snippets.rs`) against a real Clavis over
//! TLS with its generated CA, trusted through `NODE_EXTRA_CA_CERTS`. The
//! packages are `tests/interop-node/`'s, installed with `npm ci` on first run.

use std::path::PathBuf;

use serde_json::Value;

use super::helpers::spawn_with;
use super::snippets;

/// What every Node.js snippet is given: the names the page says it uses.
const JS_PRELUDE: &str = "const CLIENT_ID = process.env.CLIENT_ID;\nconst SECRET = process.env.SECRET;\nconst API_APP_ID = process.env.API_APP_ID;\nconst TENANT_ID = process.env.TENANT_ID;\n";

/// `node`, with `tests/interop-node/node_modules` installed (`npm ci`) if missing.
fn node() -> PathBuf {
    super::helpers::npm_project("tests/interop-node");
    PathBuf::from("node")
}

fn ca(sandbox: &snippets::Sandbox) -> PathBuf {
    sandbox.path().join("clavis-data/tls/ca.pem")
}

/// msal-node and @azure/identity get the README client's token with the
/// page's settings; with a wrong secret the caller sees Clavis's AADSTS text;
/// without `NODE_EXTRA_CA_CERTS` they get no token (nothing else made them
/// trust the CA).
#[tokio::test]
async fn msal_node_and_azure_identity_js_snippets_get_tokens_or_the_servers_error() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let (api, client) = snippets::orders(&app).await;
    let sandbox = snippets::Sandbox::new(&app);
    let node = node();
    for name in ["msal-node", "azure-identity-js"] {
        let code = snippets::snippet("docs/azure-sdks.md", name);
        let wrong = format!("{}x", client.secret);
        for (secret, trust) in [
            (&client.secret, true),
            (&wrong, true),
            (&client.secret, false),
        ] {
            let mut cmd = sandbox.command(&node, &format!("{name}.mjs"), JS_PRELUDE, &code, "");
            cmd.env("CLIENT_ID", &client.app_id).env("SECRET", secret);
            if trust {
                cmd.env("NODE_EXTRA_CA_CERTS", ca(&sandbox));
            }
            let run = snippets::run(cmd).await;
            let what = format!(
                "{name}, wrong secret: {}, CA trusted: {trust}\n{run}",
                secret == &wrong
            );
            match (secret == &wrong, trust) {
                (false, true) => {
                    assert!(run.ok, "{what}");
                    snippets::assert_orders_token(&app, &api, &client, run.last_line());
                }
                (true, _) => {
                    assert!(!run.ok, "{what}");
                    assert!(run.stderr.contains("AADSTS7000215: "), "{what}");
                    assert!(!run.stderr.contains(secret.as_str()), "{what}");
                }
                (false, false) => {
                    assert!(!run.ok, "{what}");
                    assert!(!run.stdout.contains("eyJ"), "{what}");
                }
            }
        }
    }
}

/// docs/azure-sdks.md's jose resource server accepts a Clavis RS256 token
/// for its API and refuses the same token as another API.
#[tokio::test]
async fn jose_snippet_verifies_a_clavis_token() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let (api, client) = snippets::orders(&app).await;
    let token = app
        .token(&client.app_id, &client.secret, "api://orders/.default")
        .await;
    let sandbox = snippets::Sandbox::new(&app);
    let code = snippets::snippet("docs/azure-sdks.md", "jose");
    let epilogue = "\nconsole.log(JSON.stringify(await verify(process.env.TOKEN)));\n";
    let node = node();
    let api_app_id = api["appId"].as_str().unwrap();
    for audience in [api_app_id, client.app_id.as_str()] {
        let mut cmd = sandbox.command(&node, "jose.mjs", JS_PRELUDE, &code, epilogue);
        cmd.env("API_APP_ID", audience)
            .env("TENANT_ID", &app.tenant_id)
            .env("TOKEN", &token)
            .env("NODE_EXTRA_CA_CERTS", ca(&sandbox));
        let run = snippets::run(cmd).await;
        if audience == api_app_id {
            assert!(run.ok, "{run}");
            let claims: Value = serde_json::from_str(run.last_line()).expect("claims");
            assert_eq!(claims["roles"], serde_json::json!(["Orders.Read"]));
            assert_eq!(claims["aud"], api["appId"]);
        } else {
            assert!(!run.ok, "{run}");
            assert!(run.stderr.contains("JWTClaimValidationFailed"), "{run}");
        }
    }
}
