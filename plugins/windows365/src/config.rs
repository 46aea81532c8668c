//! Configuration of one Windows 365 provider.

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
        Ok(Windows365Settings {
            graph,
            group_targets: self.group_targets.clone(),
            protected_group_ids: self.protected_group_ids.clone(),
            delivery: self.delivery.build("windows365")?,
        })
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
