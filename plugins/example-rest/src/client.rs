//! Typed calls of the Portal API over the shared broker client, with API-key authentication
//! and the endpoint guard.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use vdi_plugin_sdk::broker_http::{
    Authenticator, BrokerClient, BrokerRequest, BrokerResponse, ClientConfig, DefaultClassifier,
    Guard, RetryConfig,
};
use vdi_plugin_sdk::contracts::BrokerWrite;
use vdi_plugin_sdk::{async_trait, ExposeSecret, ProviderError, ProviderResult, SecretString};

use crate::config::PortalConfig;
use crate::model::{App, AppList, Group, GroupList, HealthBody, MachinePage, NewApp};

/// Header that carries the API key.
const API_KEY_HEADER: &str = "x-api-key";

/// Adds the API key to every request.
#[derive(Debug)]
struct ApiKeyAuthenticator {
    key: SecretString,
}

#[async_trait]
impl Authenticator for ApiKeyAuthenticator {
    async fn authorize(
        &self,
        _client: &BrokerClient,
        headers: &mut HeaderMap,
    ) -> ProviderResult<()> {
        let mut value = HeaderValue::from_str(self.key.expose_secret()).map_err(|_| {
            ProviderError::invalid("api_key contains characters not allowed in an HTTP header")
        })?;
        value.set_sensitive(true);
        headers.insert(HeaderName::from_static(API_KEY_HEADER), value);
        Ok(())
    }

    // A static key cannot be refreshed, so a 401 is final.
    async fn invalidate(&self) {}
}

/// Returns the deny-list: machine power, reboot and deletion, and image endpoints.
pub fn portal_guard() -> Guard {
    Guard::new("Portal")
        .deny("delete", &[Method::DELETE], "api/machines/*")
        .deny("power", &[], "api/machines/*/power")
        .deny("power", &[], "api/machines/*/reboot")
        .deny("image", &[], "api/images/**")
}

/// Characters encoded in a path segment: everything outside RFC 3986's unreserved set.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment.
fn segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// Client of one portal.
#[derive(Debug, Clone)]
pub struct PortalApi {
    client: BrokerClient,
    page_size: u32,
}

impl PortalApi {
    /// Builds the client. Sends nothing.
    ///
    /// # Errors
    /// Returns `invalid` for a bad base URL or limits.
    pub fn new(provider: &str, config: &PortalConfig) -> ProviderResult<Self> {
        let client_config = ClientConfig {
            provider: provider.to_owned(),
            base_url: config.base_url(provider)?,
            request_timeout: Duration::from_secs(config.request_timeout_seconds),
            retry: RetryConfig::default(),
            concurrency: config.concurrency as usize,
            requests_per_second: config.requests_per_second,
            request_id_header: Some(HeaderName::from_static("x-request-id")),
            allow_plain_http_loopback: config.allow_plain_http_loopback,
            ..ClientConfig::default()
        };
        let authenticator = Arc::new(ApiKeyAuthenticator {
            key: config.api_key.clone(),
        });
        let client = BrokerClient::new(client_config, portal_guard(), Arc::new(DefaultClassifier))?
            .with_authenticator(authenticator);
        Ok(Self {
            client,
            page_size: config.page_size,
        })
    }

    /// Returns the portal's health document.
    pub async fn health(&self) -> ProviderResult<HealthBody> {
        let request = BrokerRequest::get("api/health").operation("health");
        self.client.send(request).await?.json()
    }

    /// Lists every group.
    pub async fn groups(&self) -> ProviderResult<Vec<Group>> {
        let request = BrokerRequest::get("api/groups").operation("list_groups");
        let list: GroupList = self.client.send(request).await?.json()?;
        Ok(list.groups)
    }

    /// Reads one page of a group's machines.
    pub async fn machines(&self, group: &str, page: u32) -> ProviderResult<MachinePage> {
        let request = BrokerRequest::get(format!("api/groups/{}/machines", segment(group)))
            .query("page", page.to_string())
            .query("per_page", self.page_size.to_string())
            .operation("list_machines");
        self.client.send(request).await?.json()
    }

    /// Lists the apps published to a group.
    pub async fn apps(&self, group: &str) -> ProviderResult<Vec<App>> {
        let request = BrokerRequest::get("api/apps")
            .query("group", group)
            .operation("list_apps");
        let list: AppList = self.client.send(request).await?.json()?;
        Ok(list.apps)
    }

    /// Publishes an app and returns it with the write record.
    pub async fn create_app(&self, app: &NewApp) -> ProviderResult<(App, BrokerWrite)> {
        let body = serde_json::to_value(app)
            .map_err(|error| ProviderError::internal(format!("app does not serialize: {error}")))?;
        // POST is not idempotent, but a retried create that already succeeded gets 409, which
        // `publish` resolves by listing again, so retrying timeouts is safe here.
        let request = BrokerRequest::post("api/apps")
            .json(body)
            .idempotent(true)
            .operation("create_app");
        let response = self.client.send(request).await?;
        let write = write_record("create_app", &response, None);
        Ok((response.json()?, write))
    }

    /// Deletes an app; `None` when it was already gone.
    pub async fn delete_app(&self, app: &str) -> ProviderResult<Option<BrokerWrite>> {
        let request =
            BrokerRequest::delete(format!("api/apps/{}", segment(app))).operation("delete_app");
        self.send_tolerating_404(request, "delete_app", None).await
    }

    /// Assigns an app to a machine.
    pub async fn assign(&self, machine: &str, app: &str) -> ProviderResult<BrokerWrite> {
        let path = format!("api/machines/{}/apps/{}", segment(machine), segment(app));
        let request = BrokerRequest::new(Method::PUT, path).operation("assign_app");
        let response = self.client.send(request).await?;
        Ok(write_record("assign_app", &response, Some(machine)))
    }

    /// Removes an app from a machine; `None` when it was not assigned.
    pub async fn unassign(&self, machine: &str, app: &str) -> ProviderResult<Option<BrokerWrite>> {
        let path = format!("api/machines/{}/apps/{}", segment(machine), segment(app));
        let request = BrokerRequest::delete(path).operation("unassign_app");
        self.send_tolerating_404(request, "unassign_app", Some(machine))
            .await
    }

    async fn send_tolerating_404(
        &self,
        request: BrokerRequest,
        operation: &str,
        machine: Option<&str>,
    ) -> ProviderResult<Option<BrokerWrite>> {
        match self.client.send(request).await {
            Ok(response) => Ok(Some(write_record(operation, &response, machine))),
            Err(error) if error.kind == vdi_plugin_sdk::contracts::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// Returns the audit record of a write that got a response.
fn write_record(operation: &str, response: &BrokerResponse, machine: Option<&str>) -> BrokerWrite {
    BrokerWrite {
        operation: operation.to_owned(),
        method: response.method.to_string(),
        path: response.path.clone(),
        machine: machine.map(str::to_owned),
        status: Some(response.status.as_u16()),
        broker_request_id: response.request_id.clone(),
    }
}
