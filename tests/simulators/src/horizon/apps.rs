//! Application pools: list, get, create (on a desktop pool or a farm), update and delete.
//!
//! Create follows `ApplicationPoolCreateSpecV2` (`name` and `executable_path` required,
//! exactly one of `desktop_pool_id` and `farm_id`), update follows
//! `ApplicationPoolUpdateSpec` (`enabled`, `enable_pre_launch` and `executable_path`
//! required), Horizon Server REST API 2111.

use axum::http::{header, StatusCode};
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::filter::{FieldRule, ANY};
use super::model;
use super::paging::ListQuery;
use super::server::Shared;
use super::state::{ApplicationPool, HorizonState};
use crate::common::http::{SimRequest, SimResponse};

/// Filterable fields of application pools.
const APPLICATION_POOL_FIELDS: &[FieldRule] = &[
    ("id", ANY),
    ("name", ANY),
    ("display_name", ANY),
    ("desktop_pool_id", ANY),
    ("farm_id", ANY),
    ("enabled", ANY),
    ("executable_path", ANY),
    ("access_group_id", ANY),
];

/// Maximum length of an application pool name.
const MAX_NAME_CHARS: usize = 64;

const MULTI_SESSION_MODES: [&str; 4] = [
    "DISABLED",
    "ENABLED_DEFAULT_OFF",
    "ENABLED_DEFAULT_ON",
    "ENABLED_ENFORCED",
];

/// Body of create, update and patch requests; fields the simulator does not store are
/// ignored.
#[derive(Debug, Default, Deserialize)]
struct ApplicationPoolSpec {
    name: Option<String>,
    display_name: Option<String>,
    description: Option<String>,
    enabled: Option<bool>,
    executable_path: Option<String>,
    parameters: Option<String>,
    start_folder: Option<String>,
    publisher: Option<String>,
    version: Option<String>,
    desktop_pool_id: Option<String>,
    farm_id: Option<String>,
    multi_session_mode: Option<String>,
    max_multi_sessions: Option<i64>,
    enable_pre_launch: Option<bool>,
    shortcut_locations: Option<Vec<String>>,
    category_folder_name: Option<String>,
}

impl ApplicationPoolSpec {
    /// Checks the enum and text fields every request shares.
    fn check_common(&self) -> Result<(), ApiError> {
        if let Some(mode) = &self.multi_session_mode {
            if !MULTI_SESSION_MODES.contains(&mode.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "Invalid multi_session_mode {mode:?}."
                )));
            }
        }
        for location in self.shortcut_locations.iter().flatten() {
            if location != "START_MENU" && location != "DESKTOP" {
                return Err(ApiError::bad_request(format!(
                    "Invalid shortcut location {location:?}: use START_MENU or DESKTOP."
                )));
            }
        }
        if self.executable_path.as_deref() == Some("") {
            return Err(ApiError::bad_request("executable_path must not be empty."));
        }
        Ok(())
    }
}

/// Checks a new pool name: 1 to 64 characters of letters, digits, `-` and `_`.
fn check_name(name: &str) -> Result<(), ApiError> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || !valid_chars {
        return Err(ApiError::bad_request(format!(
            "Invalid name {name:?}: use 1 to {MAX_NAME_CHARS} letters, digits, '-' or '_'."
        )));
    }
    Ok(())
}

/// Checks that an application pool can run on the given desktop pool or farm.
fn check_host(state: &HorizonState, spec: &ApplicationPoolSpec) -> Result<(), ApiError> {
    match (&spec.desktop_pool_id, &spec.farm_id) {
        (Some(pool_id), None) => {
            let pool = state.desktop_pool(pool_id).ok_or_else(|| {
                ApiError::bad_request(format!("Desktop pool {pool_id} not found."))
            })?;
            if pool.pool_type == "RDS" {
                return Err(ApiError::bad_request(format!(
                    "Desktop pool {pool_id} is an RDS pool; create the application pool on its farm."
                )));
            }
            if pool.session_type == "DESKTOP" {
                return Err(ApiError::bad_request(format!(
                    "Desktop pool {pool_id} does not support application sessions."
                )));
            }
            Ok(())
        }
        (None, Some(farm_id)) => match state.farm(farm_id) {
            Some(_) => Ok(()),
            None => Err(ApiError::bad_request(format!("Farm {farm_id} not found."))),
        },
        _ => Err(ApiError::bad_request(
            "Exactly one of desktop_pool_id and farm_id is required.",
        )),
    }
}

fn parse_spec(request: &SimRequest) -> Result<ApplicationPoolSpec, ApiError> {
    let spec: ApplicationPoolSpec =
        serde_json::from_slice(&request.body).map_err(ApiError::invalid_body)?;
    spec.check_common()?;
    Ok(spec)
}

impl Shared {
    pub(crate) fn list_application_pools(&self, request: &SimRequest) -> ApiResult {
        let query = ListQuery::parse(request, APPLICATION_POOL_FIELDS)?;
        let options = self.render_options();
        let state = self.lock_state();
        let items = state
            .application_pools
            .iter()
            .map(|a| model::application_pool(a, &state.access_group_id, options))
            .collect();
        Ok(query.respond(items))
    }

    pub(crate) fn get_application_pool(&self, id: &str) -> ApiResult {
        let state = self.lock_state();
        let pool = state
            .application_pools
            .iter()
            .find(|a| a.id == id)
            .ok_or_else(|| ApiError::not_found("Application pool", id))?;
        let value = model::application_pool(pool, &state.access_group_id, self.render_options());
        Ok(SimResponse::json(StatusCode::OK, &value))
    }

