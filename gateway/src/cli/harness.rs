//! Shared parts of the demo and the benchmark: a gateway configuration pointing at a
//! simulator, and a small control-plane client of the HTTP API.

use anyhow::{bail, Context};
use broker_sim::citrix::CitrixSim;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::config::{GatewayConfig, ProviderConfig, Role, TokenConfig};

/// Bearer token of the demo's control plane; the gateway only listens on loopback.
pub const DEMO_TOKEN: &str = "demo-operator-token";

/// Agent token of the demo's Horizon machines.
pub const DEMO_AGENT_TOKEN: &str = "demo-horizon-agent-token";

/// Agent token of the demo's Windows 365 Business Cloud PCs.
pub const DEMO_W365_AGENT_TOKEN: &str = "demo-windows365-agent-token";

/// Agent token of the demo's agent-only laptops.
pub const DEMO_PHYSICAL_AGENT_TOKEN: &str = "demo-physical-agent-token";

/// Adds the Windows 365 provider `windows365-demo` and the physical-endpoint provider
/// `physical-demo`, both on the Graph simulator, each with an agent token.
pub fn add_graph(config: &mut GatewayConfig, sim: &broker_sim::graph::GraphSim) {
    let sim_config = sim.config();
    let graph = json!({
        "tenant_id": sim_config.tenant_id,
        "client_id": sim_config.client_id,
        "client_secret": sim_config.client_secret,
        "token_url": sim.token_url(),
        "graph_base_url": sim.graph_base_url(),
        "allow_plain_http_loopback": true,
        "requests_per_second": 100.0,
    });
    config.providers.push(ProviderConfig {
        name: "windows365-demo".into(),
        kind: "windows365".into(),
        environment: "prod".into(),
        enabled: true,
        agent_token: Some(SecretString::from(DEMO_W365_AGENT_TOKEN)),
        settings: json!({"graph": graph, "delivery": delivery("w365")}),
    });
    config.providers.push(ProviderConfig {
        name: "physical-demo".into(),
        kind: "physical".into(),
        environment: "prod".into(),
        enabled: true,
        agent_token: Some(SecretString::from(DEMO_PHYSICAL_AGENT_TOKEN)),
        settings: json!({
            "graph": graph,
            "delivery": delivery("laptops"),
            "device_groups": [
                {"id": "ward-laptops", "name": "Ward laptops (Intune)", "name_prefix": "HOSP-LT-"},
                {"id": "agent-laptops", "name": "Agent laptops", "name_prefix": "HOSP-AG-"},
            ],
        }),
    });
}

/// Returns Intune delivery settings for a demo provider. Each provider gets its own object
/// name prefix on the shared tenant, and the simulator completes upload steps within a poll or
/// two, so reads are 250 ms apart instead of the production 2 s.
fn delivery(name_prefix: &str) -> serde_json::Value {
    json!({"name_prefix": name_prefix, "upload_poll_delay_ms": 250})
}

/// Adds a Horizon provider, named `horizon-demo`, pointing at the simulator, with an agent
/// token for the agent fleet.
pub fn add_horizon(config: &mut GatewayConfig, sim: &broker_sim::horizon::HorizonSim) {
    let sim_config = sim.config();
    config.providers.push(ProviderConfig {
        name: "horizon-demo".into(),
        kind: "horizon".into(),
        environment: "prod".into(),
        enabled: true,
        agent_token: Some(SecretString::from(DEMO_AGENT_TOKEN)),
        settings: json!({
            "api_base_url": sim.api_base_url(),
            "username": sim_config.username,
            "password": sim_config.password,
            "domain": sim_config.domain,
            "allow_plain_http_loopback": true,
        }),
    });
}

/// Builds a gateway configuration with one operator token and one Citrix provider, named
/// `citrix-demo`, pointing at the simulator.
///
/// # Errors
/// Fails when the simulator's URLs cannot be parsed.
pub fn gateway_config(sim: &CitrixSim, store_url: &str) -> anyhow::Result<GatewayConfig> {
    let mut config = GatewayConfig::embedded_defaults();
    config.store.url = SecretString::from(store_url.to_owned());
    config.engine.reconcile_interval_seconds = 1;
    config.engine.deferred_recheck_seconds = 1;
    // The defaults warn that no token is configured; this configuration adds one.
    config.warnings.clear();
    config.tokens = vec![TokenConfig {
        name: "demo-control-plane".into(),
        role: Role::Operator,
        token: SecretString::from(DEMO_TOKEN),
    }];
    let sim_config = sim.config();
    config.providers = vec![ProviderConfig {
        name: "citrix-demo".into(),
        kind: "citrix".into(),
        environment: "prod".into(),
        enabled: true,
        agent_token: None,
        settings: json!({
            "mode": "cloud",
            "api_base_url": sim.api_base_url(),
            "token_url": sim.cloud_token_url(),
            "customer_id": sim_config.customer_id,
            "client_id": sim_config.client_id,
            "client_secret": sim_config.client_secret,
            "allow_plain_http_loopback": true,
        }),
    }];
    Ok(config)
}

/// A control-plane client for the gateway's API.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ControlPlane {
    /// Creates a client for the API at `base` with a bearer token.
    ///
    /// # Errors
    /// Fails when the HTTP client cannot be built.
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .context("building the HTTP client")?,
        })
    }

    /// Sends a GET and returns the JSON body.
    ///
    /// # Errors
    /// Fails on transport errors and non-success statuses, with the API's error message.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// Sends a PUT with a JSON body.
    ///
    /// # Errors
    /// As [`ControlPlane::get`].
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// Sends a POST with a JSON body.
    ///
    /// # Errors
    /// As [`ControlPlane::get`].
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("calling the gateway at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "gateway returned {status}: {}",
                body["error"]["message"].as_str().unwrap_or("no message")
            );
        }
        Ok(body)
    }
}
