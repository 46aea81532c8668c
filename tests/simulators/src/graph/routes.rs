//! Routing of authenticated Graph calls to their handlers, and helpers the handlers share.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value};

use super::content::ContentPath;
use super::error::{GraphError, GraphResult};
use super::model::{self, ApiVersion};
use super::paging::{self, PageRules};
use super::query;
use super::server::Shared;
use crate::common::http::{SimRequest, SimResponse};

/// The type cast segment before `contentVersions`, lower case.
const WIN32_CAST: &str = "microsoft.graph.win32lobapp";

impl Shared {
    /// Dispatches a Graph call by method and lower-case path after the version segment.
    pub(crate) fn route(
        &self,
        request: &SimRequest,
        version: ApiVersion,
        rest: &[&str],
    ) -> GraphResult {
        // Original-case segments after the version, for ids in error messages.
        let original: Vec<&str> = request.segments[1..].iter().map(String::as_str).collect();
        let method = request.method.clone();
        match (method, rest) {
            (Method::GET, ["devicemanagement", "virtualendpoint", "cloudpcs"]) => {
                self.list_cloud_pcs(request, version)
            }
            (Method::GET, ["devicemanagement", "virtualendpoint", "cloudpcs", _]) => {
                self.get_cloud_pc(request, version, original[3])
            }
            (
                Method::POST,
                ["devicemanagement", "virtualendpoint", "cloudpcs", _, "troubleshoot"],
            ) => self.troubleshoot(original[3]),
            (Method::GET, ["devicemanagement", "virtualendpoint", "provisioningpolicies"]) => {
                self.list_policies(request, version)
            }
            (Method::GET, ["devicemanagement", "virtualendpoint", "provisioningpolicies", _]) => {
                self.get_policy(request, original[3])
            }
            (
                Method::GET,
                ["devicemanagement", "virtualendpoint", "provisioningpolicies", _, "assignments"],
            ) => self.list_policy_assignments(request, version, original[3]),
            (Method::GET, ["devicemanagement", "manageddevices"]) => {
                self.list_managed_devices(request, version)
            }
            (Method::GET, ["devicemanagement", "manageddevices", _]) => {
                self.get_managed_device(request, version, original[2])
            }
            (
                Method::POST,
                ["devicemanagement", "manageddevices", _, "syncdevice" | "microsoft.graph.syncdevice"],
            ) => self.sync_device(original[2]),
            (Method::GET, ["deviceappmanagement", "mobileapps"]) => {
                self.list_apps(request, version)
            }
            (Method::POST, ["deviceappmanagement", "mobileapps"]) => self.create_app(request),
            (Method::GET, ["deviceappmanagement", "mobileapps", _]) => {
                self.get_app(request, original[2])
            }
            (Method::DELETE, ["deviceappmanagement", "mobileapps", _]) => {
                self.delete_app(original[2])
            }
            (Method::PATCH, ["deviceappmanagement", "mobileapps", _]) => {
                self.update_app(request, original[2])
            }
            (
                method,
                ["deviceappmanagement", "mobileapps", _, cast, "contentversions", rest @ ..],
            ) if *cast == WIN32_CAST => {
                self.route_content(request, version, method, rest, &original)
            }
            (
                Method::POST,
                ["deviceappmanagement", "mobileapps", _, "assign" | "microsoft.graph.assign"],
            ) => self.assign_app(request, original[2]),
            (Method::GET, ["deviceappmanagement", "mobileapps", _, "assignments"]) => {
                self.list_app_assignments(request, version, original[2])
            }
            (Method::GET, ["groups"]) => self.list_groups(request, version),
            (Method::POST, ["groups"]) => self.create_group(request),
            (Method::GET, ["groups", _]) => self.get_group(request, original[1]),
            (Method::DELETE, ["groups", _]) => self.delete_group(original[1]),
            (Method::PATCH, ["groups", _]) => self.update_group(request, original[1]),
            (Method::GET, ["groups", _, "members"]) => {
                self.list_members(request, version, original[1])
            }
            (Method::POST, ["groups", _, "members", "$ref"]) => {
                self.add_member(request, original[1])
            }
            (Method::DELETE, ["groups", _, "members", _, "$ref"]) => {
                self.remove_member(original[1], original[3])
            }
            (Method::GET, ["users"]) => self.list_users(request, version),
            (Method::GET, ["devices"]) => self.list_devices(request, version),
            (Method::GET, ["devices", _]) => self.get_device(request, original[1]),
            (method, _) if self.is_known_path(rest) => {
                Err(GraphError::method_not_allowed(method.as_str()))
            }
            _ => Err(GraphError::no_route(&request.path)),
        }
    }

    /// Dispatches a call under `mobileApps/{id}/microsoft.graph.win32LobApp/contentVersions`;
    /// `rest` is the lower-case part after `contentVersions`.
    fn route_content(
        &self,
        request: &SimRequest,
        version: ApiVersion,
        method: Method,
        rest: &[&str],
        original: &[&str],
    ) -> GraphResult {
        let app = original[2];
        let path = ContentPath {
            app,
            version: original.get(5).copied().unwrap_or(""),
            file: original.get(7).copied().unwrap_or(""),
        };
        let action = rest
            .get(3)
            .map(|segment| segment.strip_prefix("microsoft.graph.").unwrap_or(segment));
        match (method, rest.len(), action) {
            (Method::GET, 0, _) => self.list_content_versions(request, version, app),
            (Method::POST, 0, _) => self.create_content_version(request, app),
            (Method::GET, 1, _) => self.get_content_version(request, app, path.version),
            (Method::GET, 2, _) if rest[1] == "files" => {
                self.list_content_files(request, version, path)
            }
            (Method::POST, 2, _) if rest[1] == "files" => {
                self.create_content_file(request, app, path.version)
            }
            (Method::GET, 3, _) if rest[1] == "files" => self.get_content_file(request, path),
            (Method::POST, 4, Some("commit")) if rest[1] == "files" => {
                self.commit_content_file(request, path)
            }
            (Method::POST, 4, Some("renewupload")) if rest[1] == "files" => self.renew_upload(path),
            (method, 0 | 1, _) => Err(GraphError::method_not_allowed(method.as_str())),
            (method, 2 | 3, _) if rest[1] == "files" => {
                Err(GraphError::method_not_allowed(method.as_str()))
            }
            _ => Err(GraphError::no_route(&request.path)),
        }
    }

