//! Simulator of the Microsoft identity platform token endpoint and the Microsoft Graph
//! APIs that Windows 365 Cloud PCs and Intune-managed devices need.
//!
//! It serves the client credentials token endpoint and, under `/v1.0/` and `/beta/`,
//! Cloud PCs and provisioning policies, Intune managed devices with `syncDevice`,
//! `win32LobApp` mobile apps with content upload and assignments, Entra ID groups with
//! members, users and devices, and `$batch`. Content files are uploaded to an imitation of
//! Azure Blob Storage under `/storage/` on the same listener, and a commit decrypts and
//! checks the package. Lists page with `@odata.nextLink`. Group member reads lag writes,
//! Intune paths have the published per-app limits, and faults come from the knobs. Calls to
//! deny-listed endpoints (reboot, power, reprovision, restore, resize, end grace period,
//! wipe, retire, bulk actions, provisioning policies and their groups) are recorded in
//! [`Counters::denied`] and get 204 without any change.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use broker_sim::graph::{GraphSim, GraphSimConfig};
//! let sim = GraphSim::start(GraphSimConfig::default()).await?;
//! println!("token URL {}, Graph {}v1.0/", sim.token_url(), sim.graph_base_url());
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod apps;
mod auth;
mod batch;
mod blob;
mod cloudpcs;
mod config;
mod content;
mod deny;
mod directory;
mod error;
mod groups;
mod intune;
mod model;
mod package;
mod paging;
mod query;
mod routes;
mod seed;
mod server;
mod snapshot;
mod state;
mod storage;
mod throttle;
mod upload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use self::apps::WIN32_LOB_APP_TYPE;
pub use self::auth::GRAPH_DEFAULT_SCOPE;
pub use self::batch::MAX_BATCH_REQUESTS;
pub use self::config::{GraphFleet, GraphSimConfig, IntuneLimits};
pub use self::deny::GraphDenyClass;
pub use self::groups::ALREADY_A_MEMBER;
pub use self::model::{UNKNOWN_CLOUD_PC_STATUS, UNKNOWN_FIELD};
pub use self::paging::{MAX_DIRECTORY_PAGE_SIZE, MAX_INTUNE_PAGE_SIZE};
pub use self::snapshot::{
    GraphSnapshot, SnapshotApp, SnapshotCloudPc, SnapshotContentFile, SnapshotContentVersion,
    SnapshotGroup, SnapshotManagedDevice, SnapshotPolicy,
};
pub use self::upload::{ContentUploadCounters, ContentUploadKnobs, GraphCounters};
pub use crate::common::{Counters, DeniedCall, Knobs, RetryAfterStyle};

use self::server::Shared;

/// A running Graph simulator bound to a local port.
///
/// Dropping it stops the server; [`GraphSim::shutdown`] also waits for open connections.
#[derive(Debug)]
pub struct GraphSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl GraphSim {
    /// Starts a simulator on `127.0.0.1` with a free port.
    ///
    /// Fails when the port cannot be bound.
    pub async fn start(config: GraphSimConfig) -> anyhow::Result<Self> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a simulator on `addr`; port 0 picks a free port.
    ///
    /// Fails when the address cannot be bound.
    pub async fn start_on(config: GraphSimConfig, addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            anyhow::anyhow!("failed to bind the Graph simulator to {addr}: {error}")
        })?;
        let addr = listener.local_addr()?;
        let state = seed::build(&config.fleet, config.seed);
        let shared = Arc::new(Shared::new(config, state, format!("http://{addr}")));

        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::router(shared.clone());
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "Graph simulator server stopped with an error");
            }
        });
        tracing::info!(%addr, "Graph simulator started");
        Ok(Self {
            shared,
            addr,
            stop: Some(stop),
            server: Some(server),
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

    /// Returns the Graph base with a trailing slash; v1.0 is under `{graph_base_url}v1.0/`
    /// and beta under `{graph_base_url}beta/`.
    pub fn graph_base_url(&self) -> String {
        format!("{}/", self.base_url())
    }

    /// Returns the token endpoint, `http://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.base_url(),
            self.shared.config.tenant_id
        )
    }

    /// Returns the configuration the simulator started with.
    pub fn config(&self) -> &GraphSimConfig {
        &self.shared.config
    }

    /// Returns a copy of the call counters.
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Returns a copy of the content upload counters.
    pub fn upload_counters(&self) -> ContentUploadCounters {
        self.shared.graph_counters().content_upload
    }

    /// Sets every counter back to zero, including the denied calls and the content upload
    /// counters.
    pub fn reset_counters(&self) {
        self.shared.reset_graph_counters();
    }

    /// Returns the current knobs.
    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

    /// Replaces the knobs; a new rate limit starts with a full bucket.
    pub fn set_knobs(&self, knobs: Knobs) {
        self.shared.set_knobs(knobs);
    }

    /// Returns the current content upload knobs; `fail_next_commits` counts down as commits
    /// arrive.
    pub fn upload_knobs(&self) -> ContentUploadKnobs {
        self.shared.upload_knobs()
    }

    /// Replaces the content upload knobs; files already pending keep their remaining GETs.
    pub fn set_upload_knobs(&self, knobs: ContentUploadKnobs) {
        self.shared.set_upload_knobs(knobs);
    }

    /// Returns a copy of the tenant.
    pub fn snapshot(&self) -> GraphSnapshot {
        snapshot::take(&self.shared)
    }

    /// Makes every access token expire now, so the next Graph call gets 401
    /// `InvalidAuthenticationToken` and the client must request a new token.
    pub fn expire_tokens(&self) {
        self.shared.expire_tokens();
    }

    /// Stops accepting connections and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            // Open keep-alive connections can delay a graceful stop, so bound the wait.
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                tracing::warn!(addr = %self.addr, "Graph simulator did not stop within 5 s");
            }
        }
        tracing::info!(addr = %self.addr, "Graph simulator stopped");
    }
}

impl Drop for GraphSim {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
