//! Entra ID security groups and their members.
//!
//! Members are added with `POST /groups/{id}/members/$ref` and an `@odata.id` that names a
//! directory object. Adding a current member gets 400 and an unknown object 404 (Microsoft
//! Graph v1.0 "Add members"). Removal with `DELETE /groups/{id}/members/{id}/$ref` gets 404
//! when the object is not a member. Member lists lag writes by `membership_lag`.

use std::time::Instant;

use axum::http::{header, StatusCode};
use serde_json::{json, Map, Value};

use super::error::{GraphError, GraphResult};
use super::model::{self, ApiVersion};
use super::routes::{json_body, reject_skip, ListKind};
use super::server::Shared;
use super::state::{GraphState, Group, Membership};
use crate::common::http::{SimRequest, SimResponse};

/// Properties `POST /groups` accepts.
const GROUP_CREATE_PROPERTIES: [&str; 6] = [
    "displayName",
    "description",
    "mailEnabled",
    "mailNickname",
    "securityEnabled",
    "groupTypes",
];

/// Properties `PATCH /groups/{id}` accepts.
const GROUP_UPDATE_PROPERTIES: [&str; 3] = ["displayName", "description", MEMBERS_BIND];

/// Annotation that adds members in `PATCH /groups/{id}`.
const MEMBERS_BIND: &str = "members@odata.bind";

/// Maximum number of members one `PATCH /groups/{id}` may add (Microsoft Graph v1.0).
const MAX_MEMBERS_PER_PATCH: usize = 20;

/// Longest `mailNickname` Entra ID accepts.
const MAX_MAIL_NICKNAME: usize = 64;

/// Message of the 400 for adding a current member, as Entra ID words it.
pub const ALREADY_A_MEMBER: &str = "One or more added object references already exist for the \
following modified properties: 'members'.";

fn invalid_property(name: &str) -> GraphError {
    GraphError::directory_bad_request(format!(
        "Invalid value specified for property '{name}' of resource 'Group'."
    ))
}

/// Checks a `mailNickname`: 1 to 64 ASCII characters without spaces or `@()\[]";:<>,`.
fn valid_mail_nickname(nickname: &str) -> bool {
    let forbidden = "@()\\[]\";:<>, ";
    !nickname.is_empty()
        && nickname.len() <= MAX_MAIL_NICKNAME
        && nickname
            .chars()
            .all(|c| c.is_ascii() && !c.is_ascii_control() && !forbidden.contains(c))
}

/// Returns the object id at the end of an `@odata.id` reference URL.
fn referenced_id(reference: &str) -> Option<String> {
    let (collection, id) = reference.trim_end_matches('/').rsplit_once('/')?;
    let collection = collection.rsplit('/').next()?;
    let known = ["directoryObjects", "users", "devices", "groups"]
        .iter()
        .any(|name| name.eq_ignore_ascii_case(collection));
    (known && !id.is_empty()).then(|| id.to_lowercase())
}

/// Renders a directory object by id with its `@odata.type`.
fn directory_object(state: &GraphState, id: &str) -> Option<Map<String, Value>> {
    if let Some(user) = state.users.iter().find(|u| u.id == id) {
        return Some(model::user(user));
    }
    if let Some(device) = state.devices.iter().find(|d| d.id == id) {
        return Some(model::device(device));
    }
    state.group(id).map(|group| {
        let mut map = model::group(group);
        map.insert("@odata.type".into(), json!("#microsoft.graph.group"));
        map
    })
}

impl Shared {
    /// Handles `GET /groups`.
    pub(crate) fn list_groups(&self, request: &SimRequest, version: ApiVersion) -> GraphResult {
        reject_skip(request)?;
        let items = self.lock_state().groups.iter().map(model::group).collect();
        let kind = ListKind {
            version,
            context: "groups",
            type_name: "microsoft.graph.group",
            directory: true,
            select_only: &[],
            mixed_types: false,
        };
        self.list_response(request, items, kind)
    }

    /// Handles `GET /groups/{id}`.
    pub(crate) fn get_group(&self, request: &SimRequest, id: &str) -> GraphResult {
        let found = self.lock_state().group(id).map(model::group);
        let object = found.ok_or_else(|| GraphError::directory_not_found(id))?;
        self.object_response(request, object, StatusCode::OK, &[])
    }

