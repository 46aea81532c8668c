//! Simulator of the Citrix DaaS / CVAD Orchestration REST API.
//!
//! It serves the real paths under `/cvad/manage` (routed case-insensitively), the cloud and
//! on-premises token endpoints, paging with `limit` and `continuationToken`, asynchronous
//! jobs, `$batch`, Citrix `ErrorResponse` bodies and the `citrix-transactionid` header. Calls
//! to deny-listed endpoints (image, reboot, power, session logoff, site-wide tag deletion)
//! are recorded in [`Counters::denied`] and get 202 without any change.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use broker_sim::citrix::{CitrixSim, CitrixSimConfig};
//! let sim = CitrixSim::start(CitrixSimConfig::default()).await?;
//! println!("token URL {}", sim.cloud_token_url());
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod apps;
mod auth;
mod batch;
mod config;
mod deny;
mod error;
mod jobs;
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

pub use self::config::{CitrixSimConfig, Fleet};
pub use self::deny::DenyClass;
pub use self::model::{UNKNOWN_FIELD, UNKNOWN_REGISTRATION};
pub use self::paging::{DEFAULT_LIMIT, MAX_LIMIT};
pub use self::snapshot::{
    Snapshot, SnapshotApplication, SnapshotApplicationGroup, SnapshotDeliveryGroup,
    SnapshotMachine, SnapshotSession, SnapshotTag,
};
pub use self::state::NameValue;
pub use crate::common::{Counters, DeniedCall, JobOutcome, Knobs};

use self::server::Shared;

/// Interval of the session churn task.
const CHURN_TICK: Duration = Duration::from_millis(100);
/// Maximum churn events per tick, which bounds the work of one tick.
const MAX_CHURN_EVENTS_PER_TICK: u32 = 1000;

/// A running Citrix simulator bound to a local port.
///
/// Dropping it stops the server; [`CitrixSim::shutdown`] also waits for open connections.
#[derive(Debug)]
pub struct CitrixSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    churn: Option<JoinHandle<()>>,
}

impl CitrixSim {
    /// Starts a simulator on `127.0.0.1` with a free port.
    ///
    /// Fails when the port cannot be bound.
    pub async fn start(config: CitrixSimConfig) -> anyhow::Result<Self> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a simulator on `addr`; port 0 picks a free port.
    ///
    /// Fails when the address cannot be bound.
    pub async fn start_on(config: CitrixSimConfig, addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            anyhow::anyhow!("failed to bind the Citrix simulator to {addr}: {error}")
        })?;
        let addr = listener.local_addr()?;
        let api_base = format!("http://{addr}/cvad/manage/");
        let state = seed::build(
            &config.fleet,
            &config.customer_id,
            config.seed,
            chrono::Utc::now(),
        );
        let shared = Arc::new(Shared::new(config, api_base, state));

        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::router(shared.clone());
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "Citrix simulator server stopped with an error");
            }
        });
        let churn = tokio::spawn(churn_loop(shared.clone()));
        tracing::info!(%addr, "Citrix simulator started");
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

    /// Returns the API base, `http://127.0.0.1:PORT/cvad/manage/`.
    pub fn api_base_url(&self) -> String {
        format!("{}/cvad/manage/", self.base_url())
    }

    /// Returns the cloud token URL, `…/cctrustoauth2/{customer_id}/tokens/clients`.
    pub fn cloud_token_url(&self) -> String {
        format!(
            "{}/cctrustoauth2/{}/tokens/clients",
            self.base_url(),
            self.shared.config.customer_id
        )
    }

    /// Returns the on-premises token URL, `…/cvad/manage/Tokens`.
    pub fn onprem_token_url(&self) -> String {
        format!("{}Tokens", self.api_base_url())
    }

    /// Returns the site id, the value of `Citrix-InstanceId`.
    pub fn site_id(&self) -> String {
        self.shared.site_id.clone()
    }

    /// Returns the configuration the simulator started with.
    pub fn config(&self) -> &CitrixSimConfig {
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

    /// Returns a copy of the site state.
    pub fn snapshot(&self) -> Snapshot {
        snapshot::take(&self.shared)
    }

    /// Ends every session on the given machines (ids or names), or on all machines when the
    /// list is empty, as if the users logged off.
    pub fn end_sessions(&self, machine_ids: &[String]) {
        self.shared.lock_state().end_sessions(machine_ids);
    }

    /// Makes sessions start and end at random, `per_second` events per second on average;
    /// 0 stops the churn.
    pub fn set_session_churn(&self, per_second: f64) {
        self.shared.set_churn_rate(per_second);
    }

    /// Makes every issued token expire now, so the next API call gets 401.
    pub fn expire_tokens(&self) {
        self.shared.expire_tokens();
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
                tracing::warn!(addr = %self.addr, "Citrix simulator did not stop within 5 s");
            }
        }
        tracing::info!(addr = %self.addr, "Citrix simulator stopped");
    }
}

impl Drop for CitrixSim {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(churn) = self.churn.take() {
            churn.abort();
        }
    }
}

/// Starts and ends sessions at the configured churn rate until aborted.
async fn churn_loop(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(CHURN_TICK);
    loop {
        interval.tick().await;
        let rate = shared.churn_rate();
        if rate <= 0.0 {
            continue;
        }
        let expected = rate * CHURN_TICK.as_secs_f64();
        let now = chrono::Utc::now();
        let mut state = shared.lock_state();
        let whole = expected.floor();
        let extra = u32::from(state.rng.random_bool((expected - whole).clamp(0.0, 1.0)));
        let events = (whole.min(f64::from(MAX_CHURN_EVENTS_PER_TICK)) as u32 + extra)
            .min(MAX_CHURN_EVENTS_PER_TICK);
        for _ in 0..events {
            state.churn_once(now);
        }
    }
}
