//! `vdi-gateway demo`: the main job on embedded defaults.
//!
//! Starts the Citrix and Horizon simulators with hospital fleets and a gateway on SQLite in a
//! temporary directory. Then it acts as a control plane over the real HTTP API: it assigns an
//! EHR client, rolls a new version out in waves, rolls back, and prints the result per target.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use broker_sim::agent::{AgentFleet, AgentFleetConfig};
use broker_sim::citrix::{CitrixSim, CitrixSimConfig, Fleet};
use broker_sim::graph::{GraphFleet, GraphSim, GraphSimConfig};
use broker_sim::horizon::{HorizonFleet, HorizonSim, HorizonSimConfig};
use serde_json::{json, Value};

use super::client::wave_label;
use super::harness::{
    add_graph, add_horizon, gateway_config, ControlPlane, DEMO_AGENT_TOKEN,
    DEMO_PHYSICAL_AGENT_TOKEN, DEMO_TOKEN, DEMO_W365_AGENT_TOKEN,
};
use crate::server;

/// Options of the demo.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Simulated broker latency per request, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub latency_ms: u64,
    /// Sessions that start or end per second in the simulated Citrix hospital, so users log on
    /// and off while the rollout runs.
    #[arg(long, default_value_t = 20.0)]
    pub session_churn: f64,
    /// Seconds each step may take before the demo gives up.
    #[arg(long, default_value_t = 180)]
    pub step_timeout: u64,
    /// Keep the simulator and gateway running after the steps, until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
}

/// Per-target figures gathered over the run.
#[derive(Debug, Default, Clone)]
struct TargetFigures {
    counts: StateCounts,
    writes: u64,
    seconds: f64,
}

