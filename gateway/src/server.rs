//! Assembling a running gateway from its configuration: store, providers, engine, API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiToken, AppState, Role};
use crate::config::GatewayConfig;
use crate::engine::{Clock, Engine, EngineSettings, Registry, SystemClock};
use crate::providers;
use crate::store::Store;

/// How often provider health is checked in the background.
const HEALTH_INTERVAL: Duration = Duration::from_secs(60);

/// A gateway serving its API and running its engine.
#[derive(Debug)]
pub struct RunningGateway {
    /// Address the API listens on.
    pub addr: SocketAddr,
    /// Shared state (store, engine, tokens).
    pub state: Arc<AppState>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningGateway {
    /// Returns the API's base URL, for example `http://127.0.0.1:8080`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the API and the engine, waits for them, and logs out of every broker.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.state.engine.registry().shutdown().await;
        self.state.store.close().await;
        tracing::info!("Gateway stopped.");
    }
}

/// Starts a gateway from its configuration on `config.server.bind`.
///
/// # Errors
/// Fails when the store cannot be opened, a provider cannot be built or the address cannot be
/// bound; the message names which.
pub async fn start(config: &GatewayConfig) -> anyhow::Result<RunningGateway> {
    let listener = TcpListener::bind(config.server.bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (server.bind); choose a free address or port",
                config.server.bind
            )
        })?;
    start_on(config, listener).await
}

/// Starts a gateway serving on an already bound listener.
///
/// # Errors
/// Fails when the store cannot be opened or a provider cannot be built.
pub async fn start_on(
    config: &GatewayConfig,
    listener: TcpListener,
) -> anyhow::Result<RunningGateway> {
    start_on_with_clock(config, listener, Arc::new(SystemClock)).await
}

/// Starts a gateway on a bound listener with its engine reading time from `clock` (tests move
/// a manual clock across maintenance windows and freezes).
///
/// # Errors
/// Fails when the store cannot be opened or a provider cannot be built.
pub async fn start_on_with_clock(
    config: &GatewayConfig,
    listener: TcpListener,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<RunningGateway> {
    for warning in &config.warnings {
        tracing::warn!(warning = %warning, "Configuration warning.");
    }
    let store = Store::connect(
        config.store.url.expose_secret(),
        config.store.max_connections,
    )
    .await
    .context("opening the store (store.url)")?;
    let agents: Arc<dyn vdi_contracts::AgentChannel> =
        Arc::new(crate::agents::StoreAgentChannel::new(store.clone()));
    let plugins =
        crate::plugins::load_all(&config.plugins, &crate::plugins::LoadOptions::current_exe())
            .await;
    let registry = Arc::new(
        providers::build_registry_with_plugins(&config.providers, &agents, &plugins)
            .await
            .context("building providers")?,
    );
    start_with(config, listener, store, registry, clock).await
}

/// Starts a gateway with a given store and providers (tests, demo and benchmarks use this to
/// add providers of their own).
///
/// # Errors
/// Fails when the listener's address cannot be read.
pub async fn start_with(
    config: &GatewayConfig,
    listener: TcpListener,
    store: Store,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<RunningGateway> {
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    let shutdown = CancellationToken::new();
    let settings = EngineSettings {
        interval: config.engine.reconcile_interval(),
        lease_seconds: i64::try_from(config.engine.lease_seconds).unwrap_or(30),
        max_parallel_targets: config.engine.max_parallel_targets,
        deferred_recheck: config.engine.deferred_recheck(),
        freezes: config.freezes.clone(),
        clock,
        ..EngineSettings::default()
    };
    let engine = Arc::new(Engine::new(store.clone(), registry.clone(), settings));
    let tokens = config
        .tokens
        .iter()
        .map(|t| ApiToken::new(&t.name, t.role, &t.token))
        .collect();
    let state = Arc::new(AppState {
        store,
        engine: engine.clone(),
        tokens,
        body_limit: config.server.body_limit_bytes,
        metrics_token: config
            .server
            .metrics_token
            .as_ref()
            .map(|t| ApiToken::new("metrics", Role::Viewer, t)),
        agent_tokens: config
            .providers
            .iter()
            .filter_map(|p| {
                let token = p.agent_token.as_ref()?;
                Some((
                    p.name.clone(),
                    ApiToken::new(format!("{}-agents", p.name), Role::Viewer, token),
                ))
            })
            .collect(),
    });

    let mut tasks = Vec::new();
    let health_registry = registry.clone();
    let health_shutdown = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            health_registry.refresh_health().await;
            tokio::select! {
                () = health_shutdown.cancelled() => break,
                () = tokio::time::sleep(HEALTH_INTERVAL) => {}
            }
        }
    }));
    tasks.push(tokio::spawn(engine.run(shutdown.clone())));
    let api_state = state.clone();
    let api_shutdown = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(error) = api::serve(api_state, listener, api_shutdown).await {
            tracing::error!(error = %error, "API server failed.");
        }
    }));
    tracing::info!(
        %addr, providers = ?registry.names(), store = %config.store.redacted_url(),
        "Gateway started."
    );
    Ok(RunningGateway {
        addr,
        state,
        shutdown,
        tasks,
    })
}

/// Runs a gateway until Ctrl-C or SIGTERM.
///
/// # Errors
/// Fails when the gateway cannot start.
pub async fn serve(config: &GatewayConfig) -> anyhow::Result<()> {
    let gateway = start(config).await?;
    eprintln!("vdi-gateway listening on {}", gateway.base_url());
    wait_for_signal().await;
    tracing::info!("Shutdown requested; finishing the current pass.");
    gateway.stop().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
