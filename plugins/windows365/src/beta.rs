//! The one place that reads Graph beta: Cloud PC `status` and `productType`, which Graph v1.0
//! `cloudPC` lacks. Beta is subject to change, so only these two fields are read, missing keys
//! are tolerated and values are tolerant enums.

use std::collections::HashMap;

use broker_http::BrokerRequest;
use http::{HeaderName, HeaderValue};
use vdi_contracts::ProviderResult;
use vdi_graph::model::CloudPcBetaFields;
use vdi_graph::GraphClient;

/// Path of the beta Cloud PC collection.
const BETA_CLOUD_PCS: &str = "beta/deviceManagement/virtualEndpoint/cloudPCs";

/// Reads `status` and `productType` of every Cloud PC, by id.
///
/// Graph beta returns `cloudPcStatus` members added after `unknownFutureValue` (for example
/// `movingRegion`) only with `Prefer: include-unknown-enum-members`; they are kept as unknown
/// values.
///
/// # Errors
/// Graph errors.
pub async fn cloud_pc_fields(
    client: &GraphClient,
) -> ProviderResult<HashMap<String, CloudPcBetaFields>> {
    let request = BrokerRequest::get(BETA_CLOUD_PCS)
        .operation("list_cloud_pc_status")
        .query("$select", "id,status,productType")
        .header(
            HeaderName::from_static("prefer"),
            HeaderValue::from_static("include-unknown-enum-members"),
        );
    let fields: Vec<CloudPcBetaFields> = client.list("Cloud PC status (beta)", request).await?;
    Ok(fields.into_iter().map(|f| (f.id.clone(), f)).collect())
}
