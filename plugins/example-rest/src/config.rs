//! Settings of one Portal provider, as written in its `[[providers]]` entry.

use std::fmt;

use serde::Deserialize;
use url::Url;
use vdi_plugin_sdk::{ProviderError, ProviderResult, SecretString};

/// Provider settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// Base URL of the API, for example `https://portal.example.org/`; paths start with `api/`.
    pub base_url: String,
    /// API key sent in `X-Api-Key`; give it as `api_key_env` or `api_key_file` in the
    /// gateway's configuration.
    pub api_key: SecretString,
    /// Machines per listing page, 1 to 500. Default 100, the portal's own default page.
    #[serde(default = "defaults::page_size")]
    pub page_size: u32,
    /// Requests in flight at most. Default 4: the portal is a single application server.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: u32,
    /// Sustained requests per second at most. Default 10.
    #[serde(default = "defaults::requests_per_second")]
    pub requests_per_second: f64,
    /// Timeout of one HTTP attempt, in seconds. Default 30.
    #[serde(default = "defaults::request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// Allow `http://` URLs on loopback addresses (simulators and tests). Default false.
    #[serde(default)]
    pub allow_plain_http_loopback: bool,
    /// Makes the targets `fault-abort`, `fault-hang` and `fault-panic` abort the process, never
    /// answer, or panic, for the gateway's isolation tests. Default false; never enable it in
    /// production.
    #[serde(default)]
    pub fault_injection: bool,
}

mod defaults {
    pub(super) fn page_size() -> u32 {
        100
    }

    pub(super) fn concurrency() -> u32 {
        4
    }

    pub(super) fn requests_per_second() -> f64 {
        10.0
    }

    pub(super) fn request_timeout_seconds() -> u64 {
        30
    }
}

impl fmt::Debug for PortalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalConfig")
            .field("base_url", &self.base_url)
            .field("page_size", &self.page_size)
            .field("concurrency", &self.concurrency)
            .field("requests_per_second", &self.requests_per_second)
            .field("fault_injection", &self.fault_injection)
            .finish_non_exhaustive()
    }
}

impl PortalConfig {
    /// Checks the values and returns the base URL with a trailing slash.
    ///
    /// # Errors
    /// Returns `invalid` naming the key and the fix.
    pub fn base_url(&self, provider: &str) -> ProviderResult<Url> {
        let mut text = self.base_url.clone();
        if !text.ends_with('/') {
            text.push('/');
        }
        let url = Url::parse(&text).map_err(|error| {
            ProviderError::invalid(format!(
                "provider {provider}: base_url {:?} is not a URL ({error}); use for example \
                 https://portal.example.org/",
                self.base_url
            ))
        })?;
        if !(1..=500).contains(&self.page_size) {
            return Err(ProviderError::invalid(format!(
                "provider {provider}: page_size {} is outside 1 to 500",
                self.page_size
            )));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(value: serde_json::Value) -> PortalConfig {
        serde_json::from_value(value).expect("config parses")
    }

    #[test]
    fn defaults_apply() {
        let config = config(json!({"base_url": "https://portal.example.org", "api_key": "k"}));
        assert_eq!(config.page_size, 100);
        assert!(!config.fault_injection);
    }

    #[test]
    fn base_url_gets_trailing_slash() {
        let config = config(json!({"base_url": "https://portal.example.org/v1", "api_key": "k"}));
        let url = config.base_url("portal").expect("valid");
        assert_eq!(url.as_str(), "https://portal.example.org/v1/");
    }

    #[test]
    fn page_size_zero_is_invalid() {
        let config =
            config(json!({"base_url": "https://p.example.org", "api_key": "k", "page_size": 0}));
        let error = config.base_url("portal").expect_err("invalid");
        assert!(error.message.contains("page_size"), "{}", error.message);
    }

    #[test]
    fn debug_hides_api_key() {
        let config = config(json!({"base_url": "https://p.example.org", "api_key": "k-secret-1"}));
        assert!(!format!("{config:?}").contains("k-secret-1"));
    }
}
