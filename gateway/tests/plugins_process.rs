//! The example plugin in `isolation = "process"`: the conformance suite over stdio, and a
//! plugin process that aborts or hangs is restarted while calls fail with clear errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vdi_contracts::conformance::{run_all, Fixture};
use vdi_contracts::{ErrorKind, Provider};
use vdi_gateway::config::Isolation;
use vdi_gateway::plugins::{load_all, PluginProvider, PluginSet};
use vdigw_example_rest::plugin::sample_container;
use vdigw_example_rest::sim::PortalSim;

mod plugin_support;
use plugin_support::{load_options, settings, PluginDir};

async fn load(dir: &PluginDir, timeout: Duration) -> PluginSet {
    let set = load_all(&dir.config(Isolation::Process, timeout), &load_options()).await;
    assert!(set.refused().is_empty(), "{:?}", set.refused());
    set
}

async fn instance(set: &PluginSet, name: &str, sim: &PortalSim) -> PluginProvider {
    let plugin = set
        .plugin_for(vdigw_example_rest::KIND)
        .expect("plugin loaded");
    PluginProvider::init(
        plugin.transport.clone(),
        name,
        vdigw_example_rest::KIND,
        settings(sim),
    )
    .await
    .expect("instance initialises")
}

/// Calls `list_targets` until the restarted process responds, for at most 20 seconds.
async fn wait_until_serving(provider: &PluginProvider) {
    let start = Instant::now();
    loop {
        match provider.list_targets().await {
            Ok(targets) => {
                assert_eq!(targets.len(), 2);
                return;
            }
            Err(error) => {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "the plugin process did not come back: {error}"
                );
                // While the child restarts, calls fail with a retryable error (unavailable, or
                // a timeout when the machine is slow to start the new process).
                assert!(error.retryable, "{error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_over_stdio() {
    let dir = PluginDir::new();
    let set = load(&dir, Duration::from_secs(30)).await;
    let sim = PortalSim::start().await.expect("simulator starts");
    let fixture = Fixture {
        provider: Arc::new(instance(&set, "portal-process", &sim).await),
        target: "Clinicians".into(),
        container: sample_container(),
        second_version: "2024.4.0".into(),
    };
    run_all(&fixture).await;
    assert!(sim.counters().writes > 0, "the suite made no writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_restarts_process() {
    let dir = PluginDir::new();
    let set = load(&dir, Duration::from_secs(30)).await;
    let sim = PortalSim::start().await.expect("simulator starts");
    let provider = instance(&set, "portal-abort", &sim).await;

    let error = provider
        .list_machines("fault-abort", None)
        .await
        .expect_err("the plugin process aborted");
    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert!(error.retryable);
    assert!(
        error.message.contains("ended during `list_machines`"),
        "{}",
        error.message
    );

    // The restarted child got the instance's `init` again, so the same provider works.
    wait_until_serving(&provider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_restarts_process() {
    let dir = PluginDir::new();
    let set = load(&dir, Duration::from_secs(2)).await;
    let sim = PortalSim::start().await.expect("simulator starts");
    let provider = instance(&set, "portal-hang", &sim).await;

    let started = Instant::now();
    let error = provider
        .list_machines("fault-hang", None)
        .await
        .expect_err("the plugin process hung");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert!(
        error.message.contains("did not respond"),
        "{}",
        error.message
    );

    wait_until_serving(&provider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_library_reports_child_reason() {
    let dir = PluginDir::new();
    let mut config = dir.config(Isolation::Process, Duration::from_secs(30));
    config.libraries[0].sha256 = Some("f".repeat(64));
    let set = load_all(&config, &load_options()).await;
    assert_eq!(set.refused().len(), 1);
    assert!(
        set.refused()[0].reason.contains("SHA-256"),
        "{}",
        set.refused()[0].reason
    );
}
