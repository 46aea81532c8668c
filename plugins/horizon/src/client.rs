//! Typed calls to the Horizon Server REST API on top of the shared [`BrokerClient`]: endpoint
//! version probing, `page` and `size` paging, JSON filters, the bound on concurrent inventory
//! queries, entitlements and session messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use broker_http::{collect_pages, BrokerClient, BrokerRequest, BrokerResponse};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Semaphore;
use vdi_contracts::{BrokerWrite, ErrorKind, ProviderError, ProviderResult};

use crate::error::{bulk_failures, entitlement_error, entitlement_failures, ItemFailure};
use crate::model::{BulkEntitlementResponse, BulkItemResponse, Entitlement};

/// Pages a listing may have at most before the gateway assumes the server loops.
const MAX_PAGES: usize = 10_000;

/// Response header that says more pages follow (Horizon Server REST pagination guide).
const HAS_MORE_RECORDS: &str = "HAS_MORE_RECORDS";

/// Characters left as they are in a path segment: the RFC 3986 unreserved set.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes an id for use as one path segment.
pub fn segment(id: &str) -> String {
    utf8_percent_encode(id, SEGMENT).to_string()
}

/// An inventory collection whose endpoint version is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `inventory/{v}/desktop-pools`.
    DesktopPools,
    /// `inventory/{v}/machines`.
    Machines,
    /// `inventory/{v}/sessions`.
    Sessions,
    /// `inventory/{v}/application-pools`.
    ApplicationPools,
    /// `inventory/{v}/farms`.
    Farms,
    /// `inventory/{v}/rds-servers`.
    RdsServers,
}

impl Resource {
    /// Returns the collection's path segment.
    pub fn collection(self) -> &'static str {
        match self {
            Resource::DesktopPools => "desktop-pools",
            Resource::Machines => "machines",
            Resource::Sessions => "sessions",
            Resource::ApplicationPools => "application-pools",
            Resource::Farms => "farms",
            Resource::RdsServers => "rds-servers",
        }
    }

    /// Returns the versions the gateway reads, highest first: those of the Horizon Server
    /// REST API 2111, plus sessions v2 of later releases, whose fields the gateway reads the
    /// same way.
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            Resource::DesktopPools => &["v5", "v4", "v3", "v2", "v1"],
            Resource::Machines => &["v2", "v1"],
            Resource::Sessions => &["v2", "v1"],
            Resource::ApplicationPools => &["v3", "v2", "v1"],
            Resource::Farms => &["v3", "v2", "v1"],
            Resource::RdsServers => &["v1"],
        }
    }

    /// Returns whether a version takes `page`, `size` and `filter`. In Horizon Server REST
    /// API 2111, v1 desktop-pools takes none of them and returns every pool at once.
    pub fn paged(self, version: &str) -> bool {
        !(self == Resource::DesktopPools && version == "v1")
    }

    fn next_version(self, version: &str) -> Option<&'static str> {
        let versions = self.versions();
        let index = versions.iter().position(|v| *v == version)?;
        versions.get(index + 1).copied()
    }
}

/// A Horizon JSON filter, sent URL-encoded in the `filter` parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `{"type": "Equals", "name": ..., "value": ...}`.
    Equals(&'static str, String),
    /// `{"type": "And", "filters": [...]}`.
    And(Vec<Filter>),
}

impl Filter {
    /// Returns the filter as Horizon's JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Filter::Equals(name, value) => json!({"type": "Equals", "name": name, "value": value}),
            Filter::And(filters) => json!({
                "type": "And",
                "filters": filters.iter().map(Filter::to_json).collect::<Vec<_>>(),
            }),
        }
    }
}

/// Typed Horizon calls for one provider instance; cheap to clone.
#[derive(Debug, Clone)]
pub struct HorizonApi {
    client: BrokerClient,
    page_size: u32,
    queries: Arc<Semaphore>,
    versions: Arc<Mutex<HashMap<Resource, &'static str>>>,
}

impl HorizonApi {
    /// Wraps an authenticated client; at most `max_concurrent_queries` GETs are in flight.
    pub fn new(client: BrokerClient, page_size: u32, max_concurrent_queries: u32) -> Self {
        Self {
            client,
            page_size,
            queries: Arc::new(Semaphore::new(max_concurrent_queries.max(1) as usize)),
            versions: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Returns the underlying client.
    pub fn client(&self) -> &BrokerClient {
        &self.client
    }

    /// Returns the version in use for a resource once a call has confirmed it.
    pub fn confirmed_version(&self, resource: Resource) -> Option<&'static str> {
        self.versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&resource)
            .copied()
    }

    fn confirm_version(&self, resource: Resource, version: &'static str) {
        self.versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(resource, version);
    }

