//! Publishing: per container version and target, an application pool that starts the player
//! with the version's arguments, entitled to the users and groups of the source pool or farm.
//! VDI desktop pools without application sessions get no broker object, because the agent
//! channel delivers to them.

use std::collections::BTreeSet;

use broker_http::BrokerRequest;
use http::Method;
use serde_json::json;
use vdi_contracts::{
    validate_identifier, validate_version, BrokerWrite, Container, ContainerRef, ErrorKind, Launch,
    ProviderError, ProviderResult, Publication,
};

use crate::client::{segment, write_record, Filter, Resource};
use crate::inventory::ResolvedTarget;
use crate::model::ApplicationPool;
use crate::provider::HorizonProvider;

/// Maximum application pool name length (Horizon Server REST API 2111, `ApplicationPoolInfo.name`).
const MAX_NAME_LEN: usize = 64;

/// Publisher written on gateway-owned application pools.
const PUBLISHER: &str = "VDI broker gateway";

/// Host of a target's application pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppHost {
    /// A desktop pool with application sessions.
    DesktopPool(String),
    /// An RDS farm.
    Farm(String),
}

impl ResolvedTarget {
    /// Returns what hosts application pools for this target, or `None` for a desktop pool
    /// with desktop sessions only.
    pub(crate) fn app_host(&self) -> Option<AppHost> {
        match self {
            ResolvedTarget::Farm(id, _) => Some(AppHost::Farm(id.clone())),
            ResolvedTarget::Pool(id, pool) if pool.supports_applications() => {
                // Applications of an RDS desktop pool run on its farm's hosts.
                match (&pool.farm_id, pool.is_rds()) {
                    (Some(farm), true) => Some(AppHost::Farm(farm.clone())),
                    _ => Some(AppHost::DesktopPool(id.clone())),
                }
            }
            ResolvedTarget::Pool(..) => None,
        }
    }
}

/// Returns the application pool name of a container version on a target:
/// `{prefix}-{id}-{version}-{hash}`, at most 64 letters, digits, `-` and `_`.
///
/// Other characters become `_`, and an FNV-1a hash of the exact (container, version, target)
/// keeps names that differ only in those characters apart. The hash also marks the pool as
/// the gateway's, because Horizon application pools carry no metadata.
pub fn app_pool_name(prefix: &str, container: &ContainerRef, target_id: &str) -> String {
    let hash = fnv1a(&format!(
        "{}\n{}\n{}",
        container.id, container.version, target_id
    ));
    let id = sanitize(&container.id, 24);
    let version = sanitize(&container.version, 12);
    let name = format!("{prefix}-{id}-{version}-{hash:08x}");
    debug_assert!(name.len() <= MAX_NAME_LEN, "{name}");
    name
}

