//! Configuration of one Citrix provider: what the operator writes, and the validated settings
//! the provider runs with.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// Default API base of Citrix DaaS; regional hosts (`api-eu.cloud.com`, `api-ap-s.cloud.com`,
/// `api.citrixcloud.jp`) serve the same paths.
pub const DEFAULT_CLOUD_API_BASE_URL: &str = "https://api.cloud.com/cvad/manage/";

/// Customer id that the on-premises Orchestration API expects in `Citrix-CustomerId`.
pub const ON_PREMISES_CUSTOMER_ID: &str = "CitrixOnPremises";

/// Deployment of the Orchestration API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Citrix DaaS in Citrix Cloud, authenticated with an API client.
    Cloud,
    /// CVAD on premises (2311 or later, with Web Studio), authenticated with a domain account.
    OnPremises,
}

/// Provider settings as written in the gateway's configuration file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitrixConfig {
    /// Cloud or on-premises.
    pub mode: Mode,
    /// Base URL of the Orchestration API. Default: `https://api.cloud.com/cvad/manage/` in cloud
    /// mode; required on premises, where it is `https://{ddc}/cvad/manage/`.
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// Token endpoint. Default in cloud mode:
    /// `https://api.cloud.com/cctrustoauth2/{customer_id}/tokens/clients`, the documented client
    /// credentials endpoint; on premises: `{api_base_url}Tokens`.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Citrix Cloud customer id; required in cloud mode. Default on premises: `CitrixOnPremises`,
    /// the literal the on-premises API expects.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// API client id (cloud mode).
    #[serde(default)]
    pub client_id: Option<String>,
    /// API client secret (cloud mode); falls back to the `CITRIX_CLIENT_SECRET` variable.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Domain account, for example `HOSP\svc-gateway` (on premises).
    #[serde(default)]
    pub username: Option<String>,
    /// Password of the domain account (on premises); falls back to `CITRIX_PASSWORD`.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// Site id sent as `Citrix-InstanceId`. Default: discovered once through `GET me`, which is
    /// right for the usual one-site customer; set it when the customer has several sites.
    #[serde(default)]
    pub site_id: Option<String>,
    /// Requests in flight at most. Default 8: Citrix publishes no limit, and 8 keeps a site's
    /// Delivery Controllers well below their load during a wave.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: u32,
    /// Sustained requests per second at most. Default 20: no published rate limit exists for
    /// `/cvad/manage`, so the gateway stays modest and backs off on 429.
    #[serde(default = "defaults::requests_per_second")]
    pub requests_per_second: f64,
    /// Items per listing page, 1 to 1000. Default 250, the server's documented default page;
    /// the paging guide gives 1000 as the maximum.
    #[serde(default = "defaults::page_size")]
    pub page_size: u32,
    /// A `place` call with more machine tag writes than this sends them through `$batch`.
    /// Default 10: below that, single requests finish sooner than a batch job.
    #[serde(default = "defaults::batch_threshold")]
    pub batch_threshold: u32,
    /// Requests per `$batch` call. Default 100, which keeps one batch job short enough to poll.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: u32,
    /// Prefix of gateway-owned tags and object names. Default `vdigw`.
    #[serde(default = "defaults::tag_prefix")]
    pub tag_prefix: String,
    /// Timeout of one HTTP attempt, in seconds. Default 60: listing 1000 machines of a large
    /// site can take tens of seconds.
    #[serde(default = "defaults::request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// Maximum wait for an asynchronous Citrix job, in seconds. Default 600: publishing to a
    /// large site can keep a job running for minutes.
    #[serde(default = "defaults::job_timeout_seconds")]
    pub job_timeout_seconds: u64,
    /// Allow `http://` URLs on loopback addresses (simulators and tests). Default false.
    #[serde(default)]
    pub allow_plain_http_loopback: bool,
}

mod defaults {
    pub(super) fn concurrency() -> u32 {
        8
    }
    pub(super) fn requests_per_second() -> f64 {
        20.0
    }
    pub(super) fn page_size() -> u32 {
        250
    }
    pub(super) fn batch_threshold() -> u32 {
        10
    }
    pub(super) fn batch_size() -> u32 {
        100
    }
    pub(super) fn tag_prefix() -> String {
        "vdigw".into()
    }
    pub(super) fn request_timeout_seconds() -> u64 {
        60
    }
    pub(super) fn job_timeout_seconds() -> u64 {
        600
    }
}

/// Largest page the Orchestration API accepts, per its paging guide.
const MAX_PAGE_SIZE: u32 = 1000;

