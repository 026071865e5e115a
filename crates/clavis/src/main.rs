//! The `clavis` binary: `clavis serve` runs the server; every other command
//! is the CLI (`clavis-cli`), talking to a server over the management API.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use clavis::clock::SystemClock;
use clavis::{App, Config, ServeArgs};

/// mimalloc instead of the system allocator: glibc malloc took ~9% of the
/// server's CPU on the token path (arena locks when a buffer is freed on
/// another worker thread); see docs/performance-profile.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Clavis: self-hosted, Entra ID compatible identity for applications.
#[derive(Debug, Parser)]
#[command(name = "clavis", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Run the Clavis server (token endpoints, management API).
    Serve(ServeArgs),
    #[command(flatten)]
    Client(clavis_cli::Command),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Top::Serve(args) => match serve(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Top::Client(cmd) => ExitCode::from(clavis_cli::run(cmd).await.clamp(0, 255) as u8),
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAVIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(&args.log_format);
    let config = Config::from_args(&args);
    let app = App::build(config, Arc::new(SystemClock)).await?;
    let base = app.base_url().to_owned();
    tracing::info!(listen = %app.local_addr(), "Clavis is listening");
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