fn sanitize(raw: &str, max: usize) -> String {
    raw.chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// 32-bit FNV-1a: stable across builds and platforms, which `std`'s hasher does not promise.
fn fnv1a(text: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

fn same_text(have: Option<&str>, want: Option<&str>) -> bool {
    have.unwrap_or_default() == want.unwrap_or_default()
}

impl HorizonProvider {
    pub(crate) async fn publish_version(
        &self,
        target: &str,
        container: &Container,
    ) -> ProviderResult<Publication> {
        validate_identifier("container.id", &container.id)
            .map_err(|e| ProviderError::invalid(e.to_string()))?;
        validate_version(&container.version).map_err(|e| ProviderError::invalid(e.to_string()))?;
        if container.launch.executable.trim().is_empty() {
            return Err(ProviderError::invalid(format!(
                "container {} has an empty launch.executable; set the path of the player on the machines",
                container.reference()
            )));
        }

        let resolved = self.resolve(target).await?;
        let Some(host) = resolved.app_host() else {
            tracing::info!(target = %resolved.display(), "Desktop pool has desktop sessions only; the agent channel delivers the version.");
            return Ok(Publication::default());
        };
        let name = app_pool_name(
            &self.settings.name_prefix,
            &container.reference(),
            resolved.id(),
        );
        let mut writes = Vec::new();

        let pool_id = self
            .ensure_app_pool(&name, container, &resolved, &host, &mut writes)
            .await?;
        let entitled = self.source_entitlements(&resolved).await?;
        self.sync_entitlements(&pool_id, &entitled, &mut writes)
            .await?;

        if writes.is_empty() {
            tracing::info!(name = %name, "Container version already published.");
        } else {
            tracing::info!(name = %name, writes = writes.len(), "Published container version.");
        }
        Ok(Publication {
            objects: vec![pool_id],
            writes,
        })
    }

    /// Finds a gateway-owned application pool by its derived name.
    async fn find_app_pool(&self, name: &str) -> ProviderResult<Option<ApplicationPool>> {
        let filter = Filter::Equals("name", name.to_owned());
        let pools: Vec<ApplicationPool> = self
            .api
            .all(Resource::ApplicationPools, Some(&filter))
            .await?;
        // The name is matched here too, in case a server ignores the filter.
        Ok(pools.into_iter().find(|p| {
            p.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        }))
    }

    /// Returns the id of the version's application pool, creating or repairing it.
    async fn ensure_app_pool(
        &self,
        name: &str,
        container: &Container,
        resolved: &ResolvedTarget,
        host: &AppHost,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<String> {
        if let Some(existing) = self.find_app_pool(name).await? {
            let id = existing.id.clone().ok_or_else(|| {
                ProviderError::invalid(format!("Horizon application pool {name} has no id"))
            })?;
            self.repair_app_pool(&id, &existing, container, writes)
                .await?;
            return Ok(id);
        }

        let launch = &container.launch;
        let mut body = json!({
            "name": name,
            "display_name": format!("{} {}", container.display_name(), container.version),
            "description": format!("{} on {}, published by the VDI broker gateway", container.reference(), resolved.display()),
            "publisher": PUBLISHER,
            "version": container.version,
            "enabled": true,
            "executable_path": launch.executable,
        });
        if let Some(arguments) = &launch.arguments {
            body["parameters"] = json!(arguments);
        }
        if let Some(folder) = &launch.working_directory {
            body["start_folder"] = json!(folder);
        }
        match host {
            AppHost::DesktopPool(id) => body["desktop_pool_id"] = json!(id),
            AppHost::Farm(id) => body["farm_id"] = json!(id),
        }
        // Create with the version the lookup just confirmed, which the server serves.
        let version = self
            .api
            .confirmed_version(Resource::ApplicationPools)
            .unwrap_or("v2");
        let request = BrokerRequest::post(format!("inventory/{version}/application-pools"))
            .operation("create_application_pool")
            .json(body);
        match self.api.send(request).await {
            Ok(response) => {
                writes.push(write_record("create_application_pool", &response, None));
                tracing::info!(name = %name, target = %resolved.display(), "Created Horizon application pool.");
            }
            // A concurrent publish may create the same pool first; it is read back below.
            Err(error) if error.kind == ErrorKind::Conflict => {
                tracing::debug!(name = %name, error = %error, "Application pool exists already; reading it back.");
            }
            Err(error) => return Err(error),
        }
        // The create response has no body in Horizon Server REST API 2111, so the id is read back.
        let created = self.find_app_pool(name).await?.and_then(|p| p.id);
        created.ok_or_else(|| {
            ProviderError::unavailable(format!(
                "Horizon application pool {name} was created but cannot be read back; publish again"
            ))
        })
    }

    /// Updates an existing application pool whose launch settings or enabled flag differ.
    async fn repair_app_pool(
        &self,
        id: &str,
        existing: &ApplicationPool,
        container: &Container,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<()> {
        let launch = &container.launch;
        let same = same_text(
            existing.executable_path.as_deref(),
            Some(&launch.executable),
        ) && same_text(existing.parameters.as_deref(), launch.arguments.as_deref())
            && same_text(
                existing.start_folder.as_deref(),
                launch.working_directory.as_deref(),
            )
            && existing.enabled != Some(false);
        if same {
            return Ok(());
        }
        let display_name = existing
            .display_name
            .clone()
            .unwrap_or_else(|| format!("{} {}", container.display_name(), container.version));
        let response = self
            .update_app_pool(id, display_name, launch, &container.version, true)
            .await?;
        writes.push(write_record("update_application_pool", &response, None));
        tracing::info!(application_pool = %id, "Repaired the launch settings of a Horizon application pool.");
        Ok(())
    }

    /// Replaces the launch settings and enabled flag of an application pool.
    async fn update_app_pool(
        &self,
        id: &str,
        display_name: String,
        launch: &Launch,
        version: &str,
        enabled: bool,
    ) -> ProviderResult<broker_http::BrokerResponse> {
        // ApplicationPoolUpdateSpec requires executable_path, enabled and enable_pre_launch.
        let body = json!({
            "display_name": display_name,
            "executable_path": launch.executable,
            "parameters": launch.arguments.clone().unwrap_or_default(),
            "start_folder": launch.working_directory.clone().unwrap_or_default(),
            "publisher": PUBLISHER,
            "version": version,
            "enabled": enabled,
            "enable_pre_launch": false,
        });
        let path = format!("inventory/v1/application-pools/{}", segment(id));
        let request = BrokerRequest::new(Method::PUT, path)
            .operation("update_application_pool")
            .json(body);
        self.api.send(request).await
    }

    /// Returns the SIDs entitled to the target: a desktop pool's own entitlements, or for a
    /// farm those of the RDS desktop pools it serves (Horizon has no farm entitlements).
    async fn source_entitlements(
        &self,
        resolved: &ResolvedTarget,
    ) -> ProviderResult<BTreeSet<String>> {
        let pool_ids: Vec<String> = match resolved {
            ResolvedTarget::Pool(id, _) => vec![id.clone()],
            ResolvedTarget::Farm(id, farm) => {
                let inventory = self.inventory().await?;
                let mut ids: BTreeSet<String> = farm.desktop_pool_id.iter().cloned().collect();
                ids.extend(
                    inventory
                        .pools
                        .iter()
                        .filter(|p| p.farm_id.as_deref() == Some(id.as_str()))
                        .filter_map(|p| p.id.clone()),
                );
                ids.into_iter().collect()
            }
        };
        let mut sids = BTreeSet::new();
        for pool_id in &pool_ids {
            sids.extend(self.api.entitlements("desktop-pools", pool_id).await?);
        }
        if sids.is_empty() {
            tracing::warn!(target = %resolved.display(), "No users or groups are entitled to the target, so nobody can launch its application pools yet.");
        }
        Ok(sids)
    }

    /// Adds the missing SIDs and removes the extra ones, naming exactly those SIDs.
    async fn sync_entitlements(
        &self,
        pool_id: &str,
        expected: &BTreeSet<String>,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<()> {
        let current: BTreeSet<String> = self
            .api
            .entitlements("application-pools", pool_id)
            .await?
            .into_iter()
            .collect();
        let add: Vec<String> = expected.difference(&current).cloned().collect();
        let remove: Vec<String> = current.difference(expected).cloned().collect();
        if !add.is_empty() {
            writes.push(self.api.change_entitlements(true, pool_id, &add).await?);
            tracing::info!(application_pool = %pool_id, added = add.len(), "Entitled users and groups to the application pool.");
        }
        if !remove.is_empty() {
            writes.push(
                self.api
                    .change_entitlements(false, pool_id, &remove)
                    .await?,
            );
            tracing::info!(application_pool = %pool_id, removed = remove.len(), "Removed entitlements the source pool no longer has.");
        }
        Ok(())
    }

    pub(crate) async fn unpublish_version(
        &self,
        target: &str,
        container: &ContainerRef,
    ) -> ProviderResult<Publication> {
        let resolved = match self.resolve(target).await {
            Ok(resolved) => resolved,
            // Deleting a pool or farm takes its application pools with it.
            Err(error) if error.kind == ErrorKind::NotFound => {
                tracing::warn!(target = %target, "Target not found; nothing to unpublish.");
                return Ok(Publication::default());
            }
            Err(error) => return Err(error),
        };
        if resolved.app_host().is_none() {
            return Ok(Publication::default());
        }
        let name = app_pool_name(&self.settings.name_prefix, container, resolved.id());
        let Some(existing) = self.find_app_pool(&name).await? else {
            return Ok(Publication::default());
        };
        let Some(id) = existing.id.clone() else {
            return Err(ProviderError::invalid(format!(
                "Horizon application pool {name} has no id"
            )));
        };
        let mut writes = Vec::new();
        match self
            .remove_app_pool(&resolved, &id, &existing, container, &mut writes)
            .await
        {
            Ok(true) => Ok(Publication {
                objects: Vec::new(),
                writes,
            }),
            Ok(false) => Ok(Publication {
                objects: vec![id],
                writes,
            }),
            Err(error) if error.retryable => Err(error),
            Err(error) => {
                tracing::warn!(application_pool = %id, error = %error, "Could not remove the Horizon application pool; it remains.");
                Ok(Publication {
                    objects: vec![id],
                    writes,
                })
            }
        }
    }

    /// Removes the pool's entitlements (exactly the SIDs it holds), then the pool. Returns
    /// `false` when running sessions use the application, in which case the pool is only
    /// disabled so no new launch starts while those users keep working.
    async fn remove_app_pool(
        &self,
        resolved: &ResolvedTarget,
        id: &str,
        existing: &ApplicationPool,
        container: &ContainerRef,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<bool> {
        let names: Vec<&str> = [existing.name.as_deref(), existing.display_name.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let sessions = self.sessions(resolved).await?;
        let in_use = sessions.iter().any(|s| {
            s.application_names
                .iter()
                .any(|a| names.contains(&a.as_str()))
        });
        if in_use {
            if existing.enabled != Some(false) {
                let launch = Launch {
                    executable: existing.executable_path.clone().unwrap_or_default(),
                    arguments: existing.parameters.clone(),
                    working_directory: existing.start_folder.clone(),
                };
                let display_name = existing
                    .display_name
                    .clone()
                    .unwrap_or_else(|| id.to_owned());
                let response = self
                    .update_app_pool(id, display_name, &launch, &container.version, false)
                    .await?;
                writes.push(write_record("disable_application_pool", &response, None));
            }
            tracing::info!(application_pool = %id, "Sessions use the application; disabled the pool and kept it until they end.");
            return Ok(false);
        }

        let current = self.api.entitlements("application-pools", id).await?;
        if !current.is_empty() {
            writes.push(self.api.change_entitlements(false, id, &current).await?);
        }
        let request =
            BrokerRequest::delete(format!("inventory/v1/application-pools/{}", segment(id)))
                .operation("delete_application_pool");
        match self.api.send(request).await {
            Ok(response) => {
                writes.push(write_record("delete_application_pool", &response, None));
                tracing::info!(application_pool = %id, "Deleted Horizon application pool.");
            }
            Err(error) if error.kind == ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(id: &str, version: &str) -> ContainerRef {
        ContainerRef {
            id: id.into(),
            version: version.into(),
        }
    }

    #[test]
    fn name_is_deterministic_and_valid() {
        let name = app_pool_name("vdigw", &reference("epic-hyperspace", "2024.3.1"), "pool-1");
        assert_eq!(
            name,
            app_pool_name("vdigw", &reference("epic-hyperspace", "2024.3.1"), "pool-1")
        );
        assert!(
            name.starts_with("vdigw-epic-hyperspace-2024_3_1-"),
            "{name}"
        );
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{name}"
        );
    }

    #[test]
    fn name_stays_within_limit() {
        let id = "x".repeat(128);
        let version = "9".repeat(64);
        let name = app_pool_name("prefix-sixteen16", &reference(&id, &version), "target");
        assert!(name.len() <= MAX_NAME_LEN, "{} characters", name.len());
    }

    #[test]
    fn names_differ_by_version_and_target() {
        let base = app_pool_name("vdigw", &reference("epic", "1.0"), "p1");
        assert_ne!(
            base,
            app_pool_name("vdigw", &reference("epic", "1_0"), "p1")
        );
        assert_ne!(
            base,
            app_pool_name("vdigw", &reference("epic", "1.0"), "p2")
        );
    }
}
