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
    print!("{}", citrix_gateway_entry(&sim));
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
    print!("{}", horizon_gateway_entry(&sim));
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
    print!("{}", graph_gateway_entry(&sim));
    tokio::signal::ctrl_c()
        .await
        .context("failed to listen for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}

/// A gateway `[[providers]]` entry that points at a running simulator, with the variables
/// holding its secrets. The simulators accept fixed test credentials (for example the client
/// secret `sim-client-secret`), so printing them reveals nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEntry {
    /// The `[[providers]]` table, as TOML.
    pub toml: String,
    /// Environment variables the entry's `*_env` keys name, with their values.
    pub variables: Vec<(String, String)>,
}

impl std::fmt::Display for GatewayEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "\nTo point a gateway at it, add this to its configuration file:\n\n{}",
            self.toml
        )?;
        writeln!(
            f,
            "and set these variables (the simulator's fixed test credentials):\n"
        )?;
        for (name, value) in &self.variables {
            writeln!(f, "export {name}={value}")?;
        }
        Ok(())
    }
}

/// Writes `value` as a TOML basic string. JSON string escapes are valid TOML escapes.
fn toml_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

/// Returns the entry of a `citrix` provider in cloud mode for `sim`.
pub fn citrix_gateway_entry(sim: &CitrixSim) -> GatewayEntry {
    let config = sim.config();
    let toml = format!(
        "[[providers]]\nname = \"citrix-sim\"\nkind = \"citrix\"\n\n[providers.settings]\n\
         mode = \"cloud\"\napi_base_url = {}\ntoken_url = {}\ncustomer_id = {}\nclient_id = {}\n\
         client_secret_env = \"CITRIX_CLIENT_SECRET\"\nallow_plain_http_loopback = true\n",
        toml_string(&sim.api_base_url()),
        toml_string(&sim.cloud_token_url()),
        toml_string(&config.customer_id),
        toml_string(&config.client_id),
    );
    GatewayEntry {
        toml,
        variables: vec![(
            "CITRIX_CLIENT_SECRET".to_owned(),
            config.client_secret.clone(),
        )],
    }
}

/// Returns the entry of a `horizon` provider for `sim`.
pub fn horizon_gateway_entry(sim: &HorizonSim) -> GatewayEntry {
    let config = sim.config();
    let toml = format!(
        "[[providers]]\nname = \"horizon-sim\"\nkind = \"horizon\"\n\n[providers.settings]\n\
         api_base_url = {}\nusername = {}\npassword_env = \"HORIZON_PASSWORD\"\ndomain = {}\n\
         allow_plain_http_loopback = true\n",
        toml_string(&sim.api_base_url()),
        toml_string(&config.username),
        toml_string(&config.domain),
    );
    GatewayEntry {
        toml,
        variables: vec![("HORIZON_PASSWORD".to_owned(), config.password.clone())],
    }
}

/// Returns the entry of a `windows365` provider for `sim`. A `physical` provider takes the
/// same `[providers.settings.graph]` table.
pub fn graph_gateway_entry(sim: &GraphSim) -> GatewayEntry {
    let config = sim.config();
    let toml = format!(
        "[[providers]]\nname = \"windows365-sim\"\nkind = \"windows365\"\n\n\
         [providers.settings.graph]\ntenant_id = {}\nclient_id = {}\n\
         client_secret_env = \"GRAPH_CLIENT_SECRET\"\ntoken_url = {}\ngraph_base_url = {}\n\
         allow_plain_http_loopback = true\n",
        toml_string(&config.tenant_id),
        toml_string(&config.client_id),
        toml_string(&sim.token_url()),
        toml_string(&sim.graph_base_url()),
    );
    GatewayEntry {
        toml,
        variables: vec![(
            "GRAPH_CLIENT_SECRET".to_owned(),
            config.client_secret.clone(),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn citrix_entry_has_credentials() {
        let sim = CitrixSim::start(CitrixSimConfig::default()).await.unwrap();

        let entry = citrix_gateway_entry(&sim);
        let printed = entry.to_string();

        assert!(printed.contains(&format!("api_base_url = \"{}\"", sim.api_base_url())));
        assert!(printed.contains(&format!("client_id = \"{}\"", sim.config().client_id)));
        assert!(printed.contains("client_secret_env = \"CITRIX_CLIENT_SECRET\""));
        assert!(printed.contains("export CITRIX_CLIENT_SECRET=sim-client-secret"));
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn horizon_entry_has_credentials() {
        let sim = HorizonSim::start(HorizonSimConfig::default())
            .await
            .unwrap();

        let printed = horizon_gateway_entry(&sim).to_string();

        let config = sim.config();
        assert!(printed.contains(&format!("username = \"{}\"", config.username)));
        assert!(printed.contains(&format!("domain = \"{}\"", config.domain)));
        assert!(printed.contains(&format!("export HORIZON_PASSWORD={}", config.password)));
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn graph_entry_has_credentials() {
        let sim = GraphSim::start(GraphSimConfig::default()).await.unwrap();

        let printed = graph_gateway_entry(&sim).to_string();

        let config = sim.config();
        assert!(printed.contains(&format!("tenant_id = \"{}\"", config.tenant_id)));
        assert!(printed.contains(&format!("token_url = \"{}\"", sim.token_url())));
        assert!(printed.contains(&format!(
            "export GRAPH_CLIENT_SECRET={}",
            config.client_secret
        )));
        sim.shutdown().await;
    }
}
