//! Gateway configuration: an optional TOML file, overridden by `VDIGW__SECTION__KEY` environment
//! variables, validated and with every secret resolved before the gateway starts.
//!
//! [`load`] reads the file into private `Raw*` structs that mirror the TOML layout, then
//! [`validate`] turns them into [`GatewayConfig`], collecting every problem so an operator fixes
//! them all in one pass. Secrets (control-plane tokens, agent tokens, the metrics token and any
//! provider setting given as `X_env` or `X_file`) become [`SecretString`] or are resolved in place
//! in the provider's settings table, and no `Debug` output of this module shows them.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

pub use freeze::FreezeConfig;
use keys::KeyShape;
pub use keys::UnknownKey;
pub use plugins::{Isolation, PluginLibraryConfig, PluginsConfig};
use raw::RawConfig;
use secrets::{redact_url, redacted_option};
use validate::{no_tokens_warning, validate};

mod freeze;
mod keys;
mod plugins;
mod raw;
mod secrets;
#[cfg(test)]
mod tests;
mod urls;
mod validate;

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "VDIGW";

/// Separator between the prefix, the section and the key in an override variable, so
/// `VDIGW__SERVER__BIND` sets `server.bind`. Two underscores keep keys such as
/// `body_limit_bytes` intact.
pub const ENV_SEPARATOR: &str = "__";

/// Minimum length of a control-plane token. Shorter bearer tokens can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

const DEFAULT_BIND: &str = "127.0.0.1:8080";
const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
const DEFAULT_STORE_URL: &str = "sqlite://vdi-gateway.db?mode=rwc";
const DEFAULT_MAX_CONNECTIONS: u32 = 10;
const DEFAULT_LOG_LEVEL: &str = "info";
const DEFAULT_RECONCILE_INTERVAL_SECONDS: u64 = 5;
const DEFAULT_DEFERRED_RECHECK_SECONDS: u64 = 15;
const DEFAULT_LEASE_SECONDS: u64 = 30;
const DEFAULT_MAX_PARALLEL_TARGETS: usize = 8;
const DEFAULT_ENVIRONMENT: &str = "prod";
const MAX_NAME_LEN: usize = 64;

/// Failure to load the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a key has the wrong type.
    // The `config` crate's error is part of the message and not returned as `source()`, so a
    // report of the whole chain (`{:#}`) does not print it twice.
    #[error("failed to read the configuration{}: {cause}", describe_path(.path))]
    Read {
        /// Configuration file, if one was given.
        path: Option<PathBuf>,
        /// Error of the `config` crate, naming the key.
        cause: ::config::ConfigError,
    },
    /// Keys of the file or of `VDIGW__*` variables that the gateway does not read, all of them.
    #[error(
        "the configuration has unknown keys; rename or remove each:\n{}",
        format_lines(.keys)
    )]
    UnknownKeys {
        /// Configuration file, if one was given.
        path: Option<PathBuf>,
        /// Every unknown key, the file's in line order.
        keys: Vec<UnknownKey>,
    },
    /// The configuration parsed, but one or more values are invalid or a secret is missing.
    #[error("invalid configuration:\n{}", format_lines(.0))]
    Invalid(Vec<Problem>),
}

/// One invalid key and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path of the key, for example `server.bind` or `providers["citrix-prod"].settings.token_url`.
    pub key: String,
    /// Description of the invalid value and of its fix.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn describe_path(path: &Option<PathBuf>) -> String {
    match path {
        Some(path) => format!(" from {}", path.display()),
        None => String::new(),
    }
}

fn format_lines<T: fmt::Display>(items: &[T]) -> String {
    let lines: Vec<String> = items.iter().map(|item| format!("  - {item}")).collect();
    lines.join("\n")
}

/// The validated configuration of one gateway process.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// HTTP listener settings (`[server]`).
    pub server: ServerConfig,
    /// Database settings (`[store]`).
    pub store: StoreConfig,
    /// Logging settings (`[log]`).
    pub log: LogConfig,
    /// Rollout engine timings and limits (`[engine]`).
    pub engine: EngineConfig,
    /// Control-plane bearer tokens (`[[tokens]]`). Without any, every `/v1` request gets 401.
    pub tokens: Vec<TokenConfig>,
    /// Configured brokers (`[[providers]]`), in file order.
    pub providers: Vec<ProviderConfig>,
    /// Change freezes (`[[freezes]]`): periods in which no rollout may change the named
    /// providers or environments.
    pub freezes: Vec<FreezeConfig>,
    /// Dynamic plugin libraries (`[plugins]`).
    pub plugins: PluginsConfig,
    /// Accepted but risky choices (inline secrets, loose file permissions, no tokens), for the
    /// caller to log at `warn` once logging is set up.
    pub warnings: Vec<String>,
}

