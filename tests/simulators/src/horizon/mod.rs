//! Simulator of the VMware / Omnissa Horizon Server REST API.
//!
//! It serves `/rest/login`, `/rest/refresh` and `/rest/logout` with bearer access tokens,
//! and the versioned inventory endpoints of a Horizon 2111 server (404 for newer versions).
//! Lists support `page` and `size` paging with the `HAS_MORE_RECORDS` header and the JSON
//! `filter` parameter. Application pools, bulk entitlements with per-item results,
//! maintenance mode and `send-message` change the pod state. A limit on concurrent queries, rate limits and faults come from the
//! configuration and the knobs. Calls to deny-listed endpoints (image push, farm
//! maintenance, reset, restart, rebuild, recover, machine deletion, logoff, disconnect,
//! pool writes) are recorded in [`Counters::denied`] and get a success status without any
//! change.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use broker_sim::horizon::{HorizonSim, HorizonSimConfig};
//! let sim = HorizonSim::start(HorizonSimConfig::default()).await?;
//! println!("API base {}", sim.api_base_url());
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod apps;
mod auth;
mod config;
mod deny;
mod entitlements;
mod error;
mod filter;
mod inventory;
mod model;
mod paging;
mod routes;
mod seed;
mod server;
mod snapshot;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use self::config::{HorizonFleet, HorizonSimConfig};
pub use self::deny::HorizonDenyClass;
pub use self::model::{UNKNOWN_FIELD, UNKNOWN_MACHINE_STATE};
pub use self::paging::{HAS_MORE_RECORDS, MAX_PAGE_SIZE};
pub use self::snapshot::{
    HorizonSnapshot, SentMessage, SnapshotApplicationPool, SnapshotDesktopPool, SnapshotFarm,
    SnapshotMachine, SnapshotRdsServer, SnapshotSession,
};
pub use crate::common::{Counters, DeniedCall, HorizonErrorStyle, Knobs, RetryAfterStyle};

use self::server::Shared;

/// Interval of the session churn task.
const CHURN_TICK: Duration = Duration::from_millis(100);
/// Maximum churn events per tick, which bounds the work of one tick.
const MAX_CHURN_EVENTS_PER_TICK: u32 = 1000;

/// A running Horizon simulator bound to a local port.
///
/// Dropping it stops the server; [`HorizonSim::shutdown`] also waits for open connections.
#[derive(Debug)]
pub struct HorizonSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    churn: Option<JoinHandle<()>>,
}

impl HorizonSim {
    /// Starts a simulator on `127.0.0.1` with a free port.
    ///
    /// Fails when the port cannot be bound.
    pub async fn start(config: HorizonSimConfig) -> anyhow::Result<Self> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a simulator on `addr`; port 0 picks a free port.
    ///
    /// Fails when the address cannot be bound.
    pub async fn start_on(config: HorizonSimConfig, addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            anyhow::anyhow!("failed to bind the Horizon simulator to {addr}: {error}")
        })?;
        let addr = listener.local_addr()?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let state = seed::build(&config.fleet, &config.domain, config.seed, now_ms);
        let shared = Arc::new(Shared::new(config, state));

        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::router(shared.clone());
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "Horizon simulator server stopped with an error");
            }
        });
        let churn = tokio::spawn(churn_loop(shared.clone()));
        tracing::info!(%addr, "Horizon simulator started");
        Ok(Self {
            shared,
            addr,
            stop: Some(stop),
            server: Some(server),
            churn: Some(churn),
        })
    }

    /// Returns the bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns the API base, `http://127.0.0.1:PORT/rest/`.
    pub fn api_base_url(&self) -> String {
        format!("{}/rest/", self.base_url())
    }

    /// Returns the configuration the simulator started with.
    pub fn config(&self) -> &HorizonSimConfig {
        &self.shared.config
    }

    /// Returns a copy of the call counters.
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Sets every counter back to zero, including the denied calls.
    pub fn reset_counters(&self) {
        self.shared.counters.reset();
    }

    /// Returns the current knobs.
    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

    /// Replaces the knobs; a new rate limit starts with a full bucket.
    pub fn set_knobs(&self, knobs: Knobs) {
        self.shared.set_knobs(knobs);
    }

    /// Returns a copy of the pod state.
    pub fn snapshot(&self) -> HorizonSnapshot {
        snapshot::take(&self.shared)
    }

    /// Ends every session on the given machines or RDS servers (ids or names), or every
    /// session when the list is empty, as if the users logged off.
    pub fn end_sessions(&self, machine_ids: &[String]) {
        self.shared.lock_state().end_sessions(machine_ids);
    }

    /// Makes sessions start, disconnect, reconnect and end at random, `per_second` events
    /// per second on average; 0 stops the churn.
    pub fn set_session_churn(&self, per_second: f64) {
        self.shared.set_churn_rate(per_second);
    }

    /// Makes every access token expire now, so the next API call gets 401 and the client
    /// must refresh. Refresh tokens stay valid.
    pub fn expire_tokens(&self) {
        self.shared.expire_tokens(false);
    }

    /// Makes every access and refresh token expire now, so the client must log in again.
    pub fn expire_refresh_tokens(&self) {
        self.shared.expire_tokens(true);
    }

    /// Stops accepting connections and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(churn) = self.churn.take() {
            churn.abort();
        }
        if let Some(server) = self.server.take() {
            // Open keep-alive connections can delay a graceful stop, so bound the wait.
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                tracing::warn!(addr = %self.addr, "Horizon simulator did not stop within 5 s");
            }
        }
        tracing::info!(addr = %self.addr, "Horizon simulator stopped");
    }
}

impl Drop for HorizonSim {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(churn) = self.churn.take() {
            churn.abort();
        }
    }
}

/// Starts, disconnects and ends sessions at the configured churn rate until aborted.
async fn churn_loop(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(CHURN_TICK);
    loop {
        interval.tick().await;
        let rate = shared.churn_rate();
        if rate <= 0.0 {
            continue;
        }
        let expected = rate * CHURN_TICK.as_secs_f64();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut state = shared.lock_state();
        let whole = expected.floor();
        let extra = u32::from(state.rng.random_bool((expected - whole).clamp(0.0, 1.0)));
        let events = (whole.min(f64::from(MAX_CHURN_EVENTS_PER_TICK)) as u32 + extra)
            .min(MAX_CHURN_EVENTS_PER_TICK);
        for _ in 0..events {
            state.churn_once(now_ms);
        }
    }
}
