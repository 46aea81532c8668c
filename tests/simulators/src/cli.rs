//! Command-line options and runner of the simulators, shared by the `broker-sim` binary and
//! the gateway's `sim` subcommand.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};

use crate::citrix::{CitrixSim, CitrixSimConfig, Fleet, Knobs};
use crate::graph::{GraphFleet, GraphSim, GraphSimConfig};
use crate::horizon::{HorizonFleet, HorizonSim, HorizonSimConfig};

/// Simulator subcommands, usable as a subcommand of another clap command line.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run the Citrix DaaS / CVAD Orchestration API simulator.
    Citrix(CitrixArgs),
    /// Run the VMware / Omnissa Horizon Server REST API simulator.
    Horizon(HorizonArgs),
    /// Run the Microsoft Graph simulator (Windows 365 Cloud PCs, Intune, Entra ID groups).
    Graph(GraphArgs),
}

/// Fleet choices of `--fleet`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FleetKind {
    /// Two delivery groups, 14 machines in every state the gateway must handle.
    Small,
    /// Six hospital delivery groups, 440 machines.
    Hospital,
    /// `--groups` groups of `--machines` ready machines, for benchmarks.
    Sized,
}

/// Options of `citrix`.
#[derive(Debug, clap::Args)]
pub struct CitrixArgs {
    /// Fleet to seed.
    #[arg(long, value_enum, default_value = "small")]
    pub fleet: FleetKind,
    /// Machines per delivery group for `--fleet sized`.
    #[arg(long, default_value_t = 1000)]
    pub machines: usize,
    /// Delivery groups for `--fleet sized`.
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// Percentage of machines with an active session for `--fleet sized`.
    #[arg(long, default_value_t = 30)]
    pub active_session_percent: u8,
    /// Address to listen on; must be loopback unless --allow-non-loopback is given.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// Allow a bind address outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// Delay before every API response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Rate limit in requests per second; requests over it get 429.
    #[arg(long)]
    pub rate_limit: Option<f64>,
    /// Seed of the fleet and the object ids.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs the simulator a subcommand names until Ctrl-C.
///
/// Fails when the simulator cannot start.
pub async fn run(command: SimCommand) -> anyhow::Result<()> {
    match command {
        SimCommand::Citrix(args) => run_citrix(args).await,
        SimCommand::Horizon(args) => run_horizon(args).await,
        SimCommand::Graph(args) => run_graph(args).await,
    }
}

fn check_loopback(bind: SocketAddr, allow_non_loopback: bool) -> anyhow::Result<()> {
    if !bind.ip().is_loopback() && !allow_non_loopback {
        bail!("bind address {bind} is not loopback; use 127.0.0.1 or pass --allow-non-loopback");
    }
    Ok(())
}

/// Runs a Citrix simulator until Ctrl-C, after printing its listening line to stdout.
///
/// Fails when the bind address is not loopback without `--allow-non-loopback`, or when it
/// cannot be bound.
pub async fn run_citrix(args: CitrixArgs) -> anyhow::Result<()> {
    check_loopback(args.bind, args.allow_non_loopback)?;
    let fleet = match args.fleet {
        FleetKind::Small => Fleet::Small,
        FleetKind::Hospital => Fleet::Hospital,
        FleetKind::Sized => Fleet::Sized {
            delivery_groups: args.groups,
            machines_per_group: args.machines,
            active_session_percent: args.active_session_percent,
        },
    };
    let config = CitrixSimConfig {
        fleet,
        seed: args.seed,
        knobs: Knobs {
            latency: Duration::from_millis(args.latency_ms),
            rate_limit_per_second: args.rate_limit,
            ..Knobs::default()
        },
        ..CitrixSimConfig::default()
    };
    let customer = config.customer_id.clone();
    let client = config.client_id.clone();
    let sim = CitrixSim::start_on(config, args.bind).await?;
    println!(
        "citrix simulator listening on {} (customer {customer}, client id {client})",
        sim.base_url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("failed to listen for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}

/// Fleet choices of `horizon --fleet`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HorizonFleetKind {
    /// Two VDI pools (8 instant clones, 4 dedicated) and an RDS farm with 3 hosts.
    Small,
    /// Eight VDI pools (one empty) and two RDS farms, about 440 machines.
    Hospital,
    /// `--pools` pools of `--machines` available machines, for benchmarks.
    Sized,
}

/// Options of `horizon`.
#[derive(Debug, clap::Args)]
pub struct HorizonArgs {
    /// Fleet to seed.
    #[arg(long, value_enum, default_value = "small")]
    pub fleet: HorizonFleetKind,
    /// Machines per desktop pool for `--fleet sized`.
    #[arg(long, default_value_t = 1000)]
    pub machines: usize,
    /// Desktop pools for `--fleet sized`.
    #[arg(long, default_value_t = 1)]
    pub pools: usize,
    /// Percentage of machines with a connected session for `--fleet sized`.
    #[arg(long, default_value_t = 30)]
    pub active_session_percent: u8,
    /// Address to listen on; must be loopback unless --allow-non-loopback is given.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// Allow a bind address outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// Delay before every API response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Rate limit in requests per second; requests over it get 429.
    #[arg(long)]
    pub rate_limit: Option<f64>,
    /// Maximum number of API queries in flight at once; 0 means no limit.
    #[arg(long, default_value_t = 5)]
    pub max_concurrent_queries: usize,
    /// Seed of the fleet and the object ids.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs a Horizon simulator until Ctrl-C, after printing its listening line to stdout.
///
/// Fails when the bind address is not loopback without `--allow-non-loopback`, or when it
/// cannot be bound.
pub async fn run_horizon(args: HorizonArgs) -> anyhow::Result<()> {
    check_loopback(args.bind, args.allow_non_loopback)?;
    let fleet = match args.fleet {
        HorizonFleetKind::Small => HorizonFleet::Small,
        HorizonFleetKind::Hospital => HorizonFleet::Hospital,
        HorizonFleetKind::Sized => HorizonFleet::Sized {
            pools: args.pools,
            machines_per_pool: args.machines,
            active_session_percent: args.active_session_percent,
        },
    };
    let config = HorizonSimConfig {
        fleet,
        seed: args.seed,
        max_concurrent_queries: args.max_concurrent_queries,
        knobs: Knobs {
            latency: Duration::from_millis(args.latency_ms),
            rate_limit_per_second: args.rate_limit,
            ..Knobs::default()
        },
        ..HorizonSimConfig::default()
    };
    let user = format!("{}\\{}", config.domain, config.username);
    let sim = HorizonSim::start_on(config, args.bind).await?;
    println!(
        "horizon simulator listening on {} (user {user})",
        sim.base_url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("failed to listen for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}

/// Fleet choices of `graph --fleet`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFleetKind {
    /// Nine Cloud PCs (six Enterprise, three Business), six managed and four agent-only
    /// laptops.
    Small,
    /// 240 Cloud PCs, 300 managed and 100 agent-only laptops.
    Hospital,
    /// `--cloud-pcs` provisioned Enterprise Cloud PCs and `--laptops` managed laptops, for
    /// benchmarks.
    Sized,
}

/// Options of `graph`.
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// Fleet to seed.
    #[arg(long, value_enum, default_value = "small")]
    pub fleet: GraphFleetKind,
    /// Enterprise Cloud PCs for `--fleet sized`.
    #[arg(long, default_value_t = 1000)]
    pub cloud_pcs: usize,
    /// Managed laptops for `--fleet sized`.
    #[arg(long, default_value_t = 1000)]
    pub laptops: usize,
    /// Address to listen on; must be loopback unless --allow-non-loopback is given.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// Allow a bind address outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// Delay before every API response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Rate limit in requests per second; requests over it get 429.
    #[arg(long)]
    pub rate_limit: Option<f64>,
    /// Delay before a group membership change shows in member lists, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub membership_lag_ms: u64,
    /// Items per page of list responses without `$top`.
    #[arg(long, default_value_t = 50)]
    pub page_size: usize,
    /// Seed of the fleet and the object ids.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs a Graph simulator until Ctrl-C, after printing its listening line to stdout.
///
/// Fails when the bind address is not loopback without `--allow-non-loopback`, or when it
/// cannot be bound.
pub async fn run_graph(args: GraphArgs) -> anyhow::Result<()> {
    check_loopback(args.bind, args.allow_non_loopback)?;
    let fleet = match args.fleet {
        GraphFleetKind::Small => GraphFleet::Small,
        GraphFleetKind::Hospital => GraphFleet::Hospital,
        GraphFleetKind::Sized => GraphFleet::Sized {
            cloud_pcs: args.cloud_pcs,
            laptops: args.laptops,
        },
    };
    let config = GraphSimConfig {
        fleet,
        seed: args.seed,
        membership_lag: Duration::from_millis(args.membership_lag_ms),
        page_size: args.page_size,
        knobs: Knobs {
            latency: Duration::from_millis(args.latency_ms),
            rate_limit_per_second: args.rate_limit,
            ..Knobs::default()
        },
        ..GraphSimConfig::default()
    };
    let tenant = config.tenant_id.clone();
    let client = config.client_id.clone();
    let sim = GraphSim::start_on(config, args.bind).await?;
    println!(
        "graph simulator listening on {} (tenant {tenant}, client id {client})",
        sim.base_url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("failed to listen for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}
