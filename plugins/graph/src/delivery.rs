//! Intune delivery of a container version, shared by Enterprise Cloud PCs and Intune-managed
//! physical devices: a gateway-owned Entra security group per container version, a
//! required-intent Win32 app (restart suppressed) whose install command starts the player for
//! that version, and group membership of each device's Entra device object as the placement.
//! The app's content is a package the gateway builds and uploads itself (`package`, `upload`),
//! because Intune publishes a Win32 app only once its content is committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use broker_http::BrokerRequest;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use vdi_contracts::{BrokerWrite, Container, MachineResult, ProviderError, ProviderResult};

use crate::batch::{BatchItem, BatchResponse};
use crate::client::{odata_quote, GraphClient};
use crate::model::{DirectoryObject, Group};

/// Start of the description of every gateway-owned group and app.
pub const OWNER_MARKER: &str = "Owned by the VDI broker gateway;";

/// Delivery settings shared by the providers.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Prefix of gateway-owned group and app names.
    pub name_prefix: String,
    /// Ask each changed device to check in with Intune (`syncDevice`).
    pub sync_device: bool,
    /// Minimum time between two `syncDevice` calls for one device.
    pub sync_min_interval: Duration,
    /// Reads of the group membership after a change, waiting for directory replication.
    pub read_back_attempts: u32,
    /// Wait between two membership reads.
    pub read_back_delay: Duration,
    /// Reads of a content file's upload state, and of the app's publishing state, before
    /// publishing gives up until the next reconcile.
    pub upload_poll_attempts: u32,
    /// Wait between two of those reads.
    pub upload_poll_delay: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            name_prefix: "vdigw".into(),
            sync_device: false,
            sync_min_interval: Duration::from_secs(600),
            read_back_attempts: 4,
            read_back_delay: Duration::from_secs(2),
            upload_poll_attempts: 60,
            upload_poll_delay: Duration::from_secs(2),
        }
    }
}

/// A device to place: the machine id the provider reports and its Graph ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRef {
    /// Machine id in the provider's listing.
    pub machine: String,
    /// Entra `deviceId` (Graph `aadDeviceId` / `azureADDeviceId`).
    pub aad_device_id: Option<String>,
    /// Intune managed device id, for `syncDevice`.
    pub managed_device_id: Option<String>,
}

/// A gateway-owned group of one version of a container, with its device members.
#[derive(Debug, Clone)]
pub struct VersionGroup {
    /// Group object id.
    pub group_id: String,
    /// Container version the group stands for.
    pub version: String,
    /// Members.
    pub members: Vec<DirectoryObject>,
}

impl VersionGroup {
    fn member_object(&self, aad_device_id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| {
                m.device_id
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(aad_device_id))
            })
            .map(|m| m.id.as_str())
    }
}

/// Per-machine results and the writes made.
#[derive(Debug, Clone, Default)]
pub struct DeliveryOutcome {
    /// Result per requested device, in request order.
    pub results: Vec<(String, MachineResult)>,
    /// Writes made on Graph.
    pub writes: Vec<BrokerWrite>,
}

/// How long a membership change the gateway made overrides what reads show. Entra member
/// lists can lag writes by seconds to minutes (an estimate), and a decision taken on a stale
/// read would, for example, leave a device in the group of the version it just left.
const PENDING_TTL: Duration = Duration::from_secs(900);

/// A membership change made by the gateway that reads may not show yet.
#[derive(Debug, Clone)]
struct PendingChange {
    member: bool,
    object_id: String,
    at: Instant,
}

/// Group and Win32 app delivery through Intune.
#[derive(Debug)]
pub struct IntuneDelivery {
    client: Arc<GraphClient>,
    settings: DeliverySettings,
    last_sync: Mutex<HashMap<String, Instant>>,
    /// `(group id, lower-case Entra device id)` → change not yet confirmed by a read.
    pending: Mutex<HashMap<(String, String), PendingChange>>,
}

/// Returns the ownership description of a container version.
pub fn owner_description(container_id: &str, version: &str) -> String {
    format!("{OWNER_MARKER} container={container_id}; version={version}")
}

/// Returns the container id and version of an ownership description.
pub fn parse_owner_description(description: &str) -> Option<(String, String)> {
    let rest = description.strip_prefix(OWNER_MARKER)?.trim();
    let rest = rest.strip_prefix("container=")?;
    let (container, version) = rest.split_once("; version=")?;
    Some((container.to_owned(), version.trim().to_owned()))
}

