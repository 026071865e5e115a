//! The `clavis` binary: `clavis serve` runs the server; every other command
//! is the CLI (`clavis-cli`), talking to a server over the management API.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use clavis::clock::SystemClock;
use clavis::config::LogFormat;
use clavis::{App, Config, ServeArgs};

/// Clavis: self-hosted, Entra ID compatible identity for applications.
#[derive(Debug, Parser)]
#[command(name = "clavis", version, propagate_version = true)]
struct Cli {
    /// Global options of the client commands, given before the command
    /// (`clavis --output json app list`); they also go after it.
    #[command(flatten)]
    leading: clavis_cli::Leading,
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Run the Clavis server (token endpoints, management API).
    Serve(ServeArgs),
    /// Work on a store directly (stop the servers that use it first).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Write a consistent snapshot of an installation to a new file (mode
    /// 0600), while the server runs: SQLite's VACUUM INTO, or pg_dump's
    /// custom format for a PostgreSQL --database-url. The snapshot holds
    /// secrets only as hashes and keys only sealed: back up the
    /// key-encryption key separately.
    Backup {
        /// The installation's data directory (its store is {data-dir}/clavis.db).
        #[arg(long, env = "CLAVIS_DATA_DIR", default_value = "./clavis-data")]
        data_dir: std::path::PathBuf,
        /// The store's URL instead, e.g. sqlite:///var/lib/clavis/clavis.db
        /// or postgres://clavis@db/clavis (needs pg_dump on the PATH).
        #[arg(long, env = "CLAVIS_DATABASE_URL")]
        database_url: Option<String>,
        /// The new backup file.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Put a backup into a new, empty data directory (and, for PostgreSQL,
    /// an empty database), pause its webhooks so it does not repeat the
    /// original's expiry warnings, and print the next steps: the `clavis
    /// serve` command, the kek.key, the new TLS CA, resuming webhooks.
    Restore {
        /// The backup file written by `clavis backup`.
        #[arg(long)]
        from: std::path::PathBuf,
        /// The new data directory (for SQLite, it receives the store).
        #[arg(long)]
        data_dir: std::path::PathBuf,
        /// Restore a PostgreSQL backup (a pg_dump archive written by
        /// `clavis backup`) into this empty database instead.
        #[arg(long, env = "CLAVIS_DATABASE_URL")]
        database_url: Option<String>,
        /// The installation's kek.key, copied in (mode 0600). Without it,
        /// put the key in place yourself or use --key-provider env.
        #[arg(long)]
        kek_file: Option<std::path::PathBuf>,
    },
    /// Operator commands run on the server itself (offline).
    #[command(subcommand)]
    Admin(AdminCommand),
    #[command(flatten)]
    Client(clavis_cli::Command),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Break glass: when nobody can manage a tenant any more, give its
    /// bootstrap admin a new secret (recreating it, and granting
    /// Application.ReadWrite.All and AuditLog.Read.All, if needed) and write
    /// it to {data-dir}/bootstrap-admin.json (mode 0600), as on first start.
    /// Needs the data directory and its key-encryption key; refuses while
    /// `clavis serve` runs on that data directory. Audited.
    Recover(clavis::recovery::RecoverArgs),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy a whole installation into an empty store, e.g. from the embedded
    /// SQLite default to PostgreSQL or back: every table, row for row, in one
    /// transaction, then the row counts of every table compared and printed.
    /// Refused while a server uses the source (stop every node first). Nodes
    /// using the destination need the same kek.key as the source's.
    Copy {
        /// Source database URL, e.g. sqlite://./clavis-data/clavis.db
        #[arg(long)]
        from: String,
        /// Destination database URL (empty), e.g. postgres://clavis@db/clavis
        #[arg(long)]
        to: String,
        /// Pause every webhook in the destination (for a copy that runs
        /// beside the source, so it does not repeat the source's expiry
        /// warnings); `clavis webhook resume --all` turns them back on.
        #[arg(long)]
        pause_webhooks: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.leading.is_empty() && !matches!(cli.command, Top::Client(_)) {
        eprintln!(
            "error: --profile and --output belong to the client commands (app, secret, role, …), not to this one"
        );
        return ExitCode::from(2);
    }
    match cli.command {
        Top::Serve(args) => match serve(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Top::Store(StoreCommand::Copy {
            from,
            to,
            pause_webhooks,
        }) => {
            let copied = clavis::store_copy::run(&from, &to).await;
            let result = match copied {
                Ok(mut copied) if pause_webhooks && copied.active_webhooks > 0 => {
                    clavis::store_copy::pause_webhooks(&to).await.map(|n| {
                        copied.active_webhooks = 0;
                        format!(
                            "{copied}\nPaused the destination's {n} webhook(s): `clavis webhook resume --all` turns them back on."
                        )
                    })
                }
                other => other.map(|c| c.to_string()),
            };
            report(result, |text| text)
        }
        Top::Backup {
            data_dir,
            database_url,
            to,
        } => {
            let url = database_url
                .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("clavis.db").display()));
            report(clavis::backup::backup(&url, &to).await, |s| {
                format!("backed up {s} to {}", to.display())
            })
        }
        Top::Restore {
            from,
            data_dir,
            database_url,
            kek_file,
        } => report(
            clavis::backup::restore(
                &from,
                &data_dir,
                database_url.as_deref(),
                kek_file.as_deref(),
            )
            .await,
            |s| s.to_string().trim_end().to_owned(),
        ),
        Top::Admin(AdminCommand::Recover(args)) => {
            report(clavis::recovery::recover(&args, &SystemClock).await, |r| {
                r.to_string()
            })
        }
        Top::Client(cmd) => {
            ExitCode::from(clavis_cli::run(cmd, cli.leading).await.clamp(0, 255) as u8)
        }
    }
}

fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAVIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    let colours = clavis::config::log_colours(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(colours);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    log_file_limit(clavis::http::file_limit::raise());
    let config = Config::from_args(&args);
    let app = App::build(config, Arc::new(SystemClock)).await?;
    let base = app.base_url().to_owned();
    tracing::info!(
        listen = %app.local_addr(),
        max_connections = app.state().connections.max(),
        "Clavis is listening"
    );
    match app.metrics_addr() {
        Some(addr) => tracing::info!(metrics = %addr, "metrics: http://{addr}/metrics"),
        None => tracing::info!("metrics: off (--metrics-listen off)"),
    }
    tracing::info!("authority: {base}/default  (issuer {base}/{{tenant-id}}/v2.0)");
    if let Some(ca) = &app.ca_file {
        tracing::info!("TLS: clients trust {}", ca.display());
    }
    if let Some(b) = &app.bootstrapped {
        tracing::info!(
            "first start: created tenant {} and a bootstrap admin; its client id and secret are in {} (mode 0600). Run `clavis login --bootstrap {}`",
            b.tenant_id,
            b.file.display(),
            args.data_dir.display()
        );
    }
    app.run(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Say what raising the open-file limit did (each connection is a file).
fn log_file_limit(raised: clavis::http::file_limit::Raised) {
    use clavis::http::file_limit::Raised;
    match raised {
        Raised::Raised { from, to } => {
            tracing::info!(from, to, "raised the open-file limit to the hard limit")
        }
        Raised::Already(at) => tracing::info!(open_file_limit = at, "open-file limit"),
        Raised::Refused { at, hard } => tracing::warn!(
            open_file_limit = at,
            hard,
            "could not raise the open-file limit; each connection needs a file (raise LimitNOFILE / ulimit -n)"
        ),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Print what a local command did, or its error; the exit code.
fn report<T>(result: anyhow::Result<T>, done: impl FnOnce(T) -> String) -> ExitCode {
    match result {
        Ok(value) => {
            println!("{}", done(value));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{}", clavis::local_error::render(&e));
            ExitCode::FAILURE
        }
    }
}
