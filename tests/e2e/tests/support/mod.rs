//! Helpers shared by the end-to-end tests.

#![allow(dead_code)]

use secrecy::SecretString;
use serde_json::{json, Value};
use vdi_gateway::config::{GatewayConfig, ProviderConfig, Role, TokenConfig};

/// Operator token of the tests' control plane.
pub const TOKEN: &str = "test-operator-token";

/// A gateway configuration with the test operator token and no provider.
pub fn gateway_config_without_providers(store_url: &str) -> GatewayConfig {
    let mut config = GatewayConfig::embedded_defaults();
    config.store.url = SecretString::from(store_url.to_owned());
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

/// A gateway configuration with one Citrix provider, `citrix-test`, on the simulator.
pub fn gateway_config(sim: &broker_sim::citrix::CitrixSim, store_url: &str) -> GatewayConfig {
    let mut config = gateway_config_without_providers(store_url);
    let sim_config = sim.config();
    config.providers = vec![ProviderConfig {
        name: "citrix-test".into(),
        kind: "citrix".into(),
        environment: "test".into(),
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
    config
}

/// A control-plane client that asserts transport success and returns status and body.
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// Creates a client for `base`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("gateway reachable");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// GET that must succeed.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }
}
