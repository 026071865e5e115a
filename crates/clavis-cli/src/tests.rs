//! Whole commands: the tree `clavis` exposes, its global options and help, and
//! login → command → logout against a canned server in an isolated config dir.

use clap::{CommandFactory as _, Parser, Subcommand as _};

use super::*;

/// Stand-in for the server binary's parser, which flattens [`Command`].
#[derive(Parser, Debug)]
#[command(name = "clavis")]
struct Cli {
    #[command(flatten)]
    leading: Leading,
    #[command(subcommand)]
    command: Command,
}

fn parse_all(args: &[&str]) -> Result<Cli, clap::Error> {
    let argv = std::iter::once("clavis").chain(args.iter().copied());
    Cli::try_parse_from(argv)
}

fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    parse_all(args).map(|cli| cli.command)
}

#[test]
fn command_tree_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn global_options_go_before_or_after_the_command() {
    let no_env = |_: &str| None;
    for args in [
        &["--output", "json", "--profile", "ci", "app", "list"][..],
        &["app", "--output", "json", "--profile", "ci", "list"],
        &["app", "list", "--output", "json", "--profile", "ci"],
        &["--profile", "ci", "app", "list", "--output", "json"],
    ] {
        let cli = parse_all(args).unwrap();
        let Command::App { global, command } = cli.command else {
            panic!("not app")
        };
        let global = Global::resolve(global, &cli.leading, no_env).unwrap();
        assert_eq!(global.output, OutputFormat::Json, "{args:?}");
        assert_eq!(global.profile.as_str(), "ci", "{args:?}");
        assert!(matches!(command, app::AppCommand::List));
    }
    for args in [
        &["--output", "json", "login", "--bootstrap", "/d"][..],
        &["login", "--bootstrap", "/d", "--output", "json"],
    ] {
        let cli = parse_all(args).unwrap();
        let Command::Login(login) = cli.command else {
            panic!("not login")
        };
        let global = Global::resolve(login.global, &cli.leading, no_env).unwrap();
        assert_eq!(global.output, OutputFormat::Json, "{args:?}");
    }
}

#[test]
fn global_options_after_win_over_before_over_the_environment() {
    let env = |key: &str| match key {
        "CLAVIS_PROFILE" => Some("from-env".to_owned()),
        "CLAVIS_OUTPUT" => Some("JSON".to_owned()),
        _ => None,
    };
    let resolve = |args: &[&str]| {
        let cli = parse_all(args).unwrap();
        let Command::App { global, .. } = cli.command else {
            panic!("not app")
        };
        Global::resolve(global, &cli.leading, env).unwrap()
    };
    let g = resolve(&["app", "list"]);
    assert_eq!(
        (g.profile.as_str(), g.output),
        ("from-env", OutputFormat::Json)
    );
    let g = resolve(&["--profile", "before", "--output", "table", "app", "list"]);
    assert_eq!(
        (g.profile.as_str(), g.output),
        ("before", OutputFormat::Table)
    );
    let g = resolve(&["--profile", "before", "app", "list", "--profile", "after"]);
    assert_eq!(g.profile.as_str(), "after");

    let defaults = Global::resolve(GlobalArgs::default(), &Leading::default(), |_| None).unwrap();
    assert_eq!(
        (defaults.profile.as_str(), defaults.output),
        ("default", OutputFormat::Table)
    );
    let bad = |key: &'static str, value: &'static str| {
        move |k: &str| (k == key).then(|| value.to_owned())
    };
    let err = Global::resolve(
        GlobalArgs::default(),
        &Leading::default(),
        bad("CLAVIS_OUTPUT", "yaml"),
    )
    .unwrap_err();
    assert!(err.reason().contains("CLAVIS_OUTPUT=yaml"), "{err}");
    let err = Global::resolve(
        GlobalArgs::default(),
        &Leading::default(),
        bad("CLAVIS_PROFILE", "../x"),
    )
    .unwrap_err();
    assert!(err.reason().contains("CLAVIS_PROFILE"), "{err}");
}

