//! The code blocks of the README and docs/azure-sdks.md that the interop
//! tests run exactly as written: a block follows a `<!-- snippet: NAME -->`
//! line, its server is the README's `127.0.0.1:8443` (rewritten to the test
//! server's), and it runs from a scratch directory where `clavis-data` is the
//! test server's data directory, so `clavis-data/tls/ca.pem` is its CA.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use tempfile::TempDir;

use super::helpers::{Registered, TestApp};

use super::helpers::workspace;

/// The code block after `<!-- snippet: NAME -->` in `doc` (a path from the
/// workspace root), as written.
pub fn snippet(doc: &str, name: &str) -> String {
    let text = std::fs::read_to_string(workspace().join(doc)).expect("doc readable");
    let marker = format!("<!-- snippet: {name} -->");
    let at = text
        .find(&marker)
        .unwrap_or_else(|| panic!("{doc} has no `{marker}`"));
    let mut lines = text[at + marker.len()..].lines().skip(1);
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.starts_with("```"),
        "in {doc}, `{marker}` must be followed by a code block, not {fence:?}"
    );
    let code: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    code.join("\n") + "\n"
}

/// What a snippet run printed.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The last line of standard output (what the snippets print).
    pub fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or_default()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok: {}\nstdout:\n{}\nstderr:\n{}",
            self.ok, self.stdout, self.stderr
        )
    }
}

/// A scratch directory to run snippets in against one test server.
pub struct Sandbox {
    dir: TempDir,
    host: String,
}

impl Sandbox {
    pub fn new(app: &TestApp) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::os::unix::fs::symlink(app.data_dir(), dir.path().join("clavis-data"))
            .expect("symlink clavis-data");
        let node_modules = workspace().join("tests/interop-node/node_modules");
        std::os::unix::fs::symlink(node_modules, dir.path().join("node_modules"))
            .expect("symlink node_modules");
        let host = app.base.trim_start_matches("https://").to_owned();
        Sandbox { dir, host }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `prelude`, then the snippet for this server, then `epilogue`
    /// into `file`, and return a command that runs it with `program` here.
    pub fn command(
        &self,
        program: &Path,
        file: &str,
        prelude: &str,
        code: &str,
        epilogue: &str,
    ) -> Command {
        let code = code.replace("127.0.0.1:8443", &self.host);
        let path = self.dir.path().join(file);
        std::fs::write(&path, format!("{prelude}{code}{epilogue}")).expect("write snippet");
        let mut cmd = Command::new(program);
        cmd.arg(&path).current_dir(self.dir.path());
        // requests prefers these to MSAL's `verify=`; a test that wants them sets them.
        cmd.env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE")
            .env_remove("NODE_EXTRA_CA_CERTS");
        cmd
    }
}

/// Run `cmd` off the runtime that serves the test server.
pub async fn run(mut cmd: Command) -> Run {
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("snippet runs"))
        .await
        .unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The README's set-up: `api://orders` with the role `Orders.Read`, granted
/// to a client. Returns the API's application and the client.
pub async fn orders(app: &TestApp) -> (Value, Registered) {
    let admin = app.admin_token().await;
    let (api, role_id) = app
        .register_api(&admin, "api://orders", "Orders.Read")
        .await;
    let client = app.register_client(&admin, "Billing worker").await;
    let (status, body) = app
        .grant(
            &admin,
            api["appId"].as_str().unwrap(),
            &client.sp_id,
            &role_id,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (api, client)
}

/// Assert that `token` is the README's client's token for the Orders API.
pub fn assert_orders_token(app: &TestApp, api: &Value, client: &Registered, token: &str) {
    let c = super::helpers::claims(token);
    assert_eq!(c["aud"], api["appId"], "{c}");
    assert_eq!(c["azp"], client.app_id.as_str(), "{c}");
    assert_eq!(c["roles"], json!(["Orders.Read"]), "{c}");
    assert_eq!(c["iss"], format!("{}/{}/v2.0", app.base, app.tenant_id));
}
