//! Inventory reads (desktop pools, machines, sessions, farms, RDS servers) and the allowed
//! machine and session actions: maintenance mode and `send-message`.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::filter::{FieldRule, Op, ANY, EQUALS, EQUALS_NOT};
use super::model;
use super::paging::ListQuery;
use super::server::Shared;
use super::snapshot::SentMessage;
use crate::common::http::{SimRequest, SimResponse};

/// Filterable fields of desktop pools.
const POOL_FIELDS: &[FieldRule] = &[
    ("id", ANY),
    ("name", ANY),
    ("display_name", ANY),
    ("type", ANY),
    ("source", ANY),
    ("user_assignment", ANY),
    ("session_type", ANY),
    ("enabled", ANY),
    ("farm_id", ANY),
    ("vcenter_id", ANY),
    ("access_group_id", ANY),
];

/// Filterable fields of machines, with the operators `MachineInfo` documents.
const MACHINE_FIELDS: &[FieldRule] = &[
    ("id", EQUALS_NOT),
    ("name", &[Op::Equals, Op::StartsWith, Op::Contains]),
    (
        "dns_name",
        &[Op::Equals, Op::StartsWith, Op::EndsWith, Op::Contains],
    ),
    ("desktop_pool_id", EQUALS),
    ("state", EQUALS),
    ("user_ids", &[Op::Equals, Op::NotEquals, Op::Contains]),
    ("type", EQUALS),
    ("agent_version", ANY),
    ("session_id", EQUALS_NOT),
    ("access_group_id", EQUALS),
];

/// Filterable fields of sessions; `session_state` supports Equals and NotEquals as
/// `SessionInfo` documents.
const SESSION_FIELDS: &[FieldRule] = &[
    ("id", EQUALS_NOT),
    ("user_id", EQUALS_NOT),
    ("broker_user_id", EQUALS_NOT),
    ("machine_id", EQUALS_NOT),
    ("desktop_pool_id", EQUALS_NOT),
    ("farm_id", EQUALS_NOT),
    ("rds_server_id", EQUALS_NOT),
    ("session_state", EQUALS_NOT),
    ("session_type", EQUALS_NOT),
    ("session_protocol", EQUALS_NOT),
    ("start_time", ANY),
];

/// Filterable fields of farms.
const FARM_FIELDS: &[FieldRule] = &[
    ("id", ANY),
    ("name", ANY),
    ("display_name", ANY),
    ("type", ANY),
    ("enabled", ANY),
    ("desktop_pool_id", ANY),
    ("access_group_id", ANY),
];

/// Filterable fields of RDS servers.
const RDS_SERVER_FIELDS: &[FieldRule] = &[
    ("id", ANY),
    ("name", ANY),
    ("dns_name", ANY),
    ("farm_id", ANY),
    ("state", ANY),
    ("enabled", ANY),
    ("access_group_id", ANY),
];

#[derive(Debug, Deserialize)]
struct SendMessageSpec {
    session_ids: Option<Vec<String>>,
    message: Option<String>,
    message_type: Option<String>,
}

/// Parses a bulk body: a non-empty JSON array of ids.
pub(crate) fn parse_id_array(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let ids: Vec<String> = serde_json::from_slice(body).map_err(ApiError::invalid_body)?;
    if ids.is_empty() {
        return Err(ApiError::bad_request("The list of ids must not be empty."));
    }
    Ok(ids)
}

impl Shared {
    /// Returns whether the `fail_bulk_items` knob names this id.
    pub(crate) fn bulk_item_fails(&self, id: &str) -> bool {
        self.knobs().fail_bulk_items.iter().any(|f| f == id)
    }

    /// Lists desktop pools; v1 has no paging or filter and returns every pool.
    pub(crate) fn list_desktop_pools(&self, request: &SimRequest, version: u32) -> ApiResult {
        let options = self.render_options();
        let query = if version == 1 {
            ListQuery::default()
        } else {
            ListQuery::parse(request, POOL_FIELDS)?
        };
        let state = self.lock_state();
        let items = state
            .desktop_pools
            .iter()
            .map(|p| model::desktop_pool(p, version, &state.access_group_id, options))
            .collect();
        Ok(query.respond(items))
    }

    pub(crate) fn get_desktop_pool(&self, id: &str, version: u32) -> ApiResult {
        let state = self.lock_state();
        let pool = state
            .desktop_pool(id)
            .ok_or_else(|| ApiError::not_found("Desktop pool", id))?;
        let value =
            model::desktop_pool(pool, version, &state.access_group_id, self.render_options());
        Ok(SimResponse::json(StatusCode::OK, &value))
    }

    fn render_machines(&self, version: u32, only: Option<&str>) -> Vec<Value> {
        let options = self.render_options();
        let state = self.lock_state();
        let sessions = state.session_by_machine();
        state
            .machines
            .iter()
            .enumerate()
            .filter(|(_, m)| only.is_none_or(|id| m.id == id))
            .map(|(index, m)| {
                let session = sessions.get(m.id.as_str()).copied();
                model::machine(m, session, version, &state, index % 3 == 2, options)
            })
            .collect()
    }

    pub(crate) fn list_machines(&self, request: &SimRequest, version: u32) -> ApiResult {
        let query = ListQuery::parse(request, MACHINE_FIELDS)?;
        Ok(query.respond(self.render_machines(version, None)))
    }

