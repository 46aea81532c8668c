//! Entitlements of desktop and application pools, and AD user and group lookups.
//!
//! `POST` and `DELETE /rest/entitlements/v1/{desktop-pools,application-pools}` take
//! `[{id, ad_user_or_group_ids}]` with unique ids and return 200 with one
//! `BulkEntitlementResponseInfo` per pool and one detail per SID, so single SIDs can fail
//! while the request succeeds (Horizon Server REST API 2111). A delete removes exactly the
//! SIDs it names.

use std::collections::{BTreeMap, HashSet};

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::filter::{FieldRule, ANY};
use super::model;
use super::paging::ListQuery;
use super::server::Shared;
use super::state::HorizonState;
use crate::common::http::{SimRequest, SimResponse};

const ENTITLEMENT_FIELDS: &[FieldRule] = &[("id", ANY), ("ad_user_or_group_ids", ANY)];

const PRINCIPAL_FIELDS: &[FieldRule] = &[
    ("id", ANY),
    ("name", ANY),
    ("login_name", ANY),
    ("display_name", ANY),
    ("group", ANY),
    ("domain", ANY),
];

/// Which pools an entitlement path refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolKind {
    Desktop,
    Application,
}

impl PoolKind {
    fn parse(segment: &str) -> Option<Self> {
        match segment {
            "desktop-pools" => Some(PoolKind::Desktop),
            "application-pools" => Some(PoolKind::Application),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            PoolKind::Desktop => "Desktop pool",
            PoolKind::Application => "Application pool",
        }
    }

    fn pool_ids(self, state: &HorizonState) -> Vec<String> {
        match self {
            PoolKind::Desktop => state.desktop_pools.iter().map(|p| p.id.clone()).collect(),
            PoolKind::Application => state
                .application_pools
                .iter()
                .map(|p| p.id.clone())
                .collect(),
        }
    }

    fn entitlements(self, state: &mut HorizonState) -> &mut BTreeMap<String, Vec<String>> {
        match self {
            PoolKind::Desktop => &mut state.desktop_entitlements,
            PoolKind::Application => &mut state.application_entitlements,
        }
    }
}

#[derive(Debug, Deserialize)]
struct EntitlementSpec {
    id: Option<String>,
    #[serde(default)]
    ad_user_or_group_ids: Vec<String>,
}

fn detail(sid: &str, status_code: u16, error: Option<&str>) -> Value {
    let mut value = json!({"ad_user_or_group_id": sid, "status_code": status_code});
    if let Some(message) = error {
        value["error_messages"] = json!([message]);
    }
    value
}

impl Shared {
    /// Lists the entitlements of every pool of a kind, pools without any included.
    pub(crate) fn list_entitlements(&self, request: &SimRequest, kind: &str) -> Option<ApiResult> {
        let kind = PoolKind::parse(kind)?;
        let query = match ListQuery::parse(request, ENTITLEMENT_FIELDS) {
            Ok(query) => query,
            Err(error) => return Some(Err(error)),
        };
        let options = self.render_options();
        let mut state = self.lock_state();
        let ids = kind.pool_ids(&state);
        let map = kind.entitlements(&mut state);
        let items = ids
            .iter()
            .map(|id| {
                let sids = map.get(id).cloned().unwrap_or_default();
                model::entitlement(id, &sids, options)
            })
            .collect();
        Some(Ok(query.respond(items)))
    }

    pub(crate) fn get_entitlement(&self, kind: &str, id: &str) -> Option<ApiResult> {
        let kind = PoolKind::parse(kind)?;
        let options = self.render_options();
        let mut state = self.lock_state();
        if !kind.pool_ids(&state).iter().any(|p| p == id) {
            return Some(Err(ApiError::not_found(kind.label(), id)));
        }
        let sids = kind
            .entitlements(&mut state)
            .get(id)
            .cloned()
            .unwrap_or_default();
        let value = model::entitlement(id, &sids, options);
        Some(Ok(SimResponse::json(StatusCode::OK, &value)))
    }