    /// Sends a GET while holding one of the inventory query slots.
    ///
    /// # Errors
    /// Returns the classified error.
    pub async fn query(&self, request: BrokerRequest) -> ProviderResult<BrokerResponse> {
        // Nothing calls close() on this private semaphore, so acquiring cannot fail.
        let _permit = self
            .queries
            .acquire()
            .await
            .map_err(|_| ProviderError::internal("the Horizon query semaphore was closed"))?;
        self.client.send(request).await
    }

    /// Sends a write.
    ///
    /// # Errors
    /// Returns the classified error.
    pub async fn send(&self, request: BrokerRequest) -> ProviderResult<BrokerResponse> {
        self.client.send(request).await
    }

    /// Reads page `page` (from 1) of a collection. The first call per resource probes the
    /// versions from the highest down, moving on after a 404, and the first version that
    /// succeeds is kept for later calls.
    ///
    /// # Errors
    /// Returns the classified error, or `not_found` when no version of the collection exists.
    pub async fn page<T: DeserializeOwned>(
        &self,
        resource: Resource,
        filter: Option<&Filter>,
        page: u32,
    ) -> ProviderResult<(Vec<T>, Option<String>)> {
        if let Some(version) = self.confirmed_version(resource) {
            return self.fetch_page(resource, version, filter, page).await;
        }
        let mut version = resource.versions()[0];
        loop {
            let error = match self.fetch_page(resource, version, filter, page).await {
                Ok(result) => {
                    self.confirm_version(resource, version);
                    tracing::debug!(
                        resource = resource.collection(),
                        version,
                        "Horizon endpoint version found."
                    );
                    return Ok(result);
                }
                Err(error) => error,
            };
            // Horizon Server REST API 2111 returns 409 "CPA not initialized for the pod" on
            // desktop-pools versions that read Cloud Pod Architecture data. An older version
            // without those fields still succeeds.
            let fall_back = error.kind == ErrorKind::NotFound
                || (error.kind == ErrorKind::Conflict && resource == Resource::DesktopPools);
            match resource.next_version(version) {
                Some(next) if fall_back => {
                    tracing::debug!(resource = resource.collection(), version, next, error = %error, "Horizon endpoint version not served; trying the next lower one.");
                    version = next;
                }
                _ => return Err(error),
            }
        }
    }

    async fn fetch_page<T: DeserializeOwned>(
        &self,
        resource: Resource,
        version: &'static str,
        filter: Option<&Filter>,
        page: u32,
    ) -> ProviderResult<(Vec<T>, Option<String>)> {
        let path = format!("inventory/{version}/{}", resource.collection());
        let mut request = BrokerRequest::get(path).operation(resource.collection());
        let paged = resource.paged(version);
        if paged {
            // Horizon does not assume page 1 when only `size` is sent, so both always go
            // (Horizon Server REST pagination guide).
            request = request
                .query("page", page.to_string())
                .query("size", self.page_size.to_string());
            if let Some(filter) = filter {
                request = request.query("filter", filter.to_json().to_string());
            }
        }
        let response = self.query(request).await?;
        let items = json_list(&response)?;
        let more = paged
            && response
                .header_str(HAS_MORE_RECORDS)
                .is_some_and(|value| !value.trim().eq_ignore_ascii_case("false"));
        Ok((items, more.then(|| (page + 1).to_string())))
    }

    /// Reads every page of a collection. On v1 desktop-pools, which has no filter, the filter
    /// is not sent and callers filter the items themselves.
    ///
    /// # Errors
    /// Returns the classified error, or `invalid` when the server pages in a loop.
    pub async fn all<T: DeserializeOwned>(
        &self,
        resource: Resource,
        filter: Option<&Filter>,
    ) -> ProviderResult<Vec<T>> {
        collect_pages(resource.collection(), MAX_PAGES, |cursor| async move {
            let page = page_number(cursor.as_deref())?;
            self.page(resource, filter, page).await
        })
        .await
    }

    /// Reads the users and groups entitled to a desktop pool or application pool;
    /// `collection` is `desktop-pools` or `application-pools`. A pool without entitlements
    /// may return 404, which counts as none.
    ///
    /// # Errors
    /// Returns the classified error for anything but 404.
    pub async fn entitlements(&self, collection: &str, id: &str) -> ProviderResult<Vec<String>> {
        let request = BrokerRequest::get(format!("entitlements/v1/{collection}/{}", segment(id)))
            .operation("get_entitlements");
        match self.query(request).await {
            Ok(response) if response.body.iter().all(u8::is_ascii_whitespace) => Ok(Vec::new()),
            Ok(response) => Ok(response.json::<Entitlement>()?.ad_user_or_group_ids),
            Err(error) if error.kind == ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => Err(error),
        }
    }

