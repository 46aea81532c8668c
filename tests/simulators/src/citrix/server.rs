//! The HTTP front: request decoding, counting, latency, fault injection and the control
//! endpoints under `/_sim/`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::json;

use super::auth::IssuedToken;
use super::config::CitrixSimConfig;
use super::deny;
use super::error::ApiError;
use super::snapshot;
use super::state::CitrixState;
use crate::common::counters::CounterSet;
use crate::common::http::{SimRequest, SimResponse, TokenBucket, HTML_502_BODY};
use crate::common::{DeniedCall, Knobs};

/// Largest request body the simulator reads.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Path segments that name collections, sub-resources or actions; every other segment is an
/// object name or id and becomes `{id}` in counter route keys.
const ROUTE_KEYWORDS: [&str; 30] = [
    "cvad",
    "manage",
    "citrix",
    "orchestration",
    "api",
    "cctrustoauth2",
    "tokens",
    "clients",
    "me",
    "sites",
    "deliverygroups",
    "machines",
    "sessions",
    "tags",
    "applicationgroups",
    "applications",
    "jobs",
    "results",
    "machinecatalogs",
    "imagedefinitions",
    "imageversions",
    "provisionedvirtualmachines",
    "maintenancecycles",
    "rebootschedules",
    "powertimeschemes",
    "poweractionschedules",
    "upgradeschedule",
    "machineaccounts",
    "deliverygroup",
    "about",
];

/// State shared by every request handler of one simulator.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: CitrixSimConfig,
    /// `http://127.0.0.1:PORT/cvad/manage/`.
    pub api_base: String,
    pub site_id: String,
    pub state: Mutex<CitrixState>,
    pub knobs: Mutex<Knobs>,
    pub counters: CounterSet,
    pub tokens: Mutex<HashMap<String, IssuedToken>>,
    pub bucket: Mutex<Option<TokenBucket>>,
    pub fault_rng: Mutex<StdRng>,
    pub churn_per_second: Mutex<f64>,
}

/// Where a request goes, decided from its path.
enum Target {
    CloudToken(String),
    OnPremToken,
    /// API call; the value is the index of the first segment after the API base.
    Api(usize),
    Unknown,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Handlers validate before they mutate, so state behind a poisoned lock is consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn new(config: CitrixSimConfig, api_base: String, state: CitrixState) -> Self {
        let bucket = config.knobs.rate_limit_per_second.map(TokenBucket::new);
        Self {
            api_base,
            site_id: state.site_id.clone(),
            state: Mutex::new(state),
            knobs: Mutex::new(config.knobs.clone()),
            counters: CounterSet::default(),
            tokens: Mutex::new(HashMap::new()),
            bucket: Mutex::new(bucket),
            fault_rng: Mutex::new(StdRng::seed_from_u64(config.seed ^ 0x5eed_fa17)),
            churn_per_second: Mutex::new(0.0),
            config,
        }
    }

    pub(crate) fn lock_state(&self) -> MutexGuard<'_, CitrixState> {
        lock(&self.state)
    }

    pub(crate) fn lock_tokens(&self) -> MutexGuard<'_, HashMap<String, IssuedToken>> {
        lock(&self.tokens)
    }

    pub(crate) fn knobs(&self) -> Knobs {
        lock(&self.knobs).clone()
    }

    pub(crate) fn set_knobs(&self, knobs: Knobs) {
        *lock(&self.bucket) = knobs.rate_limit_per_second.map(TokenBucket::new);
        *lock(&self.knobs) = knobs;
    }

    pub(crate) fn churn_rate(&self) -> f64 {
        *lock(&self.churn_per_second)
    }

    pub(crate) fn set_churn_rate(&self, per_second: f64) {
        *lock(&self.churn_per_second) = per_second.max(0.0);
    }

    fn target(request: &SimRequest) -> Target {
        let lower: Vec<&str> = request.lower.iter().map(String::as_str).collect();
        match lower.as_slice() {
            ["cctrustoauth2", _, "tokens", "clients"] => {
                Target::CloudToken(request.segments[1].clone())
            }
            ["cvad", "manage", "tokens"] | ["citrix", "orchestration", "api", "tokens"] => {
                Target::OnPremToken
            }
            ["cvad", "manage", ..] => Target::Api(2),
            ["citrix", "orchestration", "api", ..] => Target::Api(3),
            _ => Target::Unknown,
        }
    }

    /// Handles one request end to end: deny-list recording, faults (outer requests only),
    /// routing, the transaction id header and counting.
    ///
    /// `outer` is false for requests inside a `$batch`, which skip fault injection.
    pub(crate) fn handle(&self, request: &SimRequest, outer: bool) -> SimResponse {
        let mut response = self.route_request(request, outer);
        if !response.omit_transaction_id {
            let transaction = request
                .header("citrix-transactionid")
                .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
            response =
                response.with_header(HeaderName::from_static("citrix-transactionid"), transaction);
        }
        if response.status.is_client_error() || response.status.is_server_error() {
            tracing::debug!(method = %request.method, path = %request.path, status = response.status.as_u16(), "Returned an error response");
        }
        self.counters.record(
            request.method.as_str(),
            route_key(request),
            response.status.as_u16(),
            outer,
        );
        response
    }

    fn route_request(&self, request: &SimRequest, outer: bool) -> SimResponse {
        let start = match Self::target(request) {
            Target::CloudToken(customer) => return self.cloud_token(request, &customer),
            Target::OnPremToken if request.method == axum::http::Method::POST => {
                return self.onprem_token(request)
            }
            Target::Api(start) => start,
            Target::OnPremToken | Target::Unknown => {
                return ApiError::not_found("Resource", &request.path).into_response()
            }
        };
        let api_lower = strip_site_prefix(&request.lower[start..], &self.config.customer_id);
        let offset = request.lower.len() - api_lower.len();

        if let Some(class) = deny::classify(&request.method, api_lower, &request.body) {
            self.counters.record_denied(DeniedCall {
                method: request.method.to_string(),
                path: request.path.clone(),
                class: class.as_str().to_string(),
            });
            if let Err(error) = self.authenticate(request, true) {
                return error.into_response();
            }
            tracing::warn!(method = %request.method, path = %request.path, class = class.as_str(), "Recorded a call to a deny-listed endpoint");
            return SimResponse::empty(StatusCode::ACCEPTED);
        }

        if outer {
            if let Some(fault) = self.inject_fault() {
                return fault;
            }
        }
        let mut response = self.dispatch(request, offset);
        if outer && response.status == StatusCode::OK && !response.body.is_empty() {
            let truncate_rate = lock(&self.knobs).truncate_rate;
            if lock(&self.fault_rng).random::<f64>() < truncate_rate {
                let half = response.body.len() / 2;
                response.body = response.body.slice(..half);
            }
        }
        response
    }

    /// Draws the rate limit and the random faults for one outer API request.
    fn inject_fault(&self) -> Option<SimResponse> {
        let knobs = self.knobs();
        if let Some(bucket) = lock(&self.bucket).as_mut() {
            if let Err(wait) = bucket.try_take() {
                let mut response = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    format!(
                        "Rate limit of {} requests per second exceeded.",
                        bucket.rate()
                    ),
                )
                .into_response();
                if knobs.retry_after_header {
                    let seconds = wait.ceil().max(1.0) as u64;
                    let name = HeaderName::from_static(knobs.retry_after_style.header_name());
                    response = response.with_header(name, seconds.to_string());
                }
                return Some(response);
            }
        }
        let draw: f64 = lock(&self.fault_rng).random();
        if draw < knobs.error_rate {
            return Some(
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable. Retry later.",
                )
                .into_response(),
            );
        }
        if draw < knobs.error_rate + knobs.html_502_rate {
            let mut response = SimResponse::empty(StatusCode::BAD_GATEWAY);
            response.body = HTML_502_BODY.into();
            response.content_type = Some("text/html");
            response.omit_transaction_id = true;
            return Some(response);
        }
        if draw < knobs.error_rate + knobs.html_502_rate + knobs.empty_502_rate {
            let mut response = SimResponse::empty(StatusCode::BAD_GATEWAY);
            response.omit_transaction_id = true;
            return Some(response);
        }
        None
    }
}

