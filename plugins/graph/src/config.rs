//! Connection settings for Microsoft Graph: the tenant, the app registration and its secret,
//! the token and Graph URLs, and limits. Providers embed [`GraphConfig`] under a `graph` key.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// Scope of a client-credentials token for Graph: every application permission an admin
/// consented to (Microsoft identity platform, client credentials flow).
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Graph settings as written in the gateway's configuration file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// Entra tenant id (a GUID) or a verified domain name. Required.
    pub tenant_id: String,
    /// Application (client) id of the gateway's app registration. Required.
    pub client_id: String,
    /// Client secret. Set exactly one of `client_secret`, `client_secret_env` and
    /// `client_secret_file`.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Name of an environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// File holding the client secret; surrounding whitespace is ignored.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Token endpoint. Default
    /// `https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Graph root URL, without the version segment. Default `https://graph.microsoft.com/`.
    #[serde(default = "defaults::graph_base_url")]
    pub graph_base_url: String,
    /// Requests in flight at most. Default 4.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: u32,
    /// Sustained requests per second at most. Default 5: Intune allows 100 app writes per
    /// 20 s per app (Graph throttling limits for Intune applications), which is 5 per second.
    #[serde(default = "defaults::requests_per_second")]
    pub requests_per_second: f64,
    /// Seconds before expiry at which a new token is fetched. Default 300.
    #[serde(default = "defaults::refresh_ahead_seconds")]
    pub refresh_ahead_seconds: u64,
    /// Seconds subtracted from `expires_in`, for clock differences with the identity
    /// platform. Default 60.
    #[serde(default = "defaults::clock_skew_seconds")]
    pub clock_skew_seconds: u64,
    /// Timeout of one HTTP attempt, in seconds. Default 60.
    #[serde(default = "defaults::request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// Pages one listing may follow at most before it fails. Default 10000.
    #[serde(default = "defaults::max_pages")]
    pub max_pages: usize,
    /// Allow `http://` URLs on loopback addresses (simulators and tests). Default false.
    #[serde(default)]
    pub allow_plain_http_loopback: bool,
}

mod defaults {
    pub(super) fn graph_base_url() -> String {
        "https://graph.microsoft.com/".into()
    }
    pub(super) fn concurrency() -> u32 {
        4
    }
    pub(super) fn requests_per_second() -> f64 {
        5.0
    }
    pub(super) fn refresh_ahead_seconds() -> u64 {
        300
    }
    pub(super) fn clock_skew_seconds() -> u64 {
        60
    }
    pub(super) fn request_timeout_seconds() -> u64 {
        60
    }
    pub(super) fn max_pages() -> usize {
        10_000
    }
}

/// Validated Graph settings.
#[derive(Clone)]
pub struct GraphSettings {
    /// Tenant id or domain.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret, read from the configured source.
    pub client_secret: SecretString,
    /// Token endpoint.
    pub token_url: Url,
    /// Graph root URL, ending with `/`.
    pub graph_base_url: Url,
    /// Requests in flight at most.
    pub concurrency: u32,
    /// Requests per second at most.
    pub requests_per_second: f64,
    /// How long before expiry a token is refreshed.
    pub refresh_ahead: Duration,
    /// Subtracted from the token lifetime.
    pub clock_skew: Duration,
    /// Timeout of one attempt.
    pub request_timeout: Duration,
    /// Pages per listing at most.
    pub max_pages: usize,
    /// Allow `http://` on loopback.
    pub allow_plain_http_loopback: bool,
}

impl fmt::Debug for GraphSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphSettings")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("token_url", &self.token_url.as_str())
            .field("graph_base_url", &self.graph_base_url.as_str())
            .field("concurrency", &self.concurrency)
            .field("requests_per_second", &self.requests_per_second)
            .field("refresh_ahead", &self.refresh_ahead)
            .field("clock_skew", &self.clock_skew)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for GraphConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphConfig")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("client_secret_env", &self.client_secret_env)
            .field("client_secret_file", &self.client_secret_file)
            .field("token_url", &self.token_url)
            .field("graph_base_url", &self.graph_base_url)
            .finish_non_exhaustive()
    }
}

/// An invalid or missing configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} {problem}")]
pub struct ConfigError {
    /// Configuration key, for example `graph.tenant_id`.
    pub key: String,
    /// Problem and fix.
    pub problem: String,
}

