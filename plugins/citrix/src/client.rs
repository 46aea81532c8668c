//! Typed calls to the Citrix Orchestration API on top of the shared [`BrokerClient`]: paths,
//! paging parameters, asynchronous jobs and `$batch`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_http::{collect_pages, BrokerClient, BrokerRequest, BrokerResponse};
use http::Method;
use serde::de::DeserializeOwned;
use vdi_contracts::{BrokerWrite, ErrorKind, ProviderError, ProviderResult};

use crate::auth::{CitrixAuthenticator, SiteInfo};
use crate::error::status_error;
use crate::model::{
    metadata_value, Application, ApplicationGroup, BatchItem, BatchResults, Collection,
    DeliveryGroup, Job, JobStatus, Machine, Me, Session, Tag,
};
use crate::naming::segment;

/// Pages a listing may have at most before the gateway assumes the server loops.
const MAX_PAGES: usize = 10_000;

/// First and maximum pause between polls of a job. citrix-daas-rest-go polls every 10 s; the
/// gateway starts faster because tag and application jobs usually finish within a second.
const FIRST_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(5);

/// A request that finished, with the job it started when it ran asynchronously.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The first response (202 for a job).
    pub response: BrokerResponse,
    /// The finished job, for asynchronous requests.
    pub job: Option<Job>,
}

impl Completed {
    /// Returns the audit record of this write.
    pub fn write(&self, operation: &str, machine: Option<&str>) -> BrokerWrite {
        write_record(operation, &self.response, machine)
    }
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

/// Outcome of one request of a `$batch` call.
#[derive(Debug)]
pub struct BatchOutcome {
    /// Status of the request, when the batch reported one.
    pub status: Option<u16>,
    /// Transaction id of the request, else of the batch call.
    pub request_id: Option<String>,
    /// Success, or the request's error.
    pub result: ProviderResult<()>,
}

/// Typed Citrix calls for one provider instance.
#[derive(Debug, Clone)]
pub struct CitrixApi {
    client: BrokerClient,
    auth: Arc<CitrixAuthenticator>,
    customer_id: String,
    page_size: u32,
    job_timeout: Duration,
}

impl CitrixApi {
    /// Wraps a client whose authenticator is `auth`.
    pub fn new(
        client: BrokerClient,
        auth: Arc<CitrixAuthenticator>,
        customer_id: String,
        page_size: u32,
        job_timeout: Duration,
    ) -> Self {
        Self {
            client,
            auth,
            customer_id,
            page_size,
            job_timeout,
        }
    }

    /// Returns the underlying client.
    pub fn client(&self) -> &BrokerClient {
        &self.client
    }

    /// Calls `GET me`.
    ///
    /// # Errors
    /// Fails on auth or transport errors; a frozen site is `unavailable`.
    pub async fn me(&self) -> ProviderResult<Me> {
        self.auth.fetch_me(&self.client).await
    }

    /// Returns the managed site, discovering it on first use.
    ///
    /// # Errors
    /// Fails as [`CitrixApi::me`] does.
    pub async fn site(&self) -> ProviderResult<SiteInfo> {
        self.auth.site(&self.client).await
    }

    /// Sends a request.
    ///
    /// # Errors
    /// Returns the classified error.
    pub async fn send(&self, request: BrokerRequest) -> ProviderResult<BrokerResponse> {
        self.client.send(request).await
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: String,
        operation: &'static str,
    ) -> ProviderResult<T> {
        let response = self
            .send(BrokerRequest::get(path).operation(operation))
            .await?;
        response.json()
    }

