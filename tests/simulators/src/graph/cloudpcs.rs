//! Cloud PCs and provisioning policies under `/deviceManagement/virtualEndpoint`.
//!
//! Lists support `$select`, `$filter`, `$count` and `$top`, and no `$skip` (Microsoft
//! Graph "List cloudPCs"). Beta reads add `status`, `productType` and `servicePlanType`;
//! `status` members declared after `unknownFutureValue` need
//! `Prefer: include-unknown-enum-members`. Provisioning policies are read-only here,
//! because every write to them is on the deny-list.

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use super::error::{GraphError, GraphResult};
use super::model::{self, ApiVersion, SELECT_ONLY_CLOUD_PC_FIELDS};
use super::routes::{reject_skip, ListKind};
use super::server::Shared;
use crate::common::http::{SimRequest, SimResponse};

/// Returns whether the request has `Prefer: include-unknown-enum-members`.
fn includes_evolved_members(request: &SimRequest) -> bool {
    request.headers.get_all("prefer").iter().any(|value| {
        value.to_str().unwrap_or("").split(',').any(|item| {
            item.trim()
                .eq_ignore_ascii_case("include-unknown-enum-members")
        })
    })
}

impl Shared {
    fn render_cloud_pcs(
        &self,
        request: &SimRequest,
        version: ApiVersion,
    ) -> Vec<Map<String, Value>> {
        let evolved = includes_evolved_members(request);
        let state = self.lock_state();
        state
            .cloud_pcs
            .iter()
            .map(|pc| {
                let mut map = model::cloud_pc(pc, version, evolved);
                let policy_name = state
                    .policy(&pc.provisioning_policy_id)
                    .map(|p| p.display_name.clone());
                map.insert("provisioningPolicyName".into(), json!(policy_name));
                map
            })
            .collect()
    }

    /// Handles `GET …/virtualEndpoint/cloudPCs`.
    pub(crate) fn list_cloud_pcs(&self, request: &SimRequest, version: ApiVersion) -> GraphResult {
        reject_skip(request)?;
        let items = self.render_cloud_pcs(request, version);
        let kind = ListKind {
            version,
            context: "deviceManagement/virtualEndpoint/cloudPCs",
            type_name: "microsoft.graph.cloudPC",
            directory: false,
            select_only: select_only(version),
            mixed_types: false,
        };
        self.list_response(request, items, kind)
    }

    /// Handles `GET …/virtualEndpoint/cloudPCs/{id}`.
    pub(crate) fn get_cloud_pc(
        &self,
        request: &SimRequest,
        version: ApiVersion,
        id: &str,
    ) -> GraphResult {
        let found = self
            .render_cloud_pcs(request, version)
            .into_iter()
            .find(|pc| {
                pc["id"]
                    .as_str()
                    .is_some_and(|pc_id| pc_id.eq_ignore_ascii_case(id))
            });
        let object = found.ok_or_else(|| GraphError::not_found("cloudPC", id))?;
        self.object_response(request, object, StatusCode::OK, select_only(version))
    }

    /// Handles `POST …/cloudPCs/{id}/troubleshoot`, a health check that changes nothing.
    pub(crate) fn troubleshoot(&self, id: &str) -> GraphResult {
        let exists = self
            .lock_state()
            .cloud_pcs
            .iter()
            .any(|pc| pc.id.eq_ignore_ascii_case(id));
        if !exists {
            return Err(GraphError::not_found("cloudPC", id));
        }
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    fn render_policies(&self) -> Vec<Map<String, Value>> {
        self.lock_state()
            .policies
            .iter()
            .map(model::policy)
            .collect()
    }

    /// Handles `GET …/virtualEndpoint/provisioningPolicies`.
    pub(crate) fn list_policies(&self, request: &SimRequest, version: ApiVersion) -> GraphResult {
        reject_skip(request)?;
        let items = self.render_policies();
        let kind = ListKind {
            version,
            context: "deviceManagement/virtualEndpoint/provisioningPolicies",
            type_name: "microsoft.graph.cloudPcProvisioningPolicy",
            directory: false,
            select_only: &[],
            mixed_types: false,
        };
        self.list_response(request, items, kind)
    }

    /// Handles `GET …/provisioningPolicies/{id}`.
    pub(crate) fn get_policy(&self, request: &SimRequest, id: &str) -> GraphResult {
        let found = self.lock_state().policy(id).map(model::policy);
        let object = found.ok_or_else(|| GraphError::not_found("cloudPcProvisioningPolicy", id))?;
        self.object_response(request, object, StatusCode::OK, &[])
    }

    /// Handles `GET …/provisioningPolicies/{id}/assignments`.
    pub(crate) fn list_policy_assignments(
        &self,
        request: &SimRequest,
        version: ApiVersion,
        id: &str,
    ) -> GraphResult {
        let policy = self
            .lock_state()
            .policy(id)
            .cloned()
            .ok_or_else(|| GraphError::not_found("cloudPcProvisioningPolicy", id))?;
        let items = policy
            .group_ids
            .iter()
            .map(|group| match model::policy_assignment(&policy.id, group) {
                Value::Object(map) => map,
                _ => Map::new(),
            })
            .collect();
        let kind = ListKind {
            version,
            context: "deviceManagement/virtualEndpoint/provisioningPolicies('id')/assignments",
            type_name: "microsoft.graph.cloudPcProvisioningPolicyAssignment",
            directory: false,
            select_only: &[],
            mixed_types: false,
        };
        self.list_response(request, items, kind)
    }
}

fn select_only(version: ApiVersion) -> &'static [&'static str] {
    match version {
        ApiVersion::V1 => &[],
        ApiVersion::Beta => &SELECT_ONLY_CLOUD_PC_FIELDS,
    }
}