/// Runs the demo; an error explains which step failed.
///
/// # Errors
/// Fails when the simulator or gateway cannot start, a step does not finish in time, or the
/// endpoint guard saw a call to a denied endpoint.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut sim_config = CitrixSimConfig {
        fleet: Fleet::Hospital,
        ..CitrixSimConfig::default()
    };
    sim_config.knobs.latency = Duration::from_millis(args.latency_ms);
    let sim = CitrixSim::start(sim_config)
        .await
        .context("starting the Citrix simulator")?;
    sim.set_session_churn(args.session_churn);

    let mut horizon_config = HorizonSimConfig {
        fleet: HorizonFleet::Hospital,
        ..HorizonSimConfig::default()
    };
    horizon_config.knobs.latency = Duration::from_millis(args.latency_ms);
    let horizon = HorizonSim::start(horizon_config)
        .await
        .context("starting the Horizon simulator")?;

    let mut graph_config = GraphSimConfig {
        fleet: GraphFleet::Small,
        ..GraphSimConfig::default()
    };
    graph_config.knobs.latency = Duration::from_millis(args.latency_ms);
    let graph = GraphSim::start(graph_config)
        .await
        .context("starting the Microsoft Graph simulator")?;

    let directory = tempfile::tempdir().context("creating a temporary directory")?;
    let database = directory.path().join("gateway.db");
    let mut config = gateway_config(&sim, &format!("sqlite://{}", database.display()))?;
    add_horizon(&mut config, &horizon);
    add_graph(&mut config, &graph);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the gateway to a loopback port")?;
    let gateway = server::start_on(&config, listener).await?;
    let api = ControlPlane::new(&gateway.base_url(), DEMO_TOKEN)?;

    // Horizon has no machine tags: an agent on every VDI machine and RDS host polls the
    // gateway for its desired containers.
    let snapshot = horizon.snapshot();
    let agent_machines: Vec<String> = snapshot
        .machines
        .iter()
        .map(|m| m.id.clone())
        .chain(snapshot.rds_servers.iter().map(|r| r.id.clone()))
        .collect();
    let agents = AgentFleet::start(AgentFleetConfig {
        gateway_url: gateway.base_url(),
        token: DEMO_AGENT_TOKEN.into(),
        machines: agent_machines,
        poll_interval: Duration::from_secs(1),
        ..AgentFleetConfig::default()
    });
    // Windows 365 Business Cloud PCs have no Intune device, and some laptops are known only
    // through their agent: both poll the gateway too.
    let graph_snapshot = graph.snapshot();
    let business: Vec<String> = graph_snapshot
        .cloud_pcs
        .iter()
        .filter(|pc| pc.managed_device_id.is_none())
        .map(|pc| pc.id.clone())
        .collect();
    let business_agents = AgentFleet::start(AgentFleetConfig {
        gateway_url: gateway.base_url(),
        token: DEMO_W365_AGENT_TOKEN.into(),
        machines: business,
        poll_interval: Duration::from_secs(1),
        ..AgentFleetConfig::default()
    });
    let laptop_agents = AgentFleet::start(AgentFleetConfig {
        gateway_url: gateway.base_url(),
        token: DEMO_PHYSICAL_AGENT_TOKEN.into(),
        machines: graph_snapshot.agent_only_laptops.clone(),
        poll_interval: Duration::from_secs(1),
        ..AgentFleetConfig::default()
    });
    // The physical provider lists agent-only laptops from their check-ins.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    println!("VDI broker gateway demo");
    println!(
        "  Citrix simulator  {} (hospital fleet, {} ms latency)",
        sim.base_url(),
        args.latency_ms
    );
    println!("  Horizon simulator {}", horizon.base_url());
    println!("  Graph simulator   {}", graph.base_url());
    println!("  gateway API       {}", gateway.base_url());
    println!("  store             SQLite at {}", database.display());
    println!();

    let result = drive(&api, &args, started).await;
    let counters = sim.counters();
    let horizon_counters = horizon.counters();
    let graph_counters = graph.counters();
    let outcome = match result {
        Ok(summary) => {
            print_summary(&summary);
            println!();
            for (name, counters) in [
                ("Citrix", &counters),
                ("Horizon", &horizon_counters),
                ("Graph", &graph_counters),
            ] {
                println!(
                    "{name} broker calls: {} in all ({} writes); calls to denied endpoints: {}",
                    counters.total,
                    counters.writes,
                    counters.denied.len()
                );
            }
            let uploads = graph.upload_counters();
            println!(
                "Intune Win32 packages: {} uploaded and committed ({} bytes, {} commits rejected, \
                 {} storage requests carrying a bearer token)",
                uploads.commits_succeeded,
                uploads.bytes_stored,
                uploads.commits_failed,
                uploads.storage_rejected_authorization
            );
            for (name, fleet) in [
                ("Horizon", &agents),
                ("Windows 365 Business", &business_agents),
                ("agent-only laptop", &laptop_agents),
            ] {
                let agent_counters = fleet.counters();
                println!(
                    "{name} agents: {} polls ({} unchanged, answered 304), {} reports",
                    agent_counters.polls, agent_counters.not_modified, agent_counters.reports
                );
            }
            let denied: Vec<_> = counters
                .denied
                .iter()
                .chain(&horizon_counters.denied)
                .chain(&graph_counters.denied)
                .collect();
            if denied.is_empty() {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "the simulators saw calls to denied endpoints: {denied:?}"
                ))
            }
        }
        Err(error) => Err(error),
    };
    if args.keep_running && outcome.is_ok() {
        println!("The gateway and the simulators keep running; press Ctrl-C to stop.");
        println!(
            "  export VDIGW_SERVER={} VDIGW_TOKEN={DEMO_TOKEN}",
            gateway.base_url()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    agents.stop().await;
    business_agents.stop().await;
    laptop_agents.stop().await;
    gateway.stop().await;
    sim.shutdown().await;
    horizon.shutdown().await;
    graph.shutdown().await;
    outcome
}

/// Figures the demo prints at the end: per target, and per provider with each machine once.
#[derive(Debug, Default)]
struct Summary {
    figures: BTreeMap<String, TargetFigures>,
    machines: BTreeMap<String, StateCounts>,
}

async fn drive(api: &ControlPlane, args: &DemoArgs, started: Instant) -> anyhow::Result<Summary> {
    let providers = api.get("/v1/providers").await?;
    for provider in providers["providers"].as_array().into_iter().flatten() {
        println!(
            "[{:>5.1}s] provider {} ({}, {}): {}",
            started.elapsed().as_secs_f64(),
            provider["name"].as_str().unwrap_or("?"),
            provider["kind"].as_str().unwrap_or("?"),
            provider["environment"].as_str().unwrap_or("?"),
            provider["health"]["status"].as_str().unwrap_or("?"),
        );
    }
    let mut chosen: Vec<(String, String)> = Vec::new();
    for provider in [
        "citrix-demo",
        "horizon-demo",
        "windows365-demo",
        "physical-demo",
    ] {
        let targets = api
            .get(&format!("/v1/providers/{provider}/targets"))
            .await?;
        for target in targets["targets"].as_array().into_iter().flatten() {
            let name = target["name"].as_str().unwrap_or_default().to_owned();
            let kind = target["kind"]
                .as_str()
                .unwrap_or("target")
                .replace('_', " ");
            let count = target["machine_count"]
                .as_u64()
                .map_or_else(String::new, |n| format!("{n:>4} machines"));
            println!("          {provider:<15} {kind:<15} {name:<26} {count}");
            chosen.push((provider.to_owned(), name));
        }
    }
    if chosen.is_empty() {
        bail!("the simulators offer no targets");
    }
    println!();

    let timeout = Duration::from_secs(args.step_timeout);
    let mut figures: BTreeMap<String, TargetFigures> = BTreeMap::new();
    let steps: [(&str, Value, &str); 3] = [
        (
            "assign Epic Hyperspace 2024.2.0 (immediate, waves 10/50/100%)",
            assignment(&chosen, "2024.2.0", &[10, 50, 100]),
            "converged",
        ),
        (
            "update to 2024.3.1 (immediate, waves 5/25/100%, auto-rollback over 2% failures)",
            assignment(&chosen, "2024.3.1", &[5, 25, 100]),
            "converged",
        ),
        ("roll back to 2024.2.0", Value::Null, "rolled_back"),
    ];
    for (index, (title, body, goal)) in steps.into_iter().enumerate() {
        println!("step {}: {title}", index + 1);
        let step_start = Instant::now();
        let response = if body.is_null() {
            api.post("/v1/assignments/epic-hyperspace/rollback", &json!({}))
                .await?
        } else {
            api.put("/v1/assignments/epic-hyperspace", &body).await?
        };
        println!(
            "[{:>5.1}s] accepted: revision {}, state {}",
            started.elapsed().as_secs_f64(),
            response["revision"],
            response["state"].as_str().unwrap_or("?")
        );
        let settled = follow(api, goal, started, timeout).await?;
        let seconds = step_start.elapsed().as_secs_f64();
        println!("          step {} finished in {seconds:.1} s", index + 1);
        println!();
        for (target, settle) in settled {
            figures.entry(target).or_default().seconds += settle.min(seconds);
        }
    }

    let status = api.get("/v1/assignments/epic-hyperspace").await?;
    for row in status["per_target"].as_array().into_iter().flatten() {
        let count = |key: &str| row[key].as_u64().unwrap_or(0);
        figures.entry(target_key(row)).or_default().counts = StateCounts {
            total: count("total"),
            applied: count("applied"),
            pending: count("pending"),
            deferred: count("deferred"),
            failed: count("failed"),
            excluded: count("excluded"),
        };
    }
    let audit = api.get("/v1/audit?assignment=epic-hyperspace").await?;
    for record in audit["records"].as_array().into_iter().flatten() {
        if let Some(entry) = figures.get_mut(&target_key(record)) {
            entry.writes += 1;
        }
    }
    let machines = unique_machines(api).await?;
    Ok(Summary { figures, machines })
}

/// Machines by placement state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct StateCounts {
    total: u64,
    applied: u64,
    pending: u64,
    deferred: u64,
    failed: u64,
    excluded: u64,
}