    /// Adds (`POST`) or removes (`DELETE`) exactly `sids` on one application pool, and checks
    /// the per-SID results of the 200 response.
    ///
    /// # Errors
    /// Returns the classified error, or `conflict` naming each SID the server rejected.
    pub async fn change_entitlements(
        &self,
        add: bool,
        pool_id: &str,
        sids: &[String],
    ) -> ProviderResult<BrokerWrite> {
        let body = json!([{"id": pool_id, "ad_user_or_group_ids": sids}]);
        let (request, action) = if add {
            (
                BrokerRequest::post("entitlements/v1/application-pools"),
                "add entitlements",
            )
        } else {
            (
                BrokerRequest::delete("entitlements/v1/application-pools"),
                "remove entitlements",
            )
        };
        let operation = if add {
            "add_entitlements"
        } else {
            "remove_entitlements"
        };
        let response = self.send(request.operation(operation).json(body)).await?;
        let write = write_record(operation, &response, None);
        let results: Vec<BulkEntitlementResponse> = json_list(&response)?;
        let failures = entitlement_failures(&results, sids);
        if !failures.is_empty() {
            return Err(entitlement_error(action, pool_id, &failures));
        }
        Ok(write)
    }

    /// Sends a notice to sessions and returns the write with the sessions that did not get it.
    ///
    /// # Errors
    /// Returns the classified error when the request as a whole fails.
    pub async fn send_message(
        &self,
        session_ids: &[String],
        message: &str,
    ) -> ProviderResult<(BrokerWrite, Vec<ItemFailure>)> {
        let body = json!({"session_ids": session_ids, "message": message, "message_type": "INFO"});
        let request = BrokerRequest::post("inventory/v1/sessions/action/send-message")
            .operation("send_message")
            .json(body);
        let response = self.send(request).await?;
        let results: Vec<BulkItemResponse> = json_list(&response)?;
        Ok((
            write_record("send_message", &response, None),
            bulk_failures(&results),
        ))
    }
}

/// Reads a page cursor, which is the next page number; no cursor means page 1.
///
/// # Errors
/// Returns `invalid` for anything but a positive number.
pub fn page_number(cursor: Option<&str>) -> ProviderResult<u32> {
    match cursor {
        None => Ok(1),
        Some(text) => text.parse::<u32>().ok().filter(|page| *page >= 1).ok_or_else(|| {
            ProviderError::invalid(format!(
                "cursor {text:?} is not a Horizon page number; pass the next_cursor of the previous page"
            ))
        }),
    }
}

/// Decodes a JSON array body; an empty body (some servers answer 204 for nothing) is an
/// empty list.
fn json_list<T: DeserializeOwned>(response: &BrokerResponse) -> ProviderResult<Vec<T>> {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    response.json()
}

/// Returns the audit record of a write that got a response.
pub fn write_record(
    operation: &str,
    response: &BrokerResponse,
    machine: Option<&str>,
) -> BrokerWrite {
    BrokerWrite {
        operation: operation.to_owned(),
        method: response.method.to_string(),
        path: response.path.clone(),
        machine: machine.map(str::to_owned),
        status: Some(response.status.as_u16()),
        broker_request_id: response.request_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_step_down() {
        assert_eq!(Resource::DesktopPools.next_version("v5"), Some("v4"));
        assert_eq!(Resource::DesktopPools.next_version("v1"), None);
        assert_eq!(Resource::RdsServers.next_version("v1"), None);
    }

    #[test]
    fn only_v1_desktop_pools_is_unpaged() {
        assert!(!Resource::DesktopPools.paged("v1"));
        assert!(Resource::DesktopPools.paged("v2"));
        assert!(Resource::Machines.paged("v1"));
    }

    #[test]
    fn filter_json_shape() {
        let filter = Filter::And(vec![
            Filter::Equals("desktop_pool_id", "p1".into()),
            Filter::Equals("session_state", "CONNECTED".into()),
        ]);
        assert_eq!(
            filter.to_json(),
            json!({"type": "And", "filters": [
                {"type": "Equals", "name": "desktop_pool_id", "value": "p1"},
                {"type": "Equals", "name": "session_state", "value": "CONNECTED"},
            ]})
        );
    }

    #[test]
    fn cursor_is_a_page_number() {
        assert_eq!(page_number(None).expect("first page"), 1);
        assert_eq!(page_number(Some("3")).expect("page 3"), 3);
        assert!(page_number(Some("0")).is_err());
        assert!(page_number(Some("abc")).is_err());
    }

    #[test]
    fn segment_encodes_reserved_characters() {
        assert_eq!(segment("a b/c=d"), "a%20b%2Fc%3Dd");
        assert_eq!(segment("9f1e-4c_2.x"), "9f1e-4c_2.x");
    }
}
