//! `vdi-gateway bench`: converge N simulated machines and report throughput and cost.
//!
//! The simulator runs in a child process (`vdi-gateway sim citrix`), so the CPU time measured
//! here is the gateway's own (plus the small control-plane client of this command).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::harness::{ControlPlane, DEMO_TOKEN};
use crate::config::{GatewayConfig, ProviderConfig, Role, TokenConfig};
use crate::server;

/// Options of the benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Machines to converge.
    #[arg(long, default_value_t = 1000)]
    pub machines: usize,
    /// Delivery groups the machines are spread over.
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// Simulated broker latency per request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Requests the Citrix provider sends concurrently.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u32,
    /// Machine tag writes above which the provider groups them in `$batch` requests.
    #[arg(long, default_value_t = 10)]
    pub batch_threshold: u32,
    /// Seconds each phase may take.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// Figures of one phase.
#[derive(Debug)]
struct Phase {
    name: &'static str,
    seconds: f64,
    /// Broker operations, counting each request inside a batch.
    operations: u64,
    /// HTTP requests the broker received.
    calls: u64,
    cpu_seconds: f64,
}

/// Runs the benchmark and prints a report.
///
/// # Errors
/// Fails when the simulator or gateway cannot start or a phase does not converge in time.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.machines == 0 || args.groups == 0 || args.groups > args.machines {
        bail!(
            "--machines must be at least 1 and at least --groups ({})",
            args.groups
        );
    }
    let per_group = args.machines.div_ceil(args.groups);
    let machines = per_group * args.groups;
    let (mut child, sim_url) = start_simulator(&args, per_group).await?;
    let result = measure(&args, &sim_url, machines).await;
    let _ = child.kill().await;
    let phases = result?;

    println!();
    println!(
        "vdi-gateway bench: {machines} machines in {} delivery group(s), {} ms broker latency, provider concurrency {}",
        args.groups, args.latency_ms, args.concurrency
    );
    println!(
        "{:<10} {:>9} {:>12} {:>15} {:>14} {:>16} {:>16}",
        "phase",
        "seconds",
        "machines/s",
        "requests/machine",
        "ops/machine",
        "CPU ms/machine",
        "lower bound (s)"
    );
    for phase in &phases {
        let lower_bound = phase.calls as f64 * args.latency_ms as f64
            / 1000.0
            / f64::from(args.concurrency.max(1));
        println!(
            "{:<10} {:>9.2} {:>12.1} {:>16.3} {:>14.3} {:>16.3} {:>16.2}",
            phase.name,
            phase.seconds,
            machines as f64 / phase.seconds.max(f64::EPSILON),
            phase.calls as f64 / machines as f64,
            phase.operations as f64 / machines as f64,
            phase.cpu_seconds * 1000.0 / machines as f64,
            lower_bound,
        );
    }
    println!();
    println!("requests: HTTP requests the broker received; ops: broker operations, counting each");
    println!("request inside a $batch body. lower bound = requests x latency / concurrency: the");
    println!("time the requests take if the provider kept every connection busy and the gateway");
    println!("cost nothing.");
    Ok(())
}