impl StateCounts {
    fn count(&mut self, state: &str) {
        self.total += 1;
        match state {
            "applied" => self.applied += 1,
            "pending" => self.pending += 1,
            "deferred" => self.deferred += 1,
            "failed" => self.failed += 1,
            "excluded" => self.excluded += 1,
            // A state this demo does not know still counts in the total.
            _ => {}
        }
    }

    fn add(&mut self, other: &StateCounts) {
        self.total += other.total;
        self.applied += other.applied;
        self.pending += other.pending;
        self.deferred += other.deferred;
        self.failed += other.failed;
        self.excluded += other.excluded;
    }
}

/// Returns the rank of a placement state when one machine has several placements: the state
/// furthest from done wins, so a machine counts as applied only once every target that lists
/// it applied the version.
fn state_rank(state: &str) -> u8 {
    match state {
        "failed" => 5,
        "deferred" => 4,
        "pending" => 3,
        "excluded" => 2,
        "applied" => 1,
        _ => 0,
    }
}

/// Counts per provider the machines of the given placements `(provider, machine, state)`,
/// each `(provider, machine id)` once. Horizon lists an RDS host under its desktop pool and
/// under its farm, so it has a placement in each target.
fn count_unique<'a>(
    placements: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> BTreeMap<String, StateCounts> {
    let mut states: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for (provider, machine, state) in placements {
        let entry = states.entry((provider, machine)).or_insert(state);
        if state_rank(state) > state_rank(entry) {
            *entry = state;
        }
    }
    let mut counts: BTreeMap<String, StateCounts> = BTreeMap::new();
    for ((provider, _), state) in states {
        counts.entry(provider.to_owned()).or_default().count(state);
    }
    counts
}

