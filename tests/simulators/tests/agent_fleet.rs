//! The agent fleet simulator against a small mock of the gateway's agent channel.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use broker_sim::agent::{AgentFleet, AgentFleetConfig, Report, ReportedSession};
use serde_json::{json, Value};

const TOKEN: &str = "agent-token";

/// Desired containers per machine with a revision number for the ETag, and the reports
/// received.
#[derive(Default)]
struct Mock {
    desired: HashMap<String, (u64, Vec<Value>)>,
    reports: Vec<Report>,
    /// Number of upcoming reports that get 500.
    failing_reports: usize,
}

type Shared = Arc<Mutex<Mock>>;

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer agent-token")
}

async fn desired(
    State(mock): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let machine = query.get("machine").cloned().unwrap_or_default();
    let mock = mock.lock().unwrap();
    let (revision, containers) = mock.desired.get(&machine).cloned().unwrap_or_default();
    let etag = format!("\"{machine}-{revision}\"");
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let body = json!({"machine": machine, "containers": containers});
    ([("etag", etag)], Json(body)).into_response()
}

async fn report(
    State(mock): State<Shared>,
    headers: HeaderMap,
    Json(report): Json<Report>,
) -> StatusCode {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED;
    }
    let mut mock = mock.lock().unwrap();
    if mock.failing_reports > 0 {
        mock.failing_reports -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    mock.reports.push(report);
    StatusCode::NO_CONTENT
}