    /// Reads one object, returning `None` on 404.
    async fn get_optional<T: DeserializeOwned>(
        &self,
        path: String,
        operation: &'static str,
    ) -> ProviderResult<Option<T>> {
        match self.get_json(path, operation).await {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.kind == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Reads one page of a collection at `path`.
    ///
    /// # Errors
    /// Returns the classified error.
    pub async fn page<T: DeserializeOwned>(
        &self,
        path: &str,
        cursor: Option<String>,
        operation: &'static str,
    ) -> ProviderResult<(Vec<T>, Option<String>)> {
        let mut request = BrokerRequest::get(path)
            .operation(operation)
            .query("limit", self.page_size.to_string());
        if let Some(token) = cursor {
            // Request parameter is camelCase; the response key is PascalCase (Citrix paging guide).
            request = request.query("continuationToken", token);
        }
        let page: Collection<T> = self.send(request).await?.json()?;
        Ok(page.into_page())
    }

    async fn all<T: DeserializeOwned>(
        &self,
        path: &str,
        operation: &'static str,
    ) -> ProviderResult<Vec<T>> {
        collect_pages(path, MAX_PAGES, |cursor| self.page(path, cursor, operation)).await
    }

    /// Reads a delivery group by id, name or full name (`Folder\Name`); `None` when unknown.
    ///
    /// # Errors
    /// Returns the classified error for anything but 404.
    pub async fn delivery_group(&self, name_or_id: &str) -> ProviderResult<Option<DeliveryGroup>> {
        let path = format!("DeliveryGroups/{}", segment(name_or_id));
        self.get_optional(path, "get_delivery_group").await
    }

    /// Lists every delivery group.
    ///
    /// # Errors
    /// Returns the classified error.
    pub async fn delivery_groups(&self) -> ProviderResult<Vec<DeliveryGroup>> {
        self.all("DeliveryGroups", "list_delivery_groups").await
    }

    /// Reads one page of a delivery group's machines.
    ///
    /// # Errors
    /// Returns the classified error.
    pub async fn group_machines_page(
        &self,
        group_id: &str,
        cursor: Option<String>,
    ) -> ProviderResult<(Vec<Machine>, Option<String>)> {
        let path = format!("DeliveryGroups/{}/Machines", segment(group_id));
        self.page(&path, cursor, "list_machines").await
    }

    /// Lists every machine of a delivery group.
    ///
    /// # Errors
    /// Returns the classified error.
    pub async fn group_machines(&self, group_id: &str) -> ProviderResult<Vec<Machine>> {
        let path = format!("DeliveryGroups/{}/Machines", segment(group_id));
        self.all(&path, "list_machines").await
    }

    /// Lists every session of the site.
    ///
    /// # Errors
    /// Returns the classified error.
    pub async fn sessions(&self) -> ProviderResult<Vec<Session>> {
        self.all("Sessions", "list_sessions").await
    }

    /// Reads a site tag by name or id; `None` when unknown.
    ///
    /// # Errors
    /// Returns the classified error for anything but 404.
    pub async fn tag(&self, name_or_id: &str) -> ProviderResult<Option<Tag>> {
        self.get_optional(format!("Tags/{}", segment(name_or_id)), "get_tag")
            .await
    }

    /// Lists every site tag.
    ///
    /// # Errors
    /// Returns the classified error.
    pub async fn tags(&self) -> ProviderResult<Vec<Tag>> {
        self.all("Tags", "list_tags").await
    }

    /// Reads an application group by name or id; `None` when unknown.
    ///
    /// # Errors
    /// Returns the classified error for anything but 404.
    pub async fn application_group(
        &self,
        name_or_id: &str,
    ) -> ProviderResult<Option<ApplicationGroup>> {
        let path = format!("ApplicationGroups/{}", segment(name_or_id));
        self.get_optional(path, "get_application_group").await
    }

    /// Reads an application by name or id; `None` when unknown.
    ///
    /// # Errors
    /// Returns the classified error for anything but 404.
    pub async fn application(&self, name_or_id: &str) -> ProviderResult<Option<Application>> {
        let path = format!("Applications/{}", segment(name_or_id));
        self.get_optional(path, "get_application").await
    }

    /// Lists the application groups an application is in.
    ///
    /// # Errors
    /// Returns the classified error.
    pub async fn application_groups_of(
        &self,
        application_id: &str,
    ) -> ProviderResult<Vec<ApplicationGroup>> {
        let path = format!("Applications/{}/ApplicationGroups", segment(application_id));
        self.all(&path, "list_application_groups").await
    }

    /// Returns whether any session runs the application.
    ///
    /// # Errors
    /// Returns the classified error.
    pub async fn application_has_sessions(&self, application_id: &str) -> ProviderResult<bool> {
        let path = format!("Applications/{}/Sessions", segment(application_id));
        let request = BrokerRequest::get(path)
            .operation("list_application_sessions")
            .query("limit", "1");
        let page: Collection<Session> = self.send(request).await?.json()?;
        Ok(!page.items.is_empty() || page.total_items.unwrap_or(0) > 0)
    }

    /// Sends a write with `async=true` and waits for the job it starts. A server that returns
    /// no job (200, 201, 204) has finished already.
    ///
    /// # Errors
    /// Returns the classified error, or the job's error when it ends `Failed` or `Canceled`.
    pub async fn run_async(&self, request: BrokerRequest) -> ProviderResult<Completed> {
        let response = self.send(request.query("async", "true")).await?;
        let Some(job_id) = accepted_job_id(&response) else {
            return Ok(Completed {
                response,
                job: None,
            });
        };
        let job = self.wait_for_job(&job_id).await?;
        check_job(&job_id, &job)?;
        Ok(Completed {
            response,
            job: Some(job),
        })
    }

    /// Polls `Jobs/{id}` with growing pauses until the job reaches a terminal status or the
    /// configured job timeout passes.
    ///
    /// # Errors
    /// `unavailable` when the job is still running at the timeout, or the poll's error.
    pub async fn wait_for_job(&self, job_id: &str) -> ProviderResult<Job> {
        let started = Instant::now();
        let mut pause = FIRST_POLL;
        loop {
            let path = format!("Jobs/{}", segment(job_id));
            let job: Job = self.get_json(path, "get_job").await?;
            let status = job
                .status
                .clone()
                .unwrap_or(JobStatus::Unknown(String::new()));
            if status.is_terminal() {
                return Ok(job);
            }
            if started.elapsed() + pause > self.job_timeout {
                return Err(ProviderError::unavailable(format!(
                    "Citrix job {job_id} ({}) is still {} after {} s; look it up under Jobs in Citrix Studio",
                    job.type_name(),
                    status.as_str(),
                    self.job_timeout.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Sends requests in one `POST $batch?async=true` and returns one outcome per item, in
    /// order. Items that return 202 are followed to their sub-job.
    ///
    /// # Errors
    /// Fails as a whole only when the batch call itself fails; item failures are outcomes.
    pub async fn batch(
        &self,
        requests: &[(Method, String)],
    ) -> ProviderResult<(Option<BrokerResponse>, Vec<BatchOutcome>)> {
        let site = self.site().await?;
        let items: Vec<BatchItem> = requests
            .iter()
            .enumerate()
            .map(|(index, (method, path))| BatchItem {
                reference: index.to_string(),
                method: method.to_string(),
                // Batch URLs start with the version, customer and site (BatchRequestItemModel).
                relative_url: format!(
                    "v1/{}/{}/{path}",
                    segment(&self.customer_id),
                    segment(&site.id)
                ),
                headers: Vec::new(),
                body: None,
            })
            .collect();
        let body = serde_json::json!({ "Items": items });
        let request = BrokerRequest::post("$batch")
            .operation("batch")
            .json(body)
            .query("async", "true");
        let response = self.send(request).await?;
        let results = match accepted_job_id(&response) {
            Some(job_id) => {
                let job = self.wait_for_job(&job_id).await?;
                match self.job_results(&job_id).await {
                    Ok(results) => {
                        if let Err(error) = check_job(&job_id, &job) {
                            tracing::warn!(job_id = %job_id, error = %error, "Citrix batch job failed; reading per-item results");
                        }
                        results
                    }
                    Err(read_error) => {
                        // Without results every item shares the job's fate.
                        let verdict = check_job(&job_id, &job).map_err(|e| e.to_body());
                        tracing::warn!(job_id = %job_id, error = %read_error, "cannot read Citrix batch results");
                        let outcomes = requests
                            .iter()
                            .map(|_| BatchOutcome {
                                status: None,
                                request_id: response.request_id.clone(),
                                result: match &verdict {
                                    Ok(()) => Err(ProviderError::unavailable(format!(
                                        "Citrix batch job {job_id} finished but its results cannot be read: {}",
                                        read_error.message
                                    ))),
                                    Err(body) => Err(ProviderError::from(body.clone())),
                                },
                            })
                            .collect();
                        return Ok((Some(response), outcomes));
                    }
                }
            }
            None => response.json::<BatchResults>()?,
        };
        let mut outcomes = Vec::with_capacity(requests.len());
        for (index, (method, path)) in requests.iter().enumerate() {
            let reference = index.to_string();
            let item = results
                .items
                .iter()
                .find(|item| item.reference.as_deref() == Some(reference.as_str()));
            let outcome = match item {
                Some(item) => self.batch_item_outcome(method, path, item, &response).await,
                None => BatchOutcome {
                    status: None,
                    request_id: response.request_id.clone(),
                    result: Err(ProviderError::unavailable(format!(
                        "the Citrix batch returned no result for {method} {path}"
                    ))),
                },
            };
            outcomes.push(outcome);
        }
        Ok((Some(response), outcomes))
    }

    async fn job_results(&self, job_id: &str) -> ProviderResult<BatchResults> {
        self.get_json(
            format!("Jobs/{}/Results", segment(job_id)),
            "get_job_results",
        )
        .await
    }

    async fn batch_item_outcome(
        &self,
        method: &Method,
        path: &str,
        item: &crate::model::BatchResultItem,
        batch: &BrokerResponse,
    ) -> BatchOutcome {
        let header = |name: &str| metadata_value(&item.headers, name).map(str::to_owned);
        let request_id = header("citrix-transactionid").or_else(|| batch.request_id.clone());
        let Some(code) = item.code else {
            return BatchOutcome {
                status: None,
                request_id,
                result: Err(ProviderError::unavailable(format!(
                    "the Citrix batch result of {method} {path} has no status code"
                ))),
            };
        };
        let result = if code == 202 {
            // An item may start its own job; its Location header names the sub-job.
            match header("Location").as_deref().and_then(job_id_from_location) {
                Some(job_id) => match self.wait_for_job(&job_id).await {
                    Ok(job) => check_job(&job_id, &job),
                    Err(error) => Err(error),
                },
                None => Ok(()),
            }
        } else if (200..300).contains(&code) {
            Ok(())
        } else {
            let body = item.body.as_deref().unwrap_or_default().as_bytes();
            Err(status_error(
                method.as_str(),
                path,
                code,
                body,
                request_id.as_deref(),
            ))
        };
        BatchOutcome {
            status: Some(code),
            request_id,
            result,
        }
    }
}

/// Returns the job id of a 202 response, from its `Location` header.
fn accepted_job_id(response: &BrokerResponse) -> Option<String> {
    if response.status.as_u16() != 202 {
        return None;
    }
    response
        .header_str("location")
        .and_then(job_id_from_location)
}

/// Returns the last path segment of `.../Jobs/{id}` (citrix-daas-rest-go
/// `GetJobIdFromHttpResponse` takes the same segment).
pub fn job_id_from_location(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next().unwrap_or(location);
    let id = path.trim_end_matches('/').rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// Turns a terminal job into success or its error; `CompleteWithWarning` succeeds with a
/// warning in the log.
pub fn check_job(job_id: &str, job: &Job) -> ProviderResult<()> {
    match job
        .status
        .clone()
        .unwrap_or(JobStatus::Unknown(String::new()))
    {
        JobStatus::Complete => Ok(()),
        JobStatus::CompleteWithWarning => {
            tracing::warn!(job_id = %job_id, job_type = %job.type_name(), warning = %job.error_text(), "Citrix job completed with a warning");
            Ok(())
        }
        status => Err(ProviderError::new(
            ErrorKind::Conflict,
            format!(
                "Citrix job {job_id} ({}) ended {}: {}",
                job.type_name(),
                status.as_str(),
                job.error_text()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_id_from_absolute_location() {
        assert_eq!(
            job_id_from_location("https://api.cloud.com/cvad/manage/Jobs/5f0c1d2e?x=1"),
            Some("5f0c1d2e".into())
        );
    }

    #[test]
    fn job_id_from_relative_location() {
        assert_eq!(job_id_from_location("Jobs/j-7/"), Some("j-7".into()));
        assert_eq!(job_id_from_location(""), None);
    }

    #[test]
    fn warning_job_succeeds() {
        let job: Job = serde_json::from_str(r#"{"Status":"CompleteWithWarning"}"#).expect("parses");
        assert!(check_job("j", &job).is_ok());
    }

    #[test]
    fn failed_job_carries_details() {
        let job: Job = serde_json::from_str(
            r#"{"Type":"AddApplications","Status":"Failed",
                "ErrorParameters":[{"Name":"ErrorDetails","Value":"ErrorMessage : quota"}]}"#,
        )
        .expect("parses");
        let error = check_job("j-1", &job).expect_err("fails");
        assert_eq!(error.kind, ErrorKind::Conflict);
        assert!(
            error.message.contains("ErrorMessage : quota"),
            "{}",
            error.message
        );
        assert!(error.message.contains("j-1"), "{}", error.message);
    }
}
