//! Horizon deny-list recording, concurrency and rate limits, fault knobs, error styles,
//! the `/_sim/` control endpoints and the binary.

mod horizon_support;

use std::time::Duration;

use broker_sim::horizon::{
    Counters, HorizonDenyClass, HorizonErrorStyle, HorizonFleet, HorizonSimConfig, HorizonSnapshot,
    Knobs, RetryAfterStyle, UNKNOWN_FIELD, UNKNOWN_MACHINE_STATE,
};
use horizon_support::{start, start_with, Client};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn denied_calls_are_recorded_without_change() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;

    let before = sim.snapshot();
    let pool = before.desktop_pool("EHR-IC").unwrap().id.clone();
    let farm = before.farms[0].id.clone();
    let machine = before.machine("EHR-IC-001").unwrap().id.clone();
    let session = before.machine("EHR-IC-001").unwrap().sessions[0].id.clone();
    let push = json!({"parent_vm_id": "vm-1", "snapshot_id": "snap-1",
                      "logoff_policy": "FORCE_LOGOFF", "start_time": 0});
    let cases = [
        (
            Method::POST,
            format!("inventory/v1/desktop-pools/{pool}/action/schedule-push-image"),
            push.clone(),
            "image_push",
            StatusCode::NO_CONTENT,
        ),
        (
            Method::POST,
            format!("inventory/v2/desktop-pools/{pool}/action/schedule-push-image"),
            push,
            "image_push",
            StatusCode::NO_CONTENT,
        ),
        (
            Method::POST,
            format!("inventory/v1/farms/{farm}/action/schedule-maintenance"),
            json!({}),
            "farm_maintenance",
            StatusCode::NO_CONTENT,
        ),
        (
            Method::POST,
            "config/v1/im-streams".to_string(),
            json!({}),
            "image_management",
            StatusCode::NO_CONTENT,
        ),
        (
            Method::POST,
            "inventory/v1/machines/action/reset".to_string(),
            json!([machine]),
            "reboot",
            StatusCode::OK,
        ),
        (
            Method::POST,
            "inventory/v1/machines/action/restart".to_string(),
            json!([machine]),
            "reboot",
            StatusCode::OK,
        ),
        (
            Method::POST,
            "inventory/v1/machines/action/rebuild".to_string(),
            json!([machine]),
            "rebuild",
            StatusCode::OK,
        ),
        (
            Method::POST,
            "inventory/v1/machines/action/recover".to_string(),
            json!([machine]),
            "rebuild",
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            "inventory/v1/machines".to_string(),
            json!([machine]),
            "machine_delete",
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            format!("inventory/v1/machines/{machine}"),
            json!({}),
            "machine_delete",
            StatusCode::NO_CONTENT,
        ),
        (
            Method::POST,
            "inventory/v1/sessions/action/logoff?forced=true".to_string(),
            json!([session]),
            "session_destructive",
            StatusCode::OK,
        ),
        (
            Method::POST,
            "inventory/v1/sessions/action/disconnect".to_string(),
            json!([session]),
            "session_destructive",
            StatusCode::OK,
        ),
        (
            Method::POST,
            "inventory/v1/sessions/action/reset".to_string(),
            json!([session]),
            "reboot",
            StatusCode::OK,
        ),
        (
            Method::PUT,
            format!("inventory/v1/desktop-pools/{pool}"),
            json!({}),
            "pool_write",
            StatusCode::NO_CONTENT,
        ),
    ];

    for (method, path, body, _, expected) in &cases {
        let (status, items) = client.call(method.clone(), path, Some(body.clone())).await;
        assert_eq!(status, *expected, "{method} {path}");
        if status == StatusCode::OK {
            assert_eq!(items[0]["status_code"], 200, "{path}");
        }
    }

    let denied = sim.counters().denied;
    assert_eq!(denied.len(), cases.len());
    for (call, (method, _, _, class, _)) in denied.iter().zip(&cases) {
        assert_eq!(call.class, *class, "{}", call.path);
        assert_eq!(call.method, method.as_str());
    }
    assert_eq!(sim.snapshot(), before, "denied calls change nothing");
}

