//! Publishing: per container version and delivery group, an application group restricted to
//! the version's tag and holding one `HostedOnDesktop` application that starts the player.
//! Every object is looked up by its derived name before it is created.

use std::time::Duration;

use broker_http::BrokerRequest;
use serde_json::json;
use vdi_contracts::{
    validate_identifier, validate_version, BrokerWrite, Container, ContainerRef, ErrorKind,
    ProviderError, ProviderResult, Publication,
};

use crate::model::{metadata_value, Application, ApplicationGroup, InstalledApp, NameValue};
use crate::naming::{
    object_name, segment, version_tag, CONTAINER_KEY, OWNER_KEY, OWNER_VALUE, TARGET_KEY,
    VERSION_KEY,
};
use crate::provider::{CitrixProvider, ResolvedGroup};

/// Reads of a newly created application before giving up; the create job can finish a
/// moment before the application is readable.
const READ_BACK_ATTEMPTS: u32 = 5;
const READ_BACK_PAUSE: Duration = Duration::from_millis(500);

fn owned(metadata: &[NameValue]) -> bool {
    metadata_value(metadata, OWNER_KEY) == Some(OWNER_VALUE)
}

fn ownership_metadata(container: &ContainerRef, group_id: &str) -> Vec<NameValue> {
    vec![
        NameValue::new(OWNER_KEY, OWNER_VALUE),
        NameValue::new(CONTAINER_KEY, &container.id),
        NameValue::new(VERSION_KEY, &container.version),
        NameValue::new(TARGET_KEY, group_id),
    ]
}

fn installed_app(container: &Container) -> InstalledApp {
    InstalledApp {
        command_line_executable: Some(container.launch.executable.clone()),
        command_line_arguments: container.launch.arguments.clone(),
        working_directory: container.launch.working_directory.clone(),
    }
}

/// Compares command lines, treating a missing and an empty value alike because the API
/// returns `""` for fields that were never set.
fn same_launch(have: Option<&InstalledApp>, want: &InstalledApp) -> bool {
    let norm = |v: &Option<String>| v.clone().unwrap_or_default();
    let have = have.cloned().unwrap_or_default();
    norm(&have.command_line_executable) == norm(&want.command_line_executable)
        && norm(&have.command_line_arguments) == norm(&want.command_line_arguments)
        && norm(&have.working_directory) == norm(&want.working_directory)
}

fn not_owned(kind: &str, name: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::Conflict,
        format!(
            "a Citrix {kind} named {name} exists without the {OWNER_KEY} metadata, so the gateway does not own it; rename or remove it"
        ),
    )
}

impl CitrixProvider {
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
        let group = self.resolve_group(target).await?;
        if !group.group.delivers_apps() {
            return Err(ProviderError::invalid(format!(
                "Citrix delivery group {} delivers desktops only (DeliveryType DesktopsOnly), so applications cannot be published to it; choose a group that delivers applications",
                group.group.display()
            )));
        }
        let reference = container.reference();
        let name = object_name(&self.settings.tag_prefix, &reference, &group.id);
        let tag = version_tag(&self.settings.tag_prefix, &container.id, &container.version);

        let mut writes = Vec::new();
        let tag_id = self.ensure_tag(&tag, &mut writes).await?;
        let app_group = self
            .ensure_application_group(&name, &tag, &group, &reference, &mut writes)
            .await?;
        let application = self
            .ensure_application(&name, container, &app_group, &group, &mut writes)
            .await?;

