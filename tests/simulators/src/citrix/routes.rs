//! Case-insensitive routing of `/cvad/manage` calls and the site, delivery group, machine,
//! session and tag endpoints.

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};

use super::auth::{TokenKind, ONPREM_CUSTOMER_ID};
use super::error::ApiError;
use super::jobs::Job;
use super::model::{self, timestamp, RenderOptions};
use super::paging::{self, page, JsonBody};
use super::server::Shared;
use super::state::{CitrixState, Machine, Tag};
use crate::common::http::{SimRequest, SimResponse};
use crate::common::JobOutcome;

pub(crate) type ApiResult = Result<SimResponse, ApiError>;

/// Product version reported by `GET /Sites/{id}` (CVAD 2402).
const PRODUCT_VERSION: &str = "7.41";
/// Orchestration API version reported by `GET /Sites/{id}`.
const ORCHESTRATION_API_VERSION: &str = "125";

impl Shared {
    fn render_options(&self) -> RenderOptions {
        RenderOptions {
            unknown_values: self.knobs().unknown_values,
        }
    }

    /// Authenticates and routes one API call. `offset` is the index of the first segment
    /// after the API base (`/cvad/manage` or the Go client's `/citrix/orchestration/api/...`).
    pub(crate) fn dispatch(&self, request: &SimRequest, offset: usize) -> SimResponse {
        let lower: Vec<&str> = request.lower[offset..].iter().map(String::as_str).collect();
        let name: Vec<&str> = request.segments[offset..]
            .iter()
            .map(String::as_str)
            .collect();
        let site_scoped = !matches!(lower.as_slice(), ["me"]);
        let kind = match self.authenticate(request, site_scoped) {
            Ok(kind) => kind,
            Err(error) => return error.into_response(),
        };
        let method = &request.method;
        let result = match (method.clone(), lower.as_slice()) {
            (Method::GET, ["me"]) => self.me(kind),
            (Method::GET, ["sites"]) => Ok(paging::all(vec![self.site()])),
            (Method::GET, ["sites", _]) => self.site_by_id(name[1]),

            (Method::GET, ["deliverygroups"]) => self.list_delivery_groups(request),
            (Method::GET, ["deliverygroups", _]) => self.get_delivery_group(name[1]),
            (Method::GET, ["deliverygroups", _, "machines"]) => {
                self.delivery_group_machines(request, name[1])
            }
            (Method::GET, ["deliverygroups", _, "applications"]) => {
                self.delivery_group_applications(name[1])
            }

            (Method::GET, ["machines"]) => self.list_machines(request),
            (Method::GET, ["machines", _]) => self.get_machine(name[1]),
            (Method::GET, ["machines", _, "sessions"]) => self.machine_sessions(name[1]),
            (Method::GET, ["machines", _, "deliverygroup"]) => self.machine_group(name[1]),
            (Method::GET, ["machines", _, "tags"]) => self.machine_tags(name[1]),
            (Method::PUT, ["machines", _, "tags"]) => {
                self.run_write(request, "SetTagMachines", || {
                    self.replace_machine_tags(request, name[1])
                })
            }
            (Method::POST, ["machines", _, "tags", _]) => {
                self.run_write(request, "SetTagMachines", || {
                    self.add_machine_tag(name[1], name[3])
                })
            }
            (Method::DELETE, ["machines", _, "tags", _]) => {
                self.run_write(request, "SetTagMachines", || {
                    self.remove_machine_tag(name[1], name[3])
                })
            }

            (Method::GET, ["sessions"]) => self.list_sessions(request),
            (Method::GET, ["sessions", _]) => self.get_session(name[1]),

            (Method::GET, ["tags"]) => self.list_tags(request),
            (Method::POST, ["tags"]) => {
                self.run_write(request, "CreateTag", || self.create_tag(request))
            }
            (Method::GET, ["tags", _]) => self.get_tag(name[1]),
            (Method::DELETE, ["tags", _]) => {
                self.run_write(request, "DeleteTag", || self.delete_tag(name[1]))
            }
            (Method::GET, ["tags", _, "machines"]) => self.tag_machines(request, name[1]),

            (Method::GET, ["jobs"]) => Ok(self.list_jobs()),
            (Method::GET, ["jobs", _]) => self.get_job(name[1]),
            (Method::GET, ["jobs", _, "results"]) => self.job_results(name[1]),

            (Method::POST, ["$batch"]) => self.run_write(request, "Batch", || self.batch(request)),

            (_, ["applicationgroups", ..]) | (_, ["applications", ..]) => {
                return self.dispatch_applications(request, &lower, &name)
            }
            _ => Err(self.unknown_route(request)),
        };
        result.unwrap_or_else(ApiError::into_response)
    }

