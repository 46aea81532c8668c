//! The HTTP front: request decoding, request ids, counting, latency, fault injection,
//! deny-list recording, Intune limits, the control endpoints under `/_sim/`, and the
//! content storage under `/storage/`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::auth::TokenStore;
use super::config::GraphSimConfig;
use super::deny::{self, DENIED_ACTIONS};
use super::error::GraphError;
use super::model::ApiVersion;
use super::snapshot;
use super::state::GraphState;
use super::storage::storage_entry;
use super::throttle::{IntuneService, Throttle};
use super::upload::{ContentUploadCounters, ContentUploadKnobs};
use crate::common::counters::CounterSet;
use crate::common::http::{SimRequest, SimResponse, TokenBucket, HTML_502_BODY};
use crate::common::{DeniedCall, Knobs};

/// Largest request body the simulator reads.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Lower-case path segments kept in counter route keys; every other segment is an id.
/// A `microsoft.graph.` prefix is kept when the rest of the segment is listed.
const ROUTE_KEYWORDS: &[&str] = &[
    "v1.0",
    "beta",
    "oauth2",
    "v2.0",
    "token",
    "$batch",
    "devicemanagement",
    "virtualendpoint",
    "cloudpcs",
    "provisioningpolicies",
    "manageddevices",
    "syncdevice",
    "troubleshoot",
    "deviceappmanagement",
    "mobileapps",
    "assign",
    "assignments",
    "win32lobapp",
    "contentversions",
    "files",
    "commit",
    "renewupload",
    "groups",
    "members",
    "$ref",
    "users",
    "devices",
    "directoryobjects",
    "bulkactions",
    "storage",
];

/// Ids a Graph response carries in its headers and error bodies.
#[derive(Debug, Clone)]
pub(crate) struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
}

impl RequestIds {
    /// Draws a new `request-id` and echoes the client's `client-request-id`, or reuses the
    /// request id when the client sent none.
    pub fn for_request(request: &SimRequest) -> Self {
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_request_id = request
            .header("client-request-id")
            .map(str::to_string)
            .unwrap_or_else(|| request_id.clone());
        Self {
            request_id,
            client_request_id,
        }
    }
}

/// State shared by every request handler of one simulator.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: GraphSimConfig,
    /// `http://host:port` of the listener, the base of every next link.
    pub base_url: String,
    pub state: Mutex<GraphState>,
    pub knobs: Mutex<Knobs>,
    pub counters: CounterSet,
    pub tokens: Mutex<TokenStore>,
    pub bucket: Mutex<Option<TokenBucket>>,
    pub throttle: Mutex<Throttle>,
    pub fault_rng: Mutex<StdRng>,
    pub upload_knobs: Mutex<ContentUploadKnobs>,
    pub upload_counters: Mutex<ContentUploadCounters>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Handlers validate before they mutate, so state behind a poisoned lock is consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn new(config: GraphSimConfig, state: GraphState, base_url: String) -> Self {
        let bucket = config.knobs.rate_limit_per_second.map(TokenBucket::new);
        Self {
            base_url,
            state: Mutex::new(state),
            knobs: Mutex::new(config.knobs.clone()),
            counters: CounterSet::default(),
            tokens: Mutex::new(TokenStore::default()),
            bucket: Mutex::new(bucket),
            throttle: Mutex::new(Throttle::default()),
            fault_rng: Mutex::new(StdRng::seed_from_u64(config.seed ^ 0x6a7a_b0b5)),
            upload_knobs: Mutex::new(config.content_upload.clone()),
            upload_counters: Mutex::new(ContentUploadCounters::default()),
            config,
        }
    }

    pub(crate) fn lock_state(&self) -> MutexGuard<'_, GraphState> {
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

    /// Draws a number in `0.0..1.0` from the seeded fault generator.
    pub(crate) fn draw(&self) -> f64 {
        lock(&self.fault_rng).random()
    }

    /// Handles one request after latency. `outer` is false for a request inside `$batch`,
    /// which gets neither random faults nor the knob rate limit.
    pub(crate) fn handle(
        &self,
        request: &SimRequest,
        ids: &RequestIds,
        outer: bool,
    ) -> SimResponse {
        let lower: Vec<&str> = request.lower.iter().map(String::as_str).collect();
        let (version, rest) = match lower.as_slice() {
            [tenant, "oauth2", "v2.0", "token"] if request.method == Method::POST => {
                return self.token(request, tenant, &ids.request_id);
            }
            ["v1.0", rest @ ..] => (ApiVersion::V1, rest),
            ["beta", rest @ ..] => (ApiVersion::Beta, rest),
            _ => {
                return GraphError::no_route(&request.path)
                    .render(&ids.request_id, &ids.client_request_id)
            }
        };
        let result = self.handle_graph(request, version, rest, ids, outer);
        result.unwrap_or_else(|error| error.render(&ids.request_id, &ids.client_request_id))
    }

    fn handle_graph(
        &self,
        request: &SimRequest,
        version: ApiVersion,
        rest: &[&str],
        ids: &RequestIds,
        outer: bool,
    ) -> Result<SimResponse, GraphError> {
        let denied = deny::classify(&request.method, rest, &self.lock_state());
        if let Some(class) = denied {
            self.counters.record_denied(DeniedCall {
                method: request.method.to_string(),
                path: request.path.clone(),
                class: class.as_str().to_string(),
            });
            self.authenticate(request)?;
            tracing::warn!(method = %request.method, path = %request.path, class = class.as_str(), "Recorded a call to a deny-listed endpoint");
            return Ok(SimResponse::empty(StatusCode::NO_CONTENT));
        }
        self.authenticate(request)?;
        if outer {
            self.inject_fault()?;
        }
        if let Some(service) = IntuneService::of(rest) {
            let limits = &self.config.intune_limits;
            let admitted =
                lock(&self.throttle).admit(limits, service, request.is_write(), Instant::now());
            if let Err(seconds) = admitted {
                let message = format!(
                    "Too many requests to the Intune {service:?} service; retry after {seconds} s."
                );
                return Err(GraphError::too_many_requests(message, Some(seconds)));
            }
        }
        if rest == ["$batch"] {
            if !outer {
                return Err(GraphError::bad_request(
                    "A $batch request cannot contain another $batch request.",
                ));
            }
            return self.batch(request, version, ids);
        }
        self.route(request, version, rest)
    }

    /// Draws the knob rate limit and the random faults for one API request.
    fn inject_fault(&self) -> Result<(), GraphError> {
        let knobs = self.knobs();
        let limited = lock(&self.bucket)
            .as_mut()
            .and_then(|bucket| bucket.try_take().err().map(|wait| (wait, bucket.rate())));
        if let Some((wait, rate)) = limited {
            let retry_after = knobs
                .retry_after_header
                .then(|| wait.ceil().max(1.0) as u64);
            let message = format!("Rate limit of {rate} requests per second exceeded.");
            return Err(GraphError::too_many_requests(message, retry_after));
        }
        if self.draw() < knobs.error_rate {
            return Err(GraphError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Retry later.",
            ));
        }
        Ok(())
    }

    /// Replaces a response with an injected 502 or a truncated body when the knobs draw one.
    fn inject_response_fault(&self, response: SimResponse) -> SimResponse {
        let knobs = self.knobs();
        let draw = self.draw();
        if draw < knobs.html_502_rate {
            let mut fault = SimResponse::empty(StatusCode::BAD_GATEWAY);
            fault.body = HTML_502_BODY.into();
            fault.content_type = Some("text/html");
            return fault;
        }
        if draw < knobs.html_502_rate + knobs.empty_502_rate {
            return SimResponse::empty(StatusCode::BAD_GATEWAY);
        }
        let mut response = response;
        if response.status == StatusCode::OK
            && !response.body.is_empty()
            && self.draw() < knobs.truncate_rate
        {
            let half = response.body.len() / 2;
            response.body = response.body.slice(..half);
        }
        response
    }

    /// Counts a finished request.
    pub(crate) fn record(&self, request: &SimRequest, status: StatusCode, outer: bool) {
        if status.is_client_error() || status.is_server_error() {
            tracing::debug!(method = %request.method, path = %request.path, status = status.as_u16(), "Returned an error response");
        }
        self.counters.record(
            request.method.as_str(),
            route_key(request),
            status.as_u16(),
            outer,
        );
    }
}

