//! What a plugin's factory receives for each configured provider: its name, kind and settings.

use std::fmt;

use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use vdi_contracts::{ProviderError, ProviderResult};

/// One `[[providers]]` entry served by the plugin, as the gateway passes it to `init`.
#[derive(Debug)]
pub struct PluginContext {
    /// Configured provider name, for example `avd-prod`; use it in logs and error messages.
    pub name: String,
    /// Provider kind, one of the kinds the plugin exports.
    pub kind: String,
    /// The entry's `settings` table.
    pub settings: Settings,
}

/// A provider's `settings` table, secrets included.
///
/// The gateway has already replaced every `X_env` and `X_file` key by `X` holding the secret,
/// so declare secret fields as [`SecretString`] in the struct given to [`Settings::parse`], or
/// read them with [`Settings::secret`]. `Debug` shows only the keys.
pub struct Settings {
    values: Map<String, Value>,
}

impl Settings {
    /// Wraps a settings object; a value that is not an object gives empty settings.
    pub fn new(value: Value) -> Self {
        let values = match value {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Self { values }
    }

    /// Deserializes the settings into the plugin's configuration struct.
    ///
    /// # Errors
    /// Returns `invalid` naming the provider and serde's description of the bad key.
    pub fn parse<T: DeserializeOwned>(&self, provider: &str) -> ProviderResult<T> {
        serde_json::from_value(Value::Object(self.values.clone())).map_err(|error| {
            ProviderError::invalid(format!(
                "settings of provider {provider:?} are invalid: {error}; fix the key in its \
                 [[providers]] entry"
            ))
        })
    }

    /// Returns a string setting as a secret, for example an API key.
    pub fn secret(&self, key: &str) -> Option<SecretString> {
        self.values
            .get(key)
            .and_then(Value::as_str)
            .map(|text| SecretString::from(text.to_owned()))
    }

    /// Returns the keys present.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("keys", &self.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Config {
        base_url: String,
        api_key: SecretString,
    }

    fn settings() -> Settings {
        Settings::new(json!({"base_url": "http://127.0.0.1:1/", "api_key": "k-12345"}))
    }

    #[test]
    fn debug_hides_values() {
        let text = format!("{:?}", settings());
        assert!(!text.contains("k-12345"), "{text}");
        assert!(text.contains("api_key"), "{text}");
    }

    #[test]
    fn parse_wraps_secret() {
        let config: Config = settings().parse("portal").expect("parses");
        assert_eq!(config.base_url, "http://127.0.0.1:1/");
        assert_eq!(config.api_key.expose_secret(), "k-12345");
        assert!(!format!("{config:?}").contains("k-12345"));
    }

    #[test]
    fn parse_error_names_provider() {
        let error = Settings::new(json!({"base_url": 3}))
            .parse::<Config>("portal")
            .expect_err("wrong type");
        assert!(error.message.contains("\"portal\""), "{}", error.message);
    }

    #[test]
    fn secret_reads_string() {
        let secret = settings().secret("api_key").expect("present");
        assert_eq!(secret.expose_secret(), "k-12345");
    }
}
