//! Command-line parsing: the tree `clavis` exposes, its global options and help.

use clap::{CommandFactory as _, Parser, Subcommand as _};

use super::*;

/// Stand-in for the server binary's parser, which flattens [`Command`].
#[derive(Parser, Debug)]
#[command(name = "clavis")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    let argv = std::iter::once("clavis").chain(args.iter().copied());
    Cli::try_parse_from(argv).map(|cli| cli.command)
}

#[test]
fn command_tree_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn global_options_go_before_or_after_the_verb() {
    for args in [
        &["app", "--output", "json", "--profile", "ci", "list"][..],
        &["app", "list", "--output", "json", "--profile", "ci"][..],
    ] {
        let Command::App { global, command } = parse(args).unwrap() else { panic!("not app") };
        assert_eq!(global.output, OutputFormat::Json, "{args:?}");
        assert_eq!(global.profile.as_str(), "ci");
        assert!(matches!(command, app::AppCommand::List));
    }
}

#[test]
fn nested_and_repeated_arguments_parse() {
    let cmd = parse(&["app", "create", "orders", "--identifier-uri", "api://orders", "--identifier-uri", "api://o2"]);
    let Command::App { command: app::AppCommand::Create { name, identifier_uris }, .. } = cmd.unwrap() else {
        panic!("not app create")
    };
    assert_eq!((name.as_str(), identifier_uris.len()), ("orders", 2));

    let cmd = parse(&["app", "role", "add", "orders", "--value", "Orders.Read"]).unwrap();
    assert!(matches!(cmd, Command::App { command: app::AppCommand::Role { .. }, .. }));
    let cmd = parse(&["role", "grant", "--client", "a", "--resource", "api://clavis", "--role", "X"]).unwrap();
    assert!(matches!(cmd, Command::Role { command: role::RoleCommand::Grant { .. }, .. }));
    let cmd = parse(&["secret", "remove", "orders", "0b9f1a4e-59c4-4b8e-9d0e-5f8c8f7e3c21"]).unwrap();
    assert!(matches!(cmd, Command::Secret { command: secret::SecretCommand::Remove { .. }, .. }));
    assert!(parse(&["token", "get", "--scope", "api://orders/.default", "--decode"]).is_ok());
    assert!(parse(&["audit", "list", "--top", "5", "--since", "24h"]).is_ok());
}

#[test]
fn usage_errors_are_clap_errors() {
    // login needs either --bootstrap or both --authority and --client-id.
    assert!(parse(&["login", "--authority", "https://h/t"]).is_err());
    assert!(parse(&["login", "--bootstrap", "/d", "--client-id", "0b9f1a4e-59c4-4b8e-9d0e-5f8c8f7e3c21"]).is_err());
    assert!(parse(&["login", "--bootstrap", "/d"]).is_ok());
    assert!(parse(&["login", "--authority", "https://h/t", "--client-id", "not-a-guid"]).is_err());
    assert!(parse(&["secret", "remove", "orders", "not-a-guid"]).is_err());
    assert!(parse(&["app", "list", "--profile", "../etc"]).is_err());
    assert!(parse(&["app", "list", "--output", "yaml"]).is_err());
    assert!(parse(&["audit", "list", "--top", "0"]).is_err());
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
                    assert!(arg.get_help().is_some(), "no help for {} of `{path}`", arg.get_id());
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
        for sub in cmd.get_subcommands_mut() {
            let path = format!("{path} {}", sub.get_name());
            walk(sub, &path);
        }
    }
    let mut root = Command::augment_subcommands(clap::Command::new("clavis"));
    root.build();
    walk(&mut root, "clavis");
}
