//! End to end: the gateway delivers to Windows 365 Enterprise Cloud PCs and Intune-managed
//! laptops through gateway-owned Entra groups and Win32 apps on the Graph simulator, which
//! publishes an app only after its encrypted content is uploaded and committed.

use std::time::{Duration, Instant};

use broker_sim::graph::{GraphSim, GraphSimConfig, GraphSnapshot};
use serde_json::{json, Value};
use vdi_gateway::config::ProviderConfig;
use vdi_gateway::server;

mod support;
use support::Api;

/// Each provider gets its own object name prefix, so their groups and apps stay apart on the
/// shared tenant.
const PREFIXES: [(&str, &str); 2] = [("windows365-test", "w365"), ("physical-test", "laptops")];

fn body(version: &str) -> Value {
    json!({
        "container": {"id": "epic", "version": version, "display_name": "Epic",
                      "launch": {"executable": "C:\\Player\\player.exe", "arguments": version}},
        "targets": [
            {"provider": "windows365-test", "target": "Clinicians Enterprise"},
            {"provider": "physical-test", "target": "ward-laptops"}
        ],
        "activation": "immediate",
    })
}

fn provider(name: &str, kind: &str, sim: &GraphSim, prefix: &str, extra: Value) -> ProviderConfig {
    let sim_config = sim.config();
    let mut settings = json!({
        "graph": {
            "tenant_id": sim_config.tenant_id,
            "client_id": sim_config.client_id,
            "client_secret": sim_config.client_secret,
            "token_url": sim.token_url(),
            "graph_base_url": sim.graph_base_url(),
            "allow_plain_http_loopback": true,
            "requests_per_second": 200.0,
        },
        "delivery": {
            "name_prefix": prefix,
            "read_back_delay_ms": 100,
            "upload_poll_delay_ms": 50,
        },
    });
    if let (Some(settings), Value::Object(extra)) = (settings.as_object_mut(), extra) {
        settings.extend(extra);
    }
    ProviderConfig {
        name: name.into(),
        kind: kind.into(),
        environment: "test".into(),
        enabled: true,
        agent_token: None,
        settings,
    }
}

async fn wait_for(api: &Api, goal: &str) -> Value {
    let start = Instant::now();
    loop {
        let status = api.get("/v1/assignments/epic").await;
        if status["state"] == goal {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "did not reach {goal}: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Returns the member count of each provider's group of `version`, `None` where the group
/// does not exist.
fn members(snapshot: &GraphSnapshot, version: &str) -> Vec<Option<usize>> {
    PREFIXES
        .iter()
        .map(|(_, prefix)| {
            snapshot
                .group(&format!("{prefix}-epic-{version}"))
                .map(|g| g.members.len())
        })
        .collect()
}

fn published(snapshot: &GraphSnapshot, name: &str) -> bool {
    snapshot
        .mobile_app(name)
        .is_some_and(|app| app.app["publishingState"] == "published")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intune_groups_and_apps_converge() {
    let sim = GraphSim::start(GraphSimConfig::default()).await.unwrap();
    let directory = tempfile::tempdir().unwrap();
    let mut config = support::gateway_config_without_providers(&format!(
        "sqlite://{}",
        directory.path().join("gw.db").display()
    ));
    config.providers.push(provider(
        "windows365-test",
        "windows365",
        &sim,
        "w365",
        json!({}),
    ));
    config.providers.push(provider(
        "physical-test",
        "physical",
        &sim,
        "laptops",
        json!({"device_groups": [
            {"id": "ward-laptops", "name": "Ward laptops", "name_prefix": "HOSP-LT-"}
        ]}),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = server::start_on(&config, listener).await.unwrap();
    let api = Api::new(&gateway.base_url());
    // Intune rejects the first commit; the publish fails, and the next pass uploads again.
    let mut knobs = sim.upload_knobs();
    knobs.fail_next_commits = 1;
    sim.set_upload_knobs(knobs);

    let (status, document) = api.put("/v1/assignments/epic", &body("1.0")).await;
    assert_eq!(status, 202, "{document}");
    let converged = wait_for(&api, "converged").await;
    let applied = converged["progress"]["applied"].as_u64().unwrap();
    assert!(applied > 0, "{converged:#}");
    assert_eq!(converged["progress"]["failed"], 0, "{converged:#}");

    let snapshot = sim.snapshot();
    for (_, prefix) in PREFIXES {
        let name = format!("{prefix}-epic-1.0");
        assert!(published(&snapshot, &name), "{name} is not published");
        let app = snapshot.mobile_app(&name).unwrap();
        assert_eq!(app.assignments.len(), 1, "{:?}", app.assignments);
        assert_eq!(app.assignments[0]["intent"], "required");
    }
    let v1 = members(&snapshot, "1.0");
    let placed: usize = v1.iter().map(|m| m.unwrap_or_default()).sum();
    assert_eq!(
        placed as u64, applied,
        "group members are the applied machines"
    );
    let uploads = sim.upload_counters();
    assert_eq!(uploads.commits_succeeded, 2, "one package per provider");
    assert_eq!(uploads.commits_failed, 1);
    assert_eq!(
        uploads.storage_rejected_authorization, 0,
        "token sent to storage"
    );
    // The failed publish's writes are audited too: one row per content version created.
    let audit = api.get("/v1/audit?assignment=epic").await;
    let created = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["operation"] == "create_content_version")
        .count();
    assert_eq!(
        created as u64, uploads.content_versions_created,
        "{audit:#}"
    );

    api.put("/v1/assignments/epic", &body("2.0")).await;
    wait_for(&api, "converged").await;
    let snapshot = sim.snapshot();
    assert_eq!(members(&snapshot, "1.0"), vec![Some(0), Some(0)]);
    assert_eq!(members(&snapshot, "2.0"), v1, "every machine moved to 2.0");

    let (status, _) = api.post("/v1/assignments/epic/rollback", &json!({})).await;
    assert_eq!(status, 202);
    wait_for(&api, "rolled_back").await;
    assert_eq!(members(&sim.snapshot(), "1.0"), v1);

    let (status, _) = api.delete("/v1/assignments/epic").await;
    assert_eq!(status, 202);
    wait_for(&api, "removed").await;
    let snapshot = sim.snapshot();
    for (_, prefix) in PREFIXES {
        for version in ["1.0", "2.0"] {
            let name = format!("{prefix}-epic-{version}");
            assert!(snapshot.group(&name).is_none(), "{name} group was kept");
            assert!(snapshot.mobile_app(&name).is_none(), "{name} app was kept");
        }
    }
    let policy_groups: Vec<_> = snapshot
        .groups
        .iter()
        .filter(|g| g.provisioning_policy_group)
        .collect();
    assert!(!policy_groups.is_empty());
    assert!(
        sim.counters().denied.is_empty(),
        "{:?}",
        sim.counters().denied
    );
    gateway.stop().await;
    sim.shutdown().await;
}