    /// Handles `POST /groups`: creates a security group and returns 201 with it.
    pub(crate) fn create_group(&self, request: &SimRequest) -> GraphResult {
        let body = json_body(request)?;
        let object = body.as_object().ok_or_else(|| {
            GraphError::directory_bad_request("The request body must be a JSON object.")
        })?;
        if let Some(unknown) = object
            .keys()
            .find(|key| !GROUP_CREATE_PROPERTIES.contains(&key.as_str()))
        {
            return Err(GraphError::directory_bad_request(format!(
                "Property '{unknown}' is not supported when creating a group with this simulator."
            )));
        }
        let display_name = object
            .get("displayName")
            .and_then(Value::as_str)
            .filter(|name| !name.trim().is_empty())
            .ok_or_else(|| invalid_property("displayName"))?;
        let mail_nickname = object
            .get("mailNickname")
            .and_then(Value::as_str)
            .filter(|nickname| valid_mail_nickname(nickname))
            .ok_or_else(|| invalid_property("mailNickname"))?;
        let mail_enabled = object
            .get("mailEnabled")
            .and_then(Value::as_bool)
            .ok_or_else(|| invalid_property("mailEnabled"))?;
        let security_enabled = object
            .get("securityEnabled")
            .and_then(Value::as_bool)
            .ok_or_else(|| invalid_property("securityEnabled"))?;
        let unified = object
            .get("groupTypes")
            .and_then(Value::as_array)
            .is_some_and(|types| !types.is_empty());
        if mail_enabled || unified || !security_enabled {
            return Err(GraphError::directory_bad_request(
                "Only security groups can be created here: set securityEnabled to true, \
                 mailEnabled to false and leave groupTypes empty.",
            ));
        }
        let description = object
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string);