    /// Returns the 404 error for a path or method that the simulator does not serve.
    pub(crate) fn unknown_route(&self, request: &SimRequest) -> ApiError {
        ApiError::not_found("Resource", &format!("{} {}", request.method, request.path))
    }

    /// Runs a write, or with `async=true` wraps it in a job and returns 202 with a
    /// `Location` of the job.
    ///
    /// A write that fails validation (4xx) fails at once even when asynchronous. With the
    /// `Failed` job outcome the write is not run at all.
    pub(crate) fn run_write(
        &self,
        request: &SimRequest,
        job_type: &str,
        write: impl FnOnce() -> ApiResult,
    ) -> ApiResult {
        if !request.query_flag("async") {
            return write();
        }
        let outcome = self.knobs().job_outcome;
        let results = if outcome == JobOutcome::Failed {
            None
        } else {
            let response = write()?;
            if !response.status.is_success() {
                return Ok(response);
            }
            serde_json::from_slice::<Value>(&response.body).ok()
        };
        let mut state = self.lock_state();
        let job = Job {
            id: state.new_id(),
            job_type: job_type.to_string(),
            outcome,
            parameters: Vec::new(),
            created: chrono::Utc::now(),
            polls: 0,
            results,
        };
        let location = format!("{}Jobs/{}", self.api_base, job.id);
        state.jobs.insert(job.id.clone(), job);
        Ok(SimResponse::empty(StatusCode::ACCEPTED).with_header(header::LOCATION, location))
    }

    fn me(&self, kind: TokenKind) -> ApiResult {
        if self.knobs().frozen {
            let status = StatusCode::from_u16(530).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Err(ApiError::new(
                status,
                "SiteFrozen",
                "The site is frozen and must be activated before use.",
            ));
        }
        let customer = match kind {
            TokenKind::Cloud => self.config.customer_id.clone(),
            TokenKind::OnPremises => ONPREM_CUSTOMER_ID.to_string(),
        };
        let state = self.lock_state();
        let expiry = chrono::Utc::now() + chrono::Duration::hours(1);
        let body = json!({
            "UserId": "a5c5d1b0-8c1e-4b43-9c2f-5a3e7c1d2b10",
            "DisplayName": "Gateway API client",
            "ExpiryTime": timestamp(expiry),
            "RefreshExpirationTime": timestamp(expiry),
            "IsCspCustomer": false,
            "Customers": [{
                "Id": customer,
                "Name": self.config.customer_id,
                "Sites": [{"Id": state.site_id, "Name": state.site_name}],
            }],
        });
        Ok(SimResponse::json(StatusCode::OK, &body))
    }

    fn site(&self) -> Value {
        let state = self.lock_state();
        json!({
            "Id": state.site_id,
            "Name": state.site_name,
            "ProductVersion": PRODUCT_VERSION,
            "OrchestationApiVersion": ORCHESTRATION_API_VERSION,
            "PrimaryZone": {"Id": state.zone_id, "Name": "Primary Zone"},
        })
    }

