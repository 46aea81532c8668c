//! Gateway configuration: an optional TOML file, overridden by `VDIGW__SECTION__KEY` environment
//! variables, validated and with every secret resolved before the gateway starts.
//!
//! [`load`] reads the file into private `Raw*` structs that mirror the TOML layout, then
//! [`validate`] turns them into [`GatewayConfig`], collecting every problem so an operator fixes
//! them all in one pass. Secrets (control-plane tokens, agent tokens, the metrics token and any
//! provider setting given as `X_env` or `X_file`) become [`SecretString`] or are resolved in place
//! in the provider's settings table, and no `Debug` output of this module shows them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};
use url::{Host, Url};

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
    /// The file could not be read or parsed, or a key has the wrong type or is unknown.
    #[error("failed to read the configuration{}: {source}", describe_path(.path))]
    Read {
        /// Configuration file, if one was given.
        path: Option<PathBuf>,
        /// Error of the `config` crate, naming the key.
        source: ::config::ConfigError,
    },
    /// The configuration parsed, but one or more values are invalid or a secret is missing.
    #[error("invalid configuration:\n{}", format_problems(.0))]
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

fn format_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
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
/// Returns [`ConfigError::Read`] when the file is missing or not valid TOML, or a key is unknown
/// or has the wrong type, and [`ConfigError::Invalid`] listing every invalid value and every
/// secret that cannot be read.
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
    let raw: RawConfig = builder
        .build()
        .and_then(|config| config.try_deserialize())
        .map_err(|source| ConfigError::Read {
            path: path.map(Path::to_path_buf),
            source,
        })?;
    validate(raw, env)
}

// The `Raw*` structs mirror the file layout; every default lives in their `Default` impls and is
// documented on the matching public field.

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    store: RawStore,
    log: RawLog,
    engine: RawEngine,
    tokens: Vec<RawToken>,
    providers: Vec<RawProvider>,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawServer {
    bind: String,
    body_limit_bytes: usize,
    metrics_token: Option<String>,
    metrics_token_env: Option<String>,
    metrics_token_file: Option<PathBuf>,
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
struct RawStore {
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    max_connections: u32,
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
struct RawLog {
    format: String,
    level: String,
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
struct RawEngine {
    reconcile_interval_seconds: u64,
    deferred_recheck_seconds: u64,
    lease_seconds: u64,
    max_parallel_targets: usize,
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
struct RawToken {
    name: String,
    role: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    kind: String,
    #[serde(default = "default_environment")]
    environment: String,
    #[serde(default = "default_enabled")]
    enabled: bool,
    #[serde(default)]
    agent_token_env: Option<String>,
    #[serde(default)]
    agent_token_file: Option<PathBuf>,
    #[serde(default)]
    settings: Map<String, Value>,
}

fn default_environment() -> String {
    DEFAULT_ENVIRONMENT.to_owned()
}

fn default_enabled() -> bool {
    true
}

/// Collects problems and warnings while [`validate`] walks the raw configuration.
struct Checker<'a> {
    env: &'a HashMap<String, String>,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Checker<'_> {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// Resolves a secret given as `<base>` (inline), `<base>_env` or `<base>_file`, of which at most one
    /// of them may be set. Returns `None` when none is set or the secret cannot be read.
    fn secret(
        &mut self,
        key_prefix: &str,
        base: &str,
        inline: Option<String>,
        env_name: Option<&str>,
        file: Option<&Path>,
    ) -> Option<SecretString> {
        let given: Vec<String> = [
            inline.as_ref().map(|_| base.to_owned()),
            env_name.map(|_| format!("{base}_env")),
            file.map(|_| format!("{base}_file")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            self.problem(
                format!("{key_prefix}{base}"),
                format!(
                    "is given {} ways ({}); keep exactly one",
                    given.len(),
                    given.join(", ")
                ),
            );
            return None;
        }
        if let Some(value) = inline {
            self.warnings.push(format!(
                "{key_prefix}{base} is written inline in the configuration; move it to \
                 {base}_env or {base}_file so the file holds no secret"
            ));
            return self.non_empty(format!("{key_prefix}{base}"), value);
        }
        if let Some(name) = env_name {
            let key = format!("{key_prefix}{base}_env");
            return match read_env_secret(self.env, name) {
                Ok(value) => self.non_empty(key, value),
                Err(message) => {
                    self.problem(key, message);
                    None
                }
            };
        }
        if let Some(path) = file {
            let key = format!("{key_prefix}{base}_file");
            if let Some(warning) = loose_permissions_warning(&key, path) {
                self.warnings.push(warning);
            }
            return match read_file_secret(path) {
                Ok(value) => self.non_empty(key, value),
                Err(message) => {
                    self.problem(key, message);
                    None
                }
            };
        }
        None
    }

    fn non_empty(&mut self, key: String, value: String) -> Option<SecretString> {
        if value.is_empty() {
            self.problem(key, "resolves to an empty value; set the secret");
            return None;
        }
        Some(SecretString::from(value))
    }
}

fn read_env_secret(env: &HashMap<String, String>, name: &str) -> Result<String, String> {
    match env.get(name) {
        Some(value) => Ok(value.clone()),
        None => Err(format!(
            "environment variable {name} is not set; set it or point this key at another variable"
        )),
    }
}

fn read_file_secret(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim_end_matches(['\r', '\n']).to_owned()),
        Err(err) => Err(format!(
            "cannot read file {}: {err}; create it or fix the path",
            path.display()
        )),
    }
}

#[cfg(unix)]
fn loose_permissions_warning(key: &str, path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;

    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{key}: {} is readable by group or others (mode {:o}); run `chmod 600` on it",
            path.display(),
            mode & 0o777
        )
    })
}

