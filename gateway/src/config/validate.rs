//! Validation of the raw configuration into [`GatewayConfig`], collecting every problem.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::raw::{RawConfig, RawEngine, RawLog, RawProvider, RawServer, RawStore, RawToken};
use super::secrets::{redact_url, resolve_settings};
use super::urls::check_setting_urls;
use super::{
    ConfigError, EngineConfig, GatewayConfig, LogConfig, LogFormat, Problem, ProviderConfig, Role,
    ServerConfig, StoreConfig, TokenConfig, DEFAULT_STORE_URL, MAX_NAME_LEN, MIN_TOKEN_LEN,
};

/// Collects problems and warnings while [`validate`] walks the raw configuration.
pub(super) struct Checker<'a> {
    pub(super) env: &'a HashMap<String, String>,
    pub(super) problems: Vec<Problem>,
    pub(super) warnings: Vec<String>,
}

impl Checker<'_> {
    pub(super) fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
}

pub(super) fn no_tokens_warning() -> String {
    "no [[tokens]] are configured, so every /v1 request is rejected with 401; add a token".into()
}

/// Turns the raw configuration into [`GatewayConfig`], resolving secrets from `env` and files.
pub(super) fn validate(
    raw: RawConfig,
    env: &HashMap<String, String>,
) -> Result<GatewayConfig, ConfigError> {
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
    let freezes = super::freeze::validate_freezes(raw.freezes, &mut |key, message| {
        checker.problem(key, message);
    });
    let mut plugin_warnings = Vec::new();
    let plugins = super::plugins::validate_plugins(
        raw.plugins,
        &mut |key, message| checker.problem(key, message),
        &mut |warning| plugin_warnings.push(warning),
    );
    checker.warnings.extend(plugin_warnings);

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
        freezes,
        plugins,
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
