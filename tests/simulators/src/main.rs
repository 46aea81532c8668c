//! Command-line entry point that runs a simulator until Ctrl-C.

#![forbid(unsafe_code)]

use broker_sim::cli::{run, SimCommand};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "broker-sim",
    about = "Run a broker API simulator on a local port."
)]
struct Cli {
    #[command(subcommand)]
    command: SimCommand,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    run(Cli::parse().command).await
}
