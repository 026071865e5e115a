//! The `clavis` CLI against a real HTTPS server: the README's walk-through,
//! JSON output for scripts, and one-line errors with a non-zero exit.

use serde_json::Value;
use tokio::process::Command;

use super::helpers::spawn_with;

/// Runs the binary with its own config directory (profiles).
pub(super) struct Cli {
    pub(super) config: tempfile::TempDir,
}

pub(super) struct Out {
    pub(super) code: i32,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Cli {
    pub(super) async fn run(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clavis"));
        cmd.args(args)
            .env("CLAVIS_CONFIG_DIR", self.config.path())
            .env_remove("CLAVIS_PROFILE")
            .env_remove("CLAVIS_OUTPUT")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("clavis runs");
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().await.unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    pub(super) async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None).await;
        assert_eq!(
            out.code, 0,
            "clavis {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    pub(super) async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_str(&self.ok(&all).await).expect("json output")
    }
}

#[tokio::test]
async fn readme_walkthrough() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let cli = Cli {
        config: tempfile::tempdir().unwrap(),
    };
    let data = app.data_dir();
    cli.ok(&["login", "--bootstrap", data.to_str().unwrap()])
        .await;
    // The profile's secret file is private.
    let secret_file = cli.config.path().join("profiles/default.secret");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    cli.ok(&[
        "app",
        "create",
        "Orders API",
        "--identifier-uri",
        "api://orders",
    ])
    .await;
    cli.ok(&[
        "app",
        "role",
        "add",
        "api://orders",
        "--value",
        "Orders.Read",
        "--display-name",
        "Read orders",
    ])
    .await;
    let worker = cli.json(&["app", "create", "Billing worker"]).await;
    cli.ok(&[
        "role",
        "grant",
        "--client",
        "Billing worker",
        "--resource",
        "api://orders",
        "--role",
        "Orders.Read",
    ])
    .await;
    let secret = cli
        .json(&[
            "secret",
            "add",
            "Billing worker",
            "--name",
            "ci",
            "--expires",
            "90d",
        ])
        .await;
    let value = secret["secretText"].as_str().unwrap();
    assert!(value.starts_with("clavis_"));

    // The new secret works at the token endpoint and carries the role.
    let token = app
        .token(
            worker["appId"].as_str().unwrap(),
            value,
            "api://orders/.default",
        )
        .await;
    assert_eq!(
        super::helpers::claims(&token)["roles"],
        serde_json::json!(["Orders.Read"])
    );

    // Listing never shows the value.
    let list = cli.ok(&["secret", "list", "Billing worker"]).await;
    assert!(list.contains(secret["keyId"].as_str().unwrap()));
    assert!(!list.contains(value));
    let apps = cli.json(&["app", "list"]).await;
    assert!(apps
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["displayName"] == "Orders API"));
    assert!(!apps.to_string().contains(value));

    // Across the tenant: the 90-day secret ends within 100 days, the
    // bootstrap admin's (two years) does not.
    let soon = cli.json(&["secret", "list", "--expiring", "100d"]).await;
    let soon = soon.as_array().unwrap();
    assert_eq!(soon.len(), 1, "{soon:?}");
    assert_eq!(soon[0]["keyId"], secret["keyId"]);
    assert_eq!(soon[0]["application"], "Billing worker");
    let table = cli.ok(&["secret", "list", "--expiring", "100d"]).await;
    assert!(
        table.contains("ends in 89d") || table.contains("ends in 90d"),
        "{table}"
    );

    // A token as the logged-in app, decoded.
    let decoded = cli
        .json(&[
            "token",
            "get",
            "--scope",
            "api://orders/.default",
            "--decode",
        ])
        .await;
    assert_eq!(decoded["claims"]["azp"], app.admin_id);

    cli.ok(&[
        "secret",
        "remove",
        "Billing worker",
        secret["keyId"].as_str().unwrap(),
    ])
    .await;
    let r = app
        .token_post(
            worker["appId"].as_str().unwrap(),
            value,
            "api://orders/.default",
        )
        .await;
    assert_eq!(r.status(), 401);

    let audit = cli.ok(&["audit", "list", "--top", "20"]).await;
    assert!(audit.contains("Remove password credential"), "{audit}");
    assert!(!audit.contains(value));

    cli.ok(&["app", "delete", "Billing worker"]).await;
    let apps = cli.json(&["app", "list"]).await;
    assert!(!apps
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["displayName"] == "Billing worker"));
}

