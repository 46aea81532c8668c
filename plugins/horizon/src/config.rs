//! Configuration of one Horizon provider: what the operator writes, and the validated settings
//! the provider runs with.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// Largest `size` the Horizon Server REST API accepts on paged listings (Horizon Server REST
/// pagination and filter guide).
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Maximum length of the name prefix. Horizon accepts application pool names of at most 64
/// characters (Horizon Server REST API 2111,
/// `ApplicationPoolInfo.name`); the prefix must leave room for the rest of the derived name.
const MAX_NAME_PREFIX: usize = 16;

/// Provider settings as written in the gateway's configuration file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HorizonConfig {
    /// Base URL of the Horizon Server REST API, for example
    /// `https://horizon.hosp.example/rest/`. Required.
    pub api_base_url: String,
    /// Account name without the domain, for example `svc-gateway`; the API rejects UPN
    /// logins such as `user@example.com`. Required.
    pub username: String,
    /// Password of the account. Required.
    pub password: SecretString,
    /// NetBIOS domain of the account, for example `HOSP`. Required.
    pub domain: String,
    /// Requests in flight at most. Default 4: Connection Servers serve the console and the
    /// clients too, and a rollout does not need more.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: u32,
    /// Sustained requests per second at most. Default 10: Horizon publishes no rate limit, so
    /// the gateway stays modest and slows down on 429.
    #[serde(default = "defaults::requests_per_second")]
    pub requests_per_second: f64,
    /// Items per listing page, 1 to 1000. Default 500, half the server's maximum, so one page
    /// of a large pool stays quick to build on a busy Connection Server.
    #[serde(default = "defaults::page_size")]
    pub page_size: u32,
    /// Inventory queries in flight at most. Default 4: the Connection Server rejects a client
    /// that keeps too many queries open, and 4 matches the default `concurrency`.
    #[serde(default = "defaults::max_concurrent_queries")]
    pub max_concurrent_queries: u32,
    /// Send a notice to users in sessions on machines that get a new version. Default false.
    #[serde(default)]
    pub send_messages: bool,
    /// First part of the notice. Default "Application update".
    #[serde(default = "defaults::message_title")]
    pub message_title: String,
    /// Text of the notice; `{app}` and `{version}` are replaced. Default: a sentence saying
    /// the new version starts at the next launch.
    #[serde(default = "defaults::message_text")]
    pub message_text: String,
    /// Prefix of gateway-owned application pool names. Default `vdigw`.
    #[serde(default = "defaults::name_prefix")]
    pub name_prefix: String,
    /// Timeout of one HTTP attempt, in seconds. Default 60: a page of 1000 machines on a busy
    /// Connection Server can take tens of seconds.
    #[serde(default = "defaults::request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// Allow `http://` URLs on loopback addresses (simulators and tests). Default false.
    #[serde(default)]
    pub allow_plain_http_loopback: bool,
}

mod defaults {
    pub(super) fn concurrency() -> u32 {
        4
    }
    pub(super) fn requests_per_second() -> f64 {
        10.0
    }
    pub(super) fn page_size() -> u32 {
        500
    }
    pub(super) fn max_concurrent_queries() -> u32 {
        4
    }
    pub(super) fn message_title() -> String {
        "Application update".into()
    }
    pub(super) fn message_text() -> String {
        "{app} {version} is ready. It starts the next time you open {app}; your open work is not interrupted.".into()
    }
    pub(super) fn name_prefix() -> String {
        "vdigw".into()
    }
    pub(super) fn request_timeout_seconds() -> u64 {
        60
    }
}

/// Validated settings the provider runs with.
#[derive(Clone)]
pub struct HorizonSettings {
    /// API base URL, ending with `/`.
    pub api_base_url: Url,
    /// Account name.
    pub username: String,
    /// Account password.
    pub password: SecretString,
    /// Account domain.
    pub domain: String,
    /// Requests in flight at most.
    pub concurrency: u32,
    /// Requests per second at most.
    pub requests_per_second: f64,
    /// Items per listing page.
    pub page_size: u32,
    /// Inventory queries in flight at most.
    pub max_concurrent_queries: u32,
    /// Whether notices are sent to users in sessions.
    pub send_messages: bool,
    /// First part of the notice.
    pub message_title: String,
    /// Text of the notice, with `{app}` and `{version}` placeholders.
    pub message_text: String,
    /// Prefix of gateway-owned names.
    pub name_prefix: String,
    /// Timeout of one attempt.
    pub request_timeout: Duration,
    /// Allow `http://` on loopback.
    pub allow_plain_http_loopback: bool,
}

