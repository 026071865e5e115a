//! The CLI's rough edges from a newcomer's first hour (issue 13, item 8),
//! each against a real server: names matched without case, duplicates warned
//! about, typos answered with the closest names; a role granted twice; ids
//! that also take names; global options anywhere; `--expires 30m`; `role
//! list --client`; `app role remove`; `audit list`'s origin and credential;
//! errors in CLI words; questions before destructive commands on a terminal.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::cli::Cli;
use super::helpers::{claims, spawn_tuned, spawn_with, TestApp};

/// A server and a CLI logged in to it as the bootstrap admin.
async fn logged_in(app: &TestApp) -> Cli {
    let cli = Cli {
        config: tempfile::tempdir().unwrap(),
    };
    cli.ok(&["login", "--bootstrap", app.data_dir().to_str().unwrap()])
        .await;
    cli
}

#[tokio::test]
async fn names_ignore_case_duplicates_are_warned_about_and_typos_get_suggestions() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let cli = logged_in(&app).await;

    let first = cli
        .run(
            &[
                "app",
                "create",
                "Orders API",
                "--identifier-uri",
                "api://orders",
            ],
            None,
        )
        .await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(!first.stderr.contains("warning"), "{}", first.stderr);
    let orders_id = cli.json(&["app", "show", "api://orders"]).await["appId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Allowed, as in Entra, but warned about (another case is the same name).
    let twin = cli.run(&["app", "create", "orders api"], None).await;
    assert_eq!(twin.code, 0, "{}", twin.stderr);
    assert!(
        twin.stderr
            .starts_with("warning: an application named 'orders api' already exists")
            && twin.stderr.contains(&orders_id),
        "{}",
        twin.stderr
    );
    // The exact name picks one; another case matches both: the appIds are listed.
    let exact = cli.json(&["app", "show", "orders api"]).await;
    assert_ne!(exact["appId"], orders_id.as_str());
    let both = cli.run(&["app", "show", "ORDERS API"], None).await;
    assert_eq!(both.code, 1);
    assert!(
        both.stderr.contains("matches 2 applications") && both.stderr.contains(&orders_id),
        "{}",
        both.stderr
    );

    let by_uri = cli.json(&["app", "show", "API://Orders"]).await;
    assert_eq!(by_uri["appId"], orders_id.as_str());
    let worker = cli.json(&["app", "create", "Billing worker"]).await;
    let shown = cli.json(&["app", "show", "billing WORKER"]).await;
    assert_eq!(shown["appId"], worker["appId"]);
    cli.ok(&["secret", "add", "BILLING worker", "--name", "ci"])
        .await;

    let typo = cli.run(&["secret", "list", "Biling worker"], None).await;
    assert_eq!(typo.code, 1);
    assert!(
        typo.stderr.contains(
            "error: no application matches 'Biling worker'\nhint: did you mean 'Billing worker'?"
        ),
        "{}",
        typo.stderr
    );
    let uri = cli
        .run(&["role", "list", "--resource", "api://ordres"], None)
        .await;
    assert_eq!(uri.code, 1);
    assert!(
        uri.stderr.contains("did you mean 'api://orders'?"),
        "{}",
        uri.stderr
    );
}

