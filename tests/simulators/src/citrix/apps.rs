//! Application and application group endpoints.

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::error::ApiError;
use super::model;
use super::paging::{self, page, JsonBody};
use super::routes::{find_group, find_tag, ApiResult};
use super::server::Shared;
use super::state::{AppGroup, Application, CitrixState, NameValue, PriorityRef};
use crate::common::http::{SimRequest, SimResponse};

impl Shared {
    /// Routes `/ApplicationGroups…` and `/Applications…` calls.
    pub(crate) fn dispatch_applications(
        &self,
        request: &SimRequest,
        lower: &[&str],
        name: &[&str],
    ) -> SimResponse {
        let result = match (request.method.clone(), lower) {
            (Method::GET, ["applicationgroups"]) => self.list_app_groups(request),
            (Method::POST, ["applicationgroups"]) => {
                self.run_write(request, "CreateApplicationGroup", || {
                    self.create_app_group(request)
                })
            }
            (Method::GET, ["applicationgroups", _]) => self.get_app_group(name[1]),
            (Method::PATCH, ["applicationgroups", _]) => {
                self.run_write(request, "UpdateApplicationGroup", || {
                    self.edit_app_group(request, name[1])
                })
            }
            (Method::DELETE, ["applicationgroups", _]) => {
                self.run_write(request, "DeleteApplicationGroup", || {
                    self.delete_app_group(name[1])
                })
            }
            (Method::GET, ["applicationgroups", _, "applications"]) => {
                self.app_group_applications(name[1])
            }
            (Method::POST, ["applicationgroups", _, "applications"]) => {
                self.run_write(request, "AddApplicationGroupApplications", || {
                    self.add_app_group_applications(request, name[1])
                })
            }
            (Method::DELETE, ["applicationgroups", _, "applications", _]) => {
                self.run_write(request, "RemoveApplicationGroupApplication", || {
                    self.remove_app_group_application(name[1], name[3])
                })
            }

            (Method::GET, ["applications"]) => self.list_applications(request),
            (Method::POST, ["applications"]) => self.run_write(request, "AddApplications", || {
                self.add_applications(request)
            }),
            (Method::GET, ["applications", _]) => self.get_application(name[1]),
            (Method::PATCH, ["applications", _]) => {
                self.run_write(request, "UpdateApplication", || {
                    self.edit_application(request, name[1])
                })
            }
            (Method::DELETE, ["applications", _]) => {
                self.run_write(request, "DeleteApplication", || {
                    self.delete_application(name[1])
                })
            }
            // The simulator does not track which application a session runs, so the list is
            // always empty.
            (Method::GET, ["applications", _, "sessions"]) => {
                let state = self.lock_state();
                find_application(&state, name[1]).map(|_| paging::all(Vec::new()))
            }
            _ => Err(self.unknown_route(request)),
        };
        result.unwrap_or_else(ApiError::into_response)
    }

    fn list_app_groups(&self, request: &SimRequest) -> ApiResult {
        let state = self.lock_state();
        page(&state.app_groups, request, |g| model::app_group(&state, g))
    }

    fn get_app_group(&self, name_or_id: &str) -> ApiResult {
        let state = self.lock_state();
        let body = model::app_group(
            &state,
            &state.app_groups[find_app_group(&state, name_or_id)?],
        );
        Ok(SimResponse::json(StatusCode::OK, &body))
    }