    fn is_known_path(&self, rest: &[&str]) -> bool {
        matches!(
            rest.first().copied(),
            Some("devicemanagement" | "deviceappmanagement" | "groups" | "users" | "devices")
        )
    }

    /// Builds one page of a list response after `$filter`, `$select` and the
    /// `unknown_values` knob; `sample` lists every property of the resource type.
    pub(crate) fn list_response(
        &self,
        request: &SimRequest,
        items: Vec<Map<String, Value>>,
        list: ListKind<'_>,
    ) -> GraphResult {
        let clauses = match request.query.get("$filter") {
            Some(text) => query::parse_filter(text)?,
            None => Vec::new(),
        };
        let select = request
            .query
            .get("$select")
            .map(|text| query::parse_select(text));
        if let Some(sample) = items.first().filter(|_| !list.mixed_types) {
            query::check_properties(query::filter_properties(&clauses), sample, list.type_name)?;
            if let Some(select) = &select {
                query::check_properties(select.iter().map(String::as_str), sample, list.type_name)?;
            }
        }

        let count = request.query_flag("$count");
        if count
            && list.directory
            && !request
                .header("consistencylevel")
                .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
        {
            return Err(GraphError::directory_bad_request(
                "$count is only supported with the 'ConsistencyLevel: eventual' header on directory objects.",
            ));
        }

        let unknown = self.knobs().unknown_values;
        let items: Vec<Map<String, Value>> = items
            .into_iter()
            .filter(|item| query::matches_all(&clauses, item))
            .map(|item| finish_object(item, select.as_deref(), list.select_only, unknown))
            .collect();

        let rules = PageRules {
            default_size: self.config.page_size.max(1),
            max_size: if list.directory {
                paging::MAX_DIRECTORY_PAGE_SIZE
            } else {
                paging::MAX_INTUNE_PAGE_SIZE
            },
            reject_oversized: list.directory,
            empty_pages: self.knobs().empty_pages,
        };
        let context = format!(
            "https://graph.microsoft.com/{}/$metadata#{}",
            list.version.as_str(),
            list.context
        );
        let body = paging::page_body(items, request, &self.base_url, &context, rules, count)?;
        Ok(SimResponse::json(StatusCode::OK, &body))
    }

    /// Builds a single-object response after `$select` and the `unknown_values` knob.
    pub(crate) fn object_response(
        &self,
        request: &SimRequest,
        object: Map<String, Value>,
        status: StatusCode,
        select_only: &[&str],
    ) -> GraphResult {
        let select = request
            .query
            .get("$select")
            .map(|text| query::parse_select(text));
        if let Some(select) = &select {
            let type_name = object
                .get("@odata.type")
                .and_then(Value::as_str)
                .map(|name| name.trim_start_matches('#').to_string())
                .unwrap_or_else(|| "microsoft.graph.entity".to_string());
            query::check_properties(select.iter().map(String::as_str), &object, &type_name)?;
        }
        let object = finish_object(
            object,
            select.as_deref(),
            select_only,
            self.knobs().unknown_values,
        );
        Ok(SimResponse::json(status, &Value::Object(object)))
    }
}

/// What a list returns and how it pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListKind<'a> {
    pub version: ApiVersion,
    /// `@odata.context` after `$metadata#`, for example `groups`.
    pub context: &'a str,
    /// OData type name in errors, for example `microsoft.graph.group`.
    pub type_name: &'a str,
    /// Whether the list is an Entra ID directory list (999 page maximum, `$count` needs
    /// `ConsistencyLevel: eventual`, `$skip` rejected).
    pub directory: bool,
    /// Properties returned only when `$select` names them.
    pub select_only: &'a [&'a str],
    /// Whether items have different types (group members), so no property is checked.
    pub mixed_types: bool,
}

/// Applies `$select` (or drops select-only properties) and the unknown-value injection.
fn finish_object(
    object: Map<String, Value>,
    select: Option<&[String]>,
    select_only: &[&str],
    unknown: bool,
) -> Map<String, Value> {
    let mut object = match select {
        Some(select) => query::apply_select(object, select),
        None => object
            .into_iter()
            .filter(|(key, _)| !select_only.contains(&key.as_str()))
            .collect(),
    };
    if unknown {
        model::inject_unknown(&mut object);
    }
    object
}

/// Rejects `$skip`, which Cloud PC and directory lists do not support.
pub(crate) fn reject_skip(request: &SimRequest) -> Result<(), GraphError> {
    if request.query.contains_key("$skip") {
        return Err(GraphError::bad_request(
            "'$skip' is not supported by the service; follow @odata.nextLink instead.",
        ));
    }
    Ok(())
}

/// Parses a JSON request body.
///
/// Fails with 400 when the body is not valid JSON.
pub(crate) fn json_body(request: &SimRequest) -> Result<Value, GraphError> {
    serde_json::from_slice(&request.body).map_err(GraphError::invalid_body)
}