/// Removes the `{customerId}/{siteId}` prefix that the official Go client puts after
/// `/citrix/orchestration/api`, when present.
fn strip_site_prefix<'a>(segments: &'a [String], customer_id: &str) -> &'a [String] {
    let customer = customer_id.to_lowercase();
    match segments {
        [first, _site, rest @ ..]
            if !rest.is_empty() && (*first == customer || first == "citrixonpremises") =>
        {
            rest
        }
        _ => segments,
    }
}

/// Returns the counter key of a request: method and lower-case path with names and ids
/// replaced by `{id}`.
pub(crate) fn route_key(request: &SimRequest) -> String {
    let mut key = format!("{} ", request.method);
    if request.lower.is_empty() {
        key.push('/');
    }
    for segment in &request.lower {
        key.push('/');
        if segment.starts_with('$') || ROUTE_KEYWORDS.contains(&segment.as_str()) {
            key.push_str(segment);
        } else {
            key.push_str("{id}");
        }
    }
    key
}

/// Axum fallback that turns every non-control request into a [`SimRequest`].
async fn api_entry(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, path = %parts.uri.path(), "Failed to read a request body");
            return ApiError::bad_request(format!("Failed to read the request body: {error}."))
                .into_response()
                .into_response();
        }
    };
    let request = SimRequest::new(
        parts.method,
        parts.uri.path(),
        parts.uri.query(),
        parts.headers,
        body,
    );
    let latency = lock(&shared.knobs).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    shared.handle(&request, true).into_response()
}

#[derive(Debug, Deserialize)]
struct EndSessionsBody {
    #[serde(default)]
    machines: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ChurnBody {
    per_second: f64,
}

/// Builds the router: control endpoints under `/_sim/`, everything else to the API.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/_sim/counters",
            get(|State(s): State<Arc<Shared>>| async move { Json(s.counters.snapshot()) }),
        )
        .route(
            "/_sim/counters/reset",
            post(|State(s): State<Arc<Shared>>| async move {
                s.counters.reset();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/_sim/state",
            get(|State(s): State<Arc<Shared>>| async move { Json(snapshot::take(&s)) }),
        )
        .route(
            "/_sim/knobs",
            put(
                |State(s): State<Arc<Shared>>, Json(knobs): Json<Knobs>| async move {
                    s.set_knobs(knobs.clone());
                    Json(knobs)
                },
            )
            .get(|State(s): State<Arc<Shared>>| async move { Json(s.knobs()) }),
        )
        .route(
            "/_sim/sessions/end",
            post(
                |State(s): State<Arc<Shared>>, body: Option<Json<EndSessionsBody>>| async move {
                    let machines = body.map(|Json(b)| b.machines).unwrap_or_default();
                    let ended = s.lock_state().end_sessions(&machines);
                    Json(json!({"ended": ended}))
                },
            ),
        )
        .route(
            "/_sim/sessions/churn",
            post(
                |State(s): State<Arc<Shared>>, Json(body): Json<ChurnBody>| async move {
                    s.set_churn_rate(body.per_second);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/_sim/tokens/expire",
            post(|State(s): State<Arc<Shared>>| async move {
                s.expire_tokens();
                StatusCode::NO_CONTENT
            }),
        )
        .fallback(api_entry)
        .with_state(shared)
}
