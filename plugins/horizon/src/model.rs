//! Wire types of the Horizon Server REST API (field names of version 2111), with every field
//! optional and enums kept as strings, so unknown fields and values never fail a page.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Tokens returned by `POST login` (`AuthTokens`); `Debug` masks both.
#[derive(Debug, Deserialize)]
pub struct AuthTokens {
    /// Bearer token for API calls.
    pub access_token: Option<SecretString>,
    /// Token that `POST refresh` exchanges for a new access token.
    pub refresh_token: Option<SecretString>,
}

/// Token returned by `POST refresh` (`AccessToken`); the refresh token is not rotated.
#[derive(Debug, Deserialize)]
pub struct AccessToken {
    /// New bearer token.
    pub access_token: Option<SecretString>,
}

/// A desktop pool, in any version from v1 to v5 (`DesktopPoolInfo`, `DesktopPoolInfoV5`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DesktopPool {
    /// Pool id.
    pub id: Option<String>,
    /// Pool name, at most 64 characters.
    pub name: Option<String>,
    /// Name users see.
    pub display_name: Option<String>,
    /// Whether brokering is enabled.
    pub enabled: Option<bool>,
    /// `AUTOMATED`, `MANUAL` or `RDS`.
    #[serde(rename = "type")]
    pub pool_type: Option<String>,
    /// `DESKTOP`, `APPLICATION` or `DESKTOP_AND_APPLICATION` (v2 and later).
    pub session_type: Option<String>,
    /// Farm of an RDS pool.
    pub farm_id: Option<String>,
    /// Nested settings of v1, which v2 flattened.
    pub settings: Option<DesktopPoolSettings>,
}

/// The v1 `settings` object, read only for its session type.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DesktopPoolSettings {
    /// `DESKTOP`, `APPLICATION` or `DESKTOP_AND_APPLICATION`.
    pub session_type: Option<String>,
}

impl DesktopPool {
    /// Returns the session type from the flat field (v2+) or the v1 `settings` object.
    pub fn session_type(&self) -> Option<&str> {
        self.session_type
            .as_deref()
            .or_else(|| self.settings.as_ref()?.session_type.as_deref())
    }

    /// Returns whether the pool can back application pools (application sessions).
    pub fn supports_applications(&self) -> bool {
        self.session_type().is_some_and(|t| {
            t.eq_ignore_ascii_case("APPLICATION")
                || t.eq_ignore_ascii_case("DESKTOP_AND_APPLICATION")
        })
    }

    /// Returns whether the pool is an RDS pool, whose machines are the hosts of its farm.
    pub fn is_rds(&self) -> bool {
        self.pool_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("RDS"))
    }
}

/// An RDS farm (`FarmInfoV3`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Farm {
    /// Farm id.
    pub id: Option<String>,
    /// Farm name.
    pub name: Option<String>,
    /// Name shown in the console.
    pub display_name: Option<String>,
    /// Whether the farm is enabled.
    pub enabled: Option<bool>,
    /// RDS desktop pool served by the farm, whose entitlements the farm's users hold.
    pub desktop_pool_id: Option<String>,
}

/// A virtual or physical machine of a desktop pool (`MachineInfo`, `MachineInfoV2`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MachineInfo {
    /// Machine id.
    pub id: Option<String>,
    /// Machine name.
    pub name: Option<String>,
    /// DNS name.
    pub dns_name: Option<String>,
    /// Pool the machine belongs to.
    pub desktop_pool_id: Option<String>,
    /// Machine state, for example `AVAILABLE` or `AGENT_UNREACHABLE`.
    pub state: Option<String>,
    /// vCenter data of managed machines.
    pub managed_machine_data: Option<ManagedMachineData>,
}

/// The part of `ManagedMachineData` the gateway reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ManagedMachineData {
    /// Whether the machine is in maintenance mode.
    pub in_maintenance_mode: Option<bool>,
}

/// An RDS host of a farm (`RDSServerInfo`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RdsServer {
    /// Server id.
    pub id: Option<String>,
    /// Server name.
    pub name: Option<String>,
    /// DNS name.
    pub dns_name: Option<String>,
    /// Farm the server belongs to.
    pub farm_id: Option<String>,
    /// Whether new sessions may start on the server.
    pub enabled: Option<bool>,
    /// Server state, for example `AVAILABLE`.
    pub state: Option<String>,
}

