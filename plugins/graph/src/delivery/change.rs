//! Membership changes: resolving Entra device objects, the adds and removes in `$batch`
//! requests, the read-back through directory lag and the optional `syncDevice`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use broker_http::BrokerRequest;
use http::Method;
use serde_json::json;
use tokio::time::Instant;
use vdi_contracts::{MachineResult, ProviderError, ProviderResult};

use super::{batch_write, lock, write, DeliveryOutcome, DeviceRef, IntuneDelivery, VersionGroup};
use crate::batch::BatchItem;
use crate::model::DirectoryObject;

/// Membership writes planned for one device.
struct DevicePlan<'a> {
    device: &'a DeviceRef,
    aad: String,
    object: String,
    items: Vec<BatchItem>,
}

impl IntuneDelivery {
    /// Moves devices into `target` (or out of every group when `None`) and out of the
    /// container's other version groups.
    pub(super) async fn change(
        &self,
        container_id: &str,
        groups: &[VersionGroup],
        target: Option<&str>,
        devices: &[DeviceRef],
    ) -> ProviderResult<DeliveryOutcome> {
        let mut failed: BTreeMap<String, ProviderError> = BTreeMap::new();
        let mut plans = Vec::new();
        let unresolved: Vec<String> = devices
            .iter()
            .filter_map(|d| d.aad_device_id.clone())
            .filter(|aad| groups.iter().all(|g| g.member_object(aad).is_none()))
            .collect();
        let resolved = if target.is_some() {
            self.resolve_objects(&unresolved, &mut failed).await?
        } else {
            HashMap::new()
        };

        for (index, device) in devices.iter().enumerate() {
            let Some(aad) = device.aad_device_id.clone() else {
                let error = ProviderError::not_found(format!(
                    "machine {} has no Entra device id, so it cannot join a group",
                    device.machine
                ));
                failed.insert(device.machine.clone(), error);
                continue;
            };
            if failed.contains_key(&device.machine) || failed.contains_key(&aad) {
                if let Some(error) = failed.remove(&aad) {
                    failed.insert(device.machine.clone(), error);
                }
                continue;
            }
            let object = groups
                .iter()
                .find_map(|g| g.member_object(&aad))
                .map(str::to_owned)
                .or_else(|| resolved.get(&aad.to_ascii_lowercase()).cloned());
            let Some(object) = object else {
                if target.is_some() {
                    let error = ProviderError::not_found(format!(
                        "no Entra device object has deviceId {aad} (machine {}); check that \
                         the device is joined to Entra",
                        device.machine
                    ));
                    failed.insert(device.machine.clone(), error);
                }
                continue;
            };
            let mut items = Vec::new();
            if let Some(target) = target {
                let member = groups
                    .iter()
                    .any(|g| g.group_id == target && g.member_object(&aad).is_some());
                if !member {
                    let reference = format!(
                        "{}v1.0/directoryObjects/{object}",
                        self.client.settings().graph_base_url
                    );
                    items.push(
                        BatchItem::new(
                            format!("{index}-add"),
                            Method::POST,
                            format!("/groups/{target}/members/$ref"),
                        )
                        .json(json!({ "@odata.id": reference })),
                    );
                }
            }
            for (n, group) in groups.iter().enumerate() {
                if Some(group.group_id.as_str()) != target && group.member_object(&aad).is_some() {
                    items.push(BatchItem::new(
                        format!("{index}-remove-{n}"),
                        Method::DELETE,
                        format!("/groups/{}/members/{object}/$ref", group.group_id),
                    ));
                }
            }
            plans.push(DevicePlan {
                device,
                aad,
                object,
                items,
            });
        }

        let mut outcome = DeliveryOutcome::default();
        let items: Vec<BatchItem> = plans.iter().flat_map(|p| p.items.clone()).collect();
        if !items.is_empty() {
            match self.client.batch("v1.0", items).await {
                Ok(responses) => {
                    for plan in &plans {
                        for item in &plan.items {
                            let Some(response) = responses.get(&item.id) else {
                                continue;
                            };
                            let operation = if item.method == Method::POST {
                                "add_group_member"
                            } else {
                                "remove_group_member"
                            };
                            outcome.writes.push(batch_write(
                                operation,
                                item,
                                &plan.device.machine,
                                response,
                            ));
                            // Graph v1.0: adding a member twice returns 400 "already exist" and
                            // removing a non-member 404. Both leave the expected state.
                            let done = response.is_success()
                                || (item.method == Method::POST
                                    && response.graph_error().is_already_member())
                                || (item.method == Method::DELETE && response.status == 404);
                            if !done {
                                failed.insert(plan.device.machine.clone(), response.to_error(item));
                                continue;
                            }
                            let group = item.url.split('/').nth(2).unwrap_or_default();
                            let member = item.method == Method::POST;
                            self.record_pending(group, &plan.aad, member, &plan.object);
                        }
                    }
                }
                Err(error) => {
                    for plan in plans.iter().filter(|p| !p.items.is_empty()) {
                        let copy = ProviderError::new(error.kind, error.message.clone())
                            .with_retryable(error.retryable);
                        failed.insert(plan.device.machine.clone(), copy);
                    }
                }
            }
        }

        let changed: Vec<&DevicePlan> = plans
            .iter()
            .filter(|p| !p.items.is_empty() && !failed.contains_key(&p.device.machine))
            .collect();
        let confirmed = self.read_back(container_id, target, &changed).await;
        for plan in &changed {
            self.sync(plan.device, &mut outcome).await;
        }

        for device in devices {
            let result = if let Some(error) = failed.remove(&device.machine) {
                MachineResult::Failed(error.to_body())
            } else if changed.iter().any(|p| p.device.machine == device.machine)
                && !confirmed.contains(&device.machine)
            {
                MachineResult::Accepted
            } else {
                MachineResult::Applied
            };
            outcome.results.push((device.machine.clone(), result));
        }
        Ok(outcome)
    }

