//! Helpers shared by the Graph simulator tests: a client holding one access token.

#![allow(dead_code)]

pub mod content;

use broker_sim::graph::{GraphFleet, GraphSim, GraphSimConfig, GRAPH_DEFAULT_SCOPE};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

/// A client holding the access token of one token request, as the provider would.
pub struct Client {
    pub http: reqwest::Client,
    pub graph: String,
    pub token: String,
}

pub async fn start(fleet: GraphFleet) -> GraphSim {
    start_with(GraphSimConfig {
        fleet,
        ..GraphSimConfig::default()
    })
    .await
}

pub async fn start_with(config: GraphSimConfig) -> GraphSim {
    GraphSim::start(config).await.expect("simulator starts")
}

/// Sends a client credentials token request with `secret` and returns status and body.
pub async fn request_token(
    http: &reqwest::Client,
    sim: &GraphSim,
    secret: &str,
) -> (StatusCode, Value) {
    let config = sim.config();
    let form = [
        ("client_id", config.client_id.as_str()),
        ("client_secret", secret),
        ("grant_type", "client_credentials"),
        ("scope", GRAPH_DEFAULT_SCOPE),
    ];
    let response = http.post(sim.token_url()).form(&form).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

impl Client {
    /// Requests a token with the configured credentials.
    pub async fn connect(sim: &GraphSim) -> Self {
        let http = reqwest::Client::new();
        let secret = sim.config().client_secret.clone();
        let (status, body) = request_token(&http, sim, &secret).await;
        assert_eq!(status, StatusCode::OK, "token: {body}");
        Self {
            http,
            graph: sim.graph_base_url(),
            token: body["access_token"].as_str().unwrap().to_string(),
        }
    }

    /// Sends a request to `path` relative to the Graph base, for example `v1.0/groups`.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let url = format!("{}{}", self.graph, path.trim_start_matches('/'));
        self.send_url(method, &url, body).await
    }

    /// Sends a request to an absolute URL, such as a next link.
    pub async fn send_url(&self, method: Method, url: &str, body: Option<Value>) -> Response {
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// Sends a GET and returns status and JSON body.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.send(Method::GET, path, None).await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends a request with a JSON body and returns status and JSON body (null if empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self.send(method, path, body).await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Follows `@odata.nextLink` from `path` and returns every item and the page count.
    /// Stops after 1000 pages.
    pub async fn get_all(&self, path: &str) -> (Vec<Value>, usize) {
        let mut url = format!("{}{}", self.graph, path.trim_start_matches('/'));
        let mut items = Vec::new();
        for pages in 1..=1000 {
            let response = self.send_url(Method::GET, &url, None).await;
            assert_eq!(response.status(), StatusCode::OK, "GET {url}");
            let body: Value = response.json().await.unwrap();
            items.extend(body["value"].as_array().unwrap().iter().cloned());
            match body["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_string(),
                None => return (items, pages),
            }
        }
        panic!("more than 1000 pages from {path}");
    }
}

/// Returns the body of a minimal `win32LobApp` that starts the container player.
pub fn win32_app(name: &str) -> Value {
    serde_json::json!({
        "@odata.type": "#microsoft.graph.win32LobApp",
        "displayName": name,
        "description": "Starts the container player",
        "publisher": "VDI gateway",
        "fileName": "player.intunewin",
        "setupFilePath": "install.cmd",
        "installCommandLine": "install.cmd /quiet",
        "uninstallCommandLine": "uninstall.cmd /quiet",
        "installExperience": {"runAsAccount": "system", "deviceRestartBehavior": "suppress"},
        "returnCodes": [{"returnCode": 0, "type": "success"}, {"returnCode": 1618, "type": "retry"}],
        "msiInformation": null,
        "rules": [{
            "@odata.type": "#microsoft.graph.win32LobAppFileSystemRule",
            "ruleType": "detection",
            "path": "C:\\Program Files\\VdiGateway",
            "fileOrFolderName": "player.exe",
            "check32BitOn64System": false,
            "operationType": "exists",
            "operator": "notConfigured",
            "comparisonValue": null
        }]
    })
}
