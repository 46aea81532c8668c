//! A stateful simulator of the Portal API on a loopback port, for tests and for
//! `vdi-gateway plugins check`.
//!
//! Its fleet: group `grp-1` "Clinicians" with machines `m-1` to `m-4` ready (`m-3` has an
//! active session, `m-2` a disconnected one) and `m-5` in maintenance; group `grp-2` "Front
//! Desk" with `m-6` ready and `m-7` offline. Requests outside the API are counted as unknown,
//! so tests can assert the plugin never called them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::model::{
    App, AppList, Group, GroupList, HealthBody, MachineBody, MachinePage, MachineStatus, NewApp,
    SessionBody,
};

/// API key the simulator accepts.
pub const SIM_API_KEY: &str = "sim-portal-key";

/// Request counts of a simulator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Every request.
    pub requests: u64,
    /// Successful writes (POST, PUT, DELETE).
    pub writes: u64,
    /// Requests to paths the API does not have, as `METHOD path`.
    pub unknown: Vec<String>,
}

#[derive(Debug, Default)]
struct SimState {
    groups: Vec<Group>,
    /// Machines with the group they belong to.
    machines: BTreeMap<String, (String, MachineBody)>,
    apps: BTreeMap<String, App>,
    next_app: u64,
    counters: Counters,
}

type Shared = Arc<Mutex<SimState>>;

/// A running simulator; dropping it leaves the server running until the runtime stops.
#[derive(Debug)]
pub struct PortalSim {
    addr: SocketAddr,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
}

impl PortalSim {
    /// Starts the simulator on `127.0.0.1` with an ephemeral port.
    ///
    /// # Errors
    /// Fails when no loopback port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        let state: Shared = Arc::new(Mutex::new(fleet()));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            state,
            shutdown: Some(shutdown),
        })
    }

    /// Returns the base URL, for example `http://127.0.0.1:41234/`.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Returns a copy of the counters.
    pub fn counters(&self) -> Counters {
        lock(&self.state).counters.clone()
    }

    /// Stops the server.
    pub fn shutdown(mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
    }

    /// Keeps the server running for the life of the process.
    pub fn leak(mut self) {
        if let Some(sender) = self.shutdown.take() {
            std::mem::forget(sender);
        }
    }
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, SimState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn fleet() -> SimState {
    let mut state = SimState::default();
    let machines = [
        ("grp-1", "m-1", MachineStatus::Ready, None),
        ("grp-1", "m-2", MachineStatus::Ready, Some("disconnected")),
        ("grp-1", "m-3", MachineStatus::Ready, Some("active")),
        ("grp-1", "m-4", MachineStatus::Ready, None),
        ("grp-1", "m-5", MachineStatus::Maintenance, None),
        ("grp-2", "m-6", MachineStatus::Ready, None),
        ("grp-2", "m-7", MachineStatus::Offline, None),
    ];
    for (group, id, status, session) in machines {
        let number = id.trim_start_matches("m-");
        let body = MachineBody {
            id: id.to_owned(),
            name: format!("VDA-{number:0>3}"),
            dns_name: Some(format!("vda-{number:0>3}.hosp.example")),
            status,
            sessions: session
                .map(|state| SessionBody {
                    user: format!("HOSP\\user{number}"),
                    state: state.to_owned(),
                })
                .into_iter()
                .collect(),
            apps: Vec::new(),
        };
        state
            .machines
            .insert(id.to_owned(), (group.to_owned(), body));
    }
    for (id, name) in [("grp-1", "Clinicians"), ("grp-2", "Front Desk")] {
        let count = state.machines.values().filter(|(g, _)| g == id).count() as u64;
        state.groups.push(Group {
            id: id.to_owned(),
            name: name.to_owned(),
            machine_count: count,
        });
    }
    state
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/groups", get(groups))
        .route("/api/groups/{id}/machines", get(machines))
        .route("/api/apps", get(apps).post(create_app))
        .route("/api/apps/{id}", delete(delete_app))
        .route(
            "/api/machines/{id}/apps/{app}",
            put(assign).delete(unassign),
        )
        .fallback(unknown)
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"message": message.into()}))).into_response()
}

/// Counts the request and checks the API key; returns the 401 response when the key is wrong.
fn reject(state: &Shared, headers: &HeaderMap) -> Option<Response> {
    lock(state).counters.requests += 1;
    match headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        Some(SIM_API_KEY) => None,
        _ => Some(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong X-Api-Key",
        )),
    }
}

async fn health(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(response) = reject(&state, &headers) {
        return response;
    }
    Json(HealthBody {
        status: "ok".into(),
        version: "1.0".into(),
    })
    .into_response()
}

