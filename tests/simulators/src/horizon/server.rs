//! The HTTP front: request decoding, the limit on concurrent queries, counting, latency,
//! fault injection, deny-list recording and the control endpoints under `/_sim/`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::TokenStore;
use super::config::HorizonSimConfig;
use super::deny::{self, is_version};
use super::error::ApiError;
use super::snapshot;
use super::state::HorizonState;
use crate::common::counters::CounterSet;
use crate::common::http::{SimRequest, SimResponse, TokenBucket, HTML_502_BODY};
use crate::common::{DeniedCall, Knobs};

/// Largest request body the simulator reads.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Path segments that name collections, actions and areas; every other segment is an
/// object id and becomes `{id}` in counter route keys. Segments after `action` and
/// version segments are kept as they are.
const ROUTE_KEYWORDS: [&str; 27] = [
    "rest",
    "login",
    "refresh",
    "logout",
    "inventory",
    "entitlements",
    "external",
    "config",
    "monitor",
    "desktop-pools",
    "machines",
    "sessions",
    "global-sessions",
    "application-pools",
    "farms",
    "rds-servers",
    "physical-machines",
    "ad-users-or-groups",
    "action",
    "tasks",
    "im-streams",
    "im-versions",
    "im-tags",
    "im-assets",
    "installed-applications",
    "global-desktop-entitlements",
    "global-application-entitlements",
];

/// State shared by every request handler of one simulator.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: HorizonSimConfig,
    pub state: Mutex<HorizonState>,
    pub knobs: Mutex<Knobs>,
    pub counters: CounterSet,
    pub tokens: Mutex<TokenStore>,
    pub bucket: Mutex<Option<TokenBucket>>,
    pub fault_rng: Mutex<StdRng>,
    pub churn_per_second: Mutex<f64>,
    /// GET requests under `/rest/` being handled now.
    pub queries_in_flight: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Handlers validate before they mutate, so state behind a poisoned lock is consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Decrements the in-flight query count when dropped.
struct QuerySlot<'a>(&'a AtomicUsize);

impl Drop for QuerySlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    pub(crate) fn new(config: HorizonSimConfig, state: HorizonState) -> Self {
        let bucket = config.knobs.rate_limit_per_second.map(TokenBucket::new);
        Self {
            state: Mutex::new(state),
            knobs: Mutex::new(config.knobs.clone()),
            counters: CounterSet::default(),
            tokens: Mutex::new(TokenStore::default()),
            bucket: Mutex::new(bucket),
            fault_rng: Mutex::new(StdRng::seed_from_u64(config.seed ^ 0x4012_fa17)),
            churn_per_second: Mutex::new(0.0),
            queries_in_flight: AtomicUsize::new(0),
            config,
        }
    }

    pub(crate) fn lock_state(&self) -> MutexGuard<'_, HorizonState> {
        lock(&self.state)
    }

    pub(crate) fn lock_tokens(&self) -> MutexGuard<'_, TokenStore> {
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

    /// Renders an error in the style the knobs select.
    pub(crate) fn error_response(&self, error: &ApiError) -> SimResponse {
        error.render(lock(&self.knobs).horizon_error_style)
    }

    /// Counts a finished request and logs error responses.
    fn record(&self, request: &SimRequest, response: &SimResponse) {
        if response.status.is_client_error() || response.status.is_server_error() {
            tracing::debug!(method = %request.method, path = %request.path, status = response.status.as_u16(), "Returned an error response");
        }
        self.counters.record(
            request.method.as_str(),
            route_key(request),
            response.status.as_u16(),
            true,
        );
    }

    /// Handles one request after latency: auth endpoints, deny-list recording, faults and
    /// routing.
    fn handle(&self, request: &SimRequest) -> SimResponse {
        let lower: Vec<&str> = request.lower.iter().map(String::as_str).collect();
        let result = match (request.method.clone(), lower.as_slice()) {
            (Method::POST, ["rest", "login"]) => self.login(request),
            (Method::POST, ["rest", "refresh"]) => self.refresh(request),
            (Method::POST, ["rest", "logout"]) => self.logout(request),
            (_, ["rest", ..]) => return self.handle_api(request),
            _ => Err(ApiError::not_found("Resource", &request.path)),
        };
        result.unwrap_or_else(|error| self.error_response(&error))
    }

    fn handle_api(&self, request: &SimRequest) -> SimResponse {
        if let Some(class) = deny::classify(&request.method, &request.lower[1..]) {
            self.counters.record_denied(DeniedCall {
                method: request.method.to_string(),
                path: request.path.clone(),
                class: class.as_str().to_string(),
            });
            if let Err(error) = self.authenticate(request) {
                return self.error_response(&error);
            }
            tracing::warn!(method = %request.method, path = %request.path, class = class.as_str(), "Recorded a call to a deny-listed endpoint");
            return denied_success(request);
        }
        if let Some(fault) = self.inject_fault() {
            return fault;
        }
        let mut response = self.dispatch(request);
        if response.status == StatusCode::OK && !response.body.is_empty() {
            let truncate_rate = lock(&self.knobs).truncate_rate;
            if lock(&self.fault_rng).random::<f64>() < truncate_rate {
                let half = response.body.len() / 2;
                response.body = response.body.slice(..half);
            }
        }
        response
    }

    /// Draws the rate limit and the random faults for one API request.
    fn inject_fault(&self) -> Option<SimResponse> {
        let knobs = self.knobs();
        let limited = lock(&self.bucket)
            .as_mut()
            .and_then(|bucket| bucket.try_take().err().map(|wait| (wait, bucket.rate())));
        if let Some((wait, rate)) = limited {
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Rate limit of {rate} requests per second exceeded."),
            );
            let mut response = self.error_response(&error);
            if knobs.retry_after_header {
                let seconds = wait.ceil().max(1.0) as u64;
                let name = HeaderName::from_static(knobs.retry_after_style.header_name());
                response = response.with_header(name, seconds.to_string());
            }
            return Some(response);
        }
        let draw: f64 = lock(&self.fault_rng).random();
        if draw < knobs.error_rate {
            let error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The Connection Server is temporarily unavailable. Retry later.",
            );
            return Some(self.error_response(&error));
        }
        if draw < knobs.error_rate + knobs.html_502_rate {
            let mut response = SimResponse::empty(StatusCode::BAD_GATEWAY);
            response.body = HTML_502_BODY.into();
            response.content_type = Some("text/html");
            return Some(response);
        }
        if draw < knobs.error_rate + knobs.html_502_rate + knobs.empty_502_rate {
            return Some(SimResponse::empty(StatusCode::BAD_GATEWAY));
        }
        None
    }

    /// Takes a query slot for a GET under `/rest/`, or returns the 429 for a query over
    /// `max_concurrent_queries`.
    fn take_query_slot(&self, request: &SimRequest) -> Result<Option<QuerySlot<'_>>, SimResponse> {
        let limit = self.config.max_concurrent_queries;
        let is_query =
            request.method == Method::GET && request.lower.first().is_some_and(|s| s == "rest");
        if limit == 0 || !is_query {
            return Ok(None);
        }
        let before = self.queries_in_flight.fetch_add(1, Ordering::SeqCst);
        let slot = QuerySlot(&self.queries_in_flight);
        if before >= limit {
            drop(slot);
            // NOTE: Horizon documents no status for this limit; 429 with a one-second wait
            // is a guess that clients already back off on.
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many concurrent queries: at most {limit} may run at once."),
            );
            let name = HeaderName::from_static(self.knobs().retry_after_style.header_name());
            return Err(self.error_response(&error).with_header(name, "1"));
        }
        Ok(Some(slot))
    }
}