/// Reads every placement of the demo's assignment and counts its machines per provider, each
/// machine once (see [`count_unique`]).
async fn unique_machines(api: &ControlPlane) -> anyhow::Result<BTreeMap<String, StateCounts>> {
    let mut rows: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    // Pages hold 1000 placements and the demo has about 900, so 100 pages are far more than
    // it needs.
    for _ in 0..100 {
        let path = match &cursor {
            None => "/v1/assignments/epic-hyperspace/machines?limit=1000".to_owned(),
            Some(cursor) => {
                format!("/v1/assignments/epic-hyperspace/machines?limit=1000&cursor={cursor}")
            }
        };
        let page = api.get(&path).await?;
        rows.extend(page["machines"].as_array().into_iter().flatten().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                return Ok(count_unique(rows.iter().map(|row| {
                    (
                        row["provider"].as_str().unwrap_or("?"),
                        row["machine"].as_str().unwrap_or("?"),
                        row["state"].as_str().unwrap_or("?"),
                    )
                })))
            }
        }
    }
    bail!("the placements of epic-hyperspace did not fit in 100 pages")
}

fn assignment(targets: &[(String, String)], version: &str, waves: &[u32]) -> Value {
    json!({
        "container": {
            "id": "epic-hyperspace",
            "version": version,
            "display_name": "Epic Hyperspace",
            "launch": {
                "executable": "C:\\Program Files\\Numecent\\Cloudpaging Player\\JukeboxPlayer.exe",
                "arguments": format!("/launch epic-hyperspace/{version}"),
            }
        },
        "targets": targets
            .iter()
            .map(|(provider, target)| json!({"provider": provider, "target": target}))
            .collect::<Vec<_>>(),
        // Retagging never touches a running session on Citrix: users keep the version they
        // launched and get the new one at their next launch. `when_idle` would wait for
        // multi-session hosts, which in a hospital always have someone logged on.
        "activation": "immediate",
        "rollout": {"waves": waves, "max_failure_percent": 2.0, "auto_rollback": true},
    })
}