#[tokio::test]
async fn errors_are_one_line_with_a_hint_and_a_non_zero_exit() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let cli = Cli {
        config: tempfile::tempdir().unwrap(),
    };
    let authority = format!("{}/default", app.base);
    let ca = app.data_dir().join("tls/ca.pem");

    // Wrong secret on login: refused, nothing saved, the secret not echoed.
    let out = cli
        .run(
            &[
                "login",
                "--authority",
                &authority,
                "--client-id",
                &app.admin_id,
                "--ca-file",
                ca.to_str().unwrap(),
            ],
            Some("clavis_notTheRightSecretAtAll\n"),
        )
        .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(!out.stderr.contains("notTheRightSecret"));
    assert!(!cli.config.path().join("profiles/default.json").exists());

    // Without a profile: a hint to log in.
    let out = cli.run(&["app", "list"], None).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);

    // The right secret on stdin works.
    let out = cli
        .run(
            &[
                "login",
                "--authority",
                &authority,
                "--client-id",
                &app.admin_id,
                "--ca-file",
                ca.to_str().unwrap(),
            ],
            Some(&format!("{}\n", app.admin_secret)),
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stdout.contains(&app.admin_secret) && !out.stderr.contains(&app.admin_secret));

    let out = cli.run(&["app", "show", "no-such-app"], None).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "{}",
        out.stderr
    );

    let out = cli.run(&["secret", "add", "no-such-app"], None).await;
    assert_eq!(out.code, 1);

    // --help everywhere.
    for args in [
        &["--help"][..],
        &["app", "--help"],
        &["secret", "add", "--help"],
        &["role", "grant", "--help"],
        &["serve", "--help"],
    ] {
        let out = cli.run(args, None).await;
        assert_eq!(out.code, 0, "{args:?}");
        assert!(out.stdout.contains("Usage:"), "{args:?}");
    }
}

