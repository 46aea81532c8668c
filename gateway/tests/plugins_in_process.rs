//! The example plugin loaded into the test process through the C ABI: the conformance suite
//! through the host-side adapter, panics and hangs turned into errors, and refusals.

use std::sync::Arc;
use std::time::Duration;

use vdi_contracts::conformance::{run_all, Fixture};
use vdi_contracts::{ErrorKind, HealthStatus, Provider};
use vdi_gateway::config::Isolation;
use vdi_gateway::plugins::{load_all, PluginProvider, PluginSet};
use vdi_gateway::providers::build_registry_with_plugins;
use vdigw_example_rest::plugin::sample_container;
use vdigw_example_rest::sim::PortalSim;

mod plugin_support;
use plugin_support::{compile_c_library, load_options, provider, settings, PluginDir};

async fn load(dir: &PluginDir, timeout: Duration) -> PluginSet {
    load_all(&dir.config(Isolation::InProcess, timeout), &load_options()).await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_adapter() {
    let dir = PluginDir::new();
    let set = load(&dir, Duration::from_secs(30)).await;
    assert!(set.refused().is_empty(), "{:?}", set.refused());
    let description = set.loaded()[0].description();
    assert_eq!(description.name, "vdigw-example-rest");
    assert_eq!(description.panic_strategy, "unwind");
    assert!(description.capabilities.iter().any(|c| c == "simulator"));

    let sim = PortalSim::start().await.expect("simulator starts");
    let fixture = Fixture {
        provider: Arc::new(instance(&set, "portal-in-process", &sim).await),
        target: "Clinicians".into(),
        container: sample_container(),
        second_version: "2024.4.0".into(),
    };
    run_all(&fixture).await;
    let counters = sim.counters();
    assert!(counters.writes > 0, "the suite made no writes");
    assert!(counters.unknown.is_empty(), "{:?}", counters.unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_becomes_error() {
    let dir = PluginDir::new();
    let set = load(&dir, Duration::from_secs(30)).await;
    let sim = PortalSim::start().await.expect("simulator starts");
    let provider = instance(&set, "portal-panic", &sim).await;

    let error = provider
        .list_machines("fault-panic", None)
        .await
        .expect_err("the plugin panicked");
    assert_eq!(error.kind, ErrorKind::Internal);
    assert!(error.message.contains("panicked"), "{}", error.message);

    let targets = provider.list_targets().await.expect("plugin still serves");
    assert_eq!(targets.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_times_out() {
    let dir = PluginDir::new();
    let set = load(&dir, Duration::from_secs(1)).await;
    let sim = PortalSim::start().await.expect("simulator starts");
    let provider = instance(&set, "portal-hang", &sim).await;

    let error = provider
        .list_machines("fault-hang", None)
        .await
        .expect_err("the plugin hung");
    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert!(error.retryable);
    assert!(
        error.message.contains("did not respond"),
        "{}",
        error.message
    );

    let health = provider.check().await.expect("plugin still serves");
    assert_eq!(health.status, HealthStatus::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_gives_unavailable_provider() {
    let dir = PluginDir::new();
    let mut config = dir.config(Isolation::InProcess, Duration::from_secs(30));
    config.libraries[0].sha256 = Some("0".repeat(64));
    let set = load_all(&config, &load_options()).await;
    assert!(set.loaded().is_empty());
    assert_eq!(set.refused().len(), 1);
    let refusal = set.refused()[0].to_string();
    assert!(refusal.contains(&dir.file), "{refusal}");
    assert!(refusal.contains("SHA-256"), "{refusal}");

    let sim = PortalSim::start().await.expect("simulator starts");
    let agents: Arc<dyn vdi_contracts::AgentChannel> =
        Arc::new(vdi_contracts::MemoryAgentChannel::default());
    let registry =
        build_registry_with_plugins(&[provider("portal", settings(&sim))], &agents, &set)
            .await
            .expect("registry builds without the plugin");
    let entry = registry.get("portal").expect("stand-in registered");
    let health = entry.refresh_health().await;
    assert_eq!(health.status, HealthStatus::Unreachable);
    assert!(health.detail.contains("SHA-256"), "{}", health.detail);
}

#[tokio::test]
async fn link_out_of_directory_is_refused() {
    let outside = PluginDir::new();
    let dir = tempfile::tempdir().expect("temporary directory");
    std::os::unix::fs::symlink(
        outside.path().join(&outside.file),
        dir.path().join(&outside.file),
    )
    .expect("symlink");
    let mut config = outside.config(Isolation::InProcess, Duration::from_secs(30));
    config.directory = Some(dir.path().to_path_buf());
    let set = load_all(&config, &load_options()).await;
    assert_eq!(set.refused().len(), 1);
    let reason = &set.refused()[0].reason;
    assert!(reason.contains("outside the plugin directory"), "{reason}");
}

#[tokio::test]
async fn other_abi_major_is_refused() {
    let dir = PluginDir::new();
    let source = "void vdigw_plugin_entry_v2(void) {}\n";
    let Some(library) = compile_c_library(dir.path(), "future", source) else {
        eprintln!("skipped: no C compiler to build the test library");
        return;
    };
    let mut config = dir.config(Isolation::InProcess, Duration::from_secs(30));
    config.libraries[0].file = library.file_name().unwrap().to_string_lossy().into_owned();
    config.libraries[0].sha256 = None;
    let set = load_all(&config, &load_options()).await;
    assert_eq!(set.refused().len(), 1);
    let reason = &set.refused()[0].reason;
    assert!(reason.contains("ABI major 2"), "{reason}");
    assert!(reason.contains("speaks ABI major 1"), "{reason}");
}

#[tokio::test]
async fn vtable_of_other_major_is_refused() {
    let dir = PluginDir::new();
    // A library with the right symbol whose vtable claims major 2.
    let source = "#include <stddef.h>\n\
        struct vtable { unsigned major, minor; size_t size; void *fns[4]; };\n\
        static struct vtable table = { 2, 0, sizeof(struct vtable), { 0 } };\n\
        const struct vtable *vdigw_plugin_entry_v1(const void *host) { (void)host; return &table; }\n";
    let Some(library) = compile_c_library(dir.path(), "liar", source) else {
        eprintln!("skipped: no C compiler to build the test library");
        return;
    };
    let mut config = dir.config(Isolation::InProcess, Duration::from_secs(30));
    config.libraries[0].file = library.file_name().unwrap().to_string_lossy().into_owned();
    config.libraries[0].sha256 = None;
    let set = load_all(&config, &load_options()).await;
    assert_eq!(set.refused().len(), 1);
    assert!(
        set.refused()[0].reason.contains("ABI major 2"),
        "{}",
        set.refused()[0].reason
    );
}

#[tokio::test]
async fn library_without_entry_is_refused() {
    let dir = PluginDir::new();
    let Some(library) = compile_c_library(dir.path(), "plain", "int answer(void) { return 42; }\n")
    else {
        eprintln!("skipped: no C compiler to build the test library");
        return;
    };
    let mut config = dir.config(Isolation::InProcess, Duration::from_secs(30));
    config.libraries[0].file = library.file_name().unwrap().to_string_lossy().into_owned();
    config.libraries[0].sha256 = None;
    let set = load_all(&config, &load_options()).await;
    assert_eq!(set.refused().len(), 1);
    assert!(
        set.refused()[0].reason.contains("not a gateway plugin"),
        "{}",
        set.refused()[0].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_crosses_the_abi() {
    let dir = PluginDir::new();
    let set = load(&dir, Duration::from_secs(30)).await;
    let sim = PortalSim::start().await.expect("simulator starts");
    let provider = instance(&set, "portal-plan", &sim).await;
    let page = provider
        .list_machines("Clinicians", None)
        .await
        .expect("lists");
    let machines: Vec<String> = page.items.iter().take(2).map(|m| m.id.clone()).collect();
    assert_eq!(machines.len(), 2);
    let writes_before = sim.counters().writes;

    let planned = provider
        .plan("Clinicians", &sample_container(), &machines)
        .await
        .expect("plans");

    let count = |operation: &str| {
        planned
            .iter()
            .find(|p| p.operation == operation)
            .map(|p| p.count)
    };
    assert_eq!(count("create_app"), Some(1), "{planned:?}");
    assert_eq!(count("assign_app"), Some(2), "{planned:?}");
    assert_eq!(count("unassign_app"), Some(0), "{planned:?}");
    assert_eq!(
        sim.counters().writes,
        writes_before,
        "a plan writes nothing"
    );
}