/// Credentials of one mode, checked for presence.
#[derive(Clone)]
pub enum Credentials {
    /// API client of a Citrix Cloud customer.
    Client {
        /// Client id.
        id: String,
        /// Client secret.
        secret: SecretString,
    },
    /// Domain account for basic authentication on premises.
    Basic {
        /// User name, `DOMAIN\user` or a UPN.
        username: String,
        /// Password.
        password: SecretString,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Client { id, .. } => f
                .debug_struct("Client")
                .field("id", id)
                .field("secret", &"[redacted]")
                .finish(),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
        }
    }
}

/// Validated settings the provider runs with.
#[derive(Debug, Clone)]
pub struct CitrixSettings {
    /// Cloud or on-premises.
    pub mode: Mode,
    /// API base URL, ending with `/`.
    pub api_base_url: Url,
    /// Token endpoint.
    pub token_url: Url,
    /// Value of `Citrix-CustomerId`.
    pub customer_id: String,
    /// Credentials of the mode.
    pub credentials: Credentials,
    /// Configured site id, if any.
    pub site_id: Option<String>,
    /// Requests in flight at most.
    pub concurrency: u32,
    /// Requests per second at most.
    pub requests_per_second: f64,
    /// Items per listing page.
    pub page_size: u32,
    /// Tag writes above which `$batch` is used.
    pub batch_threshold: u32,
    /// Requests per `$batch` call.
    pub batch_size: u32,
    /// Prefix of gateway-owned names.
    pub tag_prefix: String,
    /// Timeout of one attempt.
    pub request_timeout: Duration,
    /// Maximum wait for a job.
    pub job_timeout: Duration,
    /// Allow `http://` on loopback.
    pub allow_plain_http_loopback: bool,
}

/// An invalid or missing configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("citrix.{key} {problem}")]
pub struct ConfigError {
    /// Configuration key, without the `citrix.` prefix.
    pub key: &'static str,
    /// Problem and fix.
    pub problem: String,
}

fn config_error(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        problem: problem.into(),
    }
}

impl CitrixConfig {
    /// Validates the configuration, fills defaults and reads missing secrets from the
    /// environment (`CITRIX_CLIENT_SECRET`, `CITRIX_PASSWORD`).
    ///
    /// # Errors
    /// Returns a [`ConfigError`] naming the key and the fix.
    pub fn build(&self) -> Result<CitrixSettings, ConfigError> {
        self.build_with_env(|name| std::env::var(name).ok())
    }

    /// Same as [`CitrixConfig::build`], reading environment variables through `env`.
    ///
    /// # Errors
    /// Returns a [`ConfigError`] naming the key and the fix.
    pub fn build_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<CitrixSettings, ConfigError> {
        let api_base_url = self.api_base_url()?;
        let customer_id = self.customer_id()?;
        let credentials = self.credentials(&env)?;
        let token_url = self.token_url(&api_base_url, &customer_id)?;
        self.check_limits()?;
        if let Some(site_id) = &self.site_id {
            if site_id.trim().is_empty() {
                return Err(config_error(
                    "site_id",
                    "is empty: remove it to discover the site",
                ));
            }
        }
        let prefix_ok = !self.tag_prefix.is_empty()
            && self.tag_prefix.len() <= 16
            && self
                .tag_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !prefix_ok {
            return Err(config_error(
                "tag_prefix",
                format!(
                    "{:?} is invalid: use 1 to 16 letters, digits or '-'",
                    self.tag_prefix
                ),
            ));
        }
        Ok(CitrixSettings {
            mode: self.mode,
            api_base_url,
            token_url,
            customer_id,
            credentials,
            site_id: self.site_id.clone(),
            concurrency: self.concurrency,
            requests_per_second: self.requests_per_second,
            page_size: self.page_size,
            batch_threshold: self.batch_threshold,
            batch_size: self.batch_size,
            tag_prefix: self.tag_prefix.clone(),
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            job_timeout: Duration::from_secs(self.job_timeout_seconds),
            allow_plain_http_loopback: self.allow_plain_http_loopback,
        })
    }

    fn api_base_url(&self) -> Result<Url, ConfigError> {
        let raw =
            match (&self.api_base_url, self.mode) {
                (Some(raw), _) => raw.clone(),
                (None, Mode::Cloud) => DEFAULT_CLOUD_API_BASE_URL.to_owned(),
                (None, Mode::OnPremises) => return Err(config_error(
                    "api_base_url",
                    "is missing: on premises set it to https://<delivery-controller>/cvad/manage/",
                )),
            };
        // Url::join drops the last segment of a base without a trailing slash.
        let with_slash = if raw.ends_with('/') {
            raw
        } else {
            format!("{raw}/")
        };
        let url = parse_url("api_base_url", &with_slash)?;
        self.check_scheme("api_base_url", &url)?;
        Ok(url)
    }