/// Returns what a deny-listed call gets: 200 with a successful item per id for bulk
/// actions whose body is an id array, otherwise 204.
fn denied_success(request: &SimRequest) -> SimResponse {
    let ids: Option<Vec<String>> = serde_json::from_slice(&request.body).ok();
    match ids {
        Some(ids) => {
            let items: Vec<Value> = ids
                .iter()
                .map(|id| json!({"id": id, "status_code": 200}))
                .collect();
            SimResponse::json(StatusCode::OK, &items)
        }
        None => SimResponse::empty(StatusCode::NO_CONTENT),
    }
}

/// Returns the counter key of a request: method and lower-case path with ids replaced by
/// `{id}`, for example `"POST /rest/inventory/v1/machines/action/enter-maintenance"`.
pub(crate) fn route_key(request: &SimRequest) -> String {
    let mut key = format!("{} ", request.method);
    if request.lower.is_empty() {
        key.push('/');
    }
    let mut previous = "";
    for segment in &request.lower {
        key.push('/');
        let keep = ROUTE_KEYWORDS.contains(&segment.as_str())
            || is_version(segment)
            || previous == "action";
        if keep {
            key.push_str(segment);
        } else {
            key.push_str("{id}");
        }
        previous = segment;
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
            let error = ApiError::bad_request(format!("Failed to read the request body: {error}."));
            return shared.error_response(&error).into_response();
        }
    };
    let request = SimRequest::new(
        parts.method,
        parts.uri.path(),
        parts.uri.query(),
        parts.headers,
        body,
    );
    let slot = match shared.take_query_slot(&request) {
        Ok(slot) => slot,
        Err(rejected) => {
            shared.record(&request, &rejected);
            return rejected.into_response();
        }
    };
    let latency = lock(&shared.knobs).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = shared.handle(&request);
    drop(slot);
    shared.record(&request, &response);
    response.into_response()
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

#[derive(Debug, Default, Deserialize)]
struct ExpireBody {
    #[serde(default)]
    refresh: bool,
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
            post(
                |State(s): State<Arc<Shared>>, body: Option<Json<ExpireBody>>| async move {
                    let body = body.map(|Json(b)| b).unwrap_or_default();
                    s.expire_tokens(body.refresh);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .fallback(api_entry)
        .with_state(shared)
}