    /// Adds (`add`) or removes entitlements in bulk and returns one result per pool.
    ///
    /// Per SID: an unknown SID gets 404; adding an entitled SID gets 409 and removing a SID
    /// that is not entitled gets 404. A pool's `status_code` is 200 when every SID
    /// succeeded, otherwise the first failing SID's status.
    // NOTE: the 409 for an existing entitlement is an assumption; Horizon does not document
    // the per-SID status codes.
    pub(crate) fn change_entitlements(
        &self,
        request: &SimRequest,
        kind: &str,
        add: bool,
    ) -> Option<ApiResult> {
        let kind = PoolKind::parse(kind)?;
        Some(self.apply_entitlements(request, kind, add))
    }

    fn apply_entitlements(&self, request: &SimRequest, kind: PoolKind, add: bool) -> ApiResult {
        let specs: Vec<EntitlementSpec> =
            serde_json::from_slice(&request.body).map_err(ApiError::invalid_body)?;
        if specs.is_empty() {
            return Err(ApiError::bad_request(
                "The list of entitlements must not be empty.",
            ));
        }
        let mut seen = HashSet::new();
        for spec in &specs {
            let id = spec
                .id
                .as_deref()
                .ok_or_else(|| ApiError::bad_request("Every entitlement needs an id."))?;
            if !seen.insert(id.to_string()) {
                return Err(ApiError::bad_request(format!(
                    "Id {id} appears more than once; send each pool once."
                )));
            }
            if spec.ad_user_or_group_ids.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "ad_user_or_group_ids of {id} must not be empty."
                )));
            }
        }
        let mut state = self.lock_state();
        let pools = kind.pool_ids(&state);
        let mut results = Vec::new();
        for spec in specs {
            let id = spec.id.unwrap_or_default();
            let timestamp = chrono::Utc::now().timestamp_millis();
            if !pools.contains(&id) {
                results.push(json!({
                    "id": id, "status_code": 404, "timestamp": timestamp,
                    "error_messages": [format!("{} {id} not found.", kind.label())],
                    "details": [],
                }));
                continue;
            }
            if self.bulk_item_fails(&id) {
                results.push(json!({
                    "id": id, "status_code": 500, "timestamp": timestamp,
                    "error_messages": ["Simulated failure of this item."],
                    "details": [],
                }));
                continue;
            }
            let details: Vec<Value> = spec
                .ad_user_or_group_ids
                .iter()
                .map(|sid| change_one(&mut state, kind, &id, sid, add))
                .collect();
            let status = details
                .iter()
                .filter_map(|d| d["status_code"].as_u64())
                .find(|code| *code != 200)
                .unwrap_or(200);
            results.push(json!({
                "id": id, "status_code": status, "timestamp": timestamp, "details": details,
            }));
        }
        Ok(SimResponse::json(StatusCode::OK, &results))
    }

    pub(crate) fn list_principals(&self, request: &SimRequest) -> ApiResult {
        let query = ListQuery::parse(request, PRINCIPAL_FIELDS)?;
        let options = self.render_options();
        let state = self.lock_state();
        let items = state
            .principals
            .iter()
            .map(|p| model::principal(p, &state.domain, options))
            .collect();
        Ok(query.respond(items))
    }

    pub(crate) fn get_principal(&self, id: &str) -> ApiResult {
        let state = self.lock_state();
        let principal = state
            .principal(id)
            .ok_or_else(|| ApiError::not_found("AD user or group", id))?;
        let value = model::principal(principal, &state.domain, self.render_options());
        Ok(SimResponse::json(StatusCode::OK, &value))
    }
}

/// Adds or removes one SID on one pool and returns its `EntitlementResponseInfo`.
fn change_one(state: &mut HorizonState, kind: PoolKind, pool: &str, sid: &str, add: bool) -> Value {
    let Some(canonical) = state.principal(sid).map(|p| p.id.clone()) else {
        return detail(sid, 404, Some("AD user or group not found."));
    };
    let sids = kind
        .entitlements(state)
        .entry(pool.to_string())
        .or_default();
    let present = sids.iter().position(|s| *s == canonical);
    match (add, present) {
        (true, Some(_)) => detail(sid, 409, Some("The user or group is already entitled.")),
        (true, None) => {
            sids.push(canonical);
            detail(sid, 200, None)
        }
        (false, Some(index)) => {
            sids.remove(index);
            if sids.is_empty() {
                kind.entitlements(state).remove(pool);
            }
            detail(sid, 200, None)
        }
        (false, None) => detail(sid, 404, Some("The user or group is not entitled.")),
    }
}