#[test]
fn nested_and_repeated_arguments_parse() {
    let cmd = parse(&[
        "app",
        "create",
        "orders",
        "--identifier-uri",
        "api://orders",
        "--identifier-uri",
        "api://o2",
    ]);
    let Command::App {
        command: app::AppCommand::Create {
            name,
            identifier_uris,
        },
        ..
    } = cmd.unwrap()
    else {
        panic!("not app create")
    };
    assert_eq!((name.as_str(), identifier_uris.len()), ("orders", 2));

    let cmd = parse(&["app", "role", "add", "orders", "--value", "Orders.Read"]).unwrap();
    assert!(matches!(
        cmd,
        Command::App {
            command: app::AppCommand::Role { .. },
            ..
        }
    ));
    let cmd = parse(&[
        "role",
        "grant",
        "--client",
        "a",
        "--resource",
        "api://clavis",
        "--role",
        "X",
    ])
    .unwrap();
    assert!(matches!(
        cmd,
        Command::Role {
            command: role::RoleCommand::Grant { .. },
            ..
        }
    ));
    let cmd = parse(&[
        "secret",
        "remove",
        "orders",
        "0b9f1a4e-59c4-4b8e-9d0e-5f8c8f7e3c21",
    ])
    .unwrap();
    assert!(matches!(
        cmd,
        Command::Secret {
            command: secret::SecretCommand::Remove { .. },
            ..
        }
    ));
    assert!(parse(&[
        "token",
        "get",
        "--scope",
        "api://orders/.default",
        "--decode"
    ])
    .is_ok());
    assert!(parse(&["audit", "list", "--top", "5", "--since", "24h"]).is_ok());
    assert!(parse(&["webhook", "add", "https://h/x", "--threshold-days", "14,3"]).is_ok());
    assert!(parse(&[
        "webhook",
        "deliveries",
        "0b9f1a4e-59c4-4b8e-9d0e-5f8c8f7e3c21"
    ])
    .is_ok());
}

#[test]
fn usage_errors_are_clap_errors() {
    // login needs either --bootstrap or both --authority and --client-id.
    assert!(parse(&["login", "--authority", "https://h/t"]).is_err());
    assert!(parse(&[
        "login",
        "--bootstrap",
        "/d",
        "--client-id",
        "0b9f1a4e-59c4-4b8e-9d0e-5f8c8f7e3c21"
    ])
    .is_err());
    assert!(parse(&["login", "--bootstrap", "/d"]).is_ok());
    // Ids also take names: a name is looked up when the command runs.
    // The bootstrap file's authority may be replaced (a public URL).
    assert!(parse(&["login", "--bootstrap", "/d", "--authority", "https://h/t"]).is_ok());
    assert!(parse(&[
        "login",
        "--authority",
        "https://h/t",
        "--client-id",
        "Billing worker"
    ])
    .is_ok());
    assert!(parse(&["secret", "remove", "orders", "ci secret"]).is_ok());
    assert!(parse(&["role", "list"]).is_err(), "--resource or --client");
    assert!(parse(&["role", "revoke", "--resource", "r"]).is_err());
    assert!(parse(&["role", "revoke", "--resource", "r", "--client", "c"]).is_err());
    assert!(parse(&[
        "role",
        "revoke",
        "--resource",
        "r",
        "--client",
        "c",
        "--role",
        "R"
    ])
    .is_ok());
    assert!(parse(&[
        "role",
        "revoke",
        "--resource",
        "r",
        "id",
        "--client",
        "c",
        "--role",
        "R"
    ])
    .is_err());
    assert!(parse(&["app", "list", "--profile", "../etc"]).is_err());
    assert!(parse(&["app", "list", "--output", "yaml"]).is_err());
    assert!(parse(&["audit", "list", "--top", "0"]).is_err());
    assert!(parse(&["webhook", "add", "https://h/x", "--threshold-days", "7,x"]).is_err());
    assert!(parse(&["webhook", "remove", "ops hook", "--yes"]).is_ok());
}

/// Every command and argument has help text.
#[test]
fn help_everywhere() {
    fn check(cmd: &clap::Command, path: &str) {
        for sub in cmd.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            assert!(sub.get_about().is_some(), "no about for `{path}`");
            for arg in sub.get_arguments() {
                if arg.get_id() != "help" {
                    assert!(
                        arg.get_help().is_some(),
                        "no help for {} of `{path}`",
                        arg.get_id()
                    );
                }
            }
            check(sub, &path);
        }
    }
    check(&Cli::command(), "clavis");
}

/// `cargo test -p clavis-cli print_help -- --ignored --nocapture` prints the tree.
#[test]
#[ignore = "prints the help of every command, for documentation"]
fn print_help() {
    fn walk(cmd: &mut clap::Command, path: &str) {
        println!("$ {path} --help\n{}", cmd.render_help());
        for sub in cmd.get_subcommands_mut().filter(|s| s.get_name() != "help") {
            let path = format!("{path} {}", sub.get_name());
            walk(sub, &path);
        }
    }
    let mut root = Command::augment_subcommands(clap::Command::new("clavis"));
    root.build();
    walk(&mut root, "clavis");
}

mod flow {
    use super::*;
    use crate::profile::ConfigDir;
    use crate::testserver;
    use serde_json::json;

    const SECRET: &str = "clv_BootstrapSecretValue";