impl IntuneDelivery {
    /// Creates the delivery over a shared client.
    pub fn new(client: Arc<GraphClient>, settings: DeliverySettings) -> Self {
        Self {
            client,
            settings,
            last_sync: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the deterministic display name of a container version's group and app.
    pub fn object_name(&self, container_id: &str, version: &str) -> String {
        format!("{}-{container_id}-{version}", self.settings.name_prefix)
    }

    /// Returns a `mailNickname` for the group: Graph requires one, at most 64 characters
    /// without spaces, so it is the prefix and a hash of the display name.
    fn mail_nickname(&self, name: &str) -> String {
        let digest = hex::encode(Sha256::digest(name.as_bytes()));
        format!("{}-{}", self.settings.name_prefix, &digest[..24])
    }

    async fn members(&self, group_id: &str) -> ProviderResult<Vec<DirectoryObject>> {
        let request = BrokerRequest::get(format!("v1.0/groups/{group_id}/members"))
            .operation("list_group_members")
            .query("$select", "id,deviceId,userPrincipalName");
        self.client.list("group members", request).await
    }

    /// Lists the gateway-owned groups of a container with their members, including the
    /// gateway's own recent changes that reads do not show yet.
    ///
    /// # Errors
    /// Graph errors.
    pub async fn version_groups(&self, container_id: &str) -> ProviderResult<Vec<VersionGroup>> {
        let mut groups = self.read_version_groups(container_id).await?;
        self.apply_pending(&mut groups);
        Ok(groups)
    }

    /// Overlays pending changes on groups as read. Changes older than [`PENDING_TTL`] are
    /// dropped.
    fn apply_pending(&self, groups: &mut [VersionGroup]) {
        let mut pending = lock(&self.pending);
        let now = Instant::now();
        pending.retain(|_, change| now.duration_since(change.at) < PENDING_TTL);
        for group in groups.iter_mut() {
            for ((group_id, aad), change) in pending.iter() {
                if *group_id != group.group_id {
                    continue;
                }
                let listed = group.member_object(aad).is_some();
                if change.member && !listed {
                    group.members.push(DirectoryObject {
                        id: change.object_id.clone(),
                        odata_type: Some("#microsoft.graph.device".into()),
                        device_id: Some(aad.clone()),
                        user_principal_name: None,
                    });
                } else if !change.member && listed {
                    group.members.retain(|m| {
                        !m.device_id
                            .as_deref()
                            .is_some_and(|d| d.eq_ignore_ascii_case(aad))
                    });
                }
            }
        }
    }

    /// Records a membership change the gateway made.
    fn record_pending(&self, group_id: &str, aad: &str, member: bool, object_id: &str) {
        let change = PendingChange {
            member,
            object_id: object_id.to_owned(),
            at: Instant::now(),
        };
        lock(&self.pending).insert((group_id.to_owned(), aad.to_ascii_lowercase()), change);
    }

    /// Forgets the pending change of a device in a group, once a read shows it.
    fn confirm_pending(&self, group_id: &str, aad: &str) {
        lock(&self.pending).remove(&(group_id.to_owned(), aad.to_ascii_lowercase()));
    }

    async fn read_version_groups(&self, container_id: &str) -> ProviderResult<Vec<VersionGroup>> {
        let prefix = format!("{}-{container_id}-", self.settings.name_prefix);
        let request = BrokerRequest::get("v1.0/groups")
            .operation("list_version_groups")
            .query(
                "$filter",
                format!("startswith(displayName,{})", odata_quote(&prefix)),
            )
            .query("$select", "id,displayName,description");
        let groups: Vec<Group> = self.client.list("groups", request).await?;
        let mut versions = Vec::new();
        for group in groups {
            let Some((container, version)) = group
                .description
                .as_deref()
                .and_then(parse_owner_description)
            else {
                continue;
            };
            if container != container_id {
                continue;
            }
            let members = self.members(&group.id).await?;
            versions.push(VersionGroup {
                group_id: group.id,
                version,
                members,
            });
        }
        Ok(versions)
    }

    /// Returns the version of a container each Entra device id (lower case) has.
    ///
    /// # Errors
    /// Graph errors.
    pub async fn observe(&self, container_id: &str) -> ProviderResult<HashMap<String, String>> {
        let mut versions = HashMap::new();
        for group in self.version_groups(container_id).await? {
            for member in &group.members {
                if let Some(device) = &member.device_id {
                    versions.insert(device.to_ascii_lowercase(), group.version.clone());
                }
            }
        }
        Ok(versions)
    }

    /// Places `container` on devices: adds each to the version's group and removes it from the
    /// container's other version groups.
    ///
    /// # Errors
    /// Fails as a whole only when the groups cannot be listed.
    pub async fn place(
        &self,
        container: &Container,
        devices: &[DeviceRef],
    ) -> ProviderResult<DeliveryOutcome> {
        let groups = self.version_groups(&container.id).await?;
        let Some(target) = groups.iter().find(|g| g.version == container.version) else {
            let error = ProviderError::not_found(format!(
                "{} is not published: its group {:?} does not exist; publish it first",
                container.reference(),
                self.object_name(&container.id, &container.version)
            ));
            return Ok(fail_all(devices, &error));
        };
        let target = target.group_id.clone();
        self.change(&container.id, &groups, Some(&target), devices)
            .await
    }

    /// Removes devices from every version group of a container.
    ///
    /// # Errors
    /// Fails as a whole only when the groups cannot be listed.
    pub async fn unplace(
        &self,
        container_id: &str,
        devices: &[DeviceRef],
    ) -> ProviderResult<DeliveryOutcome> {
        let groups = self.version_groups(container_id).await?;
        self.change(container_id, &groups, None, devices).await
    }

    /// Takes devices that now get the container through an agent out of every Intune group
    /// of the container, so Intune stops installing the version it delivered before. Only
    /// devices whose agent was given the version (`Applied` or `Accepted` in `results`) are
    /// released: a deferred device keeps what Intune delivered until its agent takes over. A
    /// device whose removal failed gets a failed result, so the engine tries it again.
    pub async fn release_to_agent(
        &self,
        container_id: &str,
        mut devices: Vec<DeviceRef>,
        results: &mut HashMap<String, MachineResult>,
    ) -> Vec<BrokerWrite> {
        devices.retain(|device| {
            results
                .get(&device.machine)
                .is_some_and(|r| matches!(r, MachineResult::Applied | MachineResult::Accepted))
        });
        if devices.is_empty() {
            return Vec::new();
        }
        let released = match self.unplace(container_id, &devices).await {
            Ok(released) => released,
            Err(error) => {
                tracing::warn!(
                    container = %container_id, devices = devices.len(), error = %error,
                    "Devices moved to their agents could not leave the container's Intune groups."
                );
                for device in &devices {
                    results.insert(
                        device.machine.clone(),
                        MachineResult::Failed(error.to_body()),
                    );
                }
                return Vec::new();
            }
        };
        for (machine, result) in released.results {
            if let MachineResult::Failed(error) = result {
                tracing::warn!(
                    container = %container_id, machine = %machine, error = %error.message,
                    "A device moved to its agent could not leave the container's Intune group."
                );
                results.insert(machine, MachineResult::Failed(error));
            }
        }
        released.writes
    }
}

mod change;
mod objects;
pub mod package;
mod upload;

pub use objects::win32_app_body;

fn fail_all(devices: &[DeviceRef], error: &ProviderError) -> DeliveryOutcome {
    DeliveryOutcome {
        results: devices
            .iter()
            .map(|d| (d.machine.clone(), MachineResult::Failed(error.to_body())))
            .collect(),
        writes: Vec::new(),
    }
}

fn write(
    operation: &str,
    method: &str,
    path: &str,
    machine: Option<&str>,
    response: &broker_http::BrokerResponse,
) -> BrokerWrite {
    BrokerWrite {
        operation: operation.to_owned(),
        method: method.to_owned(),
        path: path.to_owned(),
        machine: machine.map(str::to_owned),
        status: Some(response.status.as_u16()),
        broker_request_id: response.request_id.clone(),
    }
}

fn batch_write(
    operation: &str,
    item: &BatchItem,
    machine: &str,
    response: &BatchResponse,
) -> BrokerWrite {
    BrokerWrite {
        operation: operation.to_owned(),
        method: item.method.to_string(),
        path: format!("v1.0{}", item.url),
        machine: Some(machine.to_owned()),
        status: Some(response.status),
        broker_request_id: response.header("request-id").map(str::to_owned),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