impl fmt::Debug for HorizonSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HorizonSettings")
            .field("api_base_url", &self.api_base_url.as_str())
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("domain", &self.domain)
            .field("concurrency", &self.concurrency)
            .field("requests_per_second", &self.requests_per_second)
            .field("page_size", &self.page_size)
            .field("max_concurrent_queries", &self.max_concurrent_queries)
            .field("send_messages", &self.send_messages)
            .field("name_prefix", &self.name_prefix)
            .field("request_timeout", &self.request_timeout)
            .field("allow_plain_http_loopback", &self.allow_plain_http_loopback)
            .finish_non_exhaustive()
    }
}

/// An invalid or missing configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("horizon.{key} {problem}")]
pub struct ConfigError {
    /// Configuration key, without the `horizon.` prefix.
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

impl HorizonConfig {
    /// Validates the configuration and returns the settings the provider runs with.
    ///
    /// # Errors
    /// Returns a [`ConfigError`] naming the key and the fix.
    pub fn build(&self) -> Result<HorizonSettings, ConfigError> {
        let api_base_url = self.api_base_url()?;
        let username = required("username", &self.username, "the service account name")?;
        if username.contains('@') {
            return Err(config_error(
                "username",
                format!(
                    "{username:?} is a UPN, which the Horizon REST login rejects; set the account name and put the domain in horizon.domain"
                ),
            ));
        }
        if self.password.expose_secret().is_empty() {
            return Err(config_error(
                "password",
                "is empty: set the service account password",
            ));
        }
        let domain = required("domain", &self.domain, "the NetBIOS domain, such as HOSP")?;
        self.check_limits()?;
        self.check_texts()?;
        Ok(HorizonSettings {
            api_base_url,
            username,
            password: self.password.clone(),
            domain,
            concurrency: self.concurrency,
            requests_per_second: self.requests_per_second,
            page_size: self.page_size,
            max_concurrent_queries: self.max_concurrent_queries,
            send_messages: self.send_messages,
            message_title: self.message_title.clone(),
            message_text: self.message_text.clone(),
            name_prefix: self.name_prefix.clone(),
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            allow_plain_http_loopback: self.allow_plain_http_loopback,
        })
    }

    fn api_base_url(&self) -> Result<Url, ConfigError> {
        let raw = self.api_base_url.trim();
        if raw.is_empty() {
            return Err(config_error(
                "api_base_url",
                "is empty: set it to https://<connection-server>/rest/",
            ));
        }
        // Url::join drops the last segment of a base without a trailing slash.
        let with_slash = if raw.ends_with('/') {
            raw.to_owned()
        } else {
            format!("{raw}/")
        };
        let url = Url::parse(&with_slash).map_err(|e| {
            config_error("api_base_url", format!("{raw:?} is not a valid URL: {e}"))
        })?;
        match url.scheme() {
            "https" => Ok(url),
            "http" if self.allow_plain_http_loopback && is_loopback(&url) => Ok(url),
            "http" => Err(config_error(
                "api_base_url",
                format!(
                    "{raw:?} uses plain http; use https://, or for a simulator on this machine use a loopback host and set horizon.allow_plain_http_loopback"
                ),
            )),
            other => Err(config_error(
                "api_base_url",
                format!("{raw:?} has scheme {other:?}; use https://"),
            )),
        }
    }

    fn check_limits(&self) -> Result<(), ConfigError> {
        if self.concurrency == 0 {
            return Err(config_error("concurrency", "is 0: set 1 or more"));
        }
        if !self.requests_per_second.is_finite() || self.requests_per_second <= 0.0 {
            return Err(config_error(
                "requests_per_second",
                format!("is {}: set a positive number", self.requests_per_second),
            ));
        }
        if self.page_size == 0 || self.page_size > MAX_PAGE_SIZE {
            return Err(config_error(
                "page_size",
                format!(
                    "is {}: set 1 to {MAX_PAGE_SIZE}, the largest page Horizon serves",
                    self.page_size
                ),
            ));
        }
        if self.max_concurrent_queries == 0 {
            return Err(config_error(
                "max_concurrent_queries",
                "is 0: set 1 or more",
            ));
        }
        if self.request_timeout_seconds == 0 {
            return Err(config_error(
                "request_timeout_seconds",
                "is 0: set the seconds one HTTP attempt may take, for example 60",
            ));
        }
        Ok(())
    }

