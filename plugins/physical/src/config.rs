//! Configuration of one physical endpoint provider, with its device group rules.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use vdi_graph::{ConfigError, DeliveryConfig, DeliverySettings, GraphConfig, GraphSettings};

/// One device group target: the devices whose name starts with `name_prefix` and whose agent
/// reports every label in `labels`. A rule with neither matches every device.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceGroupRule {
    /// Target id, for example `north-laptops`. Required.
    pub id: String,
    /// Name shown for the target. Default: the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Device name prefix, compared ignoring ASCII case, for example `HOSP-LT-`.
    #[serde(default)]
    pub name_prefix: Option<String>,
    /// Labels the agent must report with these values. Intune devices without an agent
    /// report no labels, so a rule with labels matches only agent devices.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Provider settings as written in the gateway's configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhysicalConfig {
    /// Graph connection for Intune-managed devices. Default none: agent devices only.
    #[serde(default)]
    pub graph: Option<GraphConfig>,
    /// Device group targets. At least one is required.
    #[serde(default)]
    pub device_groups: Vec<DeviceGroupRule>,
    /// Group ids the gateway must never write to, in addition to the groups of Windows 365
    /// provisioning policies (read at start when the tenant has any). Default none.
    #[serde(default)]
    pub protected_group_ids: Vec<String>,
    /// Deliver through the agent to Intune devices whose agent has registered too. Default
    /// false: Intune devices get the group and Win32 app.
    #[serde(default)]
    pub agent_first: bool,
    /// Hours without a check-in after which an agent device counts as unregistered and its
    /// sessions as unknown, 1 to 8760. Default 72: laptops are often off over a weekend.
    #[serde(default = "defaults::agent_stale_after_hours")]
    pub agent_stale_after_hours: u64,
    /// Leave Intune devices that are not compliant unchanged. Default true.
    #[serde(default = "defaults::exclude_noncompliant")]
    pub exclude_noncompliant: bool,
    /// Intune group and Win32 app delivery.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Machines per `list_machines` page, 1 to 1000. Default 250, the Citrix provider's page,
    /// which keeps one page of machines small next to a plugin's response limits.
    #[serde(default = "defaults::page_size")]
    pub page_size: u32,
    /// Seconds the device inventory (Intune managed devices and agent registrations) is
    /// reused, 0 to 600; the provider's own Intune writes end the reuse at once. Default 15:
    /// one reconcile pass (listing pages, observe, placement batches) and the next one, 5 s
    /// later at the engine's default interval, read Graph once, and a new agent shows up
    /// within seconds. Sessions are read fresh on every call. 0 reads on every call.
    #[serde(default = "defaults::inventory_cache_seconds")]
    pub inventory_cache_seconds: u64,
}

/// Largest `page_size`.
const MAX_PAGE_SIZE: u32 = 1000;

/// Largest `inventory_cache_seconds`: ten minutes, beyond which a listing misses changes for
/// too long.
const MAX_INVENTORY_CACHE_SECONDS: u64 = 600;

/// Largest `agent_stale_after_hours`: one year.
const MAX_AGENT_STALE_AFTER_HOURS: u64 = 8760;