    /// Finds the Entra object ids of devices by `deviceId`, in `$batch` requests. Devices
    /// without an object, or whose lookup failed, are added to `failed` under their device id.
    async fn resolve_objects(
        &self,
        aad_ids: &[String],
        failed: &mut BTreeMap<String, ProviderError>,
    ) -> ProviderResult<HashMap<String, String>> {
        let items: Vec<BatchItem> = aad_ids
            .iter()
            .enumerate()
            .map(|(index, aad)| {
                let filter = format!("deviceId eq '{}'", aad.replace('\'', "''"));
                BatchItem::new(
                    format!("device-{index}"),
                    Method::GET,
                    format!("/devices?$filter={filter}&$select=id,deviceId"),
                )
            })
            .collect();
        let mut objects = HashMap::new();
        if items.is_empty() {
            return Ok(objects);
        }
        let responses = self.client.batch("v1.0", items.clone()).await?;
        for (item, aad) in items.iter().zip(aad_ids) {
            let Some(response) = responses.get(&item.id) else {
                continue;
            };
            if !response.is_success() {
                failed.insert(aad.clone(), response.to_error(item));
                continue;
            }
            let found: Vec<DirectoryObject> = response
                .body
                .get("value")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            if let Some(object) = found.into_iter().next() {
                objects.insert(aad.to_ascii_lowercase(), object.id);
            }
        }
        Ok(objects)
    }

    /// Reads the memberships again until each changed device shows only the wanted group,
    /// waiting for directory replication; returns the machines confirmed.
    async fn read_back(
        &self,
        container_id: &str,
        target: Option<&str>,
        changed: &[&DevicePlan<'_>],
    ) -> BTreeSet<String> {
        let mut confirmed = BTreeSet::new();
        if changed.is_empty() {
            return confirmed;
        }
        for attempt in 0..self.settings.read_back_attempts {
            if attempt > 0 {
                tokio::time::sleep(self.settings.read_back_delay).await;
            }
            let groups = match self.read_version_groups(container_id).await {
                Ok(groups) => groups,
                Err(error) => {
                    tracing::warn!(error = %error, "Reading group memberships back failed.");
                    break;
                }
            };
            for plan in changed {
                let in_target = |g: &VersionGroup| Some(g.group_id.as_str()) == target;
                let done = groups.iter().all(|g| {
                    let member = g.member_object(&plan.aad).is_some();
                    member == in_target(g)
                });
                if done {
                    confirmed.insert(plan.device.machine.clone());
                    for group in &groups {
                        self.confirm_pending(&group.group_id, &plan.aad);
                    }
                }
            }
            if confirmed.len() == changed.len() {
                return confirmed;
            }
        }
        tracing::info!(
            unconfirmed = changed.len() - confirmed.len(),
            "Group membership changes are not visible yet; directory replication lags."
        );
        confirmed
    }

    /// Asks the device to check in with Intune, at most once per `sync_min_interval` for each
    /// provider instance (the times are kept in memory).
    async fn sync(&self, device: &DeviceRef, outcome: &mut DeliveryOutcome) {
        let Some(managed) = &device.managed_device_id else {
            return;
        };
        if !self.settings.sync_device {
            return;
        }
        {
            let mut last = lock(&self.last_sync);
            let now = Instant::now();
            if last
                .get(managed)
                .is_some_and(|at| now.duration_since(*at) < self.settings.sync_min_interval)
            {
                return;
            }
            last.insert(managed.clone(), now);
        }
        let path = format!("v1.0/deviceManagement/managedDevices/{managed}/syncDevice");
        let request = BrokerRequest::post(path.clone())
            .operation("sync_device")
            .idempotent(true);
        match self.client.send(request).await {
            Ok(response) => outcome.writes.push(write(
                "sync_device",
                "POST",
                &path,
                Some(&device.machine),
                &response,
            )),
            Err(error) => tracing::warn!(
                machine = %device.machine,
                error = %error,
                "syncDevice failed; the device picks up the change at its next check-in."
            ),
        }
    }
}
