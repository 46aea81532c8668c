//! Configuration of one Windows 365 provider.

use std::time::Duration;

use serde::Deserialize;
use vdi_graph::{ConfigError, DeliveryConfig, DeliverySettings, GraphConfig, GraphSettings};

/// Provider settings as written in the gateway's configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Windows365Config {
    /// Graph connection. Required.
    pub graph: GraphConfig,
    /// Entra group ids offered as targets (`group:{id}`), in addition to one target per
    /// provisioning policy. Default none.
    #[serde(default)]
    pub group_targets: Vec<String>,
    /// Group ids the gateway must never write to, in addition to the groups every
    /// provisioning policy is assigned to (read at start). Default none.
    #[serde(default)]
    pub protected_group_ids: Vec<String>,
    /// Intune group and Win32 app delivery for Enterprise Cloud PCs.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Machines per `list_machines` page, 1 to 1000. Default 250, the Citrix provider's page,
    /// which keeps one page of machines small next to a plugin's response limits.
    #[serde(default = "defaults::page_size")]
    pub page_size: u32,
    /// Seconds a Graph read of the targets, Cloud PCs and group members is reused, 0 to 600;
    /// the provider's own Intune writes end the reuse at once. Default 15: one reconcile pass
    /// (listing pages, observe, placement batches) and the next one, 5 s later at the engine's
    /// default interval, read Graph once, while a Cloud PC's status changes over minutes. 0
    /// reads Graph on every call.
    #[serde(default = "defaults::inventory_cache_seconds")]
    pub inventory_cache_seconds: u64,
    /// Hours after which a Business Cloud PC's latest agent check-in is too old to trust its
    /// sessions, 1 to 8760. Default 24: Cloud PCs run around the clock and agents check in at
    /// least every few minutes, so a day without one means the agent has stopped.
    #[serde(default = "defaults::agent_stale_after_hours")]
    pub agent_stale_after_hours: u64,
    /// Deliver to an Enterprise Cloud PC through its agent once the agent has checked in,
    /// instead of through Intune. An agent takes a version on its next poll, while Intune
    /// installs at the device's next check-in, which can take hours. The Cloud PC leaves the
    /// container's Intune groups when its agent takes over. Default false.
    #[serde(default)]
    pub agent_first: bool,
}

/// Largest `page_size`.
const MAX_PAGE_SIZE: u32 = 1000;

/// Largest `inventory_cache_seconds`: ten minutes, beyond which a listing misses status
/// changes for too long.
const MAX_INVENTORY_CACHE_SECONDS: u64 = 600;

/// Largest `agent_stale_after_hours`: one year.
const MAX_AGENT_STALE_AFTER_HOURS: u64 = 8760;

