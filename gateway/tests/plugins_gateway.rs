//! End to end: a gateway loads the example plugin (in process, and through the real binary in
//! process isolation), lists its targets over the HTTP API and rolls a container out to the
//! plugin's simulator. A refused library leaves an unavailable provider, and the rest works.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{json, Value};
use vdi_gateway::config::{
    GatewayConfig, Isolation, PluginLibraryConfig, ProviderConfig, Role, TokenConfig,
};
use vdi_gateway::server;
use vdigw_example_rest::sim::PortalSim;

mod plugin_support;
use plugin_support::{provider, settings, PluginDir};

const TOKEN: &str = "plugin-test-operator-token";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("gateway reachable");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body))
            .await
    }
}

fn assignment(version: &str) -> Value {
    json!({
        "container": {
            "id": "epic-hyperspace", "version": version, "display_name": "Epic Hyperspace",
            "launch": {"executable": "C:\\Player\\player.exe", "arguments": format!("/launch epic/{version}")}
        },
        "targets": [{"provider": "portal", "target": "Clinicians"}],
        "activation": "immediate",
        "rollout": {"waves": [50, 100]}
    })
}

/// Rolls a container out through the API and waits until it converges.
async fn roll_out(api: &Api) -> Value {
    let (status, body) = api.put("/v1/assignments/ehr", &assignment("1.0")).await;
    assert_eq!(status, 202, "{body}");
    let start = Instant::now();
    loop {
        let status = api.get("/v1/assignments/ehr").await;
        if status["state"] == "converged" {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no convergence: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn check_targets_and_rollout(api: &Api, sim: &PortalSim) {
    let targets = api.get("/v1/providers/portal/targets").await;
    assert_eq!(
        targets["targets"].as_array().map(Vec::len),
        Some(2),
        "{targets}"
    );

    let converged = roll_out(api).await;
    assert_eq!(converged["progress"]["applied"], 4, "{converged:#}");
    assert_eq!(converged["progress"]["excluded"], 1, "{converged:#}");
    assert!(sim.counters().writes >= 5, "{:?}", sim.counters());
}

fn base_config(store: &std::path::Path) -> GatewayConfig {
    let mut config = GatewayConfig::embedded_defaults();
    config.store.url = SecretString::from(format!("sqlite://{}?mode=rwc", store.display()));
    config.engine.reconcile_interval_seconds = 1;
    config.engine.deferred_recheck_seconds = 0;
    config.warnings.clear();
    config.tokens = vec![TokenConfig {
        name: "test-control-plane".into(),
        role: Role::Operator,
        token: SecretString::from(TOKEN),
    }];
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_gateway_rolls_out() {
    let dir = PluginDir::new();
    let sim = PortalSim::start().await.expect("simulator starts");
    // A second library links out of the directory, so it is refused.
    let outside = PluginDir::new();
    std::os::unix::fs::symlink(
        outside.path().join(&outside.file),
        dir.path().join("libother.so"),
    )
    .expect("symlink");

    let store = tempfile::tempdir().expect("store directory");
    let mut config = base_config(&store.path().join("gw.db"));
    config.plugins = dir.config(Isolation::InProcess, Duration::from_secs(30));
    config.plugins.libraries.push(PluginLibraryConfig {
        file: "libother.so".into(),
        sha256: None,
        isolation: Isolation::InProcess,
        call_timeout: Duration::from_secs(30),
    });
    config.providers = vec![
        provider("portal", settings(&sim)),
        ProviderConfig {
            kind: "other-broker".into(),
            ..provider("other", json!({}))
        },
    ];

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gateway = server::start_on(&config, listener)
        .await
        .expect("gateway starts");
    let api = Api {
        base: gateway.base_url(),
        http: reqwest::Client::new(),
    };

    let start = Instant::now();
    let providers = loop {
        let providers = api.get("/v1/providers").await;
        let checked = providers["providers"]
            .as_array()
            .is_some_and(|list| list.iter().all(|p| p["health"]["checked_at"].is_string()));
        if checked {
            break providers;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{providers:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let list = providers["providers"].as_array().expect("list");
    let portal = list
        .iter()
        .find(|p| p["name"] == "portal")
        .expect("portal listed");
    assert_eq!(portal["source"], "plugin");
    assert_eq!(portal["health"]["status"], "ok", "{portal:#}");
    let other = list
        .iter()
        .find(|p| p["name"] == "other")
        .expect("other listed");
    assert_eq!(other["health"]["status"], "unreachable");
    let detail = other["health"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("outside the plugin directory"), "{detail}");

    check_targets_and_rollout(&api, &sim).await;
    gateway.stop().await;
}

/// A gateway binary serving until dropped.
struct GatewayProcess {
    child: Child,
    base: String,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_gateway(config_file: &std::path::Path) -> GatewayProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_vdi-gateway"))
        .args(["serve", "--config"])
        .arg(config_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gateway binary starts");
    let mut gateway = GatewayProcess {
        child,
        base: String::new(),
    };
    let stderr = gateway.child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref().take(200) {
        let line = line.expect("stderr line");
        if let Some(base) = line.strip_prefix("vdi-gateway listening on ") {
            gateway.base = base.trim().to_owned();
            // Keep draining stderr so the gateway never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return gateway;
        }
        seen.push(line);
    }
    panic!("the gateway did not report its address; stderr: {seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_isolated_binary_rolls_out() {
    let dir = PluginDir::new();
    let sim = PortalSim::start().await.expect("simulator starts");
    let work = tempfile::tempdir().expect("work directory");
    let settings = settings(&sim);
    let config = format!(
        r#"
[server]
bind = "127.0.0.1:0"

[store]
url = "sqlite://{store}?mode=rwc"

[engine]
reconcile_interval_seconds = 1
deferred_recheck_seconds = 1

[[tokens]]
name = "test-control-plane"
role = "operator"
token = "{TOKEN}"

[plugins]
directory = "{directory}"

[[plugins.libraries]]
file = "{file}"
sha256 = "{sha256}"
isolation = "process"
call_timeout_seconds = 30

[[providers]]
name = "portal"
kind = "example-rest"
environment = "test"

[providers.settings]
base_url = "{base_url}"
api_key = "{api_key}"
page_size = 2
requests_per_second = 500.0
allow_plain_http_loopback = true
"#,
        store = work.path().join("gw.db").display(),
        directory = dir.path().display(),
        file = dir.file,
        sha256 = dir.sha256(),
        base_url = settings["base_url"].as_str().expect("base_url"),
        api_key = settings["api_key"].as_str().expect("api_key"),
    );
    let config_file = work.path().join("gateway.toml");
    std::fs::write(&config_file, config).expect("write configuration");

    let gateway = spawn_gateway(&config_file);
    let api = Api {
        base: gateway.base.clone(),
        http: reqwest::Client::new(),
    };
    let providers = api.get("/v1/providers").await;
    assert_eq!(
        providers["providers"][0]["source"], "plugin",
        "{providers:#}"
    );
    check_targets_and_rollout(&api, &sim).await;
}