#[cfg(not(unix))]
fn loose_permissions_warning(_key: &str, _path: &Path) -> Option<String> {
    None
}

fn no_tokens_warning() -> String {
    "no [[tokens]] are configured, so every /v1 request is rejected with 401; add a token".into()
}

/// Turns the raw configuration into [`GatewayConfig`], resolving secrets from `env` and files.
fn validate(raw: RawConfig, env: &HashMap<String, String>) -> Result<GatewayConfig, ConfigError> {
    let mut checker = Checker {
        env,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let server = validate_server(raw.server, &mut checker);
    let store = validate_store(raw.store, &mut checker);
    let log = validate_log(raw.log, &mut checker);
    let engine = validate_engine(raw.engine, &mut checker);
    let tokens = validate_tokens(raw.tokens, &mut checker);
    let providers = validate_providers(raw.providers, &mut checker);

    if !checker.problems.is_empty() {
        return Err(ConfigError::Invalid(checker.problems));
    }
    if tokens.is_empty() {
        checker.warnings.push(no_tokens_warning());
    }
    Ok(GatewayConfig {
        server,
        store,
        log,
        engine,
        tokens,
        providers,
        warnings: checker.warnings,
    })
}

fn validate_server(raw: RawServer, checker: &mut Checker<'_>) -> ServerConfig {
    let bind = match raw.bind.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            checker.problem(
                "server.bind",
                format!(
                    "{:?} is not a socket address; use IP:PORT such as 127.0.0.1:8080 or \
                     0.0.0.0:8080",
                    raw.bind
                ),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }
    };
    if raw.body_limit_bytes == 0 {
        checker.problem(
            "server.body_limit_bytes",
            "is 0, which rejects every request body; use a positive size such as 1048576 (1 MiB)",
        );
    }
    let metrics_token = checker.secret(
        "server.",
        "metrics_token",
        raw.metrics_token,
        raw.metrics_token_env.as_deref(),
        raw.metrics_token_file.as_deref(),
    );
    ServerConfig {
        bind,
        body_limit_bytes: raw.body_limit_bytes,
        metrics_token,
    }
}

fn validate_store(raw: RawStore, checker: &mut Checker<'_>) -> StoreConfig {
    let url = match (&raw.url, &raw.url_env, &raw.url_file) {
        (None, None, None) => Some(SecretString::from(DEFAULT_STORE_URL)),
        _ => {
            // A store URL is not a secret worth a warning when inline: SQLite URLs carry none.
            let inline = raw.url.clone();
            let before = checker.warnings.len();
            let url = checker.secret(
                "store.",
                "url",
                inline,
                raw.url_env.as_deref(),
                raw.url_file.as_deref(),
            );
            checker.warnings.truncate(before);
            url
        }
    };
    if let Some(url) = &url {
        let text = url.expose_secret();
        let known = ["sqlite:", "postgres://", "postgresql://"];
        if !known.iter().any(|scheme| text.starts_with(scheme)) {
            checker.problem(
                "store.url",
                format!(
                    "{:?} is not a supported database URL; use sqlite://FILE?mode=rwc or \
                     postgres://USER@HOST/DB",
                    redact_url(text)
                ),
            );
        }
    }
    if raw.max_connections == 0 {
        checker.problem(
            "store.max_connections",
            "is 0, so no query could run; use at least 1 (default 10)",
        );
    }
    StoreConfig {
        url: url.unwrap_or_else(|| SecretString::from(DEFAULT_STORE_URL)),
        max_connections: raw.max_connections,
    }
}