        let mut state = self.lock_state();
        let group = Group {
            id: state.new_id(),
            display_name: display_name.to_string(),
            description,
            mail_nickname: mail_nickname.to_string(),
            mail_enabled,
            security_enabled,
            members: Vec::new(),
        };
        let rendered = model::group(&group);
        let location = format!("{}/v1.0/groups/{}", self.base_url, group.id);
        state.groups.push(group);
        drop(state);
        let response = self.object_response(request, rendered, StatusCode::CREATED, &[])?;
        Ok(response.with_header(header::LOCATION, location))
    }

    /// Handles `PATCH /groups/{id}`: updates `displayName` and `description`, and adds up
    /// to 20 members from `members@odata.bind`. When one member cannot be added, the
    /// request fails and changes nothing (Microsoft Graph v1.0 "Add members").
    pub(crate) fn update_group(&self, request: &SimRequest, group_id: &str) -> GraphResult {
        let body = json_body(request)?;
        let object = body.as_object().ok_or_else(|| {
            GraphError::directory_bad_request("The request body must be a JSON object.")
        })?;
        if let Some(unknown) = object
            .keys()
            .find(|key| !GROUP_UPDATE_PROPERTIES.contains(&key.as_str()))
        {
            return Err(GraphError::directory_bad_request(format!(
                "Property '{unknown}' is not supported when updating a group with this simulator."
            )));
        }
        let binds = match object.get(MEMBERS_BIND) {
            None => Vec::new(),
            Some(value) => value
                .as_array()
                .ok_or_else(|| invalid_property(MEMBERS_BIND))?
                .iter()
                .map(|item| {
                    item.as_str()
                        .and_then(referenced_id)
                        .ok_or_else(|| invalid_property(MEMBERS_BIND))
                })
                .collect::<Result<Vec<String>, GraphError>>()?,
        };
        if binds.len() > MAX_MEMBERS_PER_PATCH {
            return Err(GraphError::directory_bad_request(format!(
                "{} members in one request; the limit is {MAX_MEMBERS_PER_PATCH}.",
                binds.len()
            )));
        }

        let mut state = self.lock_state();
        let group = state
            .group(group_id)
            .ok_or_else(|| GraphError::directory_not_found(group_id))?;
        let current = group.current_members();
        if let Some(missing) = binds
            .iter()
            .find(|id| state.directory_object_type(id).is_none())
        {
            return Err(GraphError::directory_not_found(missing));
        }
        let mut seen = std::collections::HashSet::new();
        let duplicate = binds
            .iter()
            .any(|id| current.contains(id) || !seen.insert(id.as_str()));
        if duplicate {
            return Err(GraphError::directory_bad_request(ALREADY_A_MEMBER));
        }

        let group = state
            .group_mut(group_id)
            .ok_or_else(|| GraphError::directory_not_found(group_id))?;
        if let Some(name) = object.get("displayName").and_then(Value::as_str) {
            group.display_name = name.to_string();
        }
        if let Some(description) = object.get("description") {
            group.description = description.as_str().map(str::to_string);
        }
        let now = Instant::now();
        for object_id in binds {
            group.members.push(Membership {
                object_id,
                added: now,
                removed: None,
            });
        }
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    /// Handles `DELETE /groups/{id}`.
    pub(crate) fn delete_group(&self, id: &str) -> GraphResult {
        let mut state = self.lock_state();
        let before = state.groups.len();
        state
            .groups
            .retain(|group| !group.id.eq_ignore_ascii_case(id));
        if state.groups.len() == before {
            return Err(GraphError::directory_not_found(id));
        }
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    /// Handles `GET /groups/{id}/members`, which shows changes only after `membership_lag`.
    pub(crate) fn list_members(
        &self,
        request: &SimRequest,
        version: ApiVersion,
        id: &str,
    ) -> GraphResult {
        reject_skip(request)?;
        let now = Instant::now();
        let lag = self.config.membership_lag;
        let items = {
            let state = self.lock_state();
            let group = state
                .group(id)
                .ok_or_else(|| GraphError::directory_not_found(id))?;
            group
                .members
                .iter()
                .filter(|membership| membership.is_visible(now, lag))
                .filter_map(|membership| directory_object(&state, &membership.object_id))
                .collect()
        };
        let kind = ListKind {
            version,
            context: "directoryObjects",
            type_name: "microsoft.graph.directoryObject",
            directory: true,
            select_only: &[],
            mixed_types: true,
        };
        self.list_response(request, items, kind)
    }

    /// Handles `POST /groups/{id}/members/$ref`.
    pub(crate) fn add_member(&self, request: &SimRequest, group_id: &str) -> GraphResult {
        let body = json_body(request)?;
        let reference = body
            .get("@odata.id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                GraphError::directory_bad_request("The request body must contain '@odata.id'.")
            })?;
        let object_id = referenced_id(reference).ok_or_else(|| {
            GraphError::directory_bad_request(format!(
                "Invalid @odata.id '{reference}'; expected https://graph.microsoft.com/v1.0/directoryObjects/{{id}}."
            ))
        })?;

        let mut state = self.lock_state();
        if state.group(group_id).is_none() {
            return Err(GraphError::directory_not_found(group_id));
        }
        if state.directory_object_type(&object_id).is_none() {
            return Err(GraphError::directory_not_found(&object_id));
        }
        let group = state
            .group_mut(group_id)
            .ok_or_else(|| GraphError::directory_not_found(group_id))?;
        let already = group
            .members
            .iter()
            .any(|m| m.is_current() && m.object_id.eq_ignore_ascii_case(&object_id));
        if already {
            return Err(GraphError::directory_bad_request(ALREADY_A_MEMBER));
        }
        group.members.push(Membership {
            object_id,
            added: Instant::now(),
            removed: None,
        });
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    /// Handles `DELETE /groups/{id}/members/{objectId}/$ref`.
    pub(crate) fn remove_member(&self, group_id: &str, object_id: &str) -> GraphResult {
        let mut state = self.lock_state();
        let group = state
            .group_mut(group_id)
            .ok_or_else(|| GraphError::directory_not_found(group_id))?;
        let membership = group
            .members
            .iter_mut()
            .find(|m| m.is_current() && m.object_id.eq_ignore_ascii_case(object_id))
            .ok_or_else(|| GraphError::directory_not_found(object_id))?;
        membership.removed = Some(Instant::now());
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_id_cases() {
        let id = referenced_id("https://graph.microsoft.com/v1.0/directoryObjects/ABC-1");
        assert_eq!(id.as_deref(), Some("abc-1"));
        assert_eq!(
            referenced_id("https://graph.microsoft.com/v1.0/sites/x"),
            None
        );
        assert_eq!(referenced_id("abc"), None);
    }

    #[test]
    fn mail_nickname_cases() {
        let cases = [
            ("vdigw-app-1", true),
            ("", false),
            ("has space", false),
            ("at@sign", false),
            ("ünicode", false),
        ];
        for (nickname, expected) in cases {
            assert_eq!(valid_mail_nickname(nickname), expected, "{nickname:?}");
        }
        assert!(!valid_mail_nickname(&"a".repeat(65)));
    }
}