#[tokio::test]
async fn secret_rotate_adds_proves_and_removes() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let cli = Cli {
        config: tempfile::tempdir().unwrap(),
    };
    cli.ok(&["login", "--bootstrap", app.data_dir().to_str().unwrap()])
        .await;
    let worker = cli.json(&["app", "create", "Rotating worker"]).await;
    let first = cli.json(&["secret", "add", "Rotating worker"]).await;
    let old = first["secretText"].as_str().unwrap().to_owned();
    let id = worker["appId"].as_str().unwrap();
    let scope = format!("{id}/.default");

    // Keep the old one: both work.
    let kept = cli
        .json(&["secret", "rotate", "Rotating worker", "--expires", "30d"])
        .await;
    assert!(kept["removed"].as_array().unwrap().is_empty());
    let second = kept["added"]["secretText"].as_str().unwrap().to_owned();
    app.token(id, &old, &scope).await;
    app.token(id, &second, &scope).await;

    // Remove every other: only the newest works.
    let table = cli
        .ok(&["secret", "rotate", "Rotating worker", "--remove-others"])
        .await;
    assert!(table.contains("Removed old secrets"), "{table}");
    let newest = table
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("secret:")
                .map(|v| v.trim().to_owned())
        })
        .expect("the new value is printed once");
    app.token(id, &newest, &scope).await;
    for gone in [&old, &second] {
        assert_eq!(app.token_post(id, gone, &scope).await.status(), 401);
    }
    let list = cli.json(&["secret", "list", "Rotating worker"]).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn policy_show_and_set_for_the_tenant_and_one_application() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let cli = Cli {
        config: tempfile::tempdir().unwrap(),
    };
    cli.ok(&["login", "--bootstrap", app.data_dir().to_str().unwrap()])
        .await;
    cli.json(&["app", "create", "Strict worker"]).await;

    let tenant = cli
        .json(&[
            "policy",
            "set",
            "--max-secrets",
            "4",
            "--max-secret-lifetime",
            "1y",
        ])
        .await;
    assert_eq!(tenant["maxSecretsPerApplication"], 4, "{tenant}");
    assert_eq!(tenant["maxSecretLifetimeDays"], 365, "{tenant}");

    let strict = cli
        .json(&[
            "policy",
            "set",
            "--app",
            "Strict worker",
            "--max-secrets",
            "1",
            "--secrets",
            "allow",
        ])
        .await;
    assert_eq!(strict["maxSecretsPerApplication"], 1, "{strict}");
    assert_eq!(
        strict["effective"]["maxSecretLifetimeDays"], 365,
        "{strict}"
    );
    let table = cli.ok(&["policy", "show", "--app", "Strict worker"]).await;
    assert!(
        table.contains("max secrets per app:      1 (this application)"),
        "{table}"
    );
    assert!(table.contains("365 days (tenant)"), "{table}");

    cli.ok(&["secret", "add", "Strict worker"]).await;
    let refused = cli.run(&["secret", "add", "Strict worker"], None).await;
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("--max-secrets 1"),
        "{}",
        refused.stderr
    );

    let back = cli
        .json(&[
            "policy",
            "set",
            "--app",
            "Strict worker",
            "--max-secrets",
            "tenant",
        ])
        .await;
    assert!(back["maxSecretsPerApplication"].is_null(), "{back}");
    cli.ok(&["secret", "add", "Strict worker"]).await;

    let usage = cli
        .run(&["policy", "set", "--max-secrets", "tenant"], None)
        .await;
    assert_eq!(usage.code, 1);
    assert!(usage.stderr.contains("--app"), "{}", usage.stderr);
    let list = cli.ok(&["secret", "list", "Strict worker"]).await;
    assert!(list.contains("LAST USED"), "{list}");

    // Lowering the maximum below the default keeps the default as set;
    // `policy set` prints both, and what is in effect.
    let lowered = cli
        .ok(&["policy", "set", "--max-secret-lifetime", "30d"])
        .await;
    assert!(
        lowered.contains("max secret lifetime:      30 days"),
        "{lowered}"
    );
    assert!(
        lowered.contains(
            "default secret lifetime:  180 days as set; 30 days in effect (capped by the max secret lifetime)"
        ),
        "{lowered}"
    );
    let raised = cli
        .json(&["policy", "set", "--max-secret-lifetime", "1y"])
        .await;
    assert_eq!(raised["defaultSecretLifetimeDays"], 180, "{raised}");
    assert_eq!(
        raised["effectiveDefaultSecretLifetimeDays"], 180,
        "{raised}"
    );
}

#[tokio::test]
async fn secret_compromised_revokes_reports_and_rotates() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let cli = Cli {
        config: tempfile::tempdir().unwrap(),
    };
    cli.ok(&["login", "--bootstrap", app.data_dir().to_str().unwrap()])
        .await;
    let worker = cli.json(&["app", "create", "Leaky worker"]).await;
    let leaked = cli
        .json(&["secret", "add", "Leaky worker", "--name", "ci"])
        .await;
    let other = cli
        .json(&["secret", "add", "Leaky worker", "--name", "prod"])
        .await;
    let id = worker["appId"].as_str().unwrap();
    let scope = format!("{id}/.default");
    let leaked_value = leaked["secretText"].as_str().unwrap();
    let other_value = other["secretText"].as_str().unwrap();
    app.token(id, leaked_value, &scope).await;
    let leaked_key = leaked["keyId"].as_str().unwrap();

    // Unknown key id: one error line with a hint, nothing changed.
    let missing = uuid::Uuid::new_v4().to_string();
    let out = cli
        .run(&["secret", "compromised", "Leaky worker", &missing], None)
        .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    app.token(id, leaked_value, &scope).await;

    // stdin is not a terminal: no question. The table names the token and
    // prints the replacement once.
    let table = cli
        .ok(&[
            "secret",
            "compromised",
            "Leaky worker",
            leaked_key,
            "--rotate-others",
        ])
        .await;
    assert!(
        table.starts_with(&format!("Revoked secret {leaked_key}")),
        "{table}"
    );
    assert!(table.contains("tokens issued:       2\n"), "{table}");
    assert!(table.contains("127.0.0.1"), "{table}");
    assert!(table.contains("they will not be shown again"), "{table}");
    assert!(!table.contains(leaked_value) && !table.contains(other_value));
    let new_value = table
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("secret:")
                .map(str::trim)
                .filter(|v| v.starts_with("clavis_"))
                .map(str::to_owned)
        })
        .expect("the new value is printed once");
    for gone in [leaked_value, other_value] {
        assert_eq!(app.token_post(id, gone, &scope).await.status(), 401);
    }
    app.token(id, &new_value, &scope).await;

    // JSON for tooling: the server's answer as it came.
    let list = cli.json(&["secret", "list", "Leaky worker"]).await;
    let new_key = list[0]["keyId"].as_str().unwrap().to_owned();
    let answer = cli
        .json(&[
            "secret",
            "compromised",
            "Leaky worker",
            &new_key,
            "--revoke-all-tokens",
            "--yes",
        ])
        .await;
    assert_eq!(answer["keyId"], new_key);
    assert_eq!(answer["tokensRevoked"], true);
    assert_eq!(answer["report"]["tokensIssuedCount"], 1, "{answer}");
    assert_eq!(
        answer["report"]["credential"]["displayName"],
        "prod (rotated)"
    );
    assert!(!answer.to_string().contains(&new_value));

    let audit = cli.ok(&["audit", "list", "--top", "20"]).await;
    assert!(
        audit.contains("Report compromised password credential"),
        "{audit}"
    );
}