impl ConfigError {
    /// Creates an error for `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

fn graph_key(key: &str) -> String {
    format!("graph.{key}")
}

impl GraphConfig {
    /// Validates the configuration, reads the secret from its source and returns the
    /// settings.
    ///
    /// # Errors
    /// Returns a [`ConfigError`] naming the key and the fix.
    pub fn build(&self) -> Result<GraphSettings, ConfigError> {
        let tenant_id = self.tenant_id.trim().to_owned();
        if tenant_id.is_empty() || tenant_id.contains('/') {
            return Err(ConfigError::new(
                graph_key("tenant_id"),
                "must be the tenant GUID or a verified domain such as contoso.onmicrosoft.com",
            ));
        }
        let client_id = self.client_id.trim().to_owned();
        if client_id.is_empty() {
            return Err(ConfigError::new(
                graph_key("client_id"),
                "is empty: set the application (client) id of the app registration",
            ));
        }
        let client_secret = self.secret()?;
        let token_url = match &self.token_url {
            Some(text) => self.parse_url("token_url", text)?,
            None => self.parse_url(
                "token_url",
                &format!("https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"),
            )?,
        };
        let mut graph_base_url = self.parse_url("graph_base_url", &self.graph_base_url)?;
        if !graph_base_url.path().ends_with('/') {
            let path = format!("{}/", graph_base_url.path());
            graph_base_url.set_path(&path);
        }
        if self.concurrency == 0 {
            return Err(ConfigError::new(
                graph_key("concurrency"),
                "is 0: set 1 or more",
            ));
        }
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            return Err(ConfigError::new(
                graph_key("requests_per_second"),
                format!("is {}: set a positive number", self.requests_per_second),
            ));
        }
        if self.max_pages == 0 {
            return Err(ConfigError::new(
                graph_key("max_pages"),
                "is 0: set 1 or more",
            ));
        }
        Ok(GraphSettings {
            tenant_id,
            client_id,
            client_secret,
            token_url,
            graph_base_url,
            concurrency: self.concurrency,
            requests_per_second: self.requests_per_second,
            refresh_ahead: Duration::from_secs(self.refresh_ahead_seconds),
            clock_skew: Duration::from_secs(self.clock_skew_seconds),
            request_timeout: Duration::from_secs(self.request_timeout_seconds.max(1)),
            max_pages: self.max_pages,
            allow_plain_http_loopback: self.allow_plain_http_loopback,
        })
    }

    fn parse_url(&self, key: &str, text: &str) -> Result<Url, ConfigError> {
        let url = Url::parse(text.trim()).map_err(|error| {
            ConfigError::new(
                graph_key(key),
                format!("{text:?} is not a URL ({error}); give an absolute https:// URL"),
            )
        })?;
        broker_http::endpoint::check_scheme(&url, self.allow_plain_http_loopback, key)
            .map_err(|error| ConfigError::new(graph_key(key), error.message))?;
        Ok(url)
    }

    /// Reads the client secret from the one configured source.
    fn secret(&self) -> Result<SecretString, ConfigError> {
        let sources = [
            self.client_secret.is_some(),
            self.client_secret_env.is_some(),
            self.client_secret_file.is_some(),
        ];
        if sources.iter().filter(|set| **set).count() != 1 {
            return Err(ConfigError::new(
                graph_key("client_secret"),
                "must come from exactly one of client_secret, client_secret_env and \
                 client_secret_file",
            ));
        }
        let secret = if let Some(secret) = &self.client_secret {
            secret.expose_secret().to_owned()
        } else if let Some(name) = &self.client_secret_env {
            std::env::var(name).map_err(|_| {
                ConfigError::new(
                    graph_key("client_secret_env"),
                    format!("names {name:?}, which is not set: export it or use another source"),
                )
            })?
        } else {
            let path = self.client_secret_file.as_ref().expect("one source is set");
            std::fs::read_to_string(path).map_err(|error| {
                ConfigError::new(
                    graph_key("client_secret_file"),
                    format!(
                        "{} cannot be read ({error}); check the path",
                        path.display()
                    ),
                )
            })?
        };
        let secret = secret.trim().to_owned();
        if secret.is_empty() {
            return Err(ConfigError::new(
                graph_key("client_secret"),
                "is empty: set the app registration's client secret",
            ));
        }
        Ok(SecretString::from(secret))
    }
}

/// Settings of the Intune group and Win32 app delivery, under a provider's `delivery` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Prefix of gateway-owned group and app names: `{prefix}-{container}-{version}`.
    /// Default `vdigw`.
    #[serde(default = "delivery_defaults::name_prefix")]
    pub name_prefix: String,
    /// Call `syncDevice` on each changed device so it checks in with Intune now instead of
    /// at its next scheduled check-in (about every 8 hours). Default false: it needs the
    /// `DeviceManagementManagedDevices.PrivilegedOperations.All` permission.
    #[serde(default)]
    pub sync_device: bool,
    /// Minimum seconds between two `syncDevice` calls for one device. Default 600.
    #[serde(default = "delivery_defaults::sync_min_interval_seconds")]
    pub sync_min_interval_seconds: u64,
    /// Reads of the group membership after a change before reporting it as accepted rather
    /// than applied. Default 4.
    #[serde(default = "delivery_defaults::read_back_attempts")]
    pub read_back_attempts: u32,
    /// Milliseconds between two membership reads. Default 2000: Entra replication usually
    /// shows a change within seconds (an estimate).
    #[serde(default = "delivery_defaults::read_back_delay_ms")]
    pub read_back_delay_ms: u64,
    /// Reads of a content upload's state, and of the app's publishing state, before a publish
    /// gives up until the next reconcile. Default 60.
    #[serde(default = "delivery_defaults::upload_poll_attempts")]
    pub upload_poll_attempts: u32,
    /// Milliseconds between two of those reads. Default 2000.
    #[serde(default = "delivery_defaults::upload_poll_delay_ms")]
    pub upload_poll_delay_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            name_prefix: delivery_defaults::name_prefix(),
            sync_device: false,
            sync_min_interval_seconds: delivery_defaults::sync_min_interval_seconds(),
            read_back_attempts: delivery_defaults::read_back_attempts(),
            read_back_delay_ms: delivery_defaults::read_back_delay_ms(),
            upload_poll_attempts: delivery_defaults::upload_poll_attempts(),
            upload_poll_delay_ms: delivery_defaults::upload_poll_delay_ms(),
        }
    }
}