    fn bootstrap_dir(authority: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let file = json!({
            "tenantId": "9a0b1c2d-0000-4000-8000-000000000001", "tenantName": "default",
            "clientId": "6f1c2d3e-0000-4000-8000-0000000000aa", "clientSecret": SECRET,
            "authority": authority, "caFile": null
        });
        std::fs::write(dir.path().join("bootstrap-admin.json"), file.to_string()).unwrap();
        dir
    }

    async fn run_in(config: &std::path::Path, args: &[&str]) -> Result<(), Error> {
        let cli = parse_all(args).unwrap();
        dispatch(cli.command, &cli.leading, Some(ConfigDir::new(config))).await
    }

    #[tokio::test]
    async fn bootstrap_login_then_app_list_then_logout() {
        let server = testserver::start(|req, _| match req.target.as_str() {
            "/default/oauth2/v2.0/token" => (
                200,
                json!({"token_type":"Bearer","expires_in":3600,"access_token":"t"}).to_string(),
            ),
            "/v1.0/applications" => (
                200,
                json!({"value":[{"id":"o","appId":"a","displayName":"bootstrap-admin"}]})
                    .to_string(),
            ),
            _ => (
                404,
                json!({"error":{"code":"Request_ResourceNotFound","message":"no"}}).to_string(),
            ),
        })
        .await;
        let data = bootstrap_dir(&format!("{}/default", server.url));
        let config = tempfile::tempdir().unwrap();
        let data_dir = data.path().to_str().unwrap();
        run_in(
            config.path(),
            &["login", "--bootstrap", data_dir, "--profile", "admin"],
        )
        .await
        .unwrap();

        let name = ProfileName::parse("admin").unwrap();
        let saved = ConfigDir::new(config.path()).load(&name).unwrap();
        assert_eq!(saved.secret.expose(), SECRET);
        assert_eq!(
            saved.settings.authority.as_str(),
            format!("{}/default", server.url)
        );

        run_in(
            config.path(),
            &["app", "list", "--profile", "admin", "--output", "json"],
        )
        .await
        .unwrap();
        let seen = server.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "login token, then token + list: {seen:?}");
        assert_eq!(seen[2].target, "/v1.0/applications");

        run_in(config.path(), &["logout", "--profile", "admin"])
            .await
            .unwrap();
        let err = run_in(config.path(), &["app", "list", "--profile", "admin"])
            .await
            .unwrap_err();
        assert!(err.reason().contains("no profile 'admin'"));
        assert!(run_in(config.path(), &["logout", "--profile", "admin"])
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_refused_login_saves_nothing() {
        let server = testserver::start(|_, _| {
            (401, json!({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}).to_string())
        })
        .await;
        let data = bootstrap_dir(&format!("{}/default", server.url));
        let config = tempfile::tempdir().unwrap();
        let err = run_in(
            config.path(),
            &["login", "--bootstrap", data.path().to_str().unwrap()],
        )
        .await
        .unwrap_err();
        assert!(err.reason().contains("AADSTS7000215"));
        assert!(err
            .hint_text()
            .unwrap()
            .starts_with("check the client id and the secret"));
        assert!(!config.path().join("profiles").exists());
    }

    #[tokio::test]
    async fn app_lookup_falls_back_from_object_id_to_app_id_and_reports_ambiguity() {
        let app_id = "22222222-2222-4222-8222-222222222222";
        let server = testserver::start(move |req, _| {
            let target = req.target.as_str();
            if target.ends_with("/oauth2/v2.0/token") {
                return (200, json!({"access_token":"t"}).to_string());
            }
            if target == format!("/v1.0/applications/{app_id}") {
                return (404, json!({"error":{"code":"Request_ResourceNotFound","message":"no"}}).to_string());
            }
            if target == format!("/v1.0/applications?$filter=appId%20eq%20%27{app_id}%27") {
                return (200, json!({"value":[{"id":"o1","appId":app_id,"displayName":"orders"}]}).to_string());
            }
            if target == "/v1.0/applications?$filter=displayName%20eq%20%27twin%27" {
                return (200, json!({"value":[{"appId":"a1"},{"appId":"a2"}]}).to_string());
            }
            (400, json!({"error":{"code":"Request_BadRequest","message":format!("unexpected {target}")}}).to_string())
        })
        .await;
        let data = bootstrap_dir(&format!("{}/default", server.url));
        let config = tempfile::tempdir().unwrap();
        run_in(
            config.path(),
            &["login", "--bootstrap", data.path().to_str().unwrap()],
        )
        .await
        .unwrap();
        run_in(config.path(), &["app", "show", app_id])
            .await
            .unwrap();
        let err = run_in(config.path(), &["app", "show", "twin"])
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "'twin' matches 2 applications: a1, a2");
    }
}
