//! Gateway-owned objects of a container version: the Entra security group, the Win32 app and
//! the app's required assignment to the group.

use broker_http::BrokerRequest;
use serde_json::json;
use vdi_contracts::{
    BrokerWrite, Container, ContainerRef, ErrorKind, ProviderError, ProviderResult, Publication,
};

use super::package::{MARKER_ROOT, SETUP_FILE};
use super::{owner_description, write, IntuneDelivery, VersionGroup, OWNER_MARKER};
use crate::client::odata_quote;
use crate::model::{Group, MobileApp, MobileAppAssignment};

impl IntuneDelivery {
    /// Creates the group, the Win32 app with its uploaded content and its required assignment
    /// when missing.
    ///
    /// # Errors
    /// `conflict` when an object of the same name exists but is not gateway-owned; Graph
    /// errors otherwise.
    pub async fn publish(&self, container: &Container) -> ProviderResult<Publication> {
        let mut writes = Vec::new();
        match self.publish_objects(container, &mut writes).await {
            Ok(objects) => Ok(Publication { objects, writes }),
            // The writes made before the failure stay in the audit trail.
            Err(error) => Err(error.with_writes(writes)),
        }
    }

    async fn publish_objects(
        &self,
        container: &Container,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<Vec<String>> {
        let group = self.ensure_group(container, writes).await?;
        let app = self.ensure_app(container, writes).await?;
        self.ensure_content(&app, container, writes).await?;
        self.ensure_assignment(&app, &group, writes).await?;
        Ok(vec![
            format!("group:{}", group.id),
            format!("app:{}", app.id),
        ])
    }

    async fn find_group(&self, name: &str) -> ProviderResult<Option<Group>> {
        let request = BrokerRequest::get("v1.0/groups")
            .operation("find_group")
            .query("$filter", format!("displayName eq {}", odata_quote(name)))
            .query("$select", "id,displayName,description");
        let groups: Vec<Group> = self.client.list("groups", request).await?;
        let Some(group) = groups.into_iter().next() else {
            return Ok(None);
        };
        let owned = group
            .description
            .as_deref()
            .is_some_and(|d| d.starts_with(OWNER_MARKER));
        if !owned {
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                format!(
                    "group {name:?} ({}) exists but is not owned by the gateway; rename it or \
                     change name_prefix",
                    group.id
                ),
            ));
        }
        Ok(Some(group))
    }

    async fn ensure_group(
        &self,
        container: &Container,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<Group> {
        let name = self.object_name(&container.id, &container.version);
        if let Some(group) = self.find_group(&name).await? {
            return Ok(group);
        }
        let body = json!({
            "displayName": name,
            "description": owner_description(&container.id, &container.version),
            "mailEnabled": false,
            "mailNickname": self.mail_nickname(&name),
            "securityEnabled": true,
        });
        let request = BrokerRequest::post("v1.0/groups")
            .operation("create_group")
            .json(body);
        let response = self.client.send(request).await?;
        writes.push(write(
            "create_group",
            "POST",
            "v1.0/groups",
            None,
            &response,
        ));
        tracing::info!(group = %name, "Created the gateway-owned group of a container version.");
        response.json()
    }

    async fn find_app(&self, name: &str) -> ProviderResult<Option<MobileApp>> {
        let request = BrokerRequest::get("v1.0/deviceAppManagement/mobileApps")
            .operation("find_app")
            .query("$filter", format!("displayName eq {}", odata_quote(name)));
        let apps: Vec<MobileApp> = self.client.list("mobile apps", request).await?;
        Ok(apps.into_iter().find(|app| {
            app.description
                .as_deref()
                .is_some_and(|d| d.starts_with(OWNER_MARKER))
        }))
    }

    async fn ensure_app(
        &self,
        container: &Container,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<MobileApp> {
        let name = self.object_name(&container.id, &container.version);
        if let Some(app) = self.find_app(&name).await? {
            return Ok(app);
        }
        let request = BrokerRequest::post("v1.0/deviceAppManagement/mobileApps")
            .operation("create_app")
            .json(win32_app_body(&name, container));
        let response = self.client.send(request).await?;
        writes.push(write(
            "create_app",
            "POST",
            "v1.0/deviceAppManagement/mobileApps",
            None,
            &response,
        ));
        tracing::info!(app = %name, "Created the gateway-owned Win32 app of a container version.");
        response.json()
    }

    async fn ensure_assignment(
        &self,
        app: &MobileApp,
        group: &Group,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<()> {
        let path = format!("v1.0/deviceAppManagement/mobileApps/{}/assignments", app.id);
        let request = BrokerRequest::get(path).operation("list_app_assignments");
        let existing: Vec<MobileAppAssignment> =
            self.client.list("app assignments", request).await?;
        if existing
            .iter()
            .any(|a| a.group_id() == Some(group.id.as_str()))
        {
            return Ok(());
        }
        // Graph v1.0 `mobileApp/assign` replaces the whole set, so existing ones are resent.
        let mut assignments: Vec<serde_json::Value> = existing
            .iter()
            .map(|a| {
                json!({
                    "@odata.type": "#microsoft.graph.mobileAppAssignment",
                    "intent": a.intent.as_ref().map(|i| i.as_str().to_owned()),
                    "target": a.target,
                    "settings": a.settings,
                })
            })
            .collect();
        assignments.push(json!({
            "@odata.type": "#microsoft.graph.mobileAppAssignment",
            "intent": "required",
            "target": {
                "@odata.type": "#microsoft.graph.groupAssignmentTarget",
                "groupId": group.id,
            },
            "settings": null,
        }));
        let path = format!("v1.0/deviceAppManagement/mobileApps/{}/assign", app.id);
        let request = BrokerRequest::post(path.clone())
            .operation("assign_app")
            .idempotent(true)
            .json(json!({ "mobileAppAssignments": assignments }));
        let response = self.client.send(request).await?;
        writes.push(write("assign_app", "POST", &path, None, &response));
        Ok(())
    }

    /// Deletes the app and group of a container version. Objects already gone are not an
    /// error.
    ///
    /// # Errors
    /// `conflict` while devices are still members of the group.
    pub async fn unpublish(&self, container: &ContainerRef) -> ProviderResult<Publication> {
        let name = self.object_name(&container.id, &container.version);
        let mut publication = Publication::default();
        let group = self.find_group(&name).await?;
        if let Some(group) = &group {
            let mut view = vec![VersionGroup {
                group_id: group.id.clone(),
                version: container.version.clone(),
                members: self.members(&group.id).await?,
            }];
            self.apply_pending(&mut view);
            let members = &view[0].members;
            if !members.is_empty() {
                return Err(ProviderError::new(
                    ErrorKind::Conflict,
                    format!(
                        "group {name:?} still has {} member(s); unplace {container} from them first",
                        members.len()
                    ),
                ));
            }
        }
        if let Some(app) = self.find_app(&name).await? {
            let path = format!("v1.0/deviceAppManagement/mobileApps/{}", app.id);
            self.delete(&path, "delete_app", &mut publication.writes)
                .await?;
        }
        if let Some(group) = group {
            let path = format!("v1.0/groups/{}", group.id);
            self.delete(&path, "delete_group", &mut publication.writes)
                .await?;
        }
        Ok(publication)
    }

    async fn delete(
        &self,
        path: &str,
        operation: &'static str,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<()> {
        let request = BrokerRequest::delete(path).operation(operation);
        match self.client.send(request).await {
            Ok(response) => {
                writes.push(write(operation, "DELETE", path, None, &response));
                Ok(())
            }
            Err(error) if error.kind == ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// Builds the `win32LobApp` of a container version: its install command runs the package's
/// script, which starts the player for the version and writes the marker its detection rule
/// checks. Restarts are suppressed and no return code requests a reboot (`softReboot`,
/// `hardReboot`).
pub fn win32_app_body(name: &str, container: &Container) -> serde_json::Value {
    let folder = format!("{MARKER_ROOT}\\{}", container.id);
    let marker = format!("{}.ready", container.version);
    json!({
        "@odata.type": "#microsoft.graph.win32LobApp",
        "displayName": name,
        "description": owner_description(&container.id, &container.version),
        "publisher": "VDI broker gateway",
        "fileName": format!("{name}.intunewin"),
        "setupFilePath": SETUP_FILE,
        "installCommandLine": SETUP_FILE,
        "uninstallCommandLine": format!("cmd.exe /c del \"{folder}\\{marker}\""),
        "applicableArchitectures": "x64",
        "installExperience": {
            "@odata.type": "microsoft.graph.win32LobAppInstallExperience",
            "runAsAccount": "user",
            "deviceRestartBehavior": "suppress",
        },
        "returnCodes": [
            {"@odata.type": "microsoft.graph.win32LobAppReturnCode", "returnCode": 0, "type": "success"},
        ],
        "rules": [{
            "@odata.type": "#microsoft.graph.win32LobAppFileSystemRule",
            "ruleType": "detection",
            "path": folder,
            "fileOrFolderName": marker,
            "check32BitOn64System": false,
            "operationType": "exists",
            "operator": "notConfigured",
            "comparisonValue": null,
        }],
        "msiInformation": null,
    })
}
