//! Intune mobile apps: create a `win32LobApp`, read, update, delete, assign and list
//! assignments.
//!
//! A new app is `notPublished` with a null `committedContentVersion`. It becomes
//! `processing` when a PATCH sets `committedContentVersion` to a content version with a file
//! in `commitFileSuccess` (see [`content`](super::content)), and `published`
//! `app_publish_delay` after that PATCH. `assign` replaces the whole assignment set and
//! returns 204 (Microsoft Graph v1.0 "mobileApp: assign"). An app can be assigned only once
//! its `publishingState` is `published`.

use std::collections::HashSet;
use std::time::Instant;

use axum::http::{header, StatusCode};
use serde_json::{json, Map, Value};

use super::error::{GraphError, GraphResult};
use super::model::{self, ApiVersion};
use super::routes::{json_body, ListKind};
use super::server::Shared;
use super::state::MobileApp;
use crate::common::http::{SimRequest, SimResponse};

/// The only app type this simulator creates.
pub const WIN32_LOB_APP_TYPE: &str = "#microsoft.graph.win32LobApp";

/// Writable `win32LobApp` properties (Microsoft Graph v1.0 and beta `win32LobApp`).
const WIN32_PROPERTIES: [&str; 32] = [
    "displayName",
    "description",
    "publisher",
    "largeIcon",
    "isFeatured",
    "privacyInformationUrl",
    "informationUrl",
    "owner",
    "developer",
    "notes",
    "roleScopeTagIds",
    "committedContentVersion",
    "fileName",
    "size",
    "installCommandLine",
    "uninstallCommandLine",
    "applicableArchitectures",
    "minimumFreeDiskSpaceInMB",
    "minimumMemoryInMB",
    "minimumNumberOfProcessors",
    "minimumCpuSpeedInMHz",
    "rules",
    "detectionRules",
    "requirementRules",
    "installExperience",
    "returnCodes",
    "msiInformation",
    "setupFilePath",
    "minimumSupportedWindowsRelease",
    "displayVersion",
    "allowAvailableUninstall",
    "minimumSupportedOperatingSystem",
];

/// Read-only properties a client may echo back; they are ignored on create.
const READ_ONLY_PROPERTIES: [&str; 5] = [
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "publishingState",
    "uploadState",
];

const RUN_AS_ACCOUNTS: [&str; 2] = ["system", "user"];
const RESTART_BEHAVIORS: [&str; 4] = ["basedOnReturnCode", "allow", "suppress", "force"];
const RETURN_CODE_TYPES: [&str; 5] = ["failed", "success", "softReboot", "hardReboot", "retry"];
const INTENTS: [&str; 4] = [
    "available",
    "required",
    "uninstall",
    "availableWithoutEnrollment",
];
const GROUP_TARGETS: [&str; 2] = [
    "#microsoft.graph.groupAssignmentTarget",
    "#microsoft.graph.exclusionGroupAssignmentTarget",
];
const TENANT_TARGETS: [&str; 2] = [
    "#microsoft.graph.allDevicesAssignmentTarget",
    "#microsoft.graph.allLicensedUsersAssignmentTarget",
];

fn invalid(message: impl Into<String>) -> GraphError {
    GraphError::bad_request(message)
}

pub(crate) fn require_string<'a>(
    object: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, GraphError> {
    object
        .get(name)
        .and_then(Value::as_str)
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "The property '{name}' is required and must be a non-empty string."
            ))
        })
}

fn require_enum(
    object: &Map<String, Value>,
    name: &str,
    allowed: &[&str],
) -> Result<(), GraphError> {
    let value = object.get(name).and_then(Value::as_str).unwrap_or("");
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(invalid(format!(
        "Invalid value '{value}' for '{name}'; expected one of {allowed:?}."
    )))
}

/// Checks a `win32LobApp` body and returns its writable properties.
fn validate_win32(object: &Map<String, Value>) -> Result<Map<String, Value>, GraphError> {
    let odata_type = object
        .get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !odata_type.eq_ignore_ascii_case(WIN32_LOB_APP_TYPE) {
        return Err(invalid(format!("Unsupported app type '{odata_type}'; this simulator creates only '{WIN32_LOB_APP_TYPE}'.")));
    }

    let mut properties = Map::new();
    for (key, value) in object {
        if key == "@odata.type" || READ_ONLY_PROPERTIES.contains(&key.as_str()) {
            continue;
        }
        if !WIN32_PROPERTIES.contains(&key.as_str()) {
            return Err(invalid(format!(
                "The property '{key}' does not exist on type 'microsoft.graph.win32LobApp'."
            )));
        }
        properties.insert(key.clone(), value.clone());
    }

    for name in [
        "displayName",
        "publisher",
        "installCommandLine",
        "uninstallCommandLine",
    ] {
        require_string(object, name)?;
    }

    let experience = object
        .get("installExperience")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("The property 'installExperience' is required."))?;
    require_enum(experience, "runAsAccount", &RUN_AS_ACCOUNTS)?;
    require_enum(experience, "deviceRestartBehavior", &RESTART_BEHAVIORS)?;

    let has_rules = ["rules", "detectionRules"].iter().any(|name| {
        object
            .get(*name)
            .and_then(Value::as_array)
            .is_some_and(|rules| !rules.is_empty())
    });
    if !has_rules {
        return Err(invalid(
            "A win32LobApp needs at least one detection rule in 'rules' or 'detectionRules'.",
        ));
    }

    let return_codes = object.get("returnCodes").and_then(Value::as_array);
    for code in return_codes.into_iter().flatten() {
        let code = code
            .as_object()
            .ok_or_else(|| invalid("Every item of 'returnCodes' must be an object."))?;
        require_enum(code, "type", &RETURN_CODE_TYPES)?;
    }
    Ok(properties)
}

