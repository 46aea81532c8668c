//! Provisioning policies and the groups they are assigned to, which the guard protects:
//! removing a Cloud PC's user from such a group starts the grace period that ends in
//! deprovisioning (Graph v1.0 `cloudPC: endGracePeriod`).

use broker_http::BrokerRequest;
use vdi_contracts::ProviderResult;

use crate::client::GraphClient;
use crate::model::{PolicyAssignment, ProvisioningPolicy};

/// Path of the provisioning policies collection.
pub const POLICIES_PATH: &str = "v1.0/deviceManagement/virtualEndpoint/provisioningPolicies";

impl GraphClient {
    /// Lists the provisioning policies with their assignments.
    ///
    /// # Errors
    /// Graph errors.
    pub async fn provisioning_policies(&self) -> ProviderResult<Vec<ProvisioningPolicy>> {
        let request = BrokerRequest::get(POLICIES_PATH).operation("list_provisioning_policies");
        let mut policies: Vec<ProvisioningPolicy> =
            self.list("provisioning policies", request).await?;
        for policy in &mut policies {
            let path = format!("{POLICIES_PATH}/{}/assignments", policy.id);
            let request = BrokerRequest::get(path).operation("list_policy_assignments");
            let assignments: Vec<PolicyAssignment> =
                self.list("policy assignments", request).await?;
            policy.assignments = assignments;
        }
        Ok(policies)
    }

    /// Reads every provisioning policy's assigned groups and adds them to the guard's
    /// protected groups; returns the policies read.
    ///
    /// # Errors
    /// Graph errors; nothing is protected then, so callers must not write.
    pub async fn protect_provisioning_groups(&self) -> ProviderResult<Vec<ProvisioningPolicy>> {
        let policies = self.provisioning_policies().await?;
        let groups: Vec<String> = policies
            .iter()
            .flat_map(|p| &p.assignments)
            .filter_map(|a| a.target.as_ref()?.group_id.clone())
            .collect();
        self.protect_groups(groups)?;
        Ok(policies)
    }
}