    fn check_texts(&self) -> Result<(), ConfigError> {
        let prefix_ok = !self.name_prefix.is_empty()
            && self.name_prefix.len() <= MAX_NAME_PREFIX
            && self
                .name_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !prefix_ok {
            return Err(config_error(
                "name_prefix",
                format!(
                    "{:?} is invalid: use 1 to {MAX_NAME_PREFIX} letters, digits, '-' or '_', the characters Horizon allows in application pool names",
                    self.name_prefix
                ),
            ));
        }
        if self.send_messages && self.message_text.trim().is_empty() {
            return Err(config_error(
                "message_text",
                "is empty while send_messages is on: write the notice or turn send_messages off",
            ));
        }
        Ok(())
    }
}

fn required(key: &'static str, value: &str, what: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(config_error(key, format!("is empty: set it to {what}")));
    }
    Ok(trimmed.to_owned())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl fmt::Debug for HorizonConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HorizonConfig")
            .field("api_base_url", &self.api_base_url)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("domain", &self.domain)
            .field("concurrency", &self.concurrency)
            .field("requests_per_second", &self.requests_per_second)
            .field("page_size", &self.page_size)
            .field("max_concurrent_queries", &self.max_concurrent_queries)
            .field("send_messages", &self.send_messages)
            .field("message_title", &self.message_title)
            .field("message_text", &self.message_text)
            .field("name_prefix", &self.name_prefix)
            .field("request_timeout_seconds", &self.request_timeout_seconds)
            .field("allow_plain_http_loopback", &self.allow_plain_http_loopback)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn minimal() -> serde_json::Value {
        json!({
            "api_base_url": "https://horizon.hosp.example/rest",
            "username": "svc-gateway",
            "password": "s3cr3t-horizon",
            "domain": "HOSP",
        })
    }

    fn parse(value: serde_json::Value) -> HorizonConfig {
        serde_json::from_value(value).expect("config parses")
    }

    fn with(key: &str, value: serde_json::Value) -> HorizonConfig {
        let mut raw = minimal();
        raw[key] = value;
        parse(raw)
    }

    fn error_key(config: &HorizonConfig) -> &'static str {
        config.build().expect_err("config is invalid").key
    }

    #[test]
    fn defaults_are_documented_values() {
        let settings = parse(minimal()).build().expect("builds");
        assert_eq!(
            settings.api_base_url.as_str(),
            "https://horizon.hosp.example/rest/"
        );
        assert_eq!(settings.concurrency, 4);
        assert_eq!(settings.requests_per_second, 10.0);
        assert_eq!(settings.page_size, 500);
        assert_eq!(settings.max_concurrent_queries, 4);
        assert!(!settings.send_messages);
        assert_eq!(settings.name_prefix, "vdigw");
        assert_eq!(settings.request_timeout, Duration::from_secs(60));
    }

    #[test]
    fn unknown_key_is_rejected() {
        let mut raw = minimal();
        raw["page_limit"] = json!(10);
        let error = serde_json::from_value::<HorizonConfig>(raw).expect_err("unknown key");
        assert!(error.to_string().contains("page_limit"), "{error}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            ("page_size", json!(0), "page_size"),
            ("page_size", json!(1001), "page_size"),
            ("concurrency", json!(0), "concurrency"),
            ("requests_per_second", json!(0.0), "requests_per_second"),
            ("max_concurrent_queries", json!(0), "max_concurrent_queries"),
            (
                "request_timeout_seconds",
                json!(0),
                "request_timeout_seconds",
            ),
            ("name_prefix", json!("vd gw"), "name_prefix"),
            ("name_prefix", json!(""), "name_prefix"),
            ("username", json!("svc@hosp.example"), "username"),
            ("username", json!(" "), "username"),
            ("domain", json!(""), "domain"),
            ("password", json!(""), "password"),
            ("api_base_url", json!("ftp://h/rest/"), "api_base_url"),
            ("api_base_url", json!("not a url"), "api_base_url"),
        ];
        for (key, value, expected) in cases {
            assert_eq!(
                error_key(&with(key, value.clone())),
                expected,
                "{key}={value}"
            );
        }
    }

    #[test]
    fn page_size_at_maximum_is_accepted() {
        let settings = with("page_size", json!(1000)).build().expect("builds");
        assert_eq!(settings.page_size, 1000);
    }

    #[test]
    fn plain_http_needs_loopback_and_flag() {
        let mut raw = minimal();
        raw["api_base_url"] = json!("http://127.0.0.1:8080/rest/");
        assert_eq!(error_key(&parse(raw.clone())), "api_base_url");
        raw["allow_plain_http_loopback"] = json!(true);
        assert!(parse(raw.clone()).build().is_ok());
        raw["api_base_url"] = json!("http://horizon.hosp.example/rest/");
        assert_eq!(error_key(&parse(raw)), "api_base_url");
    }

    #[test]
    fn empty_message_with_messages_on_is_rejected() {
        let mut raw = minimal();
        raw["send_messages"] = json!(true);
        raw["message_text"] = json!("  ");
        assert_eq!(error_key(&parse(raw)), "message_text");
    }

    #[test]
    fn error_message_names_key_and_fix() {
        let error = with("page_size", json!(5000))
            .build()
            .expect_err("too large");
        let text = error.to_string();
        assert!(text.starts_with("horizon.page_size"), "{text}");
        assert!(text.contains("1 to 1000"), "{text}");
    }

    #[test]
    fn debug_masks_password() {
        let config = parse(minimal());
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cr3t-horizon"), "{printed}");
        let settings = format!("{:?}", config.build().expect("builds"));
        assert!(!settings.contains("s3cr3t-horizon"), "{settings}");
    }
}