#[tokio::test]
async fn keys_list_rotate_and_revoke() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let cli = Cli {
        config: tempfile::tempdir().unwrap(),
    };
    cli.ok(&["login", "--bootstrap", app.data_dir().to_str().unwrap()])
        .await;
    let listed = cli.json(&["keys", "list"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["state"], "current");
    let old = listed[0]["kid"].as_str().unwrap().to_owned();

    let rotated = cli
        .json(&["keys", "rotate", "--activate-after", "1h"])
        .await;
    assert_eq!(rotated["state"], "pending", "{rotated}");
    let new = rotated["kid"].as_str().unwrap().to_owned();
    let table = cli.ok(&["keys", "list"]).await;
    assert!(table.contains(&new) && table.contains("pending"), "{table}");

    let bad = cli
        .run(&["keys", "rotate", "--activate-after", "soon"], None)
        .await;
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("soon"), "{}", bad.stderr);

    let out = cli.ok(&["keys", "revoke", &old, "--yes"]).await;
    assert!(out.contains(&format!("Revoked signing key {old}")), "{out}");
    assert!(out.contains("New tokens are signed by"), "{out}");
    let listed = cli.json(&["keys", "list"]).await;
    let state_of = |kid: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .map(|k| k["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state_of(&old).as_deref(), Some("revoked"));
    assert_eq!(state_of(&new).as_deref(), Some("pending"));

    let missing = cli.run(&["keys", "revoke", "nope", "--yes"], None).await;
    assert_ne!(missing.code, 0);
    assert!(missing.stderr.contains("nope"), "{}", missing.stderr);
}

#[tokio::test]
async fn keys_kek_and_rewrap_with_a_new_key() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let cli = Cli {
        config: tempfile::tempdir().unwrap(),
    };
    cli.ok(&["login", "--bootstrap", app.data_dir().to_str().unwrap()])
        .await;
    let table = cli.ok(&["keys", "kek"]).await;
    assert!(table.contains("provider: file"), "{table}");
    let before = cli.json(&["keys", "kek"]).await;
    let old = before["activeKeyId"].as_str().unwrap().to_owned();

    let out = cli.ok(&["keys", "rewrap", "--new-key"]).await;
    assert!(out.contains("New active key-encryption key"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
    let after = cli.json(&["keys", "kek"]).await;
    let new = after["activeKeyId"].as_str().unwrap();
    assert_ne!(new, old);
    let old_row = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyId"] == old.as_str())
        .cloned()
        .unwrap();
    assert_eq!(old_row["sealedRecords"], 0, "{after}");
    assert_eq!(old_row["active"], false);
    let key_file = std::fs::read_to_string(app.data_dir().join("kek.key")).unwrap();
    assert!(
        !out.contains(key_file.lines().last().unwrap()),
        "no key material in the output"
    );
}