async fn groups(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(response) = reject(&state, &headers) {
        return response;
    }
    let groups = lock(&state).groups.clone();
    Json(GroupList { groups }).into_response()
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<u32>,
    per_page: Option<u32>,
}

async fn machines(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    if let Some(response) = reject(&state, &headers) {
        return response;
    }
    let state = lock(&state);
    if !state.groups.iter().any(|g| g.id == id) {
        return error(StatusCode::NOT_FOUND, format!("group {id} not found"));
    }
    let page = query.page.unwrap_or(1).max(1);
    let per_page = query.per_page.unwrap_or(100).clamp(1, 500) as usize;
    let members: Vec<MachineBody> = state
        .machines
        .values()
        .filter(|(group, _)| *group == id)
        .map(|(_, m)| m.clone())
        .collect();
    let start = (page as usize - 1) * per_page;
    let items: Vec<MachineBody> = members.iter().skip(start).take(per_page).cloned().collect();
    let next_page = (start + per_page < members.len()).then_some(page + 1);
    Json(MachinePage {
        machines: items,
        page,
        next_page,
    })
    .into_response()
}

#[derive(Deserialize)]
struct AppsQuery {
    group: Option<String>,
}

async fn apps(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<AppsQuery>,
) -> Response {
    if let Some(response) = reject(&state, &headers) {
        return response;
    }
    let apps = lock(&state)
        .apps
        .values()
        .filter(|a| query.group.as_ref().is_none_or(|g| &a.group == g))
        .cloned()
        .collect();
    Json(AppList { apps }).into_response()
}

async fn create_app(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(new): Json<NewApp>,
) -> Response {
    if let Some(response) = reject(&state, &headers) {
        return response;
    }
    let mut state = lock(&state);
    if !state.groups.iter().any(|g| g.id == new.group) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("group {} not found", new.group),
        );
    }
    if state
        .apps
        .values()
        .any(|a| a.group == new.group && a.name == new.name)
    {
        return error(
            StatusCode::CONFLICT,
            format!("app {} exists in {}", new.name, new.group),
        );
    }
    state.next_app += 1;
    let app = App {
        id: format!("app-{}", state.next_app),
        group: new.group,
        name: new.name,
        display_name: new.display_name,
        command: new.command,
        arguments: new.arguments,
    };
    state.apps.insert(app.id.clone(), app.clone());
    state.counters.writes += 1;
    (StatusCode::CREATED, Json(app)).into_response()
}

async fn delete_app(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(response) = reject(&state, &headers) {
        return response;
    }
    let mut state = lock(&state);
    if state.apps.remove(&id).is_none() {
        return error(StatusCode::NOT_FOUND, format!("app {id} not found"));
    }
    for (_, machine) in state.machines.values_mut() {
        machine.apps.retain(|a| a != &id);
    }
    state.counters.writes += 1;
    StatusCode::NO_CONTENT.into_response()
}

async fn assign(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((id, app)): Path<(String, String)>,
) -> Response {
    if let Some(response) = reject(&state, &headers) {
        return response;
    }
    let mut state = lock(&state);
    let Some(app_group) = state.apps.get(&app).map(|a| a.group.clone()) else {
        return error(StatusCode::NOT_FOUND, format!("app {app} not found"));
    };
    let Some((group, machine)) = state.machines.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, format!("machine {id} not found"));
    };
    if *group != app_group {
        return error(
            StatusCode::CONFLICT,
            format!("app {app} is not published to {group}"),
        );
    }
    if !machine.apps.contains(&app) {
        machine.apps.push(app);
    }
    state.counters.writes += 1;
    StatusCode::NO_CONTENT.into_response()
}

async fn unassign(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((id, app)): Path<(String, String)>,
) -> Response {
    if let Some(response) = reject(&state, &headers) {
        return response;
    }
    let mut state = lock(&state);
    let Some((_, machine)) = state.machines.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, format!("machine {id} not found"));
    };
    let before = machine.apps.len();
    machine.apps.retain(|a| a != &app);
    if machine.apps.len() == before {
        return error(
            StatusCode::NOT_FOUND,
            format!("app {app} is not assigned to {id}"),
        );
    }
    state.counters.writes += 1;
    StatusCode::NO_CONTENT.into_response()
}

async fn unknown(State(state): State<Shared>, request: axum::extract::Request) -> Response {
    let line = format!("{} {}", request.method(), request.uri().path());
    let mut state = lock(&state);
    state.counters.requests += 1;
    state.counters.unknown.push(line.clone());
    error(
        StatusCode::NOT_FOUND,
        format!("{line} is not part of the Portal API"),
    )
}