/// HTTP listener settings.
#[derive(Clone)]
pub struct ServerConfig {
    /// Socket address to listen on. Default `127.0.0.1:8080`: loopback, so a fresh install is
    /// not reachable from the network until an operator chooses an address.
    pub bind: SocketAddr,
    /// Maximum request body in bytes, above which requests get 413. Default 1 MiB, far above the
    /// largest assignment document and small enough to bound memory per request.
    pub body_limit_bytes: usize,
    /// Bearer token that `/metrics` requires. Default none: Prometheus scrapes without a token,
    /// which suits a loopback bind.
    pub metrics_token: Option<SecretString>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("metrics_token", &redacted_option(&self.metrics_token))
            .finish_non_exhaustive()
    }
}

/// Database settings.
#[derive(Clone)]
pub struct StoreConfig {
    /// sqlx connection URL. Default `sqlite://vdi-gateway.db?mode=rwc`: one file in the working
    /// directory, created on first start, so a single gateway needs no database server. Use
    /// `postgres://…` when several replicas share the state. A secret because a PostgreSQL URL
    /// can carry a password, so logs use [`StoreConfig::redacted_url`].
    pub url: SecretString,
    /// Size of the connection pool. Default 10, the sqlx default: enough for the API and the
    /// reconcile tasks, well under PostgreSQL's usual limit of 100 connections.
    pub max_connections: u32,
}

impl StoreConfig {
    /// Returns the URL with any password replaced by `redacted`, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Output format. Default `human`, for a terminal. Use `json` under a log collector.
    pub format: LogFormat,
    /// `tracing_subscriber::EnvFilter` directive, for example `info,vdi_citrix=debug`. Default
    /// `info`: lifecycle events, retries and errors, without per-request detail.
    pub level: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line.
    Json,
}

/// Rollout engine timings and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Seconds between reconcile passes of an assignment that has work left. Default 5: a wave
    /// advances promptly without polling brokers more than their rate limits allow.
    pub reconcile_interval_seconds: u64,
    /// Seconds before a machine deferred by its sessions or the maintenance window is checked
    /// again. Default 15: sessions end on a scale of minutes, so checking more often only adds
    /// broker reads.
    pub deferred_recheck_seconds: u64,
    /// Seconds a replica owns an assignment × target before another replica may take it over.
    /// Default 30: several reconcile intervals, so a live owner renews in time, and a dead one is
    /// replaced within half a minute.
    pub lease_seconds: u64,
    /// Maximum assignment × target pairs reconciled at once. Default 8, matching the default
    /// per-broker request concurrency, so one gateway does not queue far behind its brokers.
    pub max_parallel_targets: usize,
}

impl EngineConfig {
    /// Returns the reconcile interval as a [`std::time::Duration`].
    pub fn reconcile_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.reconcile_interval_seconds)
    }

    /// Returns the recheck delay of deferred machines as a [`std::time::Duration`].
    pub fn deferred_recheck(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.deferred_recheck_seconds)
    }

    /// Returns the lease length as a [`std::time::Duration`].
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_seconds)
    }
}

/// Role of a control-plane token. Each role includes the rights of the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Every `GET`.
    Viewer,
    /// Viewer plus assignment changes, rollback, pause and resume.
    Operator,
    /// Everything, including provider and plugin management.
    Admin,
}

impl Role {
    /// Returns whether this role includes the rights of `required`.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }

