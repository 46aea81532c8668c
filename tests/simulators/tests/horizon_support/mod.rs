//! Helpers shared by the Horizon simulator tests: a logged-in client.

#![allow(dead_code)]

use broker_sim::horizon::{HorizonFleet, HorizonSim, HorizonSimConfig};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

/// A client holding the tokens of one login, as the provider would.
pub struct Client {
    pub http: reqwest::Client,
    pub api: String,
    pub access: String,
    pub refresh: String,
}

pub async fn start(fleet: HorizonFleet) -> HorizonSim {
    start_with(HorizonSimConfig {
        fleet,
        ..HorizonSimConfig::default()
    })
    .await
}

pub async fn start_with(config: HorizonSimConfig) -> HorizonSim {
    HorizonSim::start(config).await.expect("simulator starts")
}

/// Sends `POST /rest/login` and returns the status and body.
pub async fn login(
    http: &reqwest::Client,
    sim: &HorizonSim,
    password: &str,
) -> (StatusCode, Value) {
    let config = sim.config();
    let response = http
        .post(format!("{}login", sim.api_base_url()))
        .json(&json!({
            "username": config.username,
            "password": password,
            "domain": config.domain,
        }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

impl Client {
    /// Logs in with the configured credentials.
    pub async fn login(sim: &HorizonSim) -> Self {
        let http = reqwest::Client::new();
        let password = sim.config().password.clone();
        let (status, body) = login(&http, sim, &password).await;
        assert_eq!(status, StatusCode::OK, "login: {body}");
        Self {
            http,
            api: sim.api_base_url(),
            access: body["access_token"].as_str().unwrap().to_string(),
            refresh: body["refresh_token"].as_str().unwrap().to_string(),
        }
    }

    /// Starts a request to `path` (relative to `/rest/`) with the bearer token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(
                method,
                format!("{}{}", self.api, path.trim_start_matches('/')),
            )
            .bearer_auth(&self.access)
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// Sends a request and returns the status and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self.send(method, path, body).await;
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    /// Sends a GET with a `filter` parameter and returns the status and body.
    pub async fn get_filtered(&self, path: &str, filter: &Value) -> (StatusCode, Value) {
        let response = self
            .request(Method::GET, path)
            .query(&[("filter", filter.to_string())])
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Pages through `path` with `size` until `HAS_MORE_RECORDS` is absent and returns
    /// every item and the number of pages.
    pub async fn get_all(&self, path: &str, size: usize) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        for page in 1..=10_000 {
            let response = self
                .request(Method::GET, path)
                .query(&[("page", page.to_string()), ("size", size.to_string())])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "GET {path} page {page}");
            let more = response.headers().get("HAS_MORE_RECORDS").is_some();
            let body: Value = response.json().await.unwrap();
            items.extend(body.as_array().unwrap().iter().cloned());
            if !more {
                return (items, page);
            }
        }
        panic!("paging of {path} did not end");
    }

    /// Returns the id of the desktop pool with this name.
    pub async fn pool_id(&self, name: &str) -> String {
        let filter = json!({"type": "Equals", "name": "name", "value": name});
        let (status, pools) = self
            .get_filtered("inventory/v5/desktop-pools", &filter)
            .await;
        assert_eq!(status, StatusCode::OK);
        pools[0]["id"].as_str().expect("pool found").to_string()
    }
}
