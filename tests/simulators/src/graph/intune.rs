//! Intune managed devices: list, get and `syncDevice`.
//!
//! `syncDevice` takes no body and returns 204 (Microsoft Graph v1.0 "managedDevice:
//! syncDevice"); the simulator counts it per device and limits it per device. `$skip` on
//! the list returns an empty `value` with a next link, as Intune has been observed to do,
//! so a client that pages with `$skip` misses every device.

use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use super::error::{GraphError, GraphResult};
use super::model::{self, ApiVersion};
use super::paging::PageToken;
use super::routes::ListKind;
use super::server::Shared;
use crate::common::http::{SimRequest, SimResponse};

impl Shared {
    fn render_managed_devices(&self, version: ApiVersion) -> Vec<Map<String, Value>> {
        self.lock_state()
            .managed_devices
            .iter()
            .map(|device| model::managed_device(device, version))
            .collect()
    }

    /// Handles `GET /deviceManagement/managedDevices`.
    pub(crate) fn list_managed_devices(
        &self,
        request: &SimRequest,
        version: ApiVersion,
    ) -> GraphResult {
        let context = format!(
            "https://graph.microsoft.com/{}/$metadata#deviceManagement/managedDevices",
            version.as_str()
        );
        if let Some(skip) = request.query.get("$skip") {
            // NOTE: the next link after a `$skip` page is not documented; this one
            // continues at the skipped offset.
            let offset = skip.parse().unwrap_or(0);
            let token = PageToken {
                offset,
                empty_served: true,
            };
            let next = format!(
                "{}{}?$skiptoken={}",
                self.base_url,
                request.path,
                token.encode()
            );
            let body = json!({"@odata.context": context, "@odata.nextLink": next, "value": []});
            return Ok(SimResponse::json(StatusCode::OK, &body));
        }
        let items = self.render_managed_devices(version);
        let kind = ListKind {
            version,
            context: "deviceManagement/managedDevices",
            type_name: "microsoft.graph.managedDevice",
            directory: false,
            select_only: &[],
            mixed_types: false,
        };
        self.list_response(request, items, kind)
    }

    /// Handles `GET /deviceManagement/managedDevices/{id}`.
    pub(crate) fn get_managed_device(
        &self,
        request: &SimRequest,
        version: ApiVersion,
        id: &str,
    ) -> GraphResult {
        let found = self
            .lock_state()
            .managed_device(id)
            .map(|d| model::managed_device(d, version));
        let object = found.ok_or_else(|| GraphError::not_found("managedDevice", id))?;
        self.object_response(request, object, StatusCode::OK, &[])
    }

    /// Handles `POST /deviceManagement/managedDevices/{id}/syncDevice`.
    ///
    /// Fails with 404 for an unknown device, and with 429 and `Retry-After` when the
    /// device was asked to sync less than `sync_device_interval` ago.
    pub(crate) fn sync_device(&self, id: &str) -> GraphResult {
        let now = Instant::now();
        let interval = self.config.sync_device_interval;
        let mut state = self.lock_state();
        let device_id = state
            .managed_device(id)
            .map(|device| device.id.clone())
            .ok_or_else(|| GraphError::not_found("managedDevice", id))?;
        if let Some(last) = state.last_sync_request.get(&device_id) {
            let next = *last + interval;
            if next > now {
                let seconds = (next - now).as_secs_f64().ceil().max(1.0) as u64;
                let message = format!(
                    "Device {device_id} was asked to sync recently; retry after {seconds} s."
                );
                return Err(GraphError::too_many_requests(message, Some(seconds)));
            }
        }
        state.last_sync_request.insert(device_id.clone(), now);
        *state.sync_requests.entry(device_id).or_insert(0) += 1;
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }
}