#[tokio::test]
async fn roles_typos_are_not_created_a_second_grant_changes_nothing_and_roles_are_removed() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let cli = logged_in(&app).await;
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
    ])
    .await;
    let worker = cli.json(&["app", "create", "Billing worker"]).await;
    let grant = |role: &'static str| {
        [
            "role",
            "grant",
            "--client",
            "Billing worker",
            "--resource",
            "api://orders",
            "--role",
            role,
        ]
    };

    let typo = cli.run(&grant("Orders.Raed"), None).await;
    assert_eq!(typo.code, 1);
    assert!(
        typo.stderr.contains("has no app role 'Orders.Raed'")
            && typo.stderr.contains("hint: did you mean 'Orders.Read'?")
            && !typo.stderr.contains("app role add"),
        "{}",
        typo.stderr
    );
    let roles = cli.json(&["app", "role", "list", "api://orders"]).await;
    assert_eq!(
        roles.as_array().unwrap().len(),
        1,
        "the typo was not created: {roles}"
    );

    // Twice: exit 0, the same grant, a note on stderr, one grant in the store.
    let mut args = grant("Orders.Read").to_vec();
    let first = cli.json(&args).await;
    args.extend(["--output", "json"]);
    let again = cli.run(&args, None).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("already granted"), "{}", again.stderr);
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["id"], first["id"]);
    let granted = cli
        .json(&["role", "list", "--resource", "api://orders"])
        .await;
    assert_eq!(granted.as_array().unwrap().len(), 1, "{granted}");

    // What the client holds, by its name.
    let held = cli
        .ok(&["role", "list", "--client", "billing worker"])
        .await;
    assert!(
        held.contains("Orders.Read") && held.contains("Orders API"),
        "{held}"
    );
    let held = cli
        .json(&["role", "list", "--client", "Billing worker"])
        .await;
    assert_eq!(held.as_array().unwrap().len(), 1, "{held}");

    // Revoke by client and role, instead of by the grant's id.
    cli.ok(&[
        "app",
        "role",
        "add",
        "api://orders",
        "--value",
        "Orders.Write",
    ])
    .await;
    cli.ok(&grant("Orders.Write")).await;
    cli.ok(&[
        "role",
        "revoke",
        "--resource",
        "api://orders",
        "--client",
        "Billing worker",
        "--role",
        "Orders.Write",
    ])
    .await;
    let held = cli
        .json(&["role", "list", "--client", "Billing worker"])
        .await;
    assert_eq!(held.as_array().unwrap().len(), 1, "{held}");

    // Remove a role that is granted: its grant goes, then the role.
    let out = cli
        .ok(&[
            "app",
            "role",
            "remove",
            "api://orders",
            "--value",
            "Orders.Read",
        ])
        .await;
    assert!(out.contains("revoked its 1 grant(s)"), "{out}");
    let roles = cli.json(&["app", "role", "list", "api://orders"]).await;
    assert_eq!(roles[0]["value"], "Orders.Write", "{roles}");
    assert_eq!(roles.as_array().unwrap().len(), 1, "{roles}");
    let held = cli
        .json(&["role", "list", "--client", "Billing worker"])
        .await;
    assert!(held.as_array().unwrap().is_empty(), "{held}");
    let secret = cli.json(&["secret", "add", "Billing worker"]).await;
    let token = app
        .token(
            worker["appId"].as_str().unwrap(),
            secret["secretText"].as_str().unwrap(),
            "api://orders/.default",
        )
        .await;
    assert!(claims(&token)
        .get("roles")
        .is_none_or(|r| r == &serde_json::json!([])));
    // The built-in resource refuses before any of its grants is touched.
    let builtin = cli
        .run(
            &[
                "app",
                "role",
                "remove",
                "api://clavis",
                "--value",
                "AuditLog.Read.All",
            ],
            None,
        )
        .await;
    assert_eq!(builtin.code, 1, "{}", builtin.stdout);
    let admin = cli.ok(&["role", "list", "--client", &app.admin_id]).await;
    assert!(admin.contains("AuditLog.Read.All"), "{admin}");
    let gone = cli
        .run(
            &[
                "app",
                "role",
                "remove",
                "api://orders",
                "--value",
                "Orders.Read",
            ],
            None,
        )
        .await;
    assert_eq!(gone.code, 1);
}

