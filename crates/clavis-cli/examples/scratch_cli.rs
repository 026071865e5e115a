//! Scratch (deleted after use).
use clap::Parser;
#[derive(Parser, Debug)]
#[command(name = "clavis")]
struct Cli {
    #[command(subcommand)]
    command: clavis_cli::Command,
}
#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    std::process::exit(clavis_cli::run(cli.command).await);
}