    /// Returns the configuration name of this role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A control-plane bearer token with its role.
#[derive(Clone)]
pub struct TokenConfig {
    /// Name recorded as the actor in the audit trail.
    pub name: String,
    /// Permissions of the token.
    pub role: Role,
    /// Token value, from `token_env`, `token_file` or the inline `token`.
    pub token: SecretString,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// One configured broker.
#[derive(Clone)]
pub struct ProviderConfig {
    /// Unique name, 1 to 64 characters of `[a-z0-9-]`, used in assignments and API paths.
    pub name: String,
    /// Provider implementation, for example `citrix`.
    pub kind: String,
    /// Environment label (dev, test, prod…) shown by `GET /v1/providers`. Default `prod`.
    pub environment: String,
    /// Whether the gateway starts this provider. Default true. A disabled provider's secrets
    /// are not read, so it may reference variables that are not set.
    pub enabled: bool,
    /// Token that agents of this provider's machines present on `/v1/agent/*`.
    pub agent_token: Option<SecretString>,
    /// The provider's own settings as a JSON object, with every `X_env` and `X_file` key
    /// already replaced by `X` and the secret value. The provider crate deserializes it with
    /// its own struct, for example `serde_json::from_value(settings.clone())`.
    pub settings: Value,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = match &self.settings {
            Value::Object(map) => map.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("environment", &self.environment)
            .field("enabled", &self.enabled)
            .field("agent_token", &redacted_option(&self.agent_token))
            .field("settings_keys", &keys)
            .finish_non_exhaustive()
    }
}

impl GatewayConfig {
    /// Returns the configuration used when no file and no override is given: every default,
    /// no tokens and no providers.
    pub fn embedded_defaults() -> GatewayConfig {
        GatewayConfig {
            server: ServerConfig {
                bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
                body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
                metrics_token: None,
            },
            store: StoreConfig {
                url: SecretString::from(DEFAULT_STORE_URL),
                max_connections: DEFAULT_MAX_CONNECTIONS,
            },
            log: LogConfig {
                format: LogFormat::Human,
                level: DEFAULT_LOG_LEVEL.to_owned(),
            },
            engine: EngineConfig {
                reconcile_interval_seconds: DEFAULT_RECONCILE_INTERVAL_SECONDS,
                deferred_recheck_seconds: DEFAULT_DEFERRED_RECHECK_SECONDS,
                lease_seconds: DEFAULT_LEASE_SECONDS,
                max_parallel_targets: DEFAULT_MAX_PARALLEL_TARGETS,
            },
            tokens: Vec::new(),
            providers: Vec::new(),
            freezes: Vec::new(),
            plugins: PluginsConfig::default(),
            warnings: vec![no_tokens_warning()],
        }
    }

    /// Returns the provider with this name, if one is configured.
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }
}

/// Loads the configuration from `path` (TOML, optional) and the process environment.
///
/// Keys missing from the file take their defaults, and a `VDIGW__SECTION__KEY` variable overrides a
/// key of the file. Arrays (`[[tokens]]`, `[[providers]]`) come from the file only.
///
/// # Errors
/// Returns [`ConfigError::Read`] when the file is missing or not valid TOML or a key has the
/// wrong type, [`ConfigError::UnknownKeys`] listing every key the gateway does not read, and
/// [`ConfigError::Invalid`] listing every invalid value and every secret that cannot be read.
pub fn load(path: Option<&Path>) -> Result<GatewayConfig, ConfigError> {
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    load_with_env(path, &env)
}

/// Loads the configuration like [`load`], but reads overrides and `*_env` secrets from `env`
/// instead of the process environment, so tests need not change global state.
///
/// # Errors
/// As [`load`].
pub fn load_with_env(
    path: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<GatewayConfig, ConfigError> {
    let overrides: ::config::Map<String, String> =
        env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut builder = ::config::Config::builder();
    if let Some(path) = path {
        builder = builder.add_source(
            ::config::File::from(path)
                .format(::config::FileFormat::Toml)
                .required(true),
        );
    }
    builder = builder.add_source(
        ::config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .source(Some(overrides)),
    );
    let read_error = |cause| ConfigError::Read {
        path: path.map(Path::to_path_buf),
        cause,
    };
    let config = builder.build().map_err(read_error)?;

    // When reading the file again fails (it was removed since), the keys are reported without
    // line numbers.
    let text = path.and_then(|path| std::fs::read_to_string(path).ok());
    let file = path.zip(text.as_deref());
    let unknown = keys::unknown_keys(&KeyShape::of::<RawConfig>(), &config.cache, file, env);
    if !unknown.is_empty() {
        return Err(ConfigError::UnknownKeys {
            path: path.map(Path::to_path_buf),
            keys: unknown,
        });
    }

    let raw: RawConfig = config.try_deserialize().map_err(read_error)?;
    validate(raw, env)
}