        let objects = vec![tag_id, app_group, application];
        if writes.is_empty() {
            tracing::info!(name = %name, "container version already published");
        } else {
            tracing::info!(name = %name, writes = writes.len(), "published container version");
        }
        Ok(Publication { objects, writes })
    }

    /// Returns the id of the version's application group, creating or repairing it.
    async fn ensure_application_group(
        &self,
        name: &str,
        tag: &str,
        group: &ResolvedGroup,
        container: &ContainerRef,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<String> {
        if let Some(existing) = self.api.application_group(name).await? {
            if !owned(&existing.metadata) {
                return Err(not_owned("application group", name));
            }
            let id = existing.id.clone().unwrap_or_else(|| name.to_owned());
            self.repair_application_group(&id, &existing, group, writes)
                .await?;
            return Ok(id);
        }
        let body = json!({
            "Name": name,
            "Description": format!("{container} published by the VDI broker gateway"),
            "Enabled": true,
            "RestrictToTag": tag,
            "DeliveryGroups": [{"Item": group.id, "Priority": 0}],
            "Metadata": ownership_metadata(container, &group.id),
        });
        let request = BrokerRequest::post("ApplicationGroups")
            .operation("create_application_group")
            .json(body);
        let completed = self.api.run_async(request).await?;
        writes.push(completed.write("create_application_group", None));
        tracing::info!(name = %name, "created Citrix application group");
        let created = self.read_back_group(name).await?;
        Ok(created.id.unwrap_or_else(|| name.to_owned()))
    }

    /// Adds the target delivery group back when someone removed it. `DeliveryGroups` replaces
    /// the whole list (EditApplicationGroupRequestModel), so the full list read just now is sent.
    async fn repair_application_group(
        &self,
        id: &str,
        existing: &ApplicationGroup,
        group: &ResolvedGroup,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<()> {
        let keys: Vec<&str> = existing
            .delivery_groups
            .iter()
            .filter_map(|r| r.key())
            .collect();
        let present = keys.iter().any(|key| {
            key.eq_ignore_ascii_case(&group.id)
                || group
                    .group
                    .name
                    .as_deref()
                    .is_some_and(|n| key.eq_ignore_ascii_case(n))
        });
        if present {
            return Ok(());
        }
        let mut list: Vec<serde_json::Value> = existing
            .delivery_groups
            .iter()
            .filter_map(|r| {
                let key = r.key()?;
                Some(json!({"Item": key, "Priority": r.priority.unwrap_or(0)}))
            })
            .collect();
        list.push(json!({"Item": group.id, "Priority": 0}));
        let request = BrokerRequest::patch(format!("ApplicationGroups/{}", segment(id)))
            .operation("update_application_group")
            .json(json!({ "DeliveryGroups": list }));
        let completed = self.api.run_async(request).await?;
        writes.push(completed.write("update_application_group", None));
        tracing::warn!(application_group = %id, "re-added the delivery group to the gateway's application group");
        Ok(())
    }

    async fn read_back_group(&self, name: &str) -> ProviderResult<ApplicationGroup> {
        for attempt in 1..=READ_BACK_ATTEMPTS {
            if let Some(found) = self.api.application_group(name).await? {
                return Ok(found);
            }
            if attempt < READ_BACK_ATTEMPTS {
                tokio::time::sleep(READ_BACK_PAUSE).await;
            }
        }
        Err(ProviderError::unavailable(format!(
            "Citrix application group {name} was created but cannot be read back"
        )))
    }

    /// Returns the id of the version's application, creating or repairing it.
    async fn ensure_application(
        &self,
        name: &str,
        container: &Container,
        app_group_id: &str,
        group: &ResolvedGroup,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<String> {
        let launch = installed_app(container);
        if let Some(existing) = self.api.application(name).await? {
            if !owned(&existing.metadata) {
                return Err(not_owned("application", name));
            }
            let id = existing.id.clone().unwrap_or_else(|| name.to_owned());
            self.repair_application(&id, &existing, &launch, app_group_id, writes)
                .await?;
            return Ok(id);
        }

        let reference = container.reference();
        let body = json!({
            "NewApplications": [{
                "Name": name,
                "PublishedName": container.display_name(),
                "Description": format!("{reference} published by the VDI broker gateway"),
                "ApplicationType": "HostedOnDesktop",
                "InstalledAppProperties": launch,
                "Enabled": true,
                "Visible": true,
                "Metadata": ownership_metadata(&reference, &group.id),
            }],
            "ApplicationGroups": [app_group_id],
        });
        let request = BrokerRequest::post("Applications")
            .operation("create_application")
            .json(body);
        let completed = self.api.run_async(request).await?;

        writes.push(completed.write("create_application", None));
        tracing::info!(name = %name, "created Citrix application");
        // The Orchestration API returns no id on create, so the application is read back by
        // name (citrix/terraform-provider-citrix does the same).
        let created = self.read_back_application(name).await?;
        created.id.ok_or_else(|| {
            ProviderError::invalid(format!(
                "Citrix application {name} was read back without an Id"
            ))
        })
    }

    async fn repair_application(
        &self,
        id: &str,
        existing: &Application,
        launch: &InstalledApp,
        app_group_id: &str,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<()> {
        let mut changes = serde_json::Map::new();
        if existing.enabled == Some(false) {
            // An earlier unpublish disabled it while sessions were open.
            changes.insert("Enabled".into(), json!(true));
        }
        if !same_launch(existing.installed_app_properties.as_ref(), launch) {
            changes.insert("InstalledAppProperties".into(), json!(launch));
        }

        let mut in_group = existing
            .associated_application_group_uuids
            .iter()
            .any(|uuid| uuid.eq_ignore_ascii_case(app_group_id));
        let mut group_ids = existing.associated_application_group_uuids.clone();
        if !in_group {
            let groups = self.api.application_groups_of(id).await?;
            group_ids = groups.iter().filter_map(|g| g.id.clone()).collect();
            in_group = group_ids
                .iter()
                .any(|g| g.eq_ignore_ascii_case(app_group_id));
        }
        if !in_group {
            // ApplicationGroups replaces the whole list, so send every current group plus ours.
            group_ids.push(app_group_id.to_owned());
            changes.insert("ApplicationGroups".into(), json!(group_ids));
        }

        if changes.is_empty() {
            return Ok(());
        }
        let request = BrokerRequest::patch(format!("Applications/{}", segment(id)))
            .operation("update_application")
            .json(serde_json::Value::Object(changes));
        let completed = self.api.run_async(request).await?;
        writes.push(completed.write("update_application", None));
        tracing::info!(application = %id, "updated the gateway's Citrix application");
        Ok(())
    }

    async fn read_back_application(&self, name: &str) -> ProviderResult<Application> {
        for attempt in 1..=READ_BACK_ATTEMPTS {
            if let Some(found) = self.api.application(name).await? {
                return Ok(found);
            }
            if attempt < READ_BACK_ATTEMPTS {
                tracing::warn!(name = %name, attempt, "new Citrix application not readable yet");
                tokio::time::sleep(READ_BACK_PAUSE).await;
            }
        }
        Err(ProviderError::unavailable(format!(
            "Citrix application {name} was created but cannot be read back by name"
        )))
    }

    pub(crate) async fn unpublish_version(
        &self,
        target: &str,
        container: &ContainerRef,
    ) -> ProviderResult<Publication> {
        validate_identifier("container.id", &container.id)
            .map_err(|e| ProviderError::invalid(e.to_string()))?;
        validate_version(&container.version).map_err(|e| ProviderError::invalid(e.to_string()))?;
        let group = match self.resolve_group(target).await {
            Ok(group) => group,
            Err(error) if error.kind == ErrorKind::NotFound => {
                tracing::warn!(error = %error, "delivery group is gone; nothing to unpublish");
                return Ok(Publication::default());
            }
            Err(error) => return Err(error),
        };
        let name = object_name(&self.settings.tag_prefix, container, &group.id);
        let mut publication = Publication::default();

        if let Some(application) = self.api.application(&name).await? {
            if !owned(&application.metadata) {
                tracing::warn!(name = %name, "application is not gateway-owned; leaving it");
                return Ok(publication);
            }
            let id = application.id.clone().unwrap_or_else(|| name.clone());
            if self.api.application_has_sessions(&id).await? {
                self.disable_application(&id, &application, &mut publication)
                    .await?;
                return Ok(publication);
            }
            let request = BrokerRequest::delete(format!("Applications/{}", segment(&id)))
                .operation("delete_application");
            if let Some(write) = self.delete(request, "delete_application").await? {
                publication.writes.push(write);
            }
            publication.objects.push(id);
        }

        if let Some(app_group) = self.api.application_group(&name).await? {
            if !owned(&app_group.metadata) {
                tracing::warn!(name = %name, "application group is not gateway-owned; leaving it");
                return Ok(publication);
            }
            let id = app_group.id.clone().unwrap_or_else(|| name.clone());
            if app_group.num_applications.unwrap_or(0) > 0 {
                tracing::warn!(application_group = %id, "application group still holds applications; leaving it");
                return Ok(publication);
            }
            let request = BrokerRequest::delete(format!("ApplicationGroups/{}", segment(&id)))
                .operation("delete_application_group");
            if let Some(write) = self.delete(request, "delete_application_group").await? {
                publication.writes.push(write);
            }
            publication.objects.push(id);
        }

        self.delete_unused_tag(container, &mut publication).await?;
        tracing::info!(name = %name, writes = publication.writes.len(), "unpublished container version");
        Ok(publication)
    }

    /// Disables an application that users still run; deleting it waits for a later call, and
    /// running sessions are never ended.
    async fn disable_application(
        &self,
        id: &str,
        application: &Application,
        publication: &mut Publication,
    ) -> ProviderResult<()> {
        tracing::info!(application = %id, "application has sessions; disabling it and deleting it later");
        if application.enabled != Some(false) {
            let request = BrokerRequest::patch(format!("Applications/{}", segment(id)))
                .operation("disable_application")
                .json(json!({"Enabled": false}));
            let completed = self.api.run_async(request).await?;
            publication
                .writes
                .push(completed.write("disable_application", None));
        }
        publication.objects.push(id.to_owned());
        Ok(())
    }

    /// Deletes the version tag once no machine and no application group uses it. The tag is
    /// shared by every delivery group the version is published to.
    async fn delete_unused_tag(
        &self,
        container: &ContainerRef,
        publication: &mut Publication,
    ) -> ProviderResult<()> {
        let name = version_tag(&self.settings.tag_prefix, &container.id, &container.version);
        let Some(tag) = self.api.tag(&name).await? else {
            return Ok(());
        };
        let machines = tag.num_machines.unwrap_or(0);
        let groups = tag.num_application_groups.unwrap_or(0);
        if machines > 0 || groups > 0 {
            tracing::info!(tag = %name, machines, application_groups = groups, "version tag still in use; keeping it");
            return Ok(());
        }
        let id = tag.id.unwrap_or(name);
        let request =
            BrokerRequest::delete(format!("Tags/{}", segment(&id))).operation("delete_tag");
        if let Some(write) = self.delete(request, "delete_tag").await? {
            publication.writes.push(write);
        }
        publication.objects.push(id);
        Ok(())
    }

    /// Sends a delete, waiting for its job; an object already gone is not an error.
    async fn delete(
        &self,
        request: BrokerRequest,
        operation: &str,
    ) -> ProviderResult<Option<BrokerWrite>> {
        match self.api.run_async(request).await {
            Ok(completed) => Ok(Some(completed.write(operation, None))),
            Err(error) if error.kind == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_missing_arguments_match() {
        let want = InstalledApp {
            command_line_executable: Some("player.exe".into()),
            command_line_arguments: None,
            working_directory: None,
        };
        let have = InstalledApp {
            command_line_executable: Some("player.exe".into()),
            command_line_arguments: Some(String::new()),
            working_directory: Some(String::new()),
        };
        assert!(same_launch(Some(&have), &want));
    }

    #[test]
    fn changed_arguments_differ() {
        let want = InstalledApp {
            command_line_executable: Some("player.exe".into()),
            command_line_arguments: Some("--container epic@2".into()),
            working_directory: None,
        };
        let have = InstalledApp {
            command_line_executable: Some("player.exe".into()),
            command_line_arguments: Some("--container epic@1".into()),
            working_directory: None,
        };
        assert!(!same_launch(Some(&have), &want));
    }

    #[test]
    fn ownership_marker() {
        let container = ContainerRef {
            id: "epic".into(),
            version: "1".into(),
        };
        assert!(owned(&ownership_metadata(&container, "dg-1")));
        assert!(!owned(&[NameValue::new("other", "x")]));
    }
}