    fn customer_id(&self) -> Result<String, ConfigError> {
        match (&self.customer_id, self.mode) {
            (Some(id), _) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
            (_, Mode::OnPremises) => Ok(ON_PREMISES_CUSTOMER_ID.to_owned()),
            (_, Mode::Cloud) => Err(config_error(
                "customer_id",
                "is missing: set it to the Citrix Cloud customer id",
            )),
        }
    }

    fn credentials(
        &self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials, ConfigError> {
        let from_env = |name: &str| env(name).filter(|v| !v.is_empty()).map(SecretString::from);
        match self.mode {
            Mode::Cloud => {
                let id = self
                    .client_id
                    .clone()
                    .filter(|id| !id.trim().is_empty())
                    .ok_or_else(|| {
                        config_error("client_id", "is missing: set it to the API client id")
                    })?;
                let secret = self
                    .client_secret
                    .clone()
                    .filter(|s| !s.expose_secret().is_empty())
                    .or_else(|| from_env("CITRIX_CLIENT_SECRET"))
                    .ok_or_else(|| {
                        config_error(
                            "client_secret",
                            "is missing: set it in the config file or CITRIX_CLIENT_SECRET",
                        )
                    })?;
                Ok(Credentials::Client { id, secret })
            }
            Mode::OnPremises => {
                let username = self
                    .username
                    .clone()
                    .filter(|u| !u.trim().is_empty())
                    .ok_or_else(|| {
                        config_error(
                            "username",
                            "is missing: set it to a domain account such as DOMAIN\\svc-gateway",
                        )
                    })?;
                let password = self
                    .password
                    .clone()
                    .filter(|s| !s.expose_secret().is_empty())
                    .or_else(|| from_env("CITRIX_PASSWORD"))
                    .ok_or_else(|| {
                        config_error(
                            "password",
                            "is missing: set it in the config file or CITRIX_PASSWORD",
                        )
                    })?;
                Ok(Credentials::Basic { username, password })
            }
        }
    }

    fn token_url(&self, api_base_url: &Url, customer_id: &str) -> Result<Url, ConfigError> {
        let url = match (&self.token_url, self.mode) {
            (Some(raw), _) => parse_url("token_url", raw)?,
            (None, Mode::Cloud) => parse_url(
                "token_url",
                &format!("https://api.cloud.com/cctrustoauth2/{customer_id}/tokens/clients"),
            )?,
            (None, Mode::OnPremises) => api_base_url
                .join("Tokens")
                .map_err(|e| config_error("token_url", format!("cannot be derived: {e}")))?,
        };
        self.check_scheme("token_url", &url)?;
        Ok(url)
    }

    fn check_limits(&self) -> Result<(), ConfigError> {
        if self.concurrency == 0 {
            return Err(config_error("concurrency", "is 0: set at least 1"));
        }
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            return Err(config_error(
                "requests_per_second",
                format!("is {}: set a positive number", self.requests_per_second),
            ));
        }
        if self.page_size == 0 || self.page_size > MAX_PAGE_SIZE {
            return Err(config_error(
                "page_size",
                format!("is {}: set 1 to {MAX_PAGE_SIZE}", self.page_size),
            ));
        }
        if self.batch_size == 0 {
            return Err(config_error("batch_size", "is 0: set at least 1"));
        }
        if self.request_timeout_seconds == 0 {
            return Err(config_error(
                "request_timeout_seconds",
                "is 0: set at least 1",
            ));
        }
        if self.job_timeout_seconds == 0 {
            return Err(config_error("job_timeout_seconds", "is 0: set at least 1"));
        }
        Ok(())
    }

    fn check_scheme(&self, key: &'static str, url: &Url) -> Result<(), ConfigError> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.allow_plain_http_loopback && is_loopback(url) => Ok(()),
            _ => Err(config_error(
                key,
                format!(
                    "{url} must use https (http is allowed only on loopback hosts with allow_plain_http_loopback)"
                ),
            )),
        }
    }
}