/// A session (`SessionInfo`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SessionInfo {
    /// Session id.
    pub id: Option<String>,
    /// SID of the user.
    pub user_id: Option<String>,
    /// Machine of a desktop session; not set for RDS sessions.
    pub machine_id: Option<String>,
    /// RDS host of an RDS session.
    pub rds_server_id: Option<String>,
    /// `CONNECTED`, `DISCONNECTED` or `PENDING`.
    pub session_state: Option<String>,
    /// Applications running in the session.
    #[serde(default)]
    pub application_names: Vec<String>,
}

/// An application pool (`ApplicationPoolInfo`, `ApplicationPoolInfoV2`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApplicationPool {
    /// Application pool id.
    pub id: Option<String>,
    /// Name: letters, digits, `-` and `_`, at most 64 characters.
    pub name: Option<String>,
    /// Name users see.
    pub display_name: Option<String>,
    /// Whether users can launch it.
    pub enabled: Option<bool>,
    /// Executable the application starts.
    pub executable_path: Option<String>,
    /// Command-line parameters.
    pub parameters: Option<String>,
    /// Working directory.
    pub start_folder: Option<String>,
    /// Desktop pool that hosts the application.
    pub desktop_pool_id: Option<String>,
    /// Farm that hosts the application.
    pub farm_id: Option<String>,
}

/// Users and groups entitled to one pool (`EntitlementInfo`, `EntitlementSpec`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Entitlement {
    /// Pool id.
    pub id: String,
    /// SIDs of the entitled users and groups.
    #[serde(default)]
    pub ad_user_or_group_ids: Vec<String>,
}

/// One item of a bulk action response (`BulkItemResponseInfo`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BulkItemResponse {
    /// Id the item concerns.
    pub id: Option<String>,
    /// HTTP-like status of the item.
    pub status_code: Option<u16>,
    /// Error messages of a failed item.
    #[serde(default)]
    pub error_messages: Vec<String>,
}

/// One pool of a bulk entitlement response (`BulkEntitlementResponseInfo`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BulkEntitlementResponse {
    /// Pool id.
    pub id: Option<String>,
    /// Status of the pool as a whole.
    pub status_code: Option<u16>,
    /// Error messages of the pool as a whole.
    #[serde(default)]
    pub error_messages: Vec<String>,
    /// One result per user or group (`EntitlementResponseInfo`).
    #[serde(default)]
    pub details: Vec<EntitlementDetail>,
}

/// Result of one user or group in a bulk entitlement response.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EntitlementDetail {
    /// SID of the user or group.
    pub ad_user_or_group_id: Option<String>,
    /// Status of this SID.
    pub status_code: Option<u16>,
    /// Error messages for this SID.
    #[serde(default)]
    pub error_messages: Vec<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn v1_pool_reads_nested_session_type() {
        let pool: DesktopPool = serde_json::from_value(json!({
            "id": "p1", "name": "EHR-IC", "type": "AUTOMATED", "source": "INSTANT_CLONE",
            "settings": {"session_type": "DESKTOP_AND_APPLICATION", "delete_in_progress": false},
        }))
        .expect("parses");
        assert!(pool.supports_applications());
    }

    #[test]
    fn v5_pool_reads_flat_session_type() {
        let pool: DesktopPool = serde_json::from_value(json!({
            "id": "p1", "name": "EHR-IC", "type": "AUTOMATED", "session_type": "DESKTOP",
            "user_assignment": "FLOATING", "naming_method": "PATTERN",
        }))
        .expect("parses");
        assert!(!pool.supports_applications());
        assert!(!pool.is_rds());
    }

    #[test]
    fn unknown_machine_state_parses() {
        let machine: MachineInfo = serde_json::from_value(json!({
            "id": "m1", "state": "HIBERNATED_BY_FUTURE_RELEASE", "new_field": [1, 2],
        }))
        .expect("parses");
        assert_eq!(
            machine.state.as_deref(),
            Some("HIBERNATED_BY_FUTURE_RELEASE")
        );
    }
}
