//! Crash safety: kill the gateway process (SIGKILL) in the middle of a rollout, start it
//! again on the same SQLite file, and check that it converges with no duplicate broker
//! objects and no intent left open.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use broker_sim::citrix::{CitrixSim, CitrixSimConfig, Fleet};
use serde_json::{json, Value};

const TOKEN: &str = "crash-test-operator-token";
const MACHINES: u64 = 200;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn write_config(dir: &std::path::Path, sim: &CitrixSim, port: u16) -> std::path::PathBuf {
    let config = format!(
        r#"
[server]
bind = "127.0.0.1:{port}"

[store]
url = "sqlite://{db}"

[engine]
reconcile_interval_seconds = 1

[[tokens]]
name = "crash-test"
role = "operator"
token_env = "CRASH_TEST_TOKEN"

[[providers]]
name = "citrix-test"
kind = "citrix"

[providers.settings]
mode = "cloud"
api_base_url = "{api}"
token_url = "{token}"
customer_id = "acme-health"
client_id = "gateway-client"
client_secret_env = "CRASH_TEST_CITRIX_SECRET"
allow_plain_http_loopback = true
concurrency = 4
batch_threshold = 1000
"#,
        db = dir.join("gateway.db").display(),
        api = sim.api_base_url(),
        token = sim.cloud_token_url(),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config).expect("write config");
    path
}

fn spawn_gateway(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vdi-gateway"))
        .args(["serve", "--config"])
        .arg(config)
        .env("CRASH_TEST_TOKEN", TOKEN)
        .env("CRASH_TEST_CITRIX_SECRET", "sim-client-secret")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vdi-gateway serve")
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await {
            if response.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gateway at {base} did not become ready");
}

async fn status(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/v1/assignments/crash"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("status json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_gateway_converges_without_duplicates() {
    let mut sim_config = CitrixSimConfig {
        fleet: Fleet::Sized {
            delivery_groups: 1,
            machines_per_group: MACHINES as usize,
            active_session_percent: 0,
        },
        ..CitrixSimConfig::default()
    };
    sim_config.knobs.latency = Duration::from_millis(15);
    let sim = CitrixSim::start(sim_config).await.expect("simulator");
    let group = sim.snapshot().delivery_groups[0].name.clone();

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = write_config(dir.path(), &sim, port);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let mut first = spawn_gateway(&config);
    wait_ready(&http, &base).await;
    let body = json!({
        "container": {"id": "epic", "version": "1.0", "launch": {"executable": "player.exe"}},
        "targets": [{"provider": "citrix-test", "target": group}],
        "activation": "immediate",
    });
    let response = http
        .put(format!("{base}/v1/assignments/crash"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 202);

    // Kill once some machines are tagged and others are still pending.
    let start = Instant::now();
    loop {
        let applied = status(&http, &base).await["progress"]["applied"]
            .as_u64()
            .unwrap_or(0);
        let tagged = sim
            .snapshot()
            .machines
            .iter()
            .filter(|m| m.tags.iter().any(|t| t.starts_with("vdigw")))
            .count() as u64;
        if tagged >= 10 || applied >= 10 {
            assert!(
                tagged < MACHINES,
                "the rollout finished before the kill; slow the simulator"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the rollout never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().expect("kill the gateway");
    first.wait().expect("reap the gateway");

    let mut second = spawn_gateway(&config);
    wait_ready(&http, &base).await;
    let start = Instant::now();
    let converged = loop {
        let document = status(&http, &base).await;
        if document["state"] == "converged" {
            break document;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no convergence after restart: {document:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(converged["progress"]["applied"], MACHINES);
    second.kill().expect("stop the gateway");
    second.wait().expect("reap the gateway");

    let snapshot = sim.snapshot();
    let groups: Vec<_> = snapshot
        .application_groups
        .iter()
        .filter(|g| {
            g.restrict_to_tag
                .as_deref()
                .is_some_and(|t| t.starts_with("vdigw"))
        })
        .collect();
    assert_eq!(groups.len(), 1, "application groups: {groups:?}");
    let apps = snapshot
        .applications
        .iter()
        .filter(|a| a.metadata.iter().any(|m| m.value == "vdi-gateway"))
        .count();
    assert_eq!(apps, 1, "one gateway application");
    let tags = snapshot
        .tags
        .iter()
        .filter(|t| t.name.starts_with("vdigw"))
        .count();
    assert_eq!(tags, 1, "one version tag");
    for machine in &snapshot.machines {
        let own = machine
            .tags
            .iter()
            .filter(|t| t.starts_with("vdigw"))
            .count();
        assert_eq!(own, 1, "machine {} has {own} gateway tags", machine.name);
    }
    assert!(sim.counters().denied.is_empty());

    let store = vdi_gateway::store::Store::connect(
        &format!("sqlite://{}", dir.path().join("gateway.db").display()),
        1,
    )
    .await
    .expect("reopen store");
    assert!(
        store.pending_intents().await.expect("intents").is_empty(),
        "an intent is still open"
    );
    sim.shutdown().await;
}