fn parse_url(key: &'static str, raw: &str) -> Result<Url, ConfigError> {
    Url::parse(raw).map_err(|e| config_error(key, format!("{raw:?} is not a valid URL: {e}")))
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl fmt::Debug for CitrixConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = |secret: &Option<SecretString>| secret.as_ref().map(|_| "[redacted]");
        f.debug_struct("CitrixConfig")
            .field("mode", &self.mode)
            .field("api_base_url", &self.api_base_url)
            .field("token_url", &self.token_url)
            .field("customer_id", &self.customer_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &mask(&self.client_secret))
            .field("username", &self.username)
            .field("password", &mask(&self.password))
            .field("site_id", &self.site_id)
            .field("concurrency", &self.concurrency)
            .field("requests_per_second", &self.requests_per_second)
            .field("page_size", &self.page_size)
            .field("batch_threshold", &self.batch_threshold)
            .field("batch_size", &self.batch_size)
            .field("tag_prefix", &self.tag_prefix)
            .field("request_timeout_seconds", &self.request_timeout_seconds)
            .field("job_timeout_seconds", &self.job_timeout_seconds)
            .field("allow_plain_http_loopback", &self.allow_plain_http_loopback)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud() -> CitrixConfig {
        serde_json::from_value(serde_json::json!({
            "mode": "cloud",
            "customer_id": "acme-health",
            "client_id": "gateway-client",
            "client_secret": "s3cr3t-value",
        }))
        .expect("valid cloud config")
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn cloud_defaults() {
        let settings = cloud().build_with_env(no_env).expect("builds");
        assert_eq!(settings.api_base_url.as_str(), DEFAULT_CLOUD_API_BASE_URL);
        assert_eq!(
            settings.token_url.as_str(),
            "https://api.cloud.com/cctrustoauth2/acme-health/tokens/clients"
        );
        assert_eq!(settings.page_size, 250);
        assert_eq!(settings.batch_size, 100);
        assert_eq!(settings.tag_prefix, "vdigw");
    }

    #[test]
    fn on_premises_defaults() {
        let config: CitrixConfig = serde_json::from_value(serde_json::json!({
            "mode": "on_premises",
            "api_base_url": "https://ddc01.hosp.local/cvad/manage",
            "username": "HOSP\\svc-gateway",
            "password": "pw",
        }))
        .expect("valid on-premises config");
        let settings = config.build_with_env(no_env).expect("builds");
        assert_eq!(settings.customer_id, ON_PREMISES_CUSTOMER_ID);
        assert_eq!(
            settings.api_base_url.as_str(),
            "https://ddc01.hosp.local/cvad/manage/"
        );
        assert_eq!(
            settings.token_url.as_str(),
            "https://ddc01.hosp.local/cvad/manage/Tokens"
        );
    }

    #[test]
    fn missing_secret_names_key_and_fix() {
        let mut config = cloud();
        config.client_secret = None;
        let error = config
            .build_with_env(no_env)
            .expect_err("secret is missing");
        assert_eq!(
            error.to_string(),
            "citrix.client_secret is missing: set it in the config file or CITRIX_CLIENT_SECRET"
        );
    }

    #[test]
    fn secret_from_environment() {
        let mut config = cloud();
        config.client_secret = None;
        let env = |name: &str| (name == "CITRIX_CLIENT_SECRET").then(|| "from-env".to_owned());
        let settings = config.build_with_env(env).expect("builds");
        match settings.credentials {
            Credentials::Client { secret, .. } => assert_eq!(secret.expose_secret(), "from-env"),
            Credentials::Basic { .. } => panic!("cloud mode built basic credentials"),
        }
    }

    #[test]
    fn rejects_unknown_key() {
        let result: Result<CitrixConfig, _> = serde_json::from_value(serde_json::json!({
            "mode": "cloud", "customer_id": "c", "client_id": "i", "client_secret": "s",
            "pagesize": 10,
        }));
        assert!(result.is_err());
    }

    #[test]
    fn rejects_oversized_page() {
        let mut config = cloud();
        config.page_size = 1001;
        let error = config.build_with_env(no_env).expect_err("page too large");
        assert_eq!(error.key, "page_size");
    }

    #[test]
    fn rejects_plain_http_elsewhere() {
        let mut config = cloud();
        config.api_base_url = Some("http://ddc01.hosp.local/cvad/manage/".into());
        config.allow_plain_http_loopback = true;
        let error = config
            .build_with_env(no_env)
            .expect_err("http on a remote host");
        assert_eq!(error.key, "api_base_url");
    }

    #[test]
    fn allows_plain_http_loopback() {
        let mut config = cloud();
        config.api_base_url = Some("http://127.0.0.1:8080/cvad/manage/".into());
        config.token_url = Some("http://127.0.0.1:8080/token".into());
        config.allow_plain_http_loopback = true;
        assert!(config.build_with_env(no_env).is_ok());
    }

    #[test]
    fn debug_masks_secrets() {
        let mut config = cloud();
        config.password = Some(SecretString::from("pw-value-123"));
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cr3t-value"), "{printed}");
        assert!(!printed.contains("pw-value-123"), "{printed}");
        let settings = cloud().build_with_env(no_env).expect("builds");
        let printed = format!("{settings:?}");
        assert!(!printed.contains("s3cr3t-value"), "{printed}");
    }
}