async fn start_simulator(
    args: &BenchArgs,
    per_group: usize,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let exe = std::env::current_exe().context("locating the vdi-gateway executable")?;
    let mut child = tokio::process::Command::new(exe)
        .args([
            "sim",
            "citrix",
            "--fleet",
            "sized",
            "--machines",
            &per_group.to_string(),
            "--groups",
            &args.groups.to_string(),
            "--active-session-percent",
            "0",
            "--latency-ms",
            &args.latency_ms.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the simulator process")?;
    let stdout = child
        .stdout
        .take()
        .context("reading the simulator's output")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the simulator did not print its address within 30 s")??
        .context("the simulator exited before printing its address")?;
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .with_context(|| format!("no address in the simulator's output {line:?}"))?
        .to_owned();
    Ok((child, url))
}

async fn measure(args: &BenchArgs, sim_url: &str, machines: usize) -> anyhow::Result<Vec<Phase>> {
    let directory = tempfile::tempdir().context("creating a temporary directory")?;
    let mut config = GatewayConfig::embedded_defaults();
    config.store.url = SecretString::from(format!(
        "sqlite://{}",
        directory.path().join("bench.db").display()
    ));
    config.engine.reconcile_interval_seconds = 1;
    config.warnings.clear();
    config.tokens = vec![TokenConfig {
        name: "bench".into(),
        role: Role::Operator,
        token: SecretString::from(DEMO_TOKEN),
    }];
    config.providers = vec![ProviderConfig {
        name: "citrix-bench".into(),
        kind: "citrix".into(),
        environment: "bench".into(),
        enabled: true,
        agent_token: None,
        settings: json!({
            "mode": "cloud",
            "api_base_url": format!("{sim_url}/cvad/manage/"),
            "token_url": format!("{sim_url}/cctrustoauth2/acme-health/tokens/clients"),
            "customer_id": "acme-health",
            "client_id": "gateway-client",
            "client_secret": "sim-client-secret",
            "allow_plain_http_loopback": true,
            "concurrency": args.concurrency,
            "requests_per_second": 100_000.0,
            "batch_threshold": args.batch_threshold,
        }),
    }];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = server::start_on(&config, listener).await?;
    let api = ControlPlane::new(&gateway.base_url(), DEMO_TOKEN)?;
    let http = reqwest::Client::new();

    let targets = api.get("/v1/providers/citrix-bench/targets").await?;
    let names: Vec<Value> = targets["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| json!({"provider": "citrix-bench", "target": t["id"]}))
        .collect();
    let body = |version: &str| {
        json!({
            "container": {"id": "bench-app", "version": version,
                          "launch": {"executable": "player.exe", "arguments": version}},
            "targets": names,
            "activation": "immediate",
        })
    };
    let timeout = Duration::from_secs(args.timeout);
    let mut phases = Vec::new();
    let plan: [(&str, Option<Value>, &str); 3] = [
        ("assign", Some(body("1.0")), "converged"),
        ("update", Some(body("2.0")), "converged"),
        ("rollback", None, "rolled_back"),
    ];
    for (name, request, goal) in plan {
        let before = sim_calls(&http, sim_url).await?;
        let cpu_before = process_cpu_seconds();
        let start = Instant::now();
        match request {
            Some(body) => api.put("/v1/assignments/bench", &body).await?,
            None => {
                api.post("/v1/assignments/bench/rollback", &json!({}))
                    .await?
            }
        };
        loop {
            let status = api.get("/v1/assignments/bench").await?;
            if status["state"] == goal
                && status["progress"]["applied"].as_u64() == Some(machines as u64)
            {
                break;
            }
            if start.elapsed() > timeout {
                bail!(
                    "phase {name} did not converge within {} s: {}",
                    timeout.as_secs(),
                    status["progress"]
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seconds = start.elapsed().as_secs_f64();
        let after = sim_calls(&http, sim_url).await?;
        phases.push(Phase {
            name,
            seconds,
            calls: after.0.saturating_sub(before.0),
            operations: after.1.saturating_sub(before.1),
            cpu_seconds: process_cpu_seconds() - cpu_before,
        });
        eprintln!("{name}: converged in {seconds:.2} s");
    }
    gateway.stop().await;
    Ok(phases)
}

/// Returns the simulator's `(http_requests, total)` counters.
async fn sim_calls(http: &reqwest::Client, sim_url: &str) -> anyhow::Result<(u64, u64)> {
    let counters: Value = http
        .get(format!("{sim_url}/_sim/counters"))
        .send()
        .await
        .context("reading the simulator's counters")?
        .json()
        .await
        .context("decoding the simulator's counters")?;
    let field = |name: &str| {
        counters[name]
            .as_u64()
            .with_context(|| format!("the simulator's counters have no {name}"))
    };
    Ok((field("http_requests")?, field("total")?))
}

/// Returns the CPU time (user and system) this process has used, in seconds.
fn process_cpu_seconds() -> f64 {
    // NOTE: Linux only; fields 14 and 15 of /proc/self/stat count clock ticks, assumed to be
    // 100 per second (USER_HZ on every mainstream Linux build). Elsewhere this reports 0.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name, field 3 of the man page is index 0, so utime (14) is index 11.
    (ticks(11) + ticks(12)) / 100.0
}
