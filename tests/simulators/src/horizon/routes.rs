//! Routing of `/rest/` API calls by area, version and resource.
//!
//! Each resource is served in the versions a Horizon 2111 server serves (desktop-pools v1
//! to v5, machines v1 and v2, sessions v1, application-pools and farms v1 to v3,
//! rds-servers v1, entitlements and AD lookups v1). Other versions get 404, as an older
//! server returns to a client that probes for newer ones.

use axum::http::Method;

use super::error::{ApiError, ApiResult};
use super::model::RenderOptions;
use super::server::Shared;
use crate::common::http::{SimRequest, SimResponse};

/// Highest version of each inventory resource that Horizon 2111 serves; every resource
/// starts at v1.
const INVENTORY_VERSIONS: [(&str, u32); 6] = [
    ("desktop-pools", 5),
    ("machines", 2),
    ("sessions", 1),
    ("application-pools", 3),
    ("farms", 3),
    ("rds-servers", 1),
];

/// Returns the version number of a `vN` segment.
fn version_number(segment: &str) -> Option<u32> {
    segment.strip_prefix('v')?.parse().ok()
}

impl Shared {
    pub(crate) fn render_options(&self) -> RenderOptions {
        RenderOptions {
            unknown_values: self.knobs().unknown_values,
        }
    }

    /// Authenticates and routes one API call under `/rest/`.
    pub(crate) fn dispatch(&self, request: &SimRequest) -> SimResponse {
        if let Err(error) = self.authenticate(request) {
            return self.error_response(&error);
        }
        self.route(request)
            .unwrap_or_else(|error| self.error_response(&error))
    }

    fn route(&self, request: &SimRequest) -> ApiResult {
        let lower: Vec<&str> = request.lower[1..].iter().map(String::as_str).collect();
        let ids: Vec<&str> = request.segments[1..].iter().map(String::as_str).collect();
        let method = request.method.clone();
        let unknown =
            || ApiError::not_found("Resource", &format!("{} {}", request.method, request.path));
        let (area, version, rest) = match lower.as_slice() {
            [area, version, rest @ ..] => {
                (*area, version_number(version).ok_or_else(unknown)?, rest)
            }
            _ => return Err(unknown()),
        };
        let id = ids.get(3).copied().unwrap_or("");
        match area {
            "inventory" => {
                let resource = rest.first().copied().unwrap_or("");
                let known = INVENTORY_VERSIONS
                    .iter()
                    .any(|(name, max)| *name == resource && (1..=*max).contains(&version));
                if !known {
                    return Err(unknown());
                }
                self.route_inventory(request, &method, version, rest, id)
                    .unwrap_or_else(|| Err(unknown()))
            }
            "entitlements" if version == 1 => {
                let result = match (method, rest) {
                    (Method::GET, [kind]) => self.list_entitlements(request, kind),
                    (Method::GET, [kind, _]) => self.get_entitlement(kind, id),
                    (Method::POST, [kind]) => self.change_entitlements(request, kind, true),
                    (Method::DELETE, [kind]) => self.change_entitlements(request, kind, false),
                    _ => return Err(unknown()),
                };
                result.unwrap_or_else(|| Err(unknown()))
            }
            "external" if version == 1 => match (method, rest) {
                (Method::GET, ["ad-users-or-groups"]) => self.list_principals(request),
                (Method::GET, ["ad-users-or-groups", _]) => self.get_principal(id),
                _ => Err(unknown()),
            },
            _ => Err(unknown()),
        }
    }

    /// Routes an inventory call whose resource and version are known; `None` means no such
    /// route.
    fn route_inventory(
        &self,
        request: &SimRequest,
        method: &Method,
        version: u32,
        rest: &[&str],
        id: &str,
    ) -> Option<ApiResult> {
        let result = match (method.clone(), rest) {
            (Method::GET, ["desktop-pools"]) => self.list_desktop_pools(request, version),
            (Method::GET, ["desktop-pools", _]) => self.get_desktop_pool(id, version),
            (Method::GET, ["machines"]) => self.list_machines(request, version),
            (Method::GET, ["machines", _]) => self.get_machine(id, version),
            (Method::POST, ["machines", "action", action]) if version == 1 => {
                self.machine_maintenance(request, action)?
            }
            (Method::GET, ["sessions"]) => self.list_sessions(request),
            (Method::GET, ["sessions", _]) => self.get_session(id),
            (Method::POST, ["sessions", "action", "send-message"]) => self.send_message(request),
            (Method::GET, ["farms"]) => self.list_farms(request),
            (Method::GET, ["farms", _]) => self.get_farm(id),
            (Method::GET, ["rds-servers"]) => self.list_rds_servers(request),
            (Method::GET, ["rds-servers", _]) => self.get_rds_server(id),
            (Method::GET, ["application-pools"]) => self.list_application_pools(request),
            (Method::GET, ["application-pools", _]) => self.get_application_pool(id),
            (Method::POST, ["application-pools"]) => self.create_application_pool(request),
            (Method::PUT, ["application-pools", _]) => {
                self.update_application_pool(request, id, false)
            }
            (Method::PATCH, ["application-pools", _]) => {
                self.update_application_pool(request, id, true)
            }
            (Method::DELETE, ["application-pools", _]) => self.delete_application_pool(id),
            _ => return None,
        };
        Some(result)
    }
}
