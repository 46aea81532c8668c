//! Serde structs that mirror the TOML layout, read before validation.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    DEFAULT_BIND, DEFAULT_BODY_LIMIT_BYTES, DEFAULT_DEFERRED_RECHECK_SECONDS, DEFAULT_ENVIRONMENT,
    DEFAULT_LEASE_SECONDS, DEFAULT_LOG_LEVEL, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PARALLEL_TARGETS, DEFAULT_RECONCILE_INTERVAL_SECONDS,
};

// The `Raw*` structs mirror the file layout; every default lives in their `Default` impls and is
// documented on the matching public field.

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) store: RawStore,
    pub(super) log: RawLog,
    pub(super) engine: RawEngine,
    pub(super) tokens: Vec<RawToken>,
    pub(super) providers: Vec<RawProvider>,
    pub(super) freezes: Vec<RawFreeze>,
    pub(super) plugins: super::plugins::RawPlugins,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFreeze {
    pub(super) name: String,
    pub(super) start: String,
    pub(super) end: String,
    #[serde(default)]
    pub(super) providers: Vec<String>,
    #[serde(default)]
    pub(super) environments: Vec<String>,
    #[serde(default)]
    pub(super) reason: String,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) bind: String,
    pub(super) body_limit_bytes: usize,
    pub(super) metrics_token: Option<String>,
    pub(super) metrics_token_env: Option<String>,
    pub(super) metrics_token_file: Option<PathBuf>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND.to_owned(),
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            metrics_token: None,
            metrics_token_env: None,
            metrics_token_file: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) url: Option<String>,
    pub(super) url_env: Option<String>,
    pub(super) url_file: Option<PathBuf>,
    pub(super) max_connections: u32,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            url: None,
            url_env: None,
            url_file: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: String,
    pub(super) level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "human".to_owned(),
            level: DEFAULT_LOG_LEVEL.to_owned(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawEngine {
    pub(super) reconcile_interval_seconds: u64,
    pub(super) deferred_recheck_seconds: u64,
    pub(super) lease_seconds: u64,
    pub(super) max_parallel_targets: usize,
}

impl Default for RawEngine {
    fn default() -> Self {
        Self {
            reconcile_interval_seconds: DEFAULT_RECONCILE_INTERVAL_SECONDS,
            deferred_recheck_seconds: DEFAULT_DEFERRED_RECHECK_SECONDS,
            lease_seconds: DEFAULT_LEASE_SECONDS,
            max_parallel_targets: DEFAULT_MAX_PARALLEL_TARGETS,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    pub(super) name: String,
    pub(super) role: String,
    #[serde(default)]
    pub(super) token: Option<String>,
    #[serde(default)]
    pub(super) token_env: Option<String>,
    #[serde(default)]
    pub(super) token_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) name: String,
    pub(super) kind: String,
    #[serde(default = "default_environment")]
    pub(super) environment: String,
    #[serde(default = "default_enabled")]
    pub(super) enabled: bool,
    #[serde(default)]
    pub(super) agent_token_env: Option<String>,
    #[serde(default)]
    pub(super) agent_token_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) settings: Map<String, Value>,
}

fn default_environment() -> String {
    DEFAULT_ENVIRONMENT.to_owned()
}

fn default_enabled() -> bool {
    true
}