fn validate_log(raw: RawLog, checker: &mut Checker<'_>) -> LogConfig {
    let format = match raw.format.as_str() {
        "human" => LogFormat::Human,
        "json" => LogFormat::Json,
        other => {
            checker.problem(
                "log.format",
                format!("{other:?} is not a log format; use \"human\" or \"json\""),
            );
            LogFormat::Human
        }
    };
    if let Err(err) = tracing_subscriber::EnvFilter::try_new(&raw.level) {
        checker.problem(
            "log.level",
            format!(
                "{:?} is not a valid filter directive ({err}); use a level such as \"info\" or \
                 \"info,vdi_citrix=debug\"",
                raw.level
            ),
        );
    }
    LogConfig {
        format,
        level: raw.level,
    }
}

fn validate_engine(raw: RawEngine, checker: &mut Checker<'_>) -> EngineConfig {
    let positive = [
        (
            "engine.reconcile_interval_seconds",
            raw.reconcile_interval_seconds,
        ),
        (
            "engine.deferred_recheck_seconds",
            raw.deferred_recheck_seconds,
        ),
        ("engine.lease_seconds", raw.lease_seconds),
        (
            "engine.max_parallel_targets",
            raw.max_parallel_targets as u64,
        ),
    ];
    for (key, value) in positive {
        if value == 0 {
            checker.problem(key, "is 0; use a positive value");
        }
    }
    if raw.lease_seconds > 0 && raw.lease_seconds <= raw.reconcile_interval_seconds {
        checker.problem(
            "engine.lease_seconds",
            format!(
                "{} must be longer than engine.reconcile_interval_seconds ({}), or a lease \
                 expires between two passes of its owner; use at least twice the interval",
                raw.lease_seconds, raw.reconcile_interval_seconds
            ),
        );
    }
    EngineConfig {
        reconcile_interval_seconds: raw.reconcile_interval_seconds,
        deferred_recheck_seconds: raw.deferred_recheck_seconds,
        lease_seconds: raw.lease_seconds,
        max_parallel_targets: raw.max_parallel_targets,
    }
}

/// Returns `tokens["name"]` or `tokens[index]` when the name is unusable, for error keys.
fn item_key(section: &str, index: usize, name: &str) -> String {
    if name.is_empty() {
        format!("{section}[{index}]")
    } else {
        format!("{section}[{name:?}]")
    }
}

fn validate_tokens(raw: Vec<RawToken>, checker: &mut Checker<'_>) -> Vec<TokenConfig> {
    let mut names = HashSet::new();
    let mut values: HashMap<String, String> = HashMap::new();
    let mut tokens = Vec::new();
    for (index, token) in raw.into_iter().enumerate() {
        let key = item_key("tokens", index, &token.name);
        check_name(checker, &format!("{key}.name"), &token.name, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
        });
        if !token.name.is_empty() && !names.insert(token.name.clone()) {
            checker.problem(
                format!("{key}.name"),
                "is used by another token; give each token a unique name for the audit trail",
            );
        }
        let role = match token.role.as_str() {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            other => {
                checker.problem(
                    format!("{key}.role"),
                    format!("{other:?} is not a role; use \"viewer\", \"operator\" or \"admin\""),
                );
                None
            }
        };
        let given = [
            token.token.is_some(),
            token.token_env.is_some(),
            token.token_file.is_some(),
        ];
        if given.iter().all(|set| !set) {
            checker.problem(
                format!("{key}.token_env"),
                "no token value is given; set exactly one of token_env, token_file or token",
            );
            continue;
        }
        let prefix = format!("{key}.");
        let Some(secret) = checker.secret(
            &prefix,
            "token",
            token.token,
            token.token_env.as_deref(),
            token.token_file.as_deref(),
        ) else {
            continue;
        };
        let length = secret.expose_secret().chars().count();
        if length < MIN_TOKEN_LEN {
            checker.problem(
                format!("{key}.token"),
                format!(
                    "the token has {length} characters; use at least {MIN_TOKEN_LEN} random \
                     characters, for example the output of `openssl rand -hex 32`"
                ),
            );
            continue;
        }
        if let Some(other) = values.insert(secret.expose_secret().to_owned(), token.name.clone()) {
            checker.problem(
                format!("{key}.token"),
                format!(
                    "has the same value as token {other:?}, so the audit trail could not tell \
                     them apart; give each token its own value"
                ),
            );
            continue;
        }
        if let Some(role) = role {
            tokens.push(TokenConfig {
                name: token.name,
                role,
                token: secret,
            });
        }
    }
    tokens
}

fn check_name(checker: &mut Checker<'_>, key: &str, name: &str, allowed: impl Fn(char) -> bool) {
    let length = name.chars().count();
    if length == 0 || length > MAX_NAME_LEN {
        checker.problem(
            key,
            format!("{name:?} must be 1 to {MAX_NAME_LEN} characters long, not {length}"),
        );
    } else if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        checker.problem(
            key,
            format!("{name:?} contains {bad:?}; use only the allowed characters"),
        );
    }
}