/// Polls the assignment until it reaches `goal`, printing progress whenever it changes, and
/// returns per target the seconds until it had no pending machine.
async fn follow(
    api: &ControlPlane,
    goal: &str,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let step_start = Instant::now();
    let mut last_line = String::new();
    let mut last_progress = String::new();
    let mut last_state = String::new();
    let mut settled: BTreeMap<String, f64> = BTreeMap::new();
    loop {
        let status = api.get("/v1/assignments/epic-hyperspace").await?;
        let state = status["state"].as_str().unwrap_or("?").to_owned();
        let wave = wave_label(
            &state,
            status["current_wave"].as_u64().unwrap_or(0),
            status["rollout"]["waves"].as_array().map_or(0, Vec::len),
        )
        .unwrap_or_default();
        // The API's progress counts a machine once per target that lists it, so the line is
        // redrawn from the placements, with each machine once, only when the progress moved.
        let progress = status["progress"].to_string();
        if progress != last_progress || state != last_state {
            let all = unique_machines(api).await?.values().fold(
                StateCounts::default(),
                |mut sum, counts| {
                    sum.add(counts);
                    sum
                },
            );
            let line = format!(
                "{state:<12} {wave:<8}  applied {:>3}/{:<3} pending {:>3}  deferred {:>3}  failed {}  excluded {}",
                all.applied, all.total, all.pending, all.deferred, all.failed, all.excluded,
            );
            if line != last_line {
                println!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
                last_line = line;
            }
            last_progress = progress;
            last_state = state.clone();
        }
        for row in status["per_target"].as_array().into_iter().flatten() {
            let name = target_key(row);
            if row["total"].as_u64().unwrap_or(0) > 0 && row["pending"].as_u64() == Some(0) {
                settled
                    .entry(name)
                    .or_insert_with(|| step_start.elapsed().as_secs_f64());
            }
        }
        if state == goal {
            return Ok(settled);
        }
        if matches!(state.as_str(), "paused" | "failed") {
            bail!(
                "the rollout stopped in state {state}: {}",
                status["detail"].as_str().unwrap_or("")
            );
        }
        if step_start.elapsed() > timeout {
            bail!(
                "the assignment did not reach {goal} within {} s (state {state}); rerun with a larger --step-timeout or look at the gateway log",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Returns `provider/target` of a per-target status row or an audit record.
fn target_key(row: &Value) -> String {
    format!(
        "{}/{}",
        row["provider"].as_str().unwrap_or("?"),
        row["target"].as_str().unwrap_or("?")
    )
}

const TABLE_HEADER: [&str; 7] = [
    "machines",
    "applied",
    "deferred",
    "failed",
    "excluded",
    "broker writes",
    "seconds",
];

fn print_row(name: &str, counts: &StateCounts, writes: u64, seconds: f64) {
    println!(
        "{:<40} {:>8} {:>8} {:>9} {:>7} {:>9} {:>13} {:>8.1}",
        name,
        counts.total,
        counts.applied,
        counts.deferred,
        counts.failed,
        counts.excluded,
        writes,
        seconds
    );
}

fn print_header(first: &str) {
    let [machines, applied, deferred, failed, excluded, writes, seconds] = TABLE_HEADER;
    println!(
        "{first:<40} {machines:>8} {applied:>8} {deferred:>9} {failed:>7} {excluded:>9} {writes:>13} {seconds:>8}"
    );
}

/// Prints a row per target, then a row per provider and the total, which count each machine
/// once.
fn print_summary(summary: &Summary) {
    println!("Per target. A machine listed by two targets is in both rows: Horizon lists an RDS");
    println!("host under its desktop pool and under its farm.");
    print_header("provider/target");
    let mut providers: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
    for (name, f) in &summary.figures {
        print_row(name, &f.counts, f.writes, f.seconds);
        let provider = name.split_once('/').map_or(name.as_str(), |(p, _)| p);
        let entry = providers.entry(provider).or_default();
        entry.0 += f.writes;
        entry.1 = entry.1.max(f.seconds);
    }
    println!();
    println!("Per provider, each machine once (unique provider and machine id).");
    print_header("provider");
    let mut all = StateCounts::default();
    let (mut all_writes, mut all_seconds) = (0, 0.0_f64);
    for (provider, counts) in &summary.machines {
        let (writes, seconds) = providers
            .get(provider.as_str())
            .copied()
            .unwrap_or_default();
        print_row(provider, counts, writes, seconds);
        all.add(counts);
        all_writes += writes;
        all_seconds = all_seconds.max(seconds);
    }
    print_row("all", &all, all_writes, all_seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_counts_rds_host_once() {
        let placements = [
            ("horizon-demo", "rds-1", "applied"),
            ("horizon-demo", "rds-1", "applied"),
            ("horizon-demo", "rds-2", "applied"),
            ("horizon-demo", "rds-2", "pending"),
            ("horizon-demo", "vdi-1", "excluded"),
            ("citrix-demo", "rds-1", "applied"),
        ];

        let counts = count_unique(placements);

        let horizon = counts["horizon-demo"];
        assert_eq!(horizon.total, 3);
        assert_eq!(horizon.applied, 1);
        assert_eq!(horizon.pending, 1, "pending in one target is not applied");
        assert_eq!(horizon.excluded, 1);
        assert_eq!(
            counts["citrix-demo"].total, 1,
            "same id at another provider"
        );
    }
}