#[tokio::test]
async fn ids_take_names_options_go_anywhere_and_expiry_takes_minutes() {
    let app = spawn_tuned(tempfile::tempdir().unwrap(), clavis::Tls::LocalCa, |c| {
        c.allow_internal_webhooks = true;
    })
    .await;
    let cli = logged_in(&app).await;
    let worker = cli.json(&["app", "create", "Billing worker"]).await;

    // Global options before the command, after the noun, after the verb.
    for args in [
        &["--output", "json", "app", "list"][..],
        &["app", "--output", "json", "list"],
        &["--profile", "default", "app", "list", "--output", "json"],
    ] {
        let out = cli.ok(args).await;
        let apps: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{args:?}: {out}"));
        assert!(apps.as_array().is_some(), "{args:?}");
    }
    // The server's own commands take neither.
    let backup = cli
        .run(
            &["--output", "json", "backup", "--to", "/nonexistent/b"],
            None,
        )
        .await;
    assert_eq!(backup.code, 2, "{}", backup.stderr);
    assert!(
        backup.stderr.contains("client commands"),
        "{}",
        backup.stderr
    );

    // Minutes and hours.
    let now = OffsetDateTime::now_utc();
    let short = cli
        .json(&[
            "secret",
            "add",
            "Billing worker",
            "--name",
            "short",
            "--expires",
            "30m",
        ])
        .await;
    let end = OffsetDateTime::parse(short["endDateTime"].as_str().unwrap(), &Rfc3339).unwrap();
    let life = end - now;
    assert!(
        life > time::Duration::minutes(29) && life <= time::Duration::minutes(31),
        "{life}"
    );
    let half_day = cli
        .json(&[
            "secret",
            "add",
            "Billing worker",
            "--name",
            "ci",
            "--expires",
            "12h",
        ])
        .await;
    let end = OffsetDateTime::parse(half_day["endDateTime"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!(end - now > time::Duration::hours(11), "{end}");

    // A secret by name; an unknown one gets the closest names.
    let typo = cli
        .run(&["secret", "remove", "Billing worker", "shrot"], None)
        .await;
    assert_eq!(typo.code, 1);
    assert!(
        typo.stderr.contains("did you mean 'short'?"),
        "{}",
        typo.stderr
    );
    cli.ok(&["secret", "remove", "Billing worker", "short"])
        .await;
    let scope = "api://clavis/.default";
    let app_id = worker["appId"].as_str().unwrap();
    let r = app
        .token_post(app_id, short["secretText"].as_str().unwrap(), scope)
        .await;
    assert_eq!(r.status(), 401);

    // `login --client-id NAME`, looked up with the default profile.
    let value = half_day["secretText"].as_str().unwrap();
    let authority = format!("{}/default", app.base);
    let ca = app.data_dir().join("tls/ca.pem");
    let login = |client: &'static str| {
        [
            "login",
            "--profile",
            "worker",
            "--authority",
            "",
            "--client-id",
            client,
            "--ca-file",
            "",
        ]
    };
    let mut args = login("billing worker");
    args[4] = &authority;
    args[8] = ca.to_str().unwrap();
    let out = cli.run(&args, Some(&format!("{value}\n"))).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(app_id), "{}", out.stdout);
    let mut args = login("Biling worker");
    args[4] = &authority;
    args[8] = ca.to_str().unwrap();
    let out = cli.run(&args, Some(&format!("{value}\n"))).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("did you mean 'Billing worker'?"),
        "{}",
        out.stderr
    );

    // A webhook by name or URL.
    let url = "https://127.0.0.1:9/clavis";
    cli.ok(&["webhook", "add", url, "--name", "ops"]).await;
    let deliveries = cli.json(&["webhook", "deliveries", "OPS"]).await;
    assert!(deliveries.as_array().unwrap().is_empty());
    let typo = cli.run(&["webhook", "deliveries", "opz"], None).await;
    assert!(
        typo.stderr.contains("did you mean 'ops'?"),
        "{}",
        typo.stderr
    );
    cli.ok(&["webhook", "remove", url]).await;
    let hooks = cli.json(&["webhook", "list"]).await;
    assert!(hooks.as_array().unwrap().is_empty(), "{hooks}");
}