fn validate_providers(raw: Vec<RawProvider>, checker: &mut Checker<'_>) -> Vec<ProviderConfig> {
    let mut names = HashSet::new();
    let mut providers = Vec::new();
    for (index, provider) in raw.into_iter().enumerate() {
        let key = item_key("providers", index, &provider.name);
        let length = provider.name.chars().count();
        let valid_chars = provider
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if length == 0 || length > MAX_NAME_LEN || !valid_chars {
            checker.problem(
                format!("{key}.name"),
                format!(
                    "{:?} is not a valid provider name; use 1 to {MAX_NAME_LEN} lowercase \
                     letters, digits and '-', for example \"citrix-prod\"",
                    provider.name
                ),
            );
        }
        if !provider.name.is_empty() && !names.insert(provider.name.clone()) {
            checker.problem(
                format!("{key}.name"),
                "is used by another provider; give each provider a unique name",
            );
        }
        if provider.kind.is_empty() {
            checker.problem(
                format!("{key}.kind"),
                "is empty; name the provider implementation, for example \"citrix\"",
            );
        }
        if provider.environment.is_empty() {
            checker.problem(
                format!("{key}.environment"),
                "is empty; use a label such as \"prod\" or \"test\"",
            );
        }

        let mut agent_token = None;
        let mut settings = provider.settings;
        if provider.enabled {
            agent_token = checker.secret(
                &format!("{key}."),
                "agent_token",
                None,
                provider.agent_token_env.as_deref(),
                provider.agent_token_file.as_deref(),
            );
            let settings_key = format!("{key}.settings");
            settings = resolve_settings(checker, &settings_key, settings);
            check_setting_urls(checker, &settings_key, &settings);
        }
        providers.push(ProviderConfig {
            name: provider.name,
            kind: provider.kind,
            environment: provider.environment,
            enabled: provider.enabled,
            agent_token,
            settings: Value::Object(settings),
        });
    }
    providers
}

/// Replaces every `X_env` and `X_file` key of a settings table (and of nested tables) by `X`
/// with the secret value.
fn resolve_settings(
    checker: &mut Checker<'_>,
    key: &str,
    settings: Map<String, Value>,
) -> Map<String, Value> {
    let mut resolved = Map::new();
    // BTreeMap gives a stable order, so error lists do not change from run to run.
    let sorted: BTreeMap<String, Value> = settings.into_iter().collect();
    let plain_keys: HashSet<String> = sorted
        .keys()
        .filter(|k| !k.ends_with("_env") && !k.ends_with("_file"))
        .cloned()
        .collect();
    for (name, value) in sorted {
        let full_key = format!("{key}.{name}");
        let (target, secret) = if let Some(base) = name.strip_suffix("_env") {
            let Some(variable) = value.as_str() else {
                checker.problem(full_key, "must be the name of an environment variable");
                continue;
            };
            (base.to_owned(), read_env_secret(checker.env, variable))
        } else if let Some(base) = name.strip_suffix("_file") {
            let Some(path) = value.as_str() else {
                checker.problem(full_key, "must be the path of a file");
                continue;
            };
            if let Some(warning) = loose_permissions_warning(&full_key, Path::new(path)) {
                checker.warnings.push(warning);
            }
            (base.to_owned(), read_file_secret(Path::new(path)))
        } else {
            let value = match value {
                Value::Object(table) => Value::Object(resolve_settings(checker, &full_key, table)),
                other => other,
            };
            resolved.insert(name, value);
            continue;
        };

        if plain_keys.contains(&target) || resolved.contains_key(&target) {
            checker.problem(
                full_key,
                format!("{target} is given more than one way; keep exactly one of {target}, {target}_env or {target}_file"),
            );
            continue;
        }
        match secret {
            Ok(value) if value.is_empty() => {
                checker.problem(full_key, "resolves to an empty value; set the secret");
            }
            Ok(value) => {
                resolved.insert(target, Value::String(value));
            }
            Err(message) => checker.problem(full_key, message),
        }
    }
    resolved
}

/// Rejects plain-http URLs to non-loopback hosts in any settings key that ends in `url`.
fn check_setting_urls(checker: &mut Checker<'_>, key: &str, settings: &Map<String, Value>) {
    for (name, value) in settings {
        let full_key = format!("{key}.{name}");
        match value {
            Value::Object(table) => check_setting_urls(checker, &full_key, table),
            Value::String(text) if name.to_ascii_lowercase().ends_with("url") => {
                if let Err(message) = check_url(text) {
                    checker.problem(full_key, message);
                }
            }
            _ => {}
        }
    }
}

