//! The `clavis` command-line client: `clavis <noun> <verb>` over the management API.
//!
//! # Layout
//! The server's binary flattens [`Command`] into its own subcommands and calls
//! [`run`], which returns the process exit code (0 ok, 1 error; clap itself
//! exits with 2 on usage errors). Errors are printed here, as one
//! `error: <reason>` line and sometimes a `hint: <what next>` line.
//!
//! Every noun has one file holding its clap arguments and its handler; the
//! rest is shared plumbing, listed below from the outside in.

/// `clavis agent`: keeps an application's credentials file's secret fresh.
mod agent;
/// `clavis app`: register, list, show and delete applications; add and remove app roles.
mod app;
/// App roles by value: "did you mean …?" for typos, and removing one as Graph allows.
mod app_role;
/// `clavis audit list`: read the directory audit log.
mod audit;
/// The authority URL (`https://HOST:PORT/TENANT`) and the URLs derived from it.
mod authority;
/// HTTP to a server: TLS trust, the client-credentials grant, management calls.
mod client;
/// `clavis secret compromised`: revoke a leaked secret and report its use.
mod compromise;
/// Asking before destructive commands on a terminal (`--yes` skips).
mod confirm;
/// The CLI's one error type (a reason and a hint) and how failures map onto it.
mod error;
/// `clavis keys`: list, rotate and revoke the tenant's token-signing keys.
mod keys;
/// `clavis login` / `clavis logout`: check credentials, save or forget a profile.
mod login;
/// Finding applications and service principals from what a person types.
mod lookup;
/// Lenient typed views of the Graph objects the CLI reads for its tables.
mod model;
/// Graph collection conventions: `$filter`/`$top` encoding and `@odata.nextLink`.
mod odata;
/// `--output table|json`: aligned tables, key/value blocks, JSON, RFC 3339 times.
mod output;
/// `clavis policy`: the tenant's rules for client secrets and per-application exceptions.
mod policy;
/// Profiles in the config dir: settings in `NAME.json`, the secret in `NAME.secret`.
mod profile;
/// `--query PATH`: one field of a command's JSON output, bare, for scripts.
mod query;
/// `clavis role`: grant, list and revoke app role assignments.
mod role;
/// Rotating a secret: add, prove with a token, remove (`secret rotate`, `agent`).
mod rotation;
/// `clavis secret`: add, list, rotate and remove an application's client secrets.
mod secret;
/// "Did you mean …?": the closest names to a mistyped one.
mod suggest;
/// `clavis token get`: acquire (and optionally decode) an access token.
mod token;
/// `clavis webhook`: subscribe to secret expiry warnings, list, remove, deliveries.
mod webhook;
/// Times typed by people: `30m`, `12h`, `90d`, or RFC 3339.
mod when;
/// The server's API words in error messages, turned into the CLI's commands and flags.
mod words;

use std::io::Write as _;

pub use error::Error;
pub use output::OutputFormat;
pub use profile::ProfileName;

/// The global options as given after a client command's noun or verb
/// (`clavis app list --output json`); see [`Leading`] for before it.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Profile to use: the saved server address and application credentials
    /// [default: $CLAVIS_PROFILE, else default]. Also before the command.
    #[arg(long, global = true, value_name = "NAME", value_parser = ProfileName::parse)]
    pub profile: Option<ProfileName>,

    /// Output format: aligned columns for people, or the server's JSON objects
    /// [default: $CLAVIS_OUTPUT, else table]. Also before the command.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// Print only this field of the JSON output, bare (a string without
    /// quotes), e.g. `appId`, `secretText`, `[0].keyId`, `[].keyId`: for
    /// scripts, as in `CLIENT_ID=$(clavis app show NAME --query appId)`.
    /// Implies `--output json`; fails when nothing matches.
    #[arg(long, global = true, value_name = "PATH", value_parser = query::Query::parse)]
    pub query: Option<query::Query>,
}

/// The same options given before the command (`clavis --output json app
/// list`), for the binary's top level. A value after the command wins.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Leading {
    /// Client commands: the profile to use [default: $CLAVIS_PROFILE, else default].
    #[arg(long, value_name = "NAME", value_parser = ProfileName::parse)]
    pub profile: Option<ProfileName>,

    /// Client commands: table or json [default: $CLAVIS_OUTPUT, else table].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

impl Leading {
    /// Whether any option was given (the server's own commands take none).
    pub fn is_empty(&self) -> bool {
        self.profile.is_none() && self.output.is_none()
    }
}

/// The global options in force: after the command, else before it, else
/// the environment (`CLAVIS_PROFILE`, `CLAVIS_OUTPUT`), else the defaults.
#[derive(Debug, Clone)]
pub struct Global {
    pub profile: ProfileName,
    pub output: OutputFormat,
}

impl Global {
    /// Resolve the options; `env` is `std::env::var` outside tests.
    fn resolve(
        after: GlobalArgs,
        before: &Leading,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let env = |key: &str| env(key).filter(|v| !v.is_empty());
        let profile = match after.profile.or_else(|| before.profile.clone()) {
            Some(profile) => profile,
            None => match env("CLAVIS_PROFILE") {
                Some(name) => ProfileName::parse(&name).map_err(|e| {
                    Error::new(format!("CLAVIS_PROFILE={name}: {e}"))
                        .hint("fix or unset CLAVIS_PROFILE, or pass --profile NAME")
                })?,
                None => ProfileName::parse("default").expect("a valid name"),
            },
        };
        let output = match after.output.or(before.output) {
            Some(output) => output,
            None => match env("CLAVIS_OUTPUT") {
                Some(text) => {
                    <OutputFormat as clap::ValueEnum>::from_str(&text, true).map_err(|_| {
                        Error::new(format!("CLAVIS_OUTPUT={text} is neither table nor json"))
                            .hint("fix or unset CLAVIS_OUTPUT, or pass --output table|json")
                    })?
                }
                None => OutputFormat::Table,
            },
        };
        Ok(Global { profile, output })
    }
}