impl Shared {
    fn render_app(&self, app: &MobileApp, now: Instant) -> Map<String, Value> {
        let publishing = model::publishing_state(app, now, self.config.app_publish_delay);
        model::mobile_app(app, publishing)
    }

    /// Handles `POST /deviceAppManagement/mobileApps` for a `win32LobApp`; returns 201.
    pub(crate) fn create_app(&self, request: &SimRequest) -> GraphResult {
        let body = json_body(request)?;
        let object = body
            .as_object()
            .ok_or_else(|| invalid("The request body must be a JSON object."))?;
        let mut properties = validate_win32(object)?;
        match properties.remove("committedContentVersion") {
            None | Some(Value::Null) => {}
            Some(value) => {
                return Err(invalid(format!(
                    "Invalid value {value} for 'committedContentVersion' on create; create the \
                     app without it, upload and commit its content, then set it with PATCH."
                )))
            }
        }
        let now = Instant::now();
        let created_at = timestamp();
        let mut state = self.lock_state();
        let app = MobileApp {
            id: state.new_id(),
            properties,
            odata_type: WIN32_LOB_APP_TYPE.to_string(),
            modified_at: created_at.clone(),
            created_at,
            assignments: Vec::new(),
            content_versions: Vec::new(),
            committed: None,
        };
        let rendered = self.render_app(&app, now);
        let location = format!(
            "{}/v1.0/deviceAppManagement/mobileApps/{}",
            self.base_url, app.id
        );
        state.apps.push(app);
        drop(state);
        let response = self.object_response(request, rendered, StatusCode::CREATED, &[])?;
        Ok(response.with_header(header::LOCATION, location))
    }

    /// Handles `GET /deviceAppManagement/mobileApps`.
    pub(crate) fn list_apps(&self, request: &SimRequest, version: ApiVersion) -> GraphResult {
        let now = Instant::now();
        let items = self
            .lock_state()
            .apps
            .iter()
            .map(|app| self.render_app(app, now))
            .collect();
        let kind = ListKind {
            version,
            context: "deviceAppManagement/mobileApps",
            type_name: "microsoft.graph.mobileApp",
            directory: false,
            select_only: &[],
            mixed_types: true,
        };
        self.list_response(request, items, kind)
    }

    /// Handles `GET /deviceAppManagement/mobileApps/{id}`.
    pub(crate) fn get_app(&self, request: &SimRequest, id: &str) -> GraphResult {
        let now = Instant::now();
        let found = self.lock_state().app_mut(id).map(|app| app.clone());
        let app = found.ok_or_else(|| GraphError::not_found("mobileApp", id))?;
        self.object_response(request, self.render_app(&app, now), StatusCode::OK, &[])
    }

