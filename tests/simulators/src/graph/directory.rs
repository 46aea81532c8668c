//! Entra ID users and devices, read-only.
//!
//! A managed device's `azureADDeviceId` is the Entra device's `deviceId`, not its object
//! id; group membership needs the object id, found with
//! `GET /devices?$filter=deviceId eq '…'&$select=id`.

use axum::http::StatusCode;

use super::error::{GraphError, GraphResult};
use super::model::{self, ApiVersion};
use super::routes::{reject_skip, ListKind};
use super::server::Shared;
use crate::common::http::SimRequest;

impl Shared {
    /// Handles `GET /users`.
    pub(crate) fn list_users(&self, request: &SimRequest, version: ApiVersion) -> GraphResult {
        reject_skip(request)?;
        let items = self.lock_state().users.iter().map(model::user).collect();
        let kind = ListKind {
            version,
            context: "users",
            type_name: "microsoft.graph.user",
            directory: true,
            select_only: &[],
            mixed_types: false,
        };
        self.list_response(request, items, kind)
    }

    /// Handles `GET /devices`.
    pub(crate) fn list_devices(&self, request: &SimRequest, version: ApiVersion) -> GraphResult {
        reject_skip(request)?;
        let items = self
            .lock_state()
            .devices
            .iter()
            .map(model::device)
            .collect();
        let kind = ListKind {
            version,
            context: "devices",
            type_name: "microsoft.graph.device",
            directory: true,
            select_only: &[],
            mixed_types: false,
        };
        self.list_response(request, items, kind)
    }

    /// Handles `GET /devices/{id}` by object id.
    pub(crate) fn get_device(&self, request: &SimRequest, id: &str) -> GraphResult {
        let found = self
            .lock_state()
            .devices
            .iter()
            .find(|device| device.id.eq_ignore_ascii_case(id))
            .map(model::device);
        let object = found.ok_or_else(|| GraphError::directory_not_found(id))?;
        self.object_response(request, object, StatusCode::OK, &[])
    }
}