/// The client commands, flattened into the `clavis` binary's subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Check an application's credentials against a server and save them as a profile.
    ///
    /// The client secret is read from standard input (one line), or from the
    /// server's bootstrap file with --bootstrap.
    Login(login::LoginArgs),

    /// Forget a saved profile: deletes its settings and its secret.
    Logout(login::LogoutArgs),

    /// Register, list, show and delete applications, and add and remove their app roles.
    App {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: app::AppCommand,
    },

    /// Add, list, rotate and remove an application's client secrets; respond to a leaked one.
    Secret {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: secret::SecretCommand,
    },

    /// Grant, list and revoke app roles assigned to client applications.
    Role {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: role::RoleCommand,
    },

    /// Acquire access tokens as the profile's application.
    Token {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: token::TokenCommand,
    },

    /// Show and change the rules for client secrets: the tenant's, or one
    /// application's exceptions (longest and default lifetime, most secrets
    /// per application, secrets allowed at all).
    Policy {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },

    /// Read the audit log of management actions.
    Audit {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: audit::AuditCommand,
    },

    /// Subscribe to secret expiry warnings (signed webhooks), list and
    /// remove subscriptions, and read their delivery logs.
    Webhook {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: webhook::WebhookCommand,
    },

    /// List, rotate and (in an emergency) revoke the tenant's token-signing
    /// keys.
    Keys {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: keys::KeysCommand,
    },

    /// Run beside an application and rotate the secret in its credentials file.
    ///
    /// When the secret's remaining life falls under --rotate-before, the agent
    /// adds a new secret to its own application (it needs only the
    /// Application.Credentials.RotateSelf role), gets a token with it, replaces
    /// the file atomically, runs --reload-command or sends --signal, and
    /// removes the old secret after --grace. A crash or a server outage at any
    /// point leaves a file whose secret works. `--init APP` creates the file.
    Agent {
        #[command(flatten)]
        args: agent::AgentArgs,
        /// For --init only.
        #[command(flatten)]
        global: GlobalArgs,
    },
}

/// Run one client command; returns the process exit code (0 ok, 1 error).
/// `leading` holds the global options given before the command.
///
/// Errors are printed to stderr here, as `error: <reason>` and, when there is
/// something to suggest, `hint: <what to do next>`.
pub async fn run(mut cmd: Command, leading: Leading) -> i32 {
    let config = profile::ConfigDir::from_env(|key| std::env::var_os(key));
    let global = cmd.global_mut();
    let query = global.query.clone();
    if query.is_some() {
        global.output = Some(OutputFormat::Json);
    }
    let result =
        match query::scope(query, dispatch(cmd, &leading, config)).await {
            (Ok(()), Err(why)) => Err(Error::new(why)
                .hint("run the command with --output json to see the fields it prints")),
            (result, _) => result,
        };
    match result {
        Ok(()) => 0,
        Err(err) => {
            let mut stderr = std::io::stderr().lock();
            // Nothing sensible is left to do if stderr itself is gone.
            let _ = stderr.write_all(err.render().as_bytes());
            1
        }
    }
}

impl Command {
    /// The global options the command was given.
    fn global_mut(&mut self) -> &mut GlobalArgs {
        match self {
            Command::Login(args) => &mut args.global,
            Command::Logout(args) => &mut args.global,
            Command::App { global, .. }
            | Command::Secret { global, .. }
            | Command::Role { global, .. }
            | Command::Token { global, .. }
            | Command::Policy { global, .. }
            | Command::Audit { global, .. }
            | Command::Webhook { global, .. }
            | Command::Keys { global, .. }
            | Command::Agent { global, .. } => global,
        }
    }
}

/// What every handler needs: where profiles live and the global options.
#[derive(Debug)]
struct Ctx {
    config: Option<profile::ConfigDir>,
    global: Global,
}

impl Ctx {
    /// The config dir, or the error explaining why there is none.
    fn config(&self) -> Result<&profile::ConfigDir, Error> {
        self.config.as_ref().ok_or_else(profile::no_config_dir)
    }

    /// Load the selected profile and open an authenticated management session.
    async fn session(&self) -> Result<client::Session, Error> {
        let profile = self.config()?.load(&self.global.profile)?;
        client::Session::open(&profile).await
    }
}

async fn dispatch(
    cmd: Command,
    leading: &Leading,
    config: Option<profile::ConfigDir>,
) -> Result<(), Error> {
    let ctx = |after: GlobalArgs| -> Result<Ctx, Error> {
        let env = |key: &str| std::env::var(key).ok();
        Ok(Ctx {
            config: config.clone(),
            global: Global::resolve(after, leading, env)?,
        })
    };
    match cmd {
        Command::Login(args) => login::login(&ctx(args.global.clone())?, args).await,
        Command::Logout(args) => login::logout(&ctx(args.global)?),
        Command::App { global, command } => app::run(&ctx(global)?, command).await,
        Command::Secret { global, command } => secret::run(&ctx(global)?, command).await,
        Command::Role { global, command } => role::run(&ctx(global)?, command).await,
        Command::Token { global, command } => token::run(&ctx(global)?, command).await,
        Command::Audit { global, command } => audit::run(&ctx(global)?, command).await,
        Command::Policy { global, command } => policy::run(&ctx(global)?, command).await,
        Command::Webhook { global, command } => webhook::run(&ctx(global)?, command).await,
        Command::Keys { global, command } => keys::run(&ctx(global)?, command).await,
        Command::Agent { args, global } => agent::run(&ctx(global)?, args).await,
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testserver;