mod delivery_defaults {
    pub(super) fn name_prefix() -> String {
        "vdigw".into()
    }
    pub(super) fn sync_min_interval_seconds() -> u64 {
        600
    }
    pub(super) fn read_back_attempts() -> u32 {
        4
    }
    pub(super) fn read_back_delay_ms() -> u64 {
        2000
    }
    pub(super) fn upload_poll_attempts() -> u32 {
        60
    }
    pub(super) fn upload_poll_delay_ms() -> u64 {
        2000
    }
}

impl DeliveryConfig {
    /// Validates the settings; `section` is the provider's key, for example `windows365`.
    ///
    /// # Errors
    /// Returns a [`ConfigError`] naming the key and the fix.
    pub fn build(&self, section: &str) -> Result<crate::DeliverySettings, ConfigError> {
        let prefix = self.name_prefix.trim();
        let valid = !prefix.is_empty()
            && prefix.len() <= 16
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err(ConfigError::new(
                format!("{section}.delivery.name_prefix"),
                format!("{prefix:?} must be 1 to 16 letters, digits or '-'"),
            ));
        }
        if self.read_back_attempts == 0 {
            return Err(ConfigError::new(
                format!("{section}.delivery.read_back_attempts"),
                "is 0: set 1 or more so each change is read back at least once",
            ));
        }
        if self.upload_poll_attempts == 0 {
            return Err(ConfigError::new(
                format!("{section}.delivery.upload_poll_attempts"),
                "is 0: set 1 or more so each content upload is read back at least once",
            ));
        }
        Ok(crate::DeliverySettings {
            name_prefix: prefix.to_owned(),
            sync_device: self.sync_device,
            sync_min_interval: Duration::from_secs(self.sync_min_interval_seconds),
            read_back_attempts: self.read_back_attempts,
            read_back_delay: Duration::from_millis(self.read_back_delay_ms),
            upload_poll_attempts: self.upload_poll_attempts,
            upload_poll_delay: Duration::from_millis(self.upload_poll_delay_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const SECRET: &str = "config-test-s3cret~value";

    fn config(extra: serde_json::Value) -> GraphConfig {
        let mut raw = serde_json::json!({
            "tenant_id": "11111111-2222-3333-4444-555555555555",
            "client_id": "gateway-app",
            "client_secret": SECRET,
        });
        if let (Some(raw), Some(extra)) = (raw.as_object_mut(), extra.as_object()) {
            raw.extend(extra.clone());
        }
        serde_json::from_value(raw).expect("config parses")
    }

    #[test]
    fn defaults_point_at_microsoft() {
        let settings = config(serde_json::json!({})).build().expect("builds");
        assert_eq!(
            settings.token_url.as_str(),
            "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token"
        );
        assert_eq!(
            settings.graph_base_url.as_str(),
            "https://graph.microsoft.com/"
        );
    }

    #[test]
    fn debug_masks_secret() {
        let raw = config(serde_json::json!({}));
        let settings = raw.build().expect("builds");
        assert!(!format!("{raw:?}").contains(SECRET));
        assert!(!format!("{settings:?}").contains(SECRET));
    }

    #[test]
    fn two_secret_sources_are_rejected() {
        let error = config(serde_json::json!({"client_secret_env": "GRAPH_SECRET"}))
            .build()
            .expect_err("two sources");
        assert_eq!(error.key, "graph.client_secret");
    }

    #[test]
    fn secret_file_is_trimmed() {
        let mut file = tempfile_in_target();
        writeln!(file.1, "  file-secret-value  ").expect("write");
        let mut raw = config(serde_json::json!({}));
        raw.client_secret = None;
        raw.client_secret_file = Some(file.0.clone());
        let settings = raw.build().expect("builds");
        assert_eq!(settings.client_secret.expose_secret(), "file-secret-value");
        std::fs::remove_file(&file.0).ok();
    }

    #[test]
    fn plain_http_needs_loopback_flag() {
        let error = config(serde_json::json!({"graph_base_url": "http://127.0.0.1:9/"}))
            .build()
            .expect_err("plain http");
        assert_eq!(error.key, "graph.graph_base_url");
        let settings = config(serde_json::json!({
            "graph_base_url": "http://127.0.0.1:9",
            "allow_plain_http_loopback": true,
        }))
        .build()
        .expect("loopback allowed");
        assert_eq!(settings.graph_base_url.as_str(), "http://127.0.0.1:9/");
    }

    fn tempfile_in_target() -> (PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!(
            "vdi-graph-secret-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = std::fs::File::create(&path).expect("create temp file");
        (path, file)
    }
}
