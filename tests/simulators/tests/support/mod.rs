//! Helpers shared by the simulator integration tests: an authenticated client.

#![allow(dead_code)]

use broker_sim::citrix::{CitrixSim, CitrixSimConfig, Fleet};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

/// A client holding a cloud token and the site id, as the gateway would after `/me`.
pub struct Client {
    pub http: reqwest::Client,
    pub api: String,
    pub token: String,
    pub customer: String,
    pub site: String,
}

pub async fn start(fleet: Fleet) -> CitrixSim {
    CitrixSim::start(CitrixSimConfig {
        fleet,
        ..CitrixSimConfig::default()
    })
    .await
    .expect("simulator starts")
}

pub async fn cloud_token(http: &reqwest::Client, sim: &CitrixSim) -> String {
    let config = sim.config();
    let response = http
        .post(sim.cloud_token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

impl Client {
    /// Authenticates with client credentials and discovers the site id through `/me`.
    pub async fn cloud(sim: &CitrixSim) -> Self {
        let http = reqwest::Client::new();
        let token = cloud_token(&http, sim).await;
        let customer = sim.config().customer_id.clone();
        let me: Value = http
            .get(format!("{}me", sim.api_base_url()))
            .header("Authorization", format!("CwsAuth Bearer={token}"))
            .header("Citrix-CustomerId", &customer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let site = me["Customers"][0]["Sites"][0]["Id"]
            .as_str()
            .expect("site id in /me")
            .to_string();
        Self {
            http,
            api: sim.api_base_url(),
            token,
            customer,
            site,
        }
    }

    /// Starts a request to `path` (relative to `/cvad/manage/`) with the auth headers.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(
                method,
                format!("{}{}", self.api, path.trim_start_matches('/')),
            )
            .header("Authorization", format!("CwsAuth Bearer={}", self.token))
            .header("Citrix-CustomerId", &self.customer)
            .header("Citrix-InstanceId", &self.site)
            .header("Accept", "application/json")
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

    /// Follows `ContinuationToken` until the end and returns every item.
    pub async fn get_all(&self, path: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..10_000 {
            let mut request = self
                .request(Method::GET, path)
                .query(&[("limit", limit.to_string())]);
            if let Some(token) = &token {
                request = request.query(&[("continuationToken", token)]);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "GET {path}");
            let page: Value = response.json().await.unwrap();
            items.extend(page["Items"].as_array().unwrap().iter().cloned());
            match page["ContinuationToken"].as_str() {
                Some(next) => token = Some(next.to_string()),
                None => return items,
            }
        }
        panic!("paging of {path} did not end");
    }

    /// Polls a job until it leaves `InProgress` and returns its final model.
    pub async fn wait_job(&self, location: &str) -> Value {
        let id = location.rsplit('/').next().unwrap();
        for _ in 0..20 {
            let (status, job) = self.get(&format!("Jobs/{id}")).await;
            assert_eq!(status, StatusCode::OK);
            if job["Status"] != "InProgress" {
                return job;
            }
        }
        panic!("job {id} stayed in progress");
    }
}
