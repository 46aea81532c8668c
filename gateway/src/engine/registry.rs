//! The configured providers, by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::RwLock;
use vdi_contracts::{Health, HealthStatus, Provider};

/// Where a provider's code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderSource {
    /// A crate built into the gateway.
    Builtin,
    /// A dynamically loaded plugin.
    Plugin,
}

/// One configured provider instance.
#[derive(Debug)]
pub struct ProviderEntry {
    /// Configured name, for example `citrix-prod`.
    pub name: String,
    /// Kind, for example `citrix`.
    pub kind: String,
    /// Environment, for example `prod`.
    pub environment: String,
    /// Built-in or plugin.
    pub source: ProviderSource,
    /// The implementation.
    pub provider: Arc<dyn Provider>,
    health: RwLock<Option<Health>>,
}

impl ProviderEntry {
    /// Wraps a provider.
    pub fn new(
        name: impl Into<String>,
        kind: impl Into<String>,
        environment: impl Into<String>,
        source: ProviderSource,
        provider: Arc<dyn Provider>,
    ) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            environment: environment.into(),
            source,
            provider,
            health: RwLock::new(None),
        }
    }

    /// Returns the last health check, if one ran.
    pub async fn health(&self) -> Option<Health> {
        self.health.read().await.clone()
    }

    /// Runs the provider's check and stores the result.
    pub async fn refresh_health(&self) -> Health {
        let health = match self.provider.check().await {
            Ok(health) => health,
            Err(error) => Health {
                status: HealthStatus::Unreachable,
                detail: error.to_string(),
                checked_at: chrono::Utc::now(),
            },
        };
        if health.status != HealthStatus::Ok {
            tracing::warn!(provider = %self.name, detail = %health.detail, "Provider is not healthy.");
        }
        *self.health.write().await = Some(health.clone());
        health
    }
}

/// Every configured provider, by name.
#[derive(Debug, Default)]
pub struct Registry {
    entries: BTreeMap<String, Arc<ProviderEntry>>,
}

impl Registry {
    /// Creates a registry from entries.
    ///
    /// # Errors
    /// Fails when two entries share a name.
    pub fn new(entries: Vec<ProviderEntry>) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for entry in entries {
            let name = entry.name.clone();
            if map.insert(name.clone(), Arc::new(entry)).is_some() {
                return Err(format!("provider name {name:?} is configured twice"));
            }
        }
        Ok(Self { entries: map })
    }

    /// Returns the provider named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<ProviderEntry>> {
        self.entries.get(name).cloned()
    }

    /// Returns every provider in name order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ProviderEntry>> {
        self.entries.values()
    }

    /// Returns the configured names, for error messages.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Runs every provider's health check concurrently.
    pub async fn refresh_health(&self) {
        futures::future::join_all(self.entries.values().map(|e| e.refresh_health())).await;
    }

    /// Asks every provider to release its broker sessions.
    pub async fn shutdown(&self) {
        futures::future::join_all(self.entries.values().map(|e| e.provider.shutdown())).await;
    }
}