    /// Creates an application pool and returns 201 with no body and a `Location` header.
    // NOTE: the 2111 reference documents 201 without a body. The Location header is an
    // assumption, so clients should also be able to find the new pool by name.
    pub(crate) fn create_application_pool(&self, request: &SimRequest) -> ApiResult {
        let spec = parse_spec(request)?;
        let name = spec
            .name
            .clone()
            .ok_or_else(|| ApiError::bad_request("name is required."))?;
        check_name(&name)?;
        let executable_path = spec
            .executable_path
            .clone()
            .ok_or_else(|| ApiError::bad_request("executable_path is required."))?;

        let mut state = self.lock_state();
        check_host(&state, &spec)?;
        if state
            .application_pools
            .iter()
            .any(|a| a.name.eq_ignore_ascii_case(&name))
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("An application pool named {name} already exists."),
            ));
        }

        let id = state.new_id();
        state.application_pools.push(ApplicationPool {
            id: id.clone(),
            display_name: spec.display_name.unwrap_or_else(|| name.clone()),
            name,
            description: spec.description,
            enabled: spec.enabled.unwrap_or(true),
            executable_path,
            parameters: spec.parameters,
            start_folder: spec.start_folder,
            publisher: spec.publisher,
            version: spec.version,
            desktop_pool_id: spec.desktop_pool_id,
            farm_id: spec.farm_id,
            multi_session_mode: multi_session_mode(spec.multi_session_mode.as_deref()),
            max_multi_sessions: spec.max_multi_sessions,
            enable_pre_launch: spec.enable_pre_launch.unwrap_or(false),
            shortcut_locations: spec.shortcut_locations.unwrap_or_default(),
            category_folder_name: spec.category_folder_name,
        });
        let location = format!("/rest/inventory/v1/application-pools/{id}");
        Ok(SimResponse::empty(StatusCode::CREATED).with_header(header::LOCATION, location))
    }

    /// Updates an application pool: PUT replaces the updatable fields (required ones must
    /// be sent), PATCH changes only the fields sent. Name and host cannot change.
    pub(crate) fn update_application_pool(
        &self,
        request: &SimRequest,
        id: &str,
        patch: bool,
    ) -> ApiResult {
        let spec = parse_spec(request)?;
        if !patch
            && (spec.enabled.is_none()
                || spec.enable_pre_launch.is_none()
                || spec.executable_path.is_none())
        {
            return Err(ApiError::bad_request(
                "enabled, enable_pre_launch and executable_path are required.",
            ));
        }
        let mut state = self.lock_state();
        let pool = state
            .application_pools
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| ApiError::not_found("Application pool", id))?;
        if let Some(name) = &spec.name {
            if name != &pool.name {
                return Err(ApiError::bad_request("name cannot be changed."));
            }
        }
        apply_update(pool, spec, patch);
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    /// Deletes an application pool and its entitlements.
    pub(crate) fn delete_application_pool(&self, id: &str) -> ApiResult {
        let mut state = self.lock_state();
        let before = state.application_pools.len();
        state.application_pools.retain(|a| a.id != id);
        if state.application_pools.len() == before {
            return Err(ApiError::not_found("Application pool", id));
        }
        state.application_entitlements.remove(id);
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }
}

fn multi_session_mode(mode: Option<&str>) -> &'static str {
    MULTI_SESSION_MODES
        .iter()
        .find(|m| Some(**m) == mode)
        .copied()
        .unwrap_or("DISABLED")
}

/// Copies the sent fields into `pool`; with `patch` unset, optional fields that were not
/// sent are cleared.
fn apply_update(pool: &mut ApplicationPool, spec: ApplicationPoolSpec, patch: bool) {
    fn set<T>(target: &mut Option<T>, value: Option<T>, patch: bool) {
        if value.is_some() || !patch {
            *target = value;
        }
    }
    if let Some(enabled) = spec.enabled {
        pool.enabled = enabled;
    }
    if let Some(path) = spec.executable_path {
        pool.executable_path = path;
    }
    if let Some(pre_launch) = spec.enable_pre_launch {
        pool.enable_pre_launch = pre_launch;
    }
    if let Some(display_name) = spec.display_name {
        pool.display_name = display_name;
    }
    if spec.multi_session_mode.is_some() || !patch {
        pool.multi_session_mode = multi_session_mode(spec.multi_session_mode.as_deref());
    }
    if spec.shortcut_locations.is_some() || !patch {
        pool.shortcut_locations = spec.shortcut_locations.unwrap_or_default();
    }
    set(&mut pool.description, spec.description, patch);
    set(&mut pool.parameters, spec.parameters, patch);
    set(&mut pool.start_folder, spec.start_folder, patch);
    set(&mut pool.publisher, spec.publisher, patch);
    set(&mut pool.version, spec.version, patch);
    set(&mut pool.max_multi_sessions, spec.max_multi_sessions, patch);
    set(
        &mut pool.category_folder_name,
        spec.category_folder_name,
        patch,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        let long = "a".repeat(65);
        let cases = [
            ("gw-epic_2024-3-1", true),
            ("", false),
            ("has space", false),
            ("dots.not.allowed", false),
            (long.as_str(), false),
        ];
        for (name, ok) in cases {
            assert_eq!(check_name(name).is_ok(), ok, "{name:?}");
        }
    }
}