    pub(crate) fn get_machine(&self, id: &str, version: u32) -> ApiResult {
        let value = self
            .render_machines(version, Some(id))
            .pop()
            .ok_or_else(|| ApiError::not_found("Machine", id))?;
        Ok(SimResponse::json(StatusCode::OK, &value))
    }

    /// Handles `enter-maintenance` and `exit-maintenance`; `None` for other actions.
    pub(crate) fn machine_maintenance(
        &self,
        request: &SimRequest,
        action: &str,
    ) -> Option<ApiResult> {
        let enter = match action {
            "enter-maintenance" => true,
            "exit-maintenance" => false,
            _ => return None,
        };
        let ids = match parse_id_array(&request.body) {
            Ok(ids) => ids,
            Err(error) => return Some(Err(error)),
        };
        let mut state = self.lock_state();
        let items: Vec<Value> = ids
            .iter()
            .map(|id| {
                if self.bulk_item_fails(id) {
                    return model::bulk_item(id, 500, Some("Simulated failure of this item."));
                }
                match state.machines.iter_mut().find(|m| m.id == *id) {
                    Some(machine) => {
                        machine.in_maintenance = enter;
                        model::bulk_item(id, 200, None)
                    }
                    None => model::bulk_item(id, 404, Some("Machine not found.")),
                }
            })
            .collect();
        Some(Ok(SimResponse::json(StatusCode::OK, &items)))
    }

    pub(crate) fn list_sessions(&self, request: &SimRequest) -> ApiResult {
        let query = ListQuery::parse(request, SESSION_FIELDS)?;
        let options = self.render_options();
        let state = self.lock_state();
        let items = state
            .sessions
            .iter()
            .map(|s| model::session(s, &state.access_group_id, options))
            .collect();
        Ok(query.respond(items))
    }

    pub(crate) fn get_session(&self, id: &str) -> ApiResult {
        let state = self.lock_state();
        let session = state
            .sessions
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| ApiError::not_found("Session", id))?;
        let value = model::session(session, &state.access_group_id, self.render_options());
        Ok(SimResponse::json(StatusCode::OK, &value))
    }

    /// Handles `send-message`: records the message for every known session and returns one
    /// result per session id.
    pub(crate) fn send_message(&self, request: &SimRequest) -> ApiResult {
        let spec: SendMessageSpec =
            serde_json::from_slice(&request.body).map_err(ApiError::invalid_body)?;
        let session_ids = spec
            .session_ids
            .filter(|ids| !ids.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request("session_ids is required and must not be empty.")
            })?;
        let message = spec
            .message
            .filter(|m| !m.is_empty())
            .ok_or_else(|| ApiError::bad_request("message is required."))?;
        let message_type = spec.message_type.unwrap_or_default();
        if !["INFO", "WARNING", "ERROR"].contains(&message_type.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Invalid message_type {message_type:?}: use INFO, WARNING or ERROR."
            )));
        }
        let mut state = self.lock_state();
        let users: HashMap<String, String> = state
            .sessions
            .iter()
            .map(|s| (s.id.clone(), s.user_id.clone()))
            .collect();
        let mut items = Vec::new();
        for id in &session_ids {
            if self.bulk_item_fails(id) {
                items.push(model::bulk_item(
                    id,
                    500,
                    Some("Simulated failure of this item."),
                ));
                continue;
            }
            let Some(user_id) = users.get(id) else {
                items.push(model::bulk_item(id, 404, Some("Session not found.")));
                continue;
            };
            state.messages.push(SentMessage {
                session_id: id.clone(),
                user_id: user_id.clone(),
                message_type: message_type.clone(),
                message: message.clone(),
            });
            items.push(model::bulk_item(id, 200, None));
        }
        Ok(SimResponse::json(StatusCode::OK, &items))
    }

    pub(crate) fn list_farms(&self, request: &SimRequest) -> ApiResult {
        let query = ListQuery::parse(request, FARM_FIELDS)?;
        let options = self.render_options();
        let state = self.lock_state();
        let items = state
            .farms
            .iter()
            .map(|f| model::farm(f, &state.access_group_id, options))
            .collect();
        Ok(query.respond(items))
    }

    pub(crate) fn get_farm(&self, id: &str) -> ApiResult {
        let state = self.lock_state();
        let farm = state
            .farm(id)
            .ok_or_else(|| ApiError::not_found("Farm", id))?;
        let value = model::farm(farm, &state.access_group_id, self.render_options());
        Ok(SimResponse::json(StatusCode::OK, &value))
    }

    fn render_rds_servers(&self, only: Option<&str>) -> Vec<Value> {
        let options = self.render_options();
        let state = self.lock_state();
        state
            .rds_servers
            .iter()
            .filter(|r| only.is_none_or(|id| r.id == id))
            .map(|r| {
                let count = state
                    .sessions
                    .iter()
                    .filter(|s| s.rds_server_id.as_deref() == Some(r.id.as_str()))
                    .count();
                model::rds_server(r, count, &state.access_group_id, options)
            })
            .collect()
    }

    pub(crate) fn list_rds_servers(&self, request: &SimRequest) -> ApiResult {
        let query = ListQuery::parse(request, RDS_SERVER_FIELDS)?;
        Ok(query.respond(self.render_rds_servers(None)))
    }

    pub(crate) fn get_rds_server(&self, id: &str) -> ApiResult {
        let value = self
            .render_rds_servers(Some(id))
            .pop()
            .ok_or_else(|| ApiError::not_found("RDS server", id))?;
        Ok(SimResponse::json(StatusCode::OK, &value))
    }
}
