//! Building provider instances from their configuration, by kind.

use std::sync::Arc;

use vdi_contracts::{AgentChannel, Provider};

use crate::config::ProviderConfig;
use crate::engine::{ProviderEntry, ProviderSource, Registry};

/// Provider kinds built into the gateway.
pub const BUILTIN_KINDS: &[&str] = &["citrix", "horizon", "windows365", "physical"];

/// Failure to build a provider from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProviderBuildError {
    /// No built-in provider has this kind.
    #[error(
        "provider {name:?} has kind {kind:?}, which is neither built in nor served by a loaded \
         plugin; use one of: {known}"
    )]
    UnknownKind {
        /// Provider name.
        name: String,
        /// Configured kind.
        kind: String,
        /// Known kinds.
        known: String,
    },
    /// The provider's settings are invalid.
    #[error("provider {name:?} ({kind}) settings are invalid: {message}")]
    Settings {
        /// Provider name.
        name: String,
        /// Kind.
        kind: String,
        /// What is wrong, naming the key and the fix.
        message: String,
    },
}

/// Builds one provider; providers that deliver through agents get `agents`.
///
/// # Errors
/// Fails for an unknown kind or invalid settings.
pub fn build(
    config: &ProviderConfig,
    agents: &Arc<dyn AgentChannel>,
) -> Result<Arc<dyn Provider>, ProviderBuildError> {
    let settings_error = |message: String| ProviderBuildError::Settings {
        name: config.name.clone(),
        kind: config.kind.clone(),
        message,
    };
    match config.kind.as_str() {
        "citrix" => {
            let settings: vdi_citrix::CitrixConfig =
                serde_json::from_value(config.settings.clone())
                    .map_err(|e| settings_error(e.to_string()))?;
            let provider = vdi_citrix::CitrixProvider::new(&config.name, settings)
                .map_err(|e| settings_error(e.to_string()))?;
            Ok(Arc::new(provider))
        }
        "horizon" => {
            let settings: vdi_horizon::HorizonConfig =
                serde_json::from_value(config.settings.clone())
                    .map_err(|e| settings_error(e.to_string()))?;
            let provider =
                vdi_horizon::HorizonProvider::new(&config.name, settings, agents.clone())
                    .map_err(|e| settings_error(e.to_string()))?;
            Ok(Arc::new(provider))
        }
        "windows365" => {
            let settings: vdi_windows365::Windows365Config =
                serde_json::from_value(config.settings.clone())
                    .map_err(|e| settings_error(e.to_string()))?;
            let provider =
                vdi_windows365::Windows365Provider::new(&config.name, settings, agents.clone())
                    .map_err(|e| settings_error(e.to_string()))?;
            Ok(Arc::new(provider))
        }
        "physical" => {
            let settings: vdi_physical::PhysicalConfig =
                serde_json::from_value(config.settings.clone())
                    .map_err(|e| settings_error(e.to_string()))?;
            let provider =
                vdi_physical::PhysicalProvider::new(&config.name, settings, agents.clone())
                    .map_err(|e| settings_error(e.to_string()))?;
            Ok(Arc::new(provider))
        }
        other => Err(ProviderBuildError::UnknownKind {
            name: config.name.clone(),
            kind: other.to_owned(),
            known: BUILTIN_KINDS.join(", "),
        }),
    }
}

/// Builds the registry of every enabled provider.
///
/// # Errors
/// Fails on the first provider that cannot be built, naming it.
pub fn build_registry(
    configs: &[ProviderConfig],
    agents: &Arc<dyn AgentChannel>,
) -> Result<Registry, ProviderBuildError> {
    let mut entries = Vec::new();
    for config in configs.iter().filter(|c| c.enabled) {
        let provider = build(config, agents)?;
        entries.push(ProviderEntry::new(
            &config.name,
            &config.kind,
            &config.environment,
            ProviderSource::Builtin,
            provider,
        ));
    }
    Registry::new(entries).map_err(|message| ProviderBuildError::Settings {
        name: String::new(),
        kind: String::new(),
        message,
    })
}

/// Builds the registry like [`build_registry`], also building providers of the kinds that
/// loaded plugins serve ([`ProviderSource::Plugin`]). A provider whose kind only a refused
/// plugin could serve becomes an unavailable stand-in that reports the refusal, so the gateway
/// starts with its other providers.
///
/// # Errors
/// Fails on the first provider that cannot be built, naming it.
pub async fn build_registry_with_plugins(
    configs: &[ProviderConfig],
    agents: &Arc<dyn AgentChannel>,
    plugins: &crate::plugins::PluginSet,
) -> Result<Registry, ProviderBuildError> {
    let mut entries = Vec::new();
    for config in configs.iter().filter(|c| c.enabled) {
        let (provider, source) = if BUILTIN_KINDS.contains(&config.kind.as_str()) {
            (build(config, agents)?, ProviderSource::Builtin)
        } else if let Some(result) = plugins.build(config).await {
            let provider = result.map_err(|message| ProviderBuildError::Settings {
                name: config.name.clone(),
                kind: config.kind.clone(),
                message,
            })?;
            (provider, ProviderSource::Plugin)
        } else if let Some(reason) = plugins.unavailable_reason(&config.kind) {
            tracing::error!(provider = %config.name, reason = %reason, "Provider is unavailable.");
            let provider = crate::plugins::UnavailableProvider::new(&config.kind, reason);
            (
                Arc::new(provider) as Arc<dyn Provider>,
                ProviderSource::Plugin,
            )
        } else {
            let mut known: Vec<String> = BUILTIN_KINDS.iter().map(|k| (*k).to_owned()).collect();
            known.extend(plugins.kinds());
            return Err(ProviderBuildError::UnknownKind {
                name: config.name.clone(),
                kind: config.kind.clone(),
                known: known.join(", "),
            });
        };
        entries.push(ProviderEntry::new(
            &config.name,
            &config.kind,
            &config.environment,
            source,
            provider,
        ));
    }
    Registry::new(entries).map_err(|message| ProviderBuildError::Settings {
        name: String::new(),
        kind: String::new(),
        message,
    })
}