#[tokio::test]
async fn denied_call_without_token_is_recorded() {
    let sim = start(HorizonFleet::Small).await;
    let response = reqwest::Client::new()
        .post(format!(
            "{}inventory/v1/machines/action/restart",
            sim.api_base_url()
        ))
        .json(&json!(["m"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.counters().denied[0].class, "reboot");
}

#[test]
fn deny_classes_have_unique_names() {
    let mut names: Vec<&str> = HorizonDenyClass::ALL.iter().map(|c| c.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), HorizonDenyClass::ALL.len());
}

#[tokio::test]
async fn concurrent_queries_over_limit_get_429() {
    let sim = start_with(HorizonSimConfig {
        max_concurrent_queries: 2,
        ..HorizonSimConfig::default()
    })
    .await;
    let client = Client::login(&sim).await;
    sim.set_knobs(Knobs {
        latency: Duration::from_millis(300),
        ..Knobs::default()
    });
    let requests: Vec<_> = (0..5)
        .map(|_| tokio::spawn(client.request(Method::GET, "inventory/v1/machines").send()))
        .collect();
    let mut responses = Vec::new();
    for request in requests {
        responses.push(request.await.unwrap().unwrap());
    }
    let limited: Vec<&reqwest::Response> = responses
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    let ok = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(ok, 2, "two queries fit the limit");
    assert_eq!(limited.len(), 3);
    assert_eq!(limited[0].headers()["retry-after"], "1");

    sim.set_knobs(Knobs::default());
    let (status, _) = client.get("inventory/v1/machines").await;
    assert_eq!(status, StatusCode::OK, "slots are released");
}

#[tokio::test]
async fn rate_limit_header_styles() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    for style in [
        RetryAfterStyle::RetryAfter,
        RetryAfterStyle::XRateLimitRetryAfterSeconds,
    ] {
        sim.set_knobs(Knobs {
            rate_limit_per_second: Some(2.0),
            retry_after_header: true,
            retry_after_style: style,
            ..Knobs::default()
        });
        let mut limited = None;
        for _ in 0..10 {
            let response = client.send(Method::GET, "inventory/v3/farms", None).await;
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                limited = Some(response);
                break;
            }
        }
        let response = limited.expect("a 429 within 10 requests");
        let seconds = response.headers()[style.header_name()].to_str().unwrap();
        assert!(seconds.parse::<u64>().unwrap() >= 1, "{style:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error_message"].is_string());
    }
}

#[tokio::test]
async fn error_body_styles() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    sim.set_knobs(Knobs {
        horizon_error_style: HorizonErrorStyle::ErrorsArray,
        ..Knobs::default()
    });
    let (status, body) = client.get("inventory/v1/machines/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["errors"][0]["error_message"].is_string(), "{body}");

    sim.set_knobs(Knobs {
        horizon_error_style: HorizonErrorStyle::PlainText,
        ..Knobs::default()
    });
    let response = client
        .send(Method::GET, "inventory/v1/machines/nope", None)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(response.text().await.unwrap().contains("not found"));
}

#[tokio::test]
async fn fault_knobs_inject_errors() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let cases = [
        (
            Knobs {
                error_rate: 1.0,
                ..Knobs::default()
            },
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Knobs {
                html_502_rate: 1.0,
                ..Knobs::default()
            },
            StatusCode::BAD_GATEWAY,
        ),
        (
            Knobs {
                empty_502_rate: 1.0,
                ..Knobs::default()
            },
            StatusCode::BAD_GATEWAY,
        ),
    ];
    for (knobs, expected) in cases {
        sim.set_knobs(knobs);
        let (status, _) = client.get("inventory/v1/sessions").await;
        assert_eq!(status, expected);
    }
    sim.set_knobs(Knobs {
        truncate_rate: 1.0,
        ..Knobs::default()
    });
    let response = client
        .send(Method::GET, "inventory/v1/sessions", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "body is cut");
}