    fn site_by_id(&self, name_or_id: &str) -> ApiResult {
        let site = self.site();
        let matches = [&site["Id"], &site["Name"]].iter().any(|value| {
            value
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case(name_or_id))
        });
        if !matches {
            return Err(ApiError::not_found("Site", name_or_id));
        }
        Ok(SimResponse::json(StatusCode::OK, &site))
    }

    fn list_delivery_groups(&self, request: &SimRequest) -> ApiResult {
        let options = self.render_options();
        let state = self.lock_state();
        page(&state.delivery_groups, request, |group| {
            model::delivery_group(&state, group, options)
        })
    }

    fn get_delivery_group(&self, name_or_id: &str) -> ApiResult {
        let options = self.render_options();
        let state = self.lock_state();
        let index = find_group(&state, name_or_id)?;
        let body = model::delivery_group(&state, &state.delivery_groups[index], options);
        Ok(SimResponse::json(StatusCode::OK, &body))
    }

    fn delivery_group_machines(&self, request: &SimRequest, name_or_id: &str) -> ApiResult {
        let options = self.render_options();
        let state = self.lock_state();
        let index = find_group(&state, name_or_id)?;
        let group_id = state.delivery_groups[index].id.clone();
        let machines: Vec<&Machine> = state.machines_in_group(&group_id).collect();
        page(&machines, request, |m| model::machine(&state, m, options))
    }

    fn delivery_group_applications(&self, name_or_id: &str) -> ApiResult {
        let state = self.lock_state();
        let index = find_group(&state, name_or_id)?;
        let group_id = &state.delivery_groups[index].id;
        let via: Vec<&str> = state
            .app_groups
            .iter()
            .filter(|g| g.delivery_groups.iter().any(|r| &r.id == group_id))
            .map(|g| g.id.as_str())
            .collect();
        let items = state
            .applications
            .iter()
            .filter(|a| {
                a.delivery_groups.iter().any(|r| &r.id == group_id)
                    || a.application_groups
                        .iter()
                        .any(|g| via.contains(&g.as_str()))
            })
            .map(model::application)
            .collect();
        Ok(paging::all(items))
    }

    fn list_machines(&self, request: &SimRequest) -> ApiResult {
        let options = self.render_options();
        let state = self.lock_state();
        let support = request.query.get("sessionsupport");
        let machines: Vec<&Machine> = state
            .machines
            .iter()
            .filter(|m| support.is_none_or(|s| m.session_support.eq_ignore_ascii_case(s)))
            .collect();
        page(&machines, request, |m| model::machine(&state, m, options))
    }

    fn get_machine(&self, name_or_id: &str) -> ApiResult {
        let options = self.render_options();
        let state = self.lock_state();
        let index = find_machine(&state, name_or_id)?;
        let body = model::machine(&state, &state.machines[index], options);
        Ok(SimResponse::json(StatusCode::OK, &body))
    }

    fn machine_sessions(&self, name_or_id: &str) -> ApiResult {
        let options = self.render_options();
        let state = self.lock_state();
        let machine = &state.machines[find_machine(&state, name_or_id)?];
        let items = machine
            .sessions
            .iter()
            .map(|s| model::session(&state, machine, s, options))
            .collect();
        Ok(paging::all(items))
    }

    fn machine_group(&self, name_or_id: &str) -> ApiResult {
        let options = self.render_options();
        let state = self.lock_state();
        let machine = &state.machines[find_machine(&state, name_or_id)?];
        let group = machine
            .delivery_group_id
            .as_deref()
            .and_then(|id| state.delivery_group(id))
            .ok_or_else(|| ApiError::not_found("DeliveryGroup", name_or_id))?;
        let body = model::delivery_group(&state, group, options);
        Ok(SimResponse::json(StatusCode::OK, &body))
    }

    fn machine_tags(&self, name_or_id: &str) -> ApiResult {
        let state = self.lock_state();
        let machine = &state.machines[find_machine(&state, name_or_id)?];
        let items = machine
            .tags
            .iter()
            .filter_map(|id| state.tag(id))
            .map(|t| model::tag(&state, t))
            .collect();
        Ok(paging::all(items))
    }

    fn add_machine_tag(&self, machine_name: &str, tag_name: &str) -> ApiResult {
        let knobs = self.knobs();
        let mut state = self.lock_state();
        let index = find_machine(&state, machine_name)?;
        let machine = &state.machines[index];
        let fails = knobs.fail_tag_machines.iter().any(|entry| {
            entry.eq_ignore_ascii_case(&machine.id)
                || entry.replace('|', "\\").eq_ignore_ascii_case(&machine.name)
        });
        if fails {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                format!(
                    "Failed to add tag '{tag_name}' to machine '{}'.",
                    machine.name
                ),
            ));
        }
        let tag_id = state.tags[find_tag(&state, tag_name)?].id.clone();
        let tags = &mut state.machines[index].tags;
        if !tags.contains(&tag_id) {
            tags.push(tag_id);
        }
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    fn remove_machine_tag(&self, machine_name: &str, tag_name: &str) -> ApiResult {
        let mut state = self.lock_state();
        let index = find_machine(&state, machine_name)?;
        let tag_id = state.tags[find_tag(&state, tag_name)?].id.clone();
        let tags = &mut state.machines[index].tags;
        let Some(position) = tags.iter().position(|id| *id == tag_id) else {
            return Err(
                ApiError::not_found("Tag", tag_name).with_parameter("Machine", machine_name)
            );
        };
        tags.remove(position);
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    /// Replaces a machine's tag set from a `TagsRequestModel` (`Items`, `CreateTags`).
    /// A non-empty `DeleteTags` never reaches here: the deny-list catches it.
    fn replace_machine_tags(&self, request: &SimRequest, machine_name: &str) -> ApiResult {
        let body = JsonBody::parse(&request.body)?;
        let items = body.strings("Items")?.unwrap_or_default();
        let mut creates = Vec::new();
        for create in body.array("CreateTags")?.cloned().unwrap_or_default() {
            let create = JsonBody::from_value(create)?;
            let name = create
                .string("Name")?
                .ok_or_else(|| ApiError::bad_request("CreateTags entries need a Name."))?;
            creates.push((name, create.string("Description")?));
        }
        let mut state = self.lock_state();
        let index = find_machine(&state, machine_name)?;
        let mut tag_ids = Vec::new();
        for item in &items {
            tag_ids.push(state.tags[find_tag(&state, item)?].id.clone());
        }
        for (name, description) in creates {
            let id = match state.tag_index_of(&name) {
                Some(existing) => state.tags[existing].id.clone(),
                None => new_tag(&mut state, name, description),
            };
            tag_ids.push(id);
        }
        tag_ids.dedup();
        state.machines[index].tags = tag_ids;
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    fn list_sessions(&self, request: &SimRequest) -> ApiResult {
        let options = self.render_options();
        let state = self.lock_state();
        let sessions: Vec<_> = state.sessions().collect();
        page(&sessions, request, |(machine, session)| {
            model::session(&state, &state.machines[*machine], session, options)
        })
    }

    fn get_session(&self, id: &str) -> ApiResult {
        let options = self.render_options();
        let state = self.lock_state();
        let (machine, session) = state
            .sessions()
            .find(|(_, s)| s.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| ApiError::not_found("Session", id))?;
        let body = model::session(&state, &state.machines[machine], session, options);
        Ok(SimResponse::json(StatusCode::OK, &body))
    }

    fn list_tags(&self, request: &SimRequest) -> ApiResult {
        let state = self.lock_state();
        page(&state.tags, request, |t| model::tag(&state, t))
    }

    fn get_tag(&self, name_or_id: &str) -> ApiResult {
        let state = self.lock_state();
        let body = model::tag(&state, &state.tags[find_tag(&state, name_or_id)?]);
        Ok(SimResponse::json(StatusCode::OK, &body))
    }

    fn create_tag(&self, request: &SimRequest) -> ApiResult {
        let body = JsonBody::parse(&request.body)?;
        let name = body
            .string("Name")?
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ApiError::bad_request("Name is required."))?;
        let mut state = self.lock_state();
        if state.tag_index_of(&name).is_some() {
            return Err(ApiError::conflict("Tag", &name));
        }
        let id = new_tag(&mut state, name, body.string("Description")?);
        let tag = model::tag(&state, state.tag(&id).expect("tag was just added"));
        Ok(SimResponse::json(StatusCode::CREATED, &tag))
    }

    /// Deletes an unused tag.
    ///
    /// NOTE: Citrix documents no behaviour for deleting a tag that objects still carry. The
    /// simulator rejects it with 409, so clients must remove the tag from machines and
    /// application groups first.
    fn delete_tag(&self, name_or_id: &str) -> ApiResult {
        let mut state = self.lock_state();
        let index = find_tag(&state, name_or_id)?;
        let id = state.tags[index].id.clone();
        let machines = state
            .machines
            .iter()
            .filter(|m| m.tags.contains(&id))
            .count();
        let groups = state
            .app_groups
            .iter()
            .filter(|g| g.restrict_to_tag.as_deref() == Some(id.as_str()))
            .count();
        if machines > 0 || groups > 0 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "TagInUse",
                format!(
                    "Tag '{name_or_id}' is still used by {machines} machines and {groups} \
                     application groups."
                ),
            ));
        }
        state.tags.remove(index);
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    fn tag_machines(&self, request: &SimRequest, name_or_id: &str) -> ApiResult {
        let options = self.render_options();
        let state = self.lock_state();
        let id = state.tags[find_tag(&state, name_or_id)?].id.clone();
        let machines: Vec<&Machine> = state
            .machines
            .iter()
            .filter(|m| m.tags.contains(&id))
            .collect();
        page(&machines, request, |m| model::machine(&state, m, options))
    }

    fn list_jobs(&self) -> SimResponse {
        let state = self.lock_state();
        let mut jobs: Vec<&Job> = state.jobs.values().collect();
        jobs.sort_by_key(|job| job.created);
        paging::all(jobs.iter().map(|job| job.render(&self.api_base)).collect())
    }

    /// Returns a job. The first poll reports `InProgress` and later polls the final status.
    fn get_job(&self, id: &str) -> ApiResult {
        let mut state = self.lock_state();
        let job = state
            .jobs
            .values_mut()
            .find(|job| job.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| ApiError::not_found("Job", id))?;
        let body = job.render(&self.api_base);
        job.polls += 1;
        Ok(SimResponse::json(StatusCode::OK, &body))
    }

    fn job_results(&self, id: &str) -> ApiResult {
        let state = self.lock_state();
        let job = state
            .jobs
            .values()
            .find(|job| job.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| ApiError::not_found("Job", id))?;
        let body = job.results.clone().unwrap_or_else(|| json!({"Items": []}));
        Ok(SimResponse::json(StatusCode::OK, &body))
    }
}

pub(crate) fn find_group(state: &CitrixState, name_or_id: &str) -> Result<usize, ApiError> {
    state
        .delivery_group_index_of(name_or_id)
        .ok_or_else(|| ApiError::not_found("DeliveryGroup", name_or_id))
}

pub(crate) fn find_machine(state: &CitrixState, name_or_id: &str) -> Result<usize, ApiError> {
    state
        .machine_index_of(name_or_id)
        .ok_or_else(|| ApiError::not_found("Machine", name_or_id))
}

pub(crate) fn find_tag(state: &CitrixState, name_or_id: &str) -> Result<usize, ApiError> {
    state
        .tag_index_of(name_or_id)
        .ok_or_else(|| ApiError::not_found("Tag", name_or_id))
}

/// Adds a tag and returns its id.
pub(crate) fn new_tag(
    state: &mut CitrixState,
    name: String,
    description: Option<String>,
) -> String {
    let tag = Tag {
        id: state.new_id(),
        uid: state.new_uid(),
        name,
        description,
    };
    let id = tag.id.clone();
    state.tags.push(tag);
    id
}