mod defaults {
    pub(super) fn page_size() -> u32 {
        250
    }
    pub(super) fn inventory_cache_seconds() -> u64 {
        15
    }
    pub(super) fn agent_stale_after_hours() -> u64 {
        24
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Windows365Settings {
    /// Graph connection.
    pub graph: GraphSettings,
    /// Configured group targets.
    pub group_targets: Vec<String>,
    /// Configured protected groups.
    pub protected_group_ids: Vec<String>,
    /// Delivery settings.
    pub delivery: DeliverySettings,
    /// Machines per listing page.
    pub page_size: usize,
    /// How long a Graph inventory read is reused.
    pub inventory_ttl: Duration,
    /// Check-in age after which an agent's sessions are unknown.
    pub agent_stale_after: Duration,
    /// Whether Enterprise Cloud PCs with a registered agent use it instead of Intune.
    pub agent_first: bool,
}

impl Windows365Config {
    /// Validates the configuration.
    ///
    /// # Errors
    /// Returns a [`ConfigError`] naming the key and the fix.
    pub fn build(&self) -> Result<Windows365Settings, ConfigError> {
        let graph = self.graph.build().map_err(|e| ConfigError {
            key: format!("windows365.{}", e.key),
            problem: e.problem,
        })?;
        let ids = [
            ("windows365.group_targets", &self.group_targets),
            ("windows365.protected_group_ids", &self.protected_group_ids),
        ];
        for (key, list) in ids {
            if let Some(bad) = list.iter().find(|id| !is_object_id(id)) {
                return Err(ConfigError::new(
                    key,
                    format!("contains {bad:?}; give Entra group object ids (GUIDs)"),
                ));
            }
        }
        if let Some(both) = self
            .group_targets
            .iter()
            .find(|id| self.protected_group_ids.contains(id))
        {
            return Err(ConfigError::new(
                "windows365.group_targets",
                format!("contains {both}, which is also protected; remove it from one list"),
            ));
        }
        self.check_limits()?;
        Ok(Windows365Settings {
            graph,
            group_targets: self.group_targets.clone(),
            protected_group_ids: self.protected_group_ids.clone(),
            delivery: self.delivery.build("windows365")?,
            page_size: self.page_size as usize,
            inventory_ttl: Duration::from_secs(self.inventory_cache_seconds),
            agent_stale_after: Duration::from_secs(self.agent_stale_after_hours * 3600),
            agent_first: self.agent_first,
        })
    }

    fn check_limits(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(ConfigError::new(
                "windows365.page_size",
                format!("is {}: set 1 to {MAX_PAGE_SIZE} machines", self.page_size),
            ));
        }
        if self.inventory_cache_seconds > MAX_INVENTORY_CACHE_SECONDS {
            return Err(ConfigError::new(
                "windows365.inventory_cache_seconds",
                format!(
                    "is {}: set 0 (read Graph on every call) to {MAX_INVENTORY_CACHE_SECONDS}",
                    self.inventory_cache_seconds
                ),
            ));
        }
        if !(1..=MAX_AGENT_STALE_AFTER_HOURS).contains(&self.agent_stale_after_hours) {
            return Err(ConfigError::new(
                "windows365.agent_stale_after_hours",
                format!(
                    "is {}: set 1 to {MAX_AGENT_STALE_AFTER_HOURS} hours after which an agent's \
                     sessions are no longer trusted",
                    self.agent_stale_after_hours
                ),
            ));
        }
        Ok(())
    }
}

/// Accepts object ids: letters, digits and `-`, as Entra GUIDs are.
fn is_object_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(extra: serde_json::Value) -> Windows365Config {
        let mut raw = json!({"graph": {
            "tenant_id": "11111111-2222-3333-4444-555555555555",
            "client_id": "gateway-app",
            "client_secret": "w365-config-secret",
        }});
        if let (Some(raw), Some(extra)) = (raw.as_object_mut(), extra.as_object()) {
            raw.extend(extra.clone());
        }
        serde_json::from_value(raw).expect("config parses")
    }

    #[test]
    fn defaults_build() {
        let settings = config(json!({})).build().expect("builds");
        assert_eq!(settings.delivery.name_prefix, "vdigw");
        assert!(!settings.delivery.sync_device);
        assert_eq!(settings.page_size, 250);
        assert_eq!(settings.inventory_ttl, Duration::from_secs(15));
        assert_eq!(settings.agent_stale_after, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn limits_are_checked() {
        let cases = [
            (json!({"page_size": 0}), "windows365.page_size", "is 0"),
            (
                json!({"page_size": 1001}),
                "windows365.page_size",
                "is 1001",
            ),
            (
                json!({"inventory_cache_seconds": 601}),
                "windows365.inventory_cache_seconds",
                "is 601",
            ),
            (
                json!({"agent_stale_after_hours": 0}),
                "windows365.agent_stale_after_hours",
                "is 0",
            ),
            (
                json!({"agent_stale_after_hours": 8761}),
                "windows365.agent_stale_after_hours",
                "is 8761",
            ),
        ];
        for (extra, key, problem) in cases {
            let error = config(extra.clone()).build().expect_err("out of range");
            assert_eq!(error.key, key, "{extra}");
            assert!(
                error.problem.contains(problem),
                "{extra}: {}",
                error.problem
            );
        }
    }

    #[test]
    fn limits_accept_their_bounds() {
        let extra = json!({"page_size": 1000, "inventory_cache_seconds": 0,
                           "agent_stale_after_hours": 8760});
        let settings = config(extra).build().expect("builds");
        assert_eq!(settings.page_size, 1000);
        assert_eq!(settings.inventory_ttl, Duration::ZERO);
    }

    #[test]
    fn graph_errors_name_the_section() {
        let mut raw = config(json!({}));
        raw.graph.client_id = String::new();
        let error = raw.build().expect_err("empty client id");
        assert_eq!(error.key, "windows365.graph.client_id");
    }

    #[test]
    fn group_in_both_lists_is_rejected() {
        let id = "0b5f6e1c-9c1d-4e55-8d1a-4b0f7f6b1a01";
        let error = config(json!({"group_targets": [id], "protected_group_ids": [id]}))
            .build()
            .expect_err("both lists");
        assert_eq!(error.key, "windows365.group_targets");
    }

    #[test]
    fn debug_hides_secret() {
        let raw = config(json!({}));
        assert!(!format!("{raw:?}").contains("w365-config-secret"));
        assert!(!format!("{:?}", raw.build().expect("builds")).contains("w365-config-secret"));
    }
}