/// Returns the counter key of a request: method and lower-case path with ids replaced by
/// `{id}`, for example `"POST /v1.0/groups/{id}/members/$ref"`.
pub(crate) fn route_key(request: &SimRequest) -> String {
    let mut key = format!("{} ", request.method);
    if request.lower.is_empty() {
        key.push('/');
    }
    for segment in &request.lower {
        key.push('/');
        let action = segment.strip_prefix("microsoft.graph.").unwrap_or(segment);
        let keep = ROUTE_KEYWORDS.contains(&action)
            || DENIED_ACTIONS.iter().any(|(name, _)| *name == action);
        key.push_str(if keep { segment } else { "{id}" });
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
            let error =
                GraphError::bad_request(format!("Failed to read the request body: {error}."));
            return error.render("", "").into_response();
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

    let ids = RequestIds::for_request(&request);
    let mut response = shared.handle(&request, &ids, true);
    let is_graph = request
        .lower
        .first()
        .is_some_and(|s| s == "v1.0" || s == "beta");
    if is_graph {
        response = shared.inject_response_fault(response);
    }
    shared.record(&request, response.status, true);

    let response = response
        .with_header(
            HeaderName::from_static("request-id"),
            ids.request_id.clone(),
        )
        .with_header(
            HeaderName::from_static("client-request-id"),
            ids.client_request_id.clone(),
        )
        .with_header(HeaderName::from_static("x-ms-request-id"), ids.request_id);
    response.into_response()
}

/// Builds the router: control endpoints under `/_sim/`, everything else to the API.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/_sim/counters",
            get(|State(s): State<Arc<Shared>>| async move { Json(s.graph_counters()) }),
        )
        .route(
            "/_sim/counters/reset",
            post(|State(s): State<Arc<Shared>>| async move {
                s.reset_graph_counters();
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
            "/_sim/upload/knobs",
            put(
                |State(s): State<Arc<Shared>>, Json(knobs): Json<ContentUploadKnobs>| async move {
                    s.set_upload_knobs(knobs.clone());
                    Json(knobs)
                },
            )
            .get(|State(s): State<Arc<Shared>>| async move { Json(s.upload_knobs()) }),
        )
        .route("/storage/{*blob}", any(storage_entry))
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