#[tokio::test]
async fn errors_name_cli_commands_and_audit_shows_origin_and_credential() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let cli = logged_in(&app).await;
    cli.ok(&["app", "create", "Strict worker"]).await;
    cli.ok(&[
        "policy",
        "set",
        "--app",
        "Strict worker",
        "--max-secrets",
        "1",
        "--max-secret-lifetime",
        "30d",
    ])
    .await;
    cli.ok(&["secret", "add", "Strict worker"]).await;
    let full = cli.run(&["secret", "add", "Strict worker"], None).await;
    assert_eq!(full.code, 1);
    assert!(
        full.stderr.contains("(--max-secrets 1)")
            && full.stderr.contains("with `clavis secret remove` first"),
        "{}",
        full.stderr
    );
    cli.ok(&[
        "policy",
        "set",
        "--app",
        "Strict worker",
        "--max-secrets",
        "2",
    ])
    .await;
    let long = cli
        .run(
            &["secret", "add", "Strict worker", "--expires", "90d"],
            None,
        )
        .await;
    assert_eq!(long.code, 1);
    assert!(
        long.stderr.contains("--expires is too far in the future")
            && long.stderr.contains("(--max-secret-lifetime)"),
        "{}",
        long.stderr
    );
    for text in [&full.stderr, &long.stderr] {
        for api in ["removePassword", "endDateTime", "maxSecret", "PATCH"] {
            assert!(!text.contains(api), "{api} in {text}");
        }
    }

    // Who, from where, with which credential.
    let admin = cli.json(&["secret", "list", &app.admin_id]).await;
    let admin_key = admin[0]["keyId"].as_str().unwrap();
    // Every event: the test's run within one second of the bootstrap's,
    // and events of one second may come in any order.
    let audit = cli.ok(&["audit", "list", "--top", "999"]).await;
    let header = audit.lines().next().unwrap();
    assert!(
        header.contains("FROM") && header.contains("CREDENTIAL"),
        "{audit}"
    );
    let add = audit
        .lines()
        .find(|l| l.contains("Update application") || l.contains("Add password credential"))
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(
        add.contains("127.0.0.1") && add.contains(admin_key),
        "{audit}"
    );
}

/// Runs `clavis ARGS` on a terminal (util-linux `script` gives it one),
/// typing `answer`; returns the exit code and what the terminal showed.
async fn on_a_terminal(cli: &Cli, args: &[&str], answer: &str) -> (i32, String) {
    let mut line = String::from(env!("CARGO_BIN_EXE_clavis"));
    for arg in args {
        line.push_str(&format!(" '{}'", arg.replace('\'', r"'\''")));
    }
    let mut child = tokio::process::Command::new("script")
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .env("CLAVIS_CONFIG_DIR", cli.config.path())
        .env_remove("CLAVIS_PROFILE")
        .env_remove("CLAVIS_OUTPUT")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).await.unwrap();
    // Keep stdin open until clavis ends: its end would end the session first.
    let out = child.wait_with_output().await.unwrap();
    drop(stdin);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), shown)
}

#[tokio::test]
async fn destructive_commands_ask_on_a_terminal_and_yes_skips() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let cli = logged_in(&app).await;
    cli.ok(&["app", "create", "Doomed worker"]).await;
    cli.ok(&["secret", "add", "Doomed worker", "--name", "ci"])
        .await;

    let (code, shown) =
        on_a_terminal(&cli, &["secret", "remove", "Doomed worker", "ci"], "n\n").await;
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("Remove secret 'ci'")
            && shown.contains("[y/N]")
            && shown.contains("cancelled"),
        "{shown}"
    );
    let secrets = cli.json(&["secret", "list", "Doomed worker"]).await;
    assert_eq!(secrets.as_array().unwrap().len(), 1, "nothing changed");

    let (code, shown) = on_a_terminal(
        &cli,
        &["secret", "rotate", "Doomed worker", "--remove-others"],
        "no\n",
    )
    .await;
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("remove 1 old one(s)"), "{shown}");
    let secrets = cli.json(&["secret", "list", "Doomed worker"]).await;
    assert_eq!(
        secrets.as_array().unwrap().len(),
        1,
        "no secret added either"
    );

    let (code, shown) =
        on_a_terminal(&cli, &["secret", "remove", "Doomed worker", "ci"], "y\n").await;
    assert_eq!(code, 0, "{shown}");
    let secrets = cli.json(&["secret", "list", "Doomed worker"]).await;
    assert!(secrets.as_array().unwrap().is_empty());

    let (code, shown) = on_a_terminal(&cli, &["app", "delete", "Doomed worker"], "\n").await;
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("Delete application 'Doomed worker'"),
        "{shown}"
    );
    cli.ok(&["app", "show", "Doomed worker"]).await;
    let (code, shown) = on_a_terminal(&cli, &["app", "delete", "Doomed worker", "--yes"], "").await;
    assert_eq!(code, 0, "{shown}");
    assert!(!shown.contains("[y/N]"), "{shown}");
    let gone = cli.run(&["app", "show", "Doomed worker"], None).await;
    assert_eq!(gone.code, 1);
}