    /// Handles `PATCH /deviceAppManagement/mobileApps/{id}`; returns 204.
    ///
    /// The app after the change must pass the checks of create. Setting
    /// `committedContentVersion` publishes the app `app_publish_delay` later. Fails with 400
    /// when that content version does not exist or has no file in `commitFileSuccess`.
    pub(crate) fn update_app(&self, request: &SimRequest, id: &str) -> GraphResult {
        let body = json_body(request)?;
        let patch = body
            .as_object()
            .ok_or_else(|| invalid("The request body must be a JSON object."))?;
        let now = Instant::now();
        let mut state = self.lock_state();
        let app = state
            .app_mut(id)
            .ok_or_else(|| GraphError::not_found("mobileApp", id))?;

        let mut merged = app.properties.clone();
        merged.insert("@odata.type".into(), json!(app.odata_type));
        for (key, value) in patch {
            if key != "committedContentVersion" {
                merged.insert(key.clone(), value.clone());
            }
        }
        let properties = validate_win32(&merged)?;
        let committed = match patch.get("committedContentVersion") {
            None => None,
            Some(Value::String(version)) => {
                check_committable(app, id, version)?;
                Some(version.clone())
            }
            Some(other) => {
                return Err(invalid(format!(
                    "Invalid value {other} for 'committedContentVersion'; send the id of a \
                     content version as a string, such as \"1\"."
                )))
            }
        };

        app.properties = properties;
        app.modified_at = timestamp();
        if let Some(version) = committed {
            app.committed = Some((version, now));
        }
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    /// Handles `DELETE /deviceAppManagement/mobileApps/{id}`.
    pub(crate) fn delete_app(&self, id: &str) -> GraphResult {
        let mut state = self.lock_state();
        let before = state.apps.len();
        state.apps.retain(|app| !app.id.eq_ignore_ascii_case(id));
        if state.apps.len() == before {
            return Err(GraphError::not_found("mobileApp", id));
        }
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    /// Handles `POST /deviceAppManagement/mobileApps/{id}/assign`, which replaces the
    /// app's whole assignment set.
    pub(crate) fn assign_app(&self, request: &SimRequest, id: &str) -> GraphResult {
        let body = json_body(request)?;
        let requested = body
            .get("mobileAppAssignments")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                invalid("The request body must contain a 'mobileAppAssignments' array.")
            })?
            .clone();
        let now = Instant::now();
        let delay = self.config.app_publish_delay;
        let mut state = self.lock_state();
        let publishing = state
            .app_mut(id)
            .map(|app| model::publishing_state(app, now, delay))
            .ok_or_else(|| GraphError::not_found("mobileApp", id))?;
        if publishing != "published" {
            return Err(invalid(format!(
                "The app {id} is {publishing} and cannot be assigned until its publishingState \
                 is 'published'; upload and commit its content, then PATCH \
                 committedContentVersion."
            )));
        }

        let mut assignments = Vec::new();
        let mut targets = HashSet::new();
        for item in &requested {
            let item = item
                .as_object()
                .ok_or_else(|| invalid("Every assignment must be an object."))?;
            require_enum(item, "intent", &INTENTS)?;
            let target = item
                .get("target")
                .and_then(Value::as_object)
                .ok_or_else(|| invalid("Every assignment needs a 'target'."))?;
            let target_type = target
                .get("@odata.type")
                .and_then(Value::as_str)
                .unwrap_or("");
            let key = if GROUP_TARGETS.contains(&target_type) {
                require_string(target, "groupId")?.to_lowercase()
            } else if TENANT_TARGETS.contains(&target_type) {
                target_type.to_string()
            } else {
                return Err(invalid(format!(
                    "Unsupported assignment target type '{target_type}'."
                )));
            };
            if !targets.insert(key.clone()) {
                return Err(invalid(format!(
                    "The target '{key}' is assigned more than once."
                )));
            }
            assignments.push((key, item.clone()));
        }
        let group_ids: Vec<String> = assignments
            .iter()
            .filter(|(key, _)| !key.starts_with('#'))
            .map(|(key, _)| key.clone())
            .collect();
        if let Some(missing) = group_ids.iter().find(|group| state.group(group).is_none()) {
            return Err(GraphError::not_found("group", missing));
        }
        let stored = assignments
            .into_iter()
            .enumerate()
            .map(|(index, (key, item))| {
                let id = if key.starts_with('#') {
                    format!("{}_{index}_0", app_id_prefix(id))
                } else {
                    format!("{key}_{index}_0")
                };
                json!({
                    "@odata.type": "#microsoft.graph.mobileAppAssignment",
                    "id": id,
                    "intent": item.get("intent").cloned().unwrap_or(Value::Null),
                    "target": item.get("target").cloned().unwrap_or(Value::Null),
                    "settings": item.get("settings").cloned().unwrap_or(Value::Null),
                })
            })
            .collect();
        if let Some(app) = state.app_mut(id) {
            app.assignments = stored;
        }
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    /// Handles `GET /deviceAppManagement/mobileApps/{id}/assignments`.
    pub(crate) fn list_app_assignments(
        &self,
        request: &SimRequest,
        version: ApiVersion,
        id: &str,
    ) -> GraphResult {
        let found = self
            .lock_state()
            .app_mut(id)
            .map(|app| app.assignments.clone());
        let assignments = found.ok_or_else(|| GraphError::not_found("mobileApp", id))?;
        let items = assignments
            .into_iter()
            .filter_map(|value| match value {
                Value::Object(map) => Some(map),
                _ => None,
            })
            .collect();
        let kind = ListKind {
            version,
            context: "deviceAppManagement/mobileApps('id')/assignments",
            type_name: "microsoft.graph.mobileAppAssignment",
            directory: false,
            select_only: &[],
            mixed_types: false,
        };
        self.list_response(request, items, kind)
    }
}

/// Checks that content version `version` of `app` has a file in `commitFileSuccess`.
fn check_committable(app: &MobileApp, id: &str, version: &str) -> Result<(), GraphError> {
    let content = app
        .content_versions
        .iter()
        .find(|content| content.id == version)
        .ok_or_else(|| {
            invalid(format!(
                "The app {id} has no content version '{version}'; create it with POST \
                 .../microsoft.graph.win32LobApp/contentVersions."
            ))
        })?;
    if !content.has_committed_file() {
        return Err(invalid(format!(
            "Content version '{version}' of app {id} has no file in commitFileSuccess; commit \
             a file and read it until its uploadState is commitFileSuccess."
        )));
    }
    Ok(())
}

/// Returns the current UTC time as Graph writes `createdDateTime`.
fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Returns the first group of an app id, used in ids of tenant-wide assignments.
fn app_id_prefix(app_id: &str) -> &str {
    app_id.split('-').next().unwrap_or(app_id)
}