#[tokio::test]
async fn unknown_values_knob_injects() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    sim.set_knobs(Knobs {
        unknown_values: true,
        ..Knobs::default()
    });
    let (_, machines) = client.get("inventory/v2/machines").await;
    let machines = machines.as_array().unwrap();
    assert!(machines.iter().any(|m| m["state"] == UNKNOWN_MACHINE_STATE));
    assert!(machines.iter().all(|m| m.get(UNKNOWN_FIELD).is_some()));
    assert!(sim
        .snapshot()
        .machines
        .iter()
        .all(|m| m.state != UNKNOWN_MACHINE_STATE));
}

#[tokio::test]
async fn counters_use_route_keys() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let machine = sim.snapshot().machines[0].id.clone();
    client
        .get(&format!("inventory/v2/machines/{machine}"))
        .await;
    client
        .call(
            Method::POST,
            "inventory/v1/machines/action/enter-maintenance",
            Some(json!([machine])),
        )
        .await;
    let counters = sim.counters();
    assert_eq!(counters.route("GET /rest/inventory/v2/machines/{id}"), 1);
    assert_eq!(
        counters.route("POST /rest/inventory/v1/machines/action/enter-maintenance"),
        1
    );
    assert_eq!(counters.writes, 2, "login and the action");
    assert_eq!(counters.total, 3);
    sim.reset_counters();
    assert_eq!(sim.counters(), Counters::default());
}

#[tokio::test]
async fn control_endpoints() {
    let sim = start(HorizonFleet::Small).await;
    let client = Client::login(&sim).await;
    let http = reqwest::Client::new();
    let base = sim.base_url();

    let counters: Counters = http
        .get(format!("{base}/_sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters.tokens_issued, 1);
    let state: HorizonSnapshot = http
        .get(format!("{base}/_sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state, sim.snapshot());

    let knobs = json!({"error_rate": 1.0, "horizon_error_style": "plain_text"});
    let response = http
        .put(format!("{base}/_sim/knobs"))
        .json(&knobs)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        sim.knobs().horizon_error_style,
        HorizonErrorStyle::PlainText
    );
    http.put(format!("{base}/_sim/knobs"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();

    let machine = sim.snapshot().machine("EHR-IC-001").unwrap().id.clone();
    let ended: Value = http
        .post(format!("{base}/_sim/sessions/end"))
        .json(&json!({"machines": [machine]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ended["ended"], 1);

    let response = http
        .post(format!("{base}/_sim/tokens/expire"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = client.get("inventory/v1/machines").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    http.post(format!("{base}/_sim/tokens/expire"))
        .json(&json!({"refresh": true}))
        .send()
        .await
        .unwrap();
    let (status, _) = client
        .call(
            Method::POST,
            "refresh",
            Some(json!({"refresh_token": client.refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let response = http
        .post(format!("{base}/_sim/counters/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.counters().total, 0, "control calls are not counted");
}

#[tokio::test]
async fn churn_changes_sessions() {
    let sim = start(HorizonFleet::Hospital).await;
    let before = sim.snapshot();
    let response = reqwest::Client::new()
        .post(format!("{}/_sim/sessions/churn", sim.base_url()))
        .json(&json!({"per_second": 200.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(350)).await;
    sim.set_session_churn(0.0);
    assert_ne!(sim.snapshot().machines, before.machines);
}

#[test]
fn binary_prints_listening_line() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_broker-sim"))
        .args([
            "horizon",
            "--fleet",
            "sized",
            "--pools",
            "2",
            "--machines",
            "10",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        line.starts_with("horizon simulator listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(
        line.trim_end().ends_with("(user HOSP\\svc-gateway)"),
        "{line}"
    );
}

#[test]
fn binary_rejects_public_bind() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_broker-sim"))
        .args(["horizon", "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-non-loopback"), "{stderr}");
}
