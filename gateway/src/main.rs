//! `vdi-gateway`: serve the gateway, run the demo or the benchmark, run a simulator, or act as
//! a client of a running gateway's control-plane API.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use vdi_gateway::cli::{bench, client, demo};
use vdi_gateway::config::{self, LogFormat};
use vdi_gateway::{plugins, server, telemetry};

/// VDI broker integration gateway: delivers container versions to Citrix and other brokers
/// without image changes, reboots or session disruption.
#[derive(Debug, Parser)]
#[command(name = "vdi-gateway", version, about, long_about = None)]
struct Cli {
    /// Log format: human-readable lines or one JSON object per line.
    #[arg(long, value_enum, global = true)]
    log_format: Option<LogFormatArg>,
    /// Log filter, for example `info` or `vdi_gateway=debug` (RUST_LOG overrides it).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: API, engine and providers from a configuration file.
    Serve {
        /// TOML configuration file; without it, embedded defaults and VDIGW__* variables.
        #[arg(long, short, env = "VDIGW_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the main job on embedded defaults: simulator, gateway on SQLite, a rollout and a
    /// rollback driven through the HTTP API.
    Demo(demo::DemoArgs),
    /// Measure how fast the gateway converges simulated machines.
    Bench(bench::BenchArgs),
    /// Run a broker simulator on a loopback port until Ctrl-C.
    #[command(subcommand)]
    Sim(broker_sim::cli::SimCommand),
    /// List configured plugin libraries, or check one plugin library.
    #[command(subcommand)]
    Plugins(plugins::cli::PluginsCommand),
    /// Serve one plugin library over stdio for `isolation = "process"` (started by the gateway).
    #[command(hide = true)]
    PluginHost(plugins::host_main::PluginHostArgs),
    // Client commands. `client::add_client_options` gives each of them the options of the
    // connection to the gateway.
    #[command(flatten)]
    Client(client::ClientCommand),
}

fn main() -> ExitCode {
    let mut command = client::add_client_options(Cli::command());
    let matches = command.get_matches_mut();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.format(&mut command).exit(),
    };
    let client_options = match &cli.command {
        Command::Client(_) => match client::client_options(&matches) {
            Ok(options) => Some(options),
            Err(error) => error.format(&mut command).exit(),
        },
        _ => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, client_options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, client_options: Option<client::ClientOptions>) -> anyhow::Result<()> {
    let format = match cli.log_format {
        Some(LogFormatArg::Json) => Some(LogFormat::Json),
        Some(LogFormatArg::Human) => Some(LogFormat::Human),
        None => None,
    };
    match cli.command {
        Command::Serve { config } => {
            let config = config::load(config.as_deref())?;
            let level = cli.log_level.as_deref().unwrap_or(&config.log.level);
            telemetry::init(format.unwrap_or(config.log.format), level)?;
            server::serve(&config).await
        }
        Command::Demo(args) => {
            telemetry::init(
                format.unwrap_or(LogFormat::Human),
                cli.log_level.as_deref().unwrap_or("warn"),
            )?;
            demo::run(args).await
        }
        Command::Bench(args) => {
            telemetry::init(
                format.unwrap_or(LogFormat::Human),
                cli.log_level.as_deref().unwrap_or("warn"),
            )?;
            bench::run(args).await
        }
        Command::Sim(command) => {
            telemetry::init(
                format.unwrap_or(LogFormat::Human),
                cli.log_level.as_deref().unwrap_or("warn"),
            )?;
            broker_sim::cli::run(command).await
        }
        Command::Plugins(command) => {
            telemetry::init(
                format.unwrap_or(LogFormat::Human),
                cli.log_level.as_deref().unwrap_or("warn"),
            )?;
            plugins::cli::run(command).await
        }
        // The child logs nothing of its own: stdout carries envelopes and stderr the plugin's
        // log records.
        Command::PluginHost(args) => plugins::host_main::run(args).await,
        Command::Client(command) => {
            let options = client_options
                .ok_or_else(|| anyhow::anyhow!("the client options were not parsed"))?;
            client::run(&options, command).await
        }
    }
}