    fn create_app_group(&self, request: &SimRequest) -> ApiResult {
        let body = JsonBody::parse(&request.body)?;
        let name = required_name(&body)?;
        let mut state = self.lock_state();
        if state.app_group_index_of(&name).is_some() {
            return Err(ApiError::conflict("ApplicationGroup", &name));
        }
        let restrict_to_tag = match body.string("RestrictToTag")?.filter(|t| !t.is_empty()) {
            Some(tag) => Some(state.tags[find_tag(&state, &tag)?].id.clone()),
            None => None,
        };
        let delivery_groups = priority_refs(&state, &body, "DeliveryGroups")?.unwrap_or_default();
        let group = AppGroup {
            id: state.new_id(),
            uid: state.new_uid(),
            name,
            description: body.string("Description")?,
            enabled: body.boolean("Enabled")?.unwrap_or(true),
            session_sharing_enabled: body.boolean("SessionSharingEnabled")?.unwrap_or(false),
            restrict_to_tag,
            delivery_groups,
            metadata: merge_metadata(Vec::new(), &body)?,
        };
        let rendered = model::app_group(&state, &group);
        state.app_groups.push(group);
        Ok(SimResponse::json(StatusCode::CREATED, &rendered))
    }

    /// Edits an application group. Every field is validated before any is changed.
    fn edit_app_group(&self, request: &SimRequest, name_or_id: &str) -> ApiResult {
        let body = JsonBody::parse(&request.body)?;
        let mut state = self.lock_state();
        let index = find_app_group(&state, name_or_id)?;
        let name = body.string("Name")?;
        if let Some(name) = &name {
            if state
                .app_group_index_of(name)
                .is_some_and(|other| other != index)
            {
                return Err(ApiError::conflict("ApplicationGroup", name));
            }
        }
        let restrict_to_tag = match body.has("RestrictToTag") {
            true => Some(
                match body.string("RestrictToTag")?.filter(|t| !t.is_empty()) {
                    Some(tag) => Some(state.tags[find_tag(&state, &tag)?].id.clone()),
                    None => None,
                },
            ),
            false => None,
        };
        let delivery_groups = priority_refs(&state, &body, "DeliveryGroups")?;
        let metadata = merge_metadata(state.app_groups[index].metadata.clone(), &body)?;
        let description = match body.has("Description") {
            true => Some(body.string("Description")?),
            false => None,
        };
        let enabled = body.boolean("Enabled")?;
        let sharing = body.boolean("SessionSharingEnabled")?;

        let group = &mut state.app_groups[index];
        group.metadata = metadata;
        if let Some(name) = name {
            group.name = name;
        }
        if let Some(tag) = restrict_to_tag {
            group.restrict_to_tag = tag;
        }
        if let Some(refs) = delivery_groups {
            group.delivery_groups = refs;
        }
        if let Some(description) = description {
            group.description = description;
        }
        if let Some(enabled) = enabled {
            group.enabled = enabled;
        }
        if let Some(sharing) = sharing {
            group.session_sharing_enabled = sharing;
        }
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    fn delete_app_group(&self, name_or_id: &str) -> ApiResult {
        let mut state = self.lock_state();
        let index = find_app_group(&state, name_or_id)?;
        let group = state.app_groups.remove(index);
        for app in &mut state.applications {
            app.application_groups.retain(|id| *id != group.id);
        }
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    fn app_group_applications(&self, name_or_id: &str) -> ApiResult {
        let state = self.lock_state();
        let id = &state.app_groups[find_app_group(&state, name_or_id)?].id;
        let items = state
            .applications
            .iter()
            .filter(|a| a.application_groups.contains(id))
            .map(model::application)
            .collect();
        Ok(paging::all(items))
    }

    /// Handles `ApplicationGroupAddApplicationsRequestModel` (`ExistingApplications`,
    /// `NewApplications`).
    fn add_app_group_applications(&self, request: &SimRequest, name_or_id: &str) -> ApiResult {
        let body = JsonBody::parse(&request.body)?;
        let mut state = self.lock_state();
        let group_id = state.app_groups[find_app_group(&state, name_or_id)?]
            .id
            .clone();
        let plan = AddPlan::validate(&state, &body, Vec::new(), vec![group_id])?;
        plan.apply(&mut state);
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    fn remove_app_group_application(&self, group: &str, application: &str) -> ApiResult {
        let mut state = self.lock_state();
        let group_id = state.app_groups[find_app_group(&state, group)?].id.clone();
        let index = find_application(&state, application)?;
        let groups = &mut state.applications[index].application_groups;
        let Some(position) = groups.iter().position(|id| *id == group_id) else {
            return Err(ApiError::not_found("Application", application)
                .with_parameter("ApplicationGroup", group));
        };
        groups.remove(position);
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    fn list_applications(&self, request: &SimRequest) -> ApiResult {
        let state = self.lock_state();
        let folder = request
            .query
            .get("applicationfolder")
            .map(|f| normalise_folder(f));
        let apps: Vec<&Application> = state
            .applications
            .iter()
            .filter(|a| match &folder {
                Some(folder) => a
                    .folder
                    .as_deref()
                    .unwrap_or("")
                    .eq_ignore_ascii_case(folder),
                None => true,
            })
            .collect();
        page(&apps, request, |a| model::application(a))
    }

    fn get_application(&self, name_or_id: &str) -> ApiResult {
        let state = self.lock_state();
        let body = model::application(&state.applications[find_application(&state, name_or_id)?]);
        Ok(SimResponse::json(StatusCode::OK, &body))
    }

    /// Handles `AddApplicationsRequestModel`. Like the real service, the response has no
    /// body and so no id: clients read the application back by name.
    fn add_applications(&self, request: &SimRequest) -> ApiResult {
        let body = JsonBody::parse(&request.body)?;
        let mut state = self.lock_state();
        let delivery_groups = priority_refs(&state, &body, "DeliveryGroups")?.unwrap_or_default();
        let app_groups = resolve_app_groups(&state, &body, "ApplicationGroups")?;
        let plan = AddPlan::validate(&state, &body, delivery_groups, app_groups)?;
        plan.apply(&mut state);
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    /// Handles `EditApplicationRequestModel`. Omitted fields stay and a supplied
    /// `DeliveryGroups` or `ApplicationGroups` replaces the whole list. `Metadata` entries
    /// are set by name, and an empty or null value removes the entry. Every field is
    /// validated before any is changed.
    fn edit_application(&self, request: &SimRequest, name_or_id: &str) -> ApiResult {
        let body = JsonBody::parse(&request.body)?;
        let mut state = self.lock_state();
        let index = find_application(&state, name_or_id)?;
        let delivery_groups = priority_refs(&state, &body, "DeliveryGroups")?;
        let app_groups = match body.has("ApplicationGroups") {
            true => Some(resolve_app_groups(&state, &body, "ApplicationGroups")?),
            false => None,
        };
        let folder = match body.string("ApplicationFolder")? {
            Some(folder) => normalise_folder_option(&folder),
            None => state.applications[index].folder.clone(),
        };
        let name = body
            .string("Name")?
            .unwrap_or_else(|| state.applications[index].name.clone());
        let clash = state.applications.iter().enumerate().any(|(other, a)| {
            other != index && a.name.eq_ignore_ascii_case(&name) && a.folder == folder
        });
        if clash {
            return Err(ApiError::conflict("Application", &name));
        }
        let metadata = merge_metadata(state.applications[index].metadata.clone(), &body)?;
        let published_name = body.string("PublishedName")?;
        let description = match body.has("Description") {
            true => Some(body.string("Description")?),
            false => None,
        };
        let client_folder = match body.has("ClientFolder") {
            true => Some(body.string("ClientFolder")?),
            false => None,
        };
        let enabled = body.boolean("Enabled")?;
        let visible = body.boolean("Visible")?;
        let installed = body.object("InstalledAppProperties")?.unwrap_or_default();
        let executable = installed.string("CommandLineExecutable")?;
        let arguments = installed.string("CommandLineArguments")?;
        let working_directory = installed.string("WorkingDirectory")?;

        let app = &mut state.applications[index];
        app.name = name;
        app.folder = folder;
        app.metadata = metadata;
        if let Some(refs) = delivery_groups {
            app.delivery_groups = refs;
        }
        if let Some(groups) = app_groups {
            app.application_groups = groups;
        }
        if let Some(value) = published_name {
            app.published_name = value;
        }
        if let Some(value) = description {
            app.description = value;
        }
        if let Some(value) = client_folder {
            app.client_folder = value;
        }
        if let Some(value) = enabled {
            app.enabled = value;
        }
        if let Some(value) = visible {
            app.visible = value;
        }
        if let Some(value) = executable {
            app.command_line_executable = value;
        }
        if let Some(value) = arguments {
            app.command_line_arguments = value;
        }
        if let Some(value) = working_directory {
            app.working_directory = value;
        }
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    fn delete_application(&self, name_or_id: &str) -> ApiResult {
        let mut state = self.lock_state();
        let index = find_application(&state, name_or_id)?;
        state.applications.remove(index);
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }
}

/// A validated `NewApplications` / `ExistingApplications` request, applied in one step so a
/// rejected request changes nothing.
struct AddPlan {
    new_apps: Vec<Application>,
    existing: Vec<usize>,
    delivery_groups: Vec<PriorityRef>,
    app_groups: Vec<String>,
}

impl AddPlan {
    fn validate(
        state: &CitrixState,
        body: &JsonBody,
        delivery_groups: Vec<PriorityRef>,
        app_groups: Vec<String>,
    ) -> Result<Self, ApiError> {
        let mut existing = Vec::new();
        for name in body.strings("ExistingApplications")?.unwrap_or_default() {
            existing.push(find_application(state, &name)?);
        }
        let mut new_apps: Vec<Application> = Vec::new();
        for item in body.array("NewApplications")?.cloned().unwrap_or_default() {
            let item = JsonBody::from_value(item)?;
            let mut app = new_application(&item)?;
            let clash = state
                .applications
                .iter()
                .chain(new_apps.iter())
                .any(|a| a.name.eq_ignore_ascii_case(&app.name) && a.folder == app.folder);
            if clash {
                return Err(ApiError::conflict("Application", &app.full_path()));
            }
            for group in resolve_app_groups(state, &item, "ApplicationGroups")? {
                if !app.application_groups.contains(&group) {
                    app.application_groups.push(group);
                }
            }
            new_apps.push(app);
        }
        if new_apps.is_empty() && existing.is_empty() {
            return Err(ApiError::bad_request(
                "NewApplications or ExistingApplications must list at least one application.",
            ));
        }
        Ok(Self {
            new_apps,
            existing,
            delivery_groups,
            app_groups,
        })
    }

    fn apply(self, state: &mut CitrixState) {
        let mut indexes = self.existing;
        for mut app in self.new_apps {
            app.id = state.new_id();
            app.uid = state.new_uid();
            state.applications.push(app);
            indexes.push(state.applications.len() - 1);
        }
        for index in indexes {
            let app = &mut state.applications[index];
            for reference in &self.delivery_groups {
                if !app.delivery_groups.iter().any(|r| r.id == reference.id) {
                    app.delivery_groups.push(reference.clone());
                }
            }
            for group in &self.app_groups {
                if !app.application_groups.contains(group) {
                    app.application_groups.push(group.clone());
                }
            }
        }
    }
}

/// Builds an application from a `CreateApplicationRequestModel`; id and uid are set later.
fn new_application(item: &JsonBody) -> Result<Application, ApiError> {
    let name = required_name(item)?;
    let application_type = item
        .string("ApplicationType")?
        .unwrap_or_else(|| "HostedOnDesktop".to_string());
    let installed = item.object("InstalledAppProperties")?.unwrap_or_default();
    let executable = installed
        .string("CommandLineExecutable")?
        .unwrap_or_default();
    if application_type == "HostedOnDesktop" && executable.trim().is_empty() {
        return Err(ApiError::bad_request(format!(
            "InstalledAppProperties.CommandLineExecutable is required for application '{name}'."
        )));
    }
    Ok(Application {
        id: String::new(),
        uid: 0,
        published_name: item
            .string("PublishedName")?
            .unwrap_or_else(|| name.clone()),
        folder: item
            .string("ApplicationFolder")?
            .and_then(|f| normalise_folder_option(&f)),
        description: item.string("Description")?,
        application_type,
        command_line_executable: executable,
        command_line_arguments: installed
            .string("CommandLineArguments")?
            .unwrap_or_default(),
        working_directory: installed.string("WorkingDirectory")?.unwrap_or_default(),
        client_folder: item.string("ClientFolder")?,
        enabled: item.boolean("Enabled")?.unwrap_or(true),
        visible: item.boolean("Visible")?.unwrap_or(true),
        metadata: merge_metadata(Vec::new(), item)?,
        delivery_groups: Vec::new(),
        application_groups: Vec::new(),
        name,
    })
}

fn required_name(body: &JsonBody) -> Result<String, ApiError> {
    body.string("Name")?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("Name is required."))
}

/// Turns `Folder|Sub\` or `Folder\Sub` into `Folder\Sub`.
fn normalise_folder(folder: &str) -> String {
    folder.replace('|', "\\").trim_matches('\\').to_string()
}

fn normalise_folder_option(folder: &str) -> Option<String> {
    let folder = normalise_folder(folder);
    (!folder.is_empty()).then_some(folder)
}

fn find_app_group(state: &CitrixState, name_or_id: &str) -> Result<usize, ApiError> {
    state
        .app_group_index_of(name_or_id)
        .ok_or_else(|| ApiError::not_found("ApplicationGroup", name_or_id))
}

fn find_application(state: &CitrixState, name_or_id: &str) -> Result<usize, ApiError> {
    state
        .application_index_of(name_or_id)
        .ok_or_else(|| ApiError::not_found("Application", name_or_id))
}

/// Resolves `[{Item, Priority}]` delivery group references; `None` when the key is absent.
fn priority_refs(
    state: &CitrixState,
    body: &JsonBody,
    key: &str,
) -> Result<Option<Vec<PriorityRef>>, ApiError> {
    let Some(items) = body.array(key)? else {
        return Ok(if body.has(key) {
            Some(Vec::new())
        } else {
            None
        });
    };
    let mut refs = Vec::new();
    for item in items {
        let item = JsonBody::from_value(item.clone())?;
        let name = item
            .string("Item")?
            .ok_or_else(|| ApiError::bad_request(format!("{key} entries need an Item.")))?;
        let index = find_group(state, &name)?;
        refs.push(PriorityRef {
            id: state.delivery_groups[index].id.clone(),
            priority: item.get("Priority").and_then(Value::as_i64).unwrap_or(0),
        });
    }
    Ok(Some(refs))
}

fn resolve_app_groups(
    state: &CitrixState,
    body: &JsonBody,
    key: &str,
) -> Result<Vec<String>, ApiError> {
    let mut ids = Vec::new();
    for name in body.strings(key)?.unwrap_or_default() {
        ids.push(state.app_groups[find_app_group(state, &name)?].id.clone());
    }
    Ok(ids)
}

/// Applies `Metadata` entries by name: a value sets the entry, an empty or null value
/// removes it.
fn merge_metadata(
    mut current: Vec<NameValue>,
    body: &JsonBody,
) -> Result<Vec<NameValue>, ApiError> {
    for item in body.array("Metadata")?.cloned().unwrap_or_default() {
        let item = JsonBody::from_value(item)?;
        let name = item
            .string("Name")?
            .ok_or_else(|| ApiError::bad_request("Metadata entries need a Name."))?;
        let value = item.string("Value")?.unwrap_or_default();
        current.retain(|entry| !entry.name.eq_ignore_ascii_case(&name));
        if !value.is_empty() {
            current.push(NameValue { name, value });
        }
    }
    Ok(current)
}