fn check_url(text: &str) -> Result<(), String> {
    let url = Url::parse(text).map_err(|err| {
        format!(
            "{:?} is not a valid URL ({err}); use an absolute https:// URL",
            redact_url(text)
        )
    })?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host().is_some_and(|h| is_loopback(&h)) => Ok(()),
        "http" => Err(format!(
            "{:?}: plain http is allowed only for loopback addresses; use https",
            redact_url(text)
        )),
        other => Err(format!(
            "{:?} uses the {other:?} scheme; use https",
            redact_url(text)
        )),
    }
}

/// Returns whether a URL host is a loopback address or `localhost`.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
    }
}

/// Returns the URL with its password, if any, replaced by `redacted`.
fn redact_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            // set_password fails only for URLs that cannot have credentials, which have none.
            let _ = url.set_password(Some("redacted"));
            url.to_string()
        }
        Ok(_) => text.to_owned(),
        Err(_) if text.contains('@') => "[unparsable URL with credentials]".to_owned(),
        Err(_) => text.to_owned(),
    }
}

fn redacted_option(secret: &Option<SecretString>) -> &'static str {
    match secret {
        Some(_) => "[redacted]",
        None => "None",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPERATOR_TOKEN: &str = "operator-token-0123456789abcdef";
    const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef";
    const CLIENT_SECRET: &str = "citrix-client-secret-value";

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "gateway.toml", text);
        load_with_env(Some(&path), &env(vars))
    }

    /// Loads `text` and returns the problems, failing the test when it loads.
    fn problems(text: &str, vars: &[(&str, &str)]) -> Vec<Problem> {
        match load_text(text, vars) {
            Err(ConfigError::Invalid(problems)) => problems,
            Err(other) => panic!("expected validation problems, got {other}"),
            Ok(config) => panic!("expected validation problems, got {config:?}"),
        }
    }

    fn assert_problem(text: &str, vars: &[(&str, &str)], key: &str, fragment: &str) {
        let found = problems(text, vars);
        assert!(
            found
                .iter()
                .any(|p| p.key == key && p.message.contains(fragment)),
            "no problem on {key} containing {fragment:?}; got {found:?}"
        );
    }

    const OPERATOR: &str = "[[tokens]]\nname = \"ci\"\nrole = \"operator\"\ntoken_env = \"OP\"\n";

    #[test]
    fn defaults_without_file() {
        let config = load_with_env(None, &HashMap::new()).unwrap();
        let defaults = GatewayConfig::embedded_defaults();

        assert_eq!(config.server.bind, defaults.server.bind);
        assert_eq!(config.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.body_limit_bytes, 1_048_576);
        assert!(config.server.metrics_token.is_none());
        assert_eq!(
            config.store.url.expose_secret(),
            "sqlite://vdi-gateway.db?mode=rwc"
        );
        assert_eq!(config.store.max_connections, 10);
        assert_eq!(config.log, defaults.log);
        assert_eq!(config.log.format, LogFormat::Human);
        assert_eq!(config.log.level, "info");
        assert_eq!(config.engine, defaults.engine);
        assert_eq!(config.engine.reconcile_interval_seconds, 5);
        assert_eq!(config.engine.deferred_recheck_seconds, 15);
        assert_eq!(config.engine.lease_seconds, 30);
        assert_eq!(config.engine.max_parallel_targets, 8);
        assert!(config.tokens.is_empty());
        assert!(config.providers.is_empty());
        assert_eq!(config.warnings, defaults.warnings);
    }

    #[test]
    fn file_then_env_override() {
        let text = "[server]\nbind = \"0.0.0.0:8080\"\nbody_limit_bytes = 2048\n\
                    [log]\nformat = \"json\"\n[engine]\nlease_seconds = 60\n";
        let vars = [
            ("VDIGW__SERVER__BIND", "127.0.0.1:9000"),
            ("VDIGW__LOG__LEVEL", "debug"),
            ("VDIGW__ENGINE__MAX_PARALLEL_TARGETS", "3"),
            // Client variables share the prefix but not the separator, so they are ignored.
            ("VDIGW_SERVER", "http://127.0.0.1:8080"),
        ];
        let config = load_text(text, &vars).unwrap();

        assert_eq!(config.server.bind.to_string(), "127.0.0.1:9000");
        assert_eq!(config.server.body_limit_bytes, 2048);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.level, "debug");
        assert_eq!(config.engine.lease_seconds, 60);
        assert_eq!(config.engine.max_parallel_targets, 3);
        assert_eq!(config.engine.reconcile_interval_seconds, 5);
    }

    #[test]
    fn unknown_key_is_rejected() {
        let err = load_text("[server]\nbnd = \"127.0.0.1:1\"\n", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("bnd"), "{err}");
    }

    #[test]
    fn unknown_env_override_is_rejected() {
        let err = load_with_env(None, &env(&[("VDIGW__SERVER__PORT", "1")])).unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
    }

    #[test]
    fn missing_file_is_rejected() {
        let err = load_with_env(
            Some(Path::new("/nonexistent/gateway.toml")),
            &HashMap::new(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn token_from_env() {
        let config = load_text(OPERATOR, &[("OP", OPERATOR_TOKEN)]).unwrap();

        assert_eq!(config.tokens.len(), 1);
        assert_eq!(config.tokens[0].name, "ci");
        assert_eq!(config.tokens[0].role, Role::Operator);
        assert_eq!(config.tokens[0].token.expose_secret(), OPERATOR_TOKEN);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn token_from_file_trims_newline() {
        let dir = tempfile::tempdir().unwrap();
        let token_path = write(dir.path(), "viewer.token", &format!("{VIEWER_TOKEN}\r\n"));
        let text = format!(
            "[[tokens]]\nname = \"dash\"\nrole = \"viewer\"\ntoken_file = {:?}\n",
            token_path.to_str().unwrap()
        );
        let config = load_text(&text, &[]).unwrap();

        assert_eq!(config.tokens[0].token.expose_secret(), VIEWER_TOKEN);
        assert_eq!(config.tokens[0].role, Role::Viewer);
    }

    #[test]
    fn inline_token_warns() {
        let text = format!(
            "[[tokens]]\nname = \"root\"\nrole = \"admin\"\ntoken = \"{OPERATOR_TOKEN}\"\n"
        );
        let config = load_text(&text, &[]).unwrap();

        assert_eq!(config.tokens[0].role, Role::Admin);
        assert_eq!(config.warnings.len(), 1);
        assert!(config.warnings[0].contains("token_env"));
    }

    #[test]
    fn settings_secret_from_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret_path = write(dir.path(), "password", "p@ss word\n");
        let text = format!(
            "[[providers]]\nname = \"citrix-prod\"\nkind = \"citrix\"\n\
             [providers.settings]\nclient_secret_env = \"CTX_SECRET\"\nconcurrency = 4\n\
             [providers.settings.nested]\npassword_file = {:?}\n",
            secret_path.to_str().unwrap()
        );
        let config = load_text(&text, &[("CTX_SECRET", CLIENT_SECRET)]).unwrap();
        let settings = &config.providers[0].settings;

        assert_eq!(settings["client_secret"], CLIENT_SECRET);
        assert!(settings.get("client_secret_env").is_none());
        assert_eq!(settings["concurrency"], 4);
        assert_eq!(settings["nested"]["password"], "p@ss word");
        assert_eq!(config.providers[0].environment, "prod");
        assert!(config.providers[0].enabled);
    }

    #[test]
    fn disabled_provider_skips_secrets() {
        let text = "[[providers]]\nname = \"citrix-dr\"\nkind = \"citrix\"\nenabled = false\n\
                    [providers.settings]\nclient_secret_env = \"NOT_SET\"\n";
        let config = load_text(text, &[]).unwrap();

        assert!(!config.providers[0].enabled);
        assert_eq!(config.providers[0].settings["client_secret_env"], "NOT_SET");
    }

    #[test]
    fn agent_token_from_env() {
        let text = "[[providers]]\nname = \"agents\"\nkind = \"agent\"\n\
                    agent_token_env = \"AGENT\"\n";
        let config = load_text(text, &[("AGENT", "agent-secret-value")]).unwrap();
        let token = config.providers[0].agent_token.as_ref().unwrap();

        assert_eq!(token.expose_secret(), "agent-secret-value");
    }

    #[test]
    fn debug_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let viewer_path = write(dir.path(), "viewer.token", VIEWER_TOKEN);
        let text = format!(
            "[server]\nmetrics_token_env = \"METRICS\"\n\
             [store]\nurl_env = \"DB\"\n\
             {OPERATOR}\
             [[tokens]]\nname = \"dash\"\nrole = \"viewer\"\ntoken_file = {:?}\n\
             [[providers]]\nname = \"citrix-prod\"\nkind = \"citrix\"\n\
             agent_token_env = \"AGENT\"\n\
             [providers.settings]\nclient_secret_env = \"CTX_SECRET\"\n",
            viewer_path.to_str().unwrap()
        );
        let vars = [
            ("OP", OPERATOR_TOKEN),
            ("METRICS", "metrics-secret-value"),
            ("DB", "postgres://gw:db-password-value@db.example.org/gw"),
            ("AGENT", "agent-secret-value"),
            ("CTX_SECRET", CLIENT_SECRET),
        ];
        let config = load_text(&text, &vars).unwrap();
        let debug = format!("{config:?}");
        let pretty = format!("{config:#?}");

        for secret in [
            OPERATOR_TOKEN,
            VIEWER_TOKEN,
            "metrics-secret-value",
            "db-password-value",
            "agent-secret-value",
            CLIENT_SECRET,
        ] {
            assert!(!debug.contains(secret), "{{:?}} shows {secret}: {debug}");
            assert!(!pretty.contains(secret), "{{:#?}} shows {secret}");
        }
        assert!(debug.contains("citrix-prod"));
        assert!(debug.contains("db.example.org"));
    }

    /// Configuration text, environment, key of the expected problem, part of its message.
    type ValidationCase = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static str,
    );

    #[test]
    fn validation_messages() {
        let cases: &[ValidationCase] = &[
            (
                "[server]\nbind = \"localhost:8080\"\n",
                &[],
                "server.bind",
                "use IP:PORT",
            ),
            (
                "[server]\nbody_limit_bytes = 0\n",
                &[],
                "server.body_limit_bytes",
                "use a positive size",
            ),
            (
                "[log]\nformat = \"xml\"\n",
                &[],
                "log.format",
                "use \"human\" or \"json\"",
            ),
            (
                "[log]\nlevel = \"info,[\"\n",
                &[],
                "log.level",
                "not a valid filter directive",
            ),
            (
                "[store]\nurl = \"mysql://db/gw\"\n",
                &[],
                "store.url",
                "not a supported database URL",
            ),
            (
                "[store]\nmax_connections = 0\n",
                &[],
                "store.max_connections",
                "use at least 1",
            ),
            (
                "[engine]\nlease_seconds = 5\n",
                &[],
                "engine.lease_seconds",
                "must be longer than engine.reconcile_interval_seconds",
            ),
            (
                "[engine]\nmax_parallel_targets = 0\n",
                &[],
                "engine.max_parallel_targets",
                "is 0",
            ),
            (
                "[[tokens]]\nname = \"ci\"\nrole = \"root\"\ntoken_env = \"OP\"\n",
                &[("OP", OPERATOR_TOKEN)],
                "tokens[\"ci\"].role",
                "use \"viewer\", \"operator\" or \"admin\"",
            ),
            (
                "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\n",
                &[],
                "tokens[\"ci\"].token_env",
                "set exactly one of token_env, token_file or token",
            ),
            (
                "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\ntoken_env = \"OP\"\n\
                 token = \"0123456789abcdef0123\"\n",
                &[("OP", OPERATOR_TOKEN)],
                "tokens[\"ci\"].token",
                "is given 2 ways (token, token_env); keep exactly one",
            ),
            (
                "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\ntoken_env = \"OP\"\n",
                &[],
                "tokens[\"ci\"].token_env",
                "environment variable OP is not set",
            ),
            (
                "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\n\
                 token_file = \"/nonexistent/ci.token\"\n",
                &[],
                "tokens[\"ci\"].token_file",
                "cannot read file /nonexistent/ci.token",
            ),
            (
                "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\ntoken_env = \"OP\"\n",
                &[("OP", "short")],
                "tokens[\"ci\"].token",
                "use at least 16 random characters",
            ),
            (
                "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\ntoken_env = \"OP\"\n\
                 [[tokens]]\nname = \"ci\"\nrole = \"admin\"\ntoken_env = \"VIEW\"\n",
                &[("OP", OPERATOR_TOKEN), ("VIEW", VIEWER_TOKEN)],
                "tokens[\"ci\"].name",
                "is used by another token",
            ),
            (
                "[[tokens]]\nname = \"a\"\nrole = \"viewer\"\ntoken_env = \"OP\"\n\
                 [[tokens]]\nname = \"b\"\nrole = \"admin\"\ntoken_env = \"OP\"\n",
                &[("OP", OPERATOR_TOKEN)],
                "tokens[\"b\"].token",
                "has the same value as token \"a\"",
            ),
            (
                "[[providers]]\nname = \"Citrix_Prod\"\nkind = \"citrix\"\n",
                &[],
                "providers[\"Citrix_Prod\"].name",
                "lowercase letters, digits and '-'",
            ),
            (
                "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n\
                 [[providers]]\nname = \"c\"\nkind = \"citrix\"\n",
                &[],
                "providers[\"c\"].name",
                "is used by another provider",
            ),
            (
                "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n[providers.settings]\n\
                 api_base_url = \"http://ddc.hospital.example/cvad/manage/\"\n",
                &[],
                "providers[\"c\"].settings.api_base_url",
                "plain http is allowed only for loopback addresses; use https",
            ),
            (
                "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n[providers.settings]\n\
                 token_url = \"ftp://127.0.0.1/\"\n",
                &[],
                "providers[\"c\"].settings.token_url",
                "use https",
            ),
            (
                "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n[providers.settings]\n\
                 client_secret_env = \"CTX_SECRET\"\n",
                &[],
                "providers[\"c\"].settings.client_secret_env",
                "environment variable CTX_SECRET is not set",
            ),
            (
                "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n[providers.settings]\n\
                 password_file = \"/nonexistent/password\"\n",
                &[],
                "providers[\"c\"].settings.password_file",
                "cannot read file /nonexistent/password",
            ),
            (
                "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n[providers.settings]\n\
                 client_secret = \"x\"\nclient_secret_env = \"CTX_SECRET\"\n",
                &[("CTX_SECRET", CLIENT_SECRET)],
                "providers[\"c\"].settings.client_secret_env",
                "client_secret is given more than one way",
            ),
            (
                "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n\
                 agent_token_env = \"A\"\nagent_token_file = \"/tmp/a\"\n",
                &[("A", "agent-secret-value")],
                "providers[\"c\"].agent_token",
                "keep exactly one",
            ),
        ];
        for (text, vars, key, fragment) in cases {
            assert_problem(text, vars, key, fragment);
        }
    }

    #[test]
    fn problems_are_all_reported() {
        let found = problems(
            "[server]\nbody_limit_bytes = 0\n[log]\nformat = \"xml\"\n",
            &[],
        );
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn loopback_http_is_allowed() {
        for url in [
            "http://127.0.0.1:8443/cvad/manage/",
            "http://127.5.0.1/",
            "http://[::1]:9000/",
            "http://localhost:9000/",
        ] {
            assert_eq!(check_url(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn secret_error_hides_value() {
        let err = load_text(
            "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\ntoken_env = \"OP\"\n",
            &[("OP", "tiny-secret")],
        )
        .unwrap_err();
        assert!(!err.to_string().contains("tiny-secret"), "{err}");
    }

    #[test]
    fn role_order() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Admin));
    }

    #[test]
    fn store_url_redaction() {
        assert_eq!(
            redact_url("postgres://gw:hunter2@db.example.org/gw"),
            "postgres://gw:redacted@db.example.org/gw"
        );
        assert_eq!(
            redact_url("sqlite://vdi-gateway.db?mode=rwc"),
            "sqlite://vdi-gateway.db?mode=rwc"
        );
    }

    #[cfg(unix)]
    fn restrict_permissions(path: &Path) {
        use std::os::unix::fs::PermissionsExt;

        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[cfg(not(unix))]
    fn restrict_permissions(_path: &Path) {}

    /// Loads an example file after pointing its secret files into a temporary directory.
    fn load_example(name: &str, vars: &[(&str, &str)]) -> GatewayConfig {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/examples")
            .join(name);
        let text = std::fs::read_to_string(&source).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        for file in [
            "operator.token",
            "viewer.token",
            "metrics.token",
            "agent.token",
            "citrix-password",
        ] {
            let path = write(&secrets, file, &format!("{file}-0123456789abcdef\n"));
            restrict_permissions(&path);
        }
        let text = text.replace("/etc/vdi-gateway/secrets", secrets.to_str().unwrap());
        let path = write(dir.path(), name, &text);
        load_with_env(Some(&path), &env(vars)).unwrap_or_else(|err| panic!("{name}: {err}"))
    }

    #[test]
    fn example_citrix_cloud_loads() {
        let config = load_example(
            "citrix-cloud.toml",
            &[
                ("CONTROL_PLANE_TOKEN", OPERATOR_TOKEN),
                ("DASHBOARD_TOKEN", VIEWER_TOKEN),
                ("CITRIX_CLIENT_SECRET", CLIENT_SECRET),
            ],
        );
        let provider = config.provider("citrix-cloud").unwrap();

        assert_eq!(provider.kind, "citrix");
        assert_eq!(provider.settings["mode"], "cloud");
        assert_eq!(provider.settings["client_secret"], CLIENT_SECRET);
        assert!(config.tokens.len() >= 2);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn example_citrix_onprem_loads() {
        let config = load_example("citrix-onprem.toml", &[]);
        let provider = config.provider("citrix-onprem").unwrap();

        assert_eq!(provider.kind, "citrix");
        assert_eq!(provider.settings["mode"], "on_premises");
        assert!(provider.settings.get("password").is_some());
        assert!(provider.settings.get("password_file").is_none());
        assert!(provider.agent_token.is_some());
        assert!(config.server.metrics_token.is_some());
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }
}