async fn start_mock(mock: Shared) -> String {
    let app = Router::new()
        .route("/v1/agent/desired", get(desired))
        .route("/v1/agent/report", post(report))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

fn container(id: &str, version: &str) -> Value {
    json!({"id": id, "version": version,
           "launch": {"executable": "player.exe", "arguments": format!("--run {id}")},
           "activation": "when_idle"})
}

fn set_desired(mock: &Shared, machine: &str, containers: Vec<Value>) {
    let mut mock = mock.lock().unwrap();
    let entry = mock.desired.entry(machine.to_string()).or_default();
    entry.0 += 1;
    entry.1 = containers;
}

fn config(gateway_url: String, machines: &[&str]) -> AgentFleetConfig {
    AgentFleetConfig {
        gateway_url,
        token: TOKEN.to_string(),
        machines: machines.iter().map(|m| m.to_string()).collect(),
        poll_interval: Duration::from_millis(30),
        install_delay: Duration::from_millis(5),
        ..AgentFleetConfig::default()
    }
}

/// Waits up to 5 seconds for `condition`.
async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..250 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn versions(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(c, v)| (c.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn fleet_installs_reports_and_removes() {
    let mock: Shared = Arc::default();
    set_desired(&mock, "m1", vec![container("epic", "1.0")]);
    set_desired(
        &mock,
        "m2",
        vec![container("epic", "1.0"), container("pacs", "7.2")],
    );
    let url = start_mock(mock.clone()).await;
    let fleet = AgentFleet::start(config(url, &["m1", "m2", "m3"]));

    wait_for("three reports", || fleet.counters().reports >= 3).await;
    let installed = fleet.installed();
    assert_eq!(installed["m1"], versions(&[("epic", "1.0")]));
    assert_eq!(
        installed["m2"],
        versions(&[("epic", "1.0"), ("pacs", "7.2")])
    );
    assert_eq!(installed["m3"], Vec::new());
    wait_for("a 304", || fleet.counters().not_modified > 0).await;

    set_desired(&mock, "m2", vec![container("epic", "1.1")]);
    wait_for("the m2 update", || {
        fleet.installed()["m2"] == versions(&[("epic", "1.1")])
    })
    .await;
    let reports = mock.lock().unwrap().reports.clone();
    let last = reports.iter().rev().find(|r| r.machine == "m2").unwrap();
    let states: BTreeMap<&str, (&str, &str)> = last
        .containers
        .iter()
        .map(|c| (c.id.as_str(), (c.version.as_str(), c.state.as_str())))
        .collect();
    assert_eq!(states["epic"], ("1.1", "installed"));
    assert_eq!(states["pacs"], ("7.2", "removed"));

    let counters = fleet.counters();
    assert!(counters.polls >= counters.reports + counters.not_modified);
    assert_eq!(counters.errors, 0);
    fleet.stop().await;
}

#[tokio::test]
async fn fail_machines_report_failed() {
    let mock: Shared = Arc::default();
    set_desired(&mock, "bad", vec![container("epic", "1.0")]);
    let url = start_mock(mock.clone()).await;
    let fleet = AgentFleet::start(AgentFleetConfig {
        fail_machines: vec!["bad".to_string()],
        ..config(url, &["bad"])
    });
    wait_for("a report", || !mock.lock().unwrap().reports.is_empty()).await;
    let report = mock.lock().unwrap().reports[0].clone();
    assert_eq!(report.containers[0].state, "failed");
    assert!(!report.containers[0].detail.is_empty());
    assert_eq!(fleet.installed()["bad"], Vec::new());
    fleet.stop().await;
}

#[tokio::test]
async fn failed_reports_are_retried() {
    let mock: Shared = Arc::default();
    set_desired(&mock, "m1", vec![container("epic", "1.0")]);
    mock.lock().unwrap().failing_reports = 2;
    let url = start_mock(mock.clone()).await;
    let fleet = AgentFleet::start(config(url, &["m1"]));
    wait_for("a successful report", || fleet.counters().reports >= 1).await;
    assert_eq!(mock.lock().unwrap().reports.len(), 1);
    assert_eq!(fleet.counters().errors, 2);
    assert_eq!(fleet.installed()["m1"], versions(&[("epic", "1.0")]));
    fleet.stop().await;
}

#[tokio::test]
async fn wrong_token_counts_errors() {
    let mock: Shared = Arc::default();
    let url = start_mock(mock.clone()).await;
    let fleet = AgentFleet::start(AgentFleetConfig {
        token: "wrong".to_string(),
        ..config(url, &["m1", "m2"])
    });
    wait_for("errors", || fleet.counters().errors >= 4).await;
    assert_eq!(fleet.counters().reports, 0);
    assert!(mock.lock().unwrap().reports.is_empty());
    fleet.stop().await;
}

#[tokio::test]
async fn unreachable_gateway_counts_errors_and_stops() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let fleet = AgentFleet::start(AgentFleetConfig {
        max_in_flight: 2,
        ..config(url, &["m1", "m2", "m3", "m4"])
    });
    wait_for("errors", || fleet.counters().errors >= 4).await;
    let stopped = tokio::time::timeout(Duration::from_secs(2), fleet.stop()).await;
    assert!(stopped.is_ok(), "stop returns promptly");
}

/// Returns the latest report the mock accepted from `machine`.
fn last_report(mock: &Shared, machine: &str) -> Option<Report> {
    let mock = mock.lock().unwrap();
    mock.reports
        .iter()
        .rev()
        .find(|r| r.machine == machine)
        .cloned()
}

#[tokio::test]
async fn reports_carry_configured_sessions() {
    let mock: Shared = Arc::default();
    let url = start_mock(mock.clone()).await;
    let sessions = BTreeMap::from([
        (
            "busy".to_string(),
            vec![ReportedSession::active("HOSP\\nurse1")],
        ),
        (
            "away".to_string(),
            vec![ReportedSession::disconnected("HOSP\\nurse2")],
        ),
    ]);
    let fleet = AgentFleet::start(AgentFleetConfig {
        sessions,
        unreported_sessions: vec!["old".to_string()],
        ..config(url, &["busy", "away", "idle", "old"])
    });
    wait_for("four reports", || fleet.counters().reports >= 4).await;

    let busy = last_report(&mock, "busy").unwrap().sessions.unwrap();
    assert_eq!(busy, vec![ReportedSession::active("HOSP\\nurse1")]);
    let away = last_report(&mock, "away").unwrap().sessions.unwrap();
    assert_eq!(away[0].state, "disconnected");
    let idle = last_report(&mock, "idle").unwrap().sessions;
    assert_eq!(idle, Some(Vec::new()));
    let old = last_report(&mock, "old").unwrap().sessions;
    assert_eq!(old, None);
    fleet.stop().await;
}

#[tokio::test]
async fn session_change_sends_check_in() {
    let mock: Shared = Arc::default();
    set_desired(&mock, "m1", vec![container("epic", "1.0")]);
    let url = start_mock(mock.clone()).await;
    let fleet = AgentFleet::start(config(url, &["m1"]));
    wait_for("the first report", || fleet.counters().reports >= 1).await;
    wait_for("a 304", || fleet.counters().not_modified >= 1).await;
    assert_eq!(fleet.counters().check_ins, 0);

    assert!(fleet.set_sessions("m1", Some(vec![ReportedSession::active("HOSP\\dr1")])));
    wait_for("a check-in", || fleet.counters().check_ins >= 1).await;
    let check_in = last_report(&mock, "m1").unwrap();
    assert!(check_in.containers.is_empty());
    assert_eq!(check_in.sessions.unwrap()[0].user, "HOSP\\dr1");

    assert!(fleet.set_sessions("m1", Some(Vec::new())));
    wait_for("a second check-in", || fleet.counters().check_ins >= 2).await;
    assert_eq!(last_report(&mock, "m1").unwrap().sessions, Some(Vec::new()));
    assert_eq!(fleet.counters().reports, 1);
    assert!(!fleet.set_sessions("unknown", None));
    fleet.stop().await;
}

#[tokio::test]
async fn report_interval_repeats_check_ins() {
    let mock: Shared = Arc::default();
    let url = start_mock(mock.clone()).await;
    let fleet = AgentFleet::start(AgentFleetConfig {
        report_interval: Duration::from_millis(100),
        ..config(url, &["m1"])
    });
    wait_for("three check-ins", || fleet.counters().check_ins >= 3).await;
    assert_eq!(fleet.counters().reports, 1);
    assert_eq!(fleet.counters().errors, 0);
    fleet.stop().await;
}