mod defaults {
    pub(super) fn agent_stale_after_hours() -> u64 {
        72
    }
    pub(super) fn exclude_noncompliant() -> bool {
        true
    }
    pub(super) fn page_size() -> u32 {
        250
    }
    pub(super) fn inventory_cache_seconds() -> u64 {
        15
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct PhysicalSettings {
    /// Graph connection, when Intune is used.
    pub graph: Option<GraphSettings>,
    /// Device group rules.
    pub device_groups: Vec<DeviceGroupRule>,
    /// Configured protected groups.
    pub protected_group_ids: Vec<String>,
    /// Agent-first delivery.
    pub agent_first: bool,
    /// Check-in age after which an agent device is unregistered and its sessions unknown.
    pub agent_stale_after: Duration,
    /// Exclude non-compliant Intune devices.
    pub exclude_noncompliant: bool,
    /// Delivery settings.
    pub delivery: DeliverySettings,
    /// Machines per listing page.
    pub page_size: usize,
    /// How long the device inventory is reused.
    pub inventory_ttl: Duration,
}

impl PhysicalConfig {
    /// Validates the configuration.
    ///
    /// # Errors
    /// Returns a [`ConfigError`] naming the key and the fix.
    pub fn build(&self) -> Result<PhysicalSettings, ConfigError> {
        let graph = match &self.graph {
            Some(graph) => Some(graph.build().map_err(|e| ConfigError {
                key: format!("physical.{}", e.key),
                problem: e.problem,
            })?),
            None => None,
        };
        if self.device_groups.is_empty() {
            return Err(ConfigError::new(
                "physical.device_groups",
                "is empty: add at least one rule, for example {id = \"laptops\", name_prefix = \"HOSP-LT-\"}",
            ));
        }
        let mut ids = BTreeSet::new();
        for rule in &self.device_groups {
            let valid = !rule.id.is_empty()
                && rule.id.len() <= 64
                && rule
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                return Err(ConfigError::new(
                    "physical.device_groups.id",
                    format!(
                        "{:?} must be 1 to 64 letters, digits, '-', '_' or '.'",
                        rule.id
                    ),
                ));
            }
            if !ids.insert(rule.id.clone()) {
                return Err(ConfigError::new(
                    "physical.device_groups.id",
                    format!(
                        "{:?} is used by two rules; give each rule its own id",
                        rule.id
                    ),
                ));
            }
        }
        self.check_limits()?;
        Ok(PhysicalSettings {
            graph,
            device_groups: self.device_groups.clone(),
            protected_group_ids: self.protected_group_ids.clone(),
            agent_first: self.agent_first,
            agent_stale_after: Duration::from_secs(self.agent_stale_after_hours * 3600),
            exclude_noncompliant: self.exclude_noncompliant,
            delivery: self.delivery.build("physical")?,
            page_size: self.page_size as usize,
            inventory_ttl: Duration::from_secs(self.inventory_cache_seconds),
        })
    }

    fn check_limits(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_AGENT_STALE_AFTER_HOURS).contains(&self.agent_stale_after_hours) {
            return Err(ConfigError::new(
                "physical.agent_stale_after_hours",
                format!(
                    "is {}: set 1 to {MAX_AGENT_STALE_AFTER_HOURS} hours after which a silent \
                     agent counts as unregistered",
                    self.agent_stale_after_hours
                ),
            ));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(ConfigError::new(
                "physical.page_size",
                format!("is {}: set 1 to {MAX_PAGE_SIZE} machines", self.page_size),
            ));
        }
        if self.inventory_cache_seconds > MAX_INVENTORY_CACHE_SECONDS {
            return Err(ConfigError::new(
                "physical.inventory_cache_seconds",
                format!(
                    "is {}: set 0 (read on every call) to {MAX_INVENTORY_CACHE_SECONDS}",
                    self.inventory_cache_seconds
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(extra: serde_json::Value) -> PhysicalConfig {
        let mut raw = json!({"device_groups": [{"id": "laptops", "name_prefix": "HOSP-LT-"}]});
        if let (Some(raw), Some(extra)) = (raw.as_object_mut(), extra.as_object()) {
            raw.extend(extra.clone());
        }
        serde_json::from_value(raw).expect("config parses")
    }

    #[test]
    fn agent_only_config_builds() {
        let settings = config(json!({})).build().expect("builds");
        assert!(settings.graph.is_none());
        assert!(settings.exclude_noncompliant);
        assert_eq!(settings.page_size, 250);
        assert_eq!(settings.inventory_ttl, Duration::from_secs(15));
        assert_eq!(settings.agent_stale_after, Duration::from_secs(72 * 3600));
    }

    #[test]
    fn limits_are_checked() {
        let cases = [
            (json!({"page_size": 0}), "physical.page_size", "is 0"),
            (json!({"page_size": 1001}), "physical.page_size", "is 1001"),
            (
                json!({"inventory_cache_seconds": 601}),
                "physical.inventory_cache_seconds",
                "is 601",
            ),
            (
                json!({"agent_stale_after_hours": 0}),
                "physical.agent_stale_after_hours",
                "is 0",
            ),
            (
                json!({"agent_stale_after_hours": u64::MAX}),
                "physical.agent_stale_after_hours",
                "8760",
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
    fn duplicate_rule_ids_are_rejected() {
        let rules = json!([{"id": "a"}, {"id": "a"}]);
        let error = config(json!({"device_groups": rules}))
            .build()
            .expect_err("duplicate");
        assert_eq!(error.key, "physical.device_groups.id");
    }

    #[test]
    fn missing_rules_are_rejected() {
        let error = config(json!({"device_groups": []}))
            .build()
            .expect_err("empty");
        assert_eq!(error.key, "physical.device_groups");
    }

    #[test]
    fn debug_hides_secret() {
        let raw = config(json!({"graph": {
            "tenant_id": "t1", "client_id": "c1", "client_secret": "physical-secret-1",
        }}));
        assert!(!format!("{raw:?}").contains("physical-secret-1"));
        assert!(!format!("{:?}", raw.build().expect("builds")).contains("physical-secret-1"));
    }
}
