//! The Graph client: one [`BrokerClient`] with the Graph token source, classifier and guard,
//! plus paging by `@odata.nextLink`.

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};

use broker_http::{
    BearerAuthenticator, BrokerClient, BrokerRequest, BrokerResponse, ClientConfig, ClientStats,
    DefaultClassifier, Guard, TokenCache,
};
use http::{HeaderName, HeaderValue, Method};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;
use vdi_contracts::{ProviderError, ProviderResult};

use crate::auth::GraphTokenSource;
use crate::config::GraphSettings;
use crate::error::GraphClassifier;
use crate::guard::graph_guard;

/// Header Graph returns with its request id on every response.
pub const REQUEST_ID_HEADER: &str = "request-id";

/// Header Azure Storage returns with its request id.
const STORAGE_REQUEST_ID_HEADER: &str = "x-ms-request-id";

/// Host suffixes of Azure Blob Storage in the public and national clouds; Intune hands out
/// upload URLs on these hosts.
const BLOB_HOST_SUFFIXES: [&str; 3] = [
    ".blob.core.windows.net",
    ".blob.core.usgovcloudapi.net",
    ".blob.core.chinacloudapi.cn",
];

/// One page of a Graph collection.
#[derive(Debug, Deserialize)]
pub struct GraphPage<T> {
    /// Items; a page can hold none while a next link is still present (Graph paging docs).
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    /// Absolute URL of the next page, to be followed as it is.
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}

/// Graph client of one provider; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct GraphClient {
    provider: String,
    settings: Arc<GraphSettings>,
    authenticator: Arc<BearerAuthenticator<GraphTokenSource>>,
    /// Rebuilt when the protected groups change, because the guard is fixed per client.
    http: RwLock<BrokerClient>,
    protected: RwLock<BTreeSet<String>>,
    /// Client of the Azure Storage upload URLs Intune hands out: no bearer token (the URL
    /// carries its own signature) and its own rate limit.
    storage: BrokerClient,
}

impl GraphClient {
    /// Builds a client; `protected_groups` are group ids no request may write to.
    ///
    /// # Errors
    /// Fails when the URLs or limits are rejected by the broker client.
    pub fn new(
        provider: &str,
        settings: GraphSettings,
        protected_groups: impl IntoIterator<Item = String>,
    ) -> ProviderResult<Self> {
        let cache = TokenCache::new(GraphTokenSource::new(&settings), settings.refresh_ahead);
        let authenticator = Arc::new(BearerAuthenticator::new(cache));
        let protected: BTreeSet<String> = protected_groups.into_iter().collect();
        let settings = Arc::new(settings);
        let http = build_http(provider, &settings, &authenticator, &protected)?;
        let storage = build_storage(provider, &settings)?;
        Ok(Self {
            provider: provider.to_owned(),
            settings,
            authenticator,
            http: RwLock::new(http),
            protected: RwLock::new(protected),
            storage,
        })
    }

    /// Adds group ids to the protected set and rebuilds the guard. Call it before any write:
    /// the rebuilt client starts with fresh counters and rate limiter.
    ///
    /// # Errors
    /// Fails when the broker client cannot be rebuilt.
    pub fn protect_groups(&self, ids: impl IntoIterator<Item = String>) -> ProviderResult<()> {
        let mut protected = self
            .protected
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let before = protected.len();
        protected.extend(ids);
        if protected.len() == before {
            return Ok(());
        }
        let http = build_http(
            &self.provider,
            &self.settings,
            &self.authenticator,
            &protected,
        )?;
        *self.http.write().unwrap_or_else(PoisonError::into_inner) = http;
        tracing::info!(
            provider = %self.provider,
            protected_groups = protected.len(),
            "Protected provisioning groups updated in the endpoint guard."
        );
        Ok(())
    }

    /// Returns the protected group ids.
    pub fn protected_groups(&self) -> BTreeSet<String> {
        self.protected
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns the broker client in use.
    pub fn http(&self) -> BrokerClient {
        self.http
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns the settings.
    pub fn settings(&self) -> &GraphSettings {
        &self.settings
    }

    /// Returns the counters of the current broker client.
    pub fn stats(&self) -> ClientStats {
        self.http().stats()
    }

    /// Sends a request through the broker client.
    ///
    /// # Errors
    /// Returns the classified error, with a [`crate::GraphError`] as its source for Graph
    /// failures.
    pub async fn send(&self, request: BrokerRequest) -> ProviderResult<BrokerResponse> {
        self.http().send(request).await
    }

    /// Checks an upload URL Intune returned (`azureStorageUri`) before anything is sent to it:
    /// it must be https on Azure Blob Storage, or on the origin of `graph.graph_base_url`
    /// (simulators and test proxies).
    ///
    /// # Errors
    /// `invalid` naming the host, never the signature.
    pub fn storage_url(&self, uri: &str) -> ProviderResult<Url> {
        let url = Url::parse(uri).map_err(|error| {
            ProviderError::invalid(format!(
                "Intune returned an azureStorageUri that is not a URL ({error})"
            ))
        })?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let on_blob_storage = url.scheme() == "https"
            && BLOB_HOST_SUFFIXES
                .iter()
                .any(|suffix| host.ends_with(suffix));
        let on_graph_origin = url.origin() == self.settings.graph_base_url.origin();
        if on_blob_storage || on_graph_origin {
            return Ok(url);
        }
        Err(ProviderError::invalid(format!(
            "Intune returned an azureStorageUri on {}://{host}, which is neither https Azure \
             Blob Storage ({}) nor the origin of graph.graph_base_url; the upload was stopped",
            url.scheme(),
            BLOB_HOST_SUFFIXES.join(", ")
        )))
    }

    /// Sends a request to an upload URL checked by [`GraphClient::storage_url`], without the
    /// Graph bearer token.
    ///
    /// # Errors
    /// Returns the classified storage error; `forbidden` when the URL's signature expired.
    pub async fn send_storage(&self, request: BrokerRequest) -> ProviderResult<BrokerResponse> {
        self.storage.send(request.unauthenticated()).await
    }

    /// Sends a request and parses the JSON response.
    ///
    /// # Errors
    /// As [`GraphClient::send`], or `invalid` when the body does not parse.
    pub async fn get_json<T: DeserializeOwned>(&self, request: BrokerRequest) -> ProviderResult<T> {
        self.send(request).await?.json()
    }

    /// Lists a collection by following `@odata.nextLink` as it is, never building `$skip`.
    /// Headers of the first request (for example `ConsistencyLevel`) are sent on every page,
    /// because Graph does not carry them onto next links.
    ///
    /// # Errors
    /// Fails on the first failed page, on a next link to another host, on a link that repeats,
    /// or after `graph.max_pages` pages.
    pub async fn list<T: DeserializeOwned>(
        &self,
        what: &str,
        first: BrokerRequest,
    ) -> ProviderResult<Vec<T>> {
        let max_pages = self.settings.max_pages;
        broker_http::collect_pages(what, max_pages, |cursor: Option<String>| {
            let first = first.clone();
            async move {
                let request = match cursor {
                    None => first,
                    Some(link) => self.next_request(&first, &link)?,
                };
                let page: GraphPage<T> = self.send(request).await?.json()?;
                Ok((page.value, page.next_link))
            }
        })
        .await
    }

    /// Builds the request for a next link: the link itself, with the first request's headers.
    fn next_request(&self, first: &BrokerRequest, link: &str) -> ProviderResult<BrokerRequest> {
        let url = Url::parse(link).map_err(|error| {
            ProviderError::invalid(format!(
                "Graph returned an @odata.nextLink that is not a URL ({error})"
            ))
        })?;
        let base = &self.settings.graph_base_url;
        // The bearer token goes only to the configured Graph host.
        if url.origin() != base.origin() {
            return Err(ProviderError::invalid(format!(
                "Graph returned an @odata.nextLink to {}, outside graph.graph_base_url {}; \
                 the listing was stopped so the token is not sent elsewhere",
                url.origin().ascii_serialization(),
                base.origin().ascii_serialization()
            )));
        }
        let mut request = BrokerRequest::get("")
            .absolute(url)
            .operation(first.operation);
        request.headers = first.headers.clone();
        Ok(request)
    }
}

/// Returns a GET of `path` with `ConsistencyLevel: eventual`, which Graph requires for
/// `$count` and advanced queries on directory objects.
pub fn eventual(request: BrokerRequest) -> BrokerRequest {
    request.header(
        HeaderName::from_static("consistencylevel"),
        HeaderValue::from_static("eventual"),
    )
}

fn build_http(
    provider: &str,
    settings: &GraphSettings,
    authenticator: &Arc<BearerAuthenticator<GraphTokenSource>>,
    protected: &BTreeSet<String>,
) -> ProviderResult<BrokerClient> {
    let mut config = ClientConfig::new(provider, settings.graph_base_url.clone());
    config.concurrency = settings.concurrency as usize;
    config.requests_per_second = settings.requests_per_second;
    config.request_timeout = settings.request_timeout;
    config.request_id_header = Some(HeaderName::from_static(REQUEST_ID_HEADER));
    config.allow_plain_http_loopback = settings.allow_plain_http_loopback;
    let guard = graph_guard(protected);
    let client = BrokerClient::new(config, guard, Arc::new(GraphClassifier))?;
    Ok(client.with_authenticator(authenticator.clone()))
}

/// Builds the storage client. Only `PUT` (blocks and the block list) and `GET` may reach an
/// upload URL, so the guard denies every other method there.
fn build_storage(provider: &str, settings: &GraphSettings) -> ProviderResult<BrokerClient> {
    let mut config = ClientConfig::new(provider, settings.graph_base_url.clone());
    config.concurrency = 2;
    config.requests_per_second = 20.0;
    config.request_timeout = settings.request_timeout;
    config.request_id_header = Some(HeaderName::from_static(STORAGE_REQUEST_ID_HEADER));
    config.allow_plain_http_loopback = settings.allow_plain_http_loopback;
    let guard = Guard::new("azure-storage").deny(
        "storage_write",
        &[Method::DELETE, Method::POST, Method::PATCH],
        "**",
    );
    BrokerClient::new(config, guard, Arc::new(DefaultClassifier))
}

/// Escapes a value for a single-quoted OData string literal.
pub fn odata_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(odata_quote("O'Brien"), "'O''Brien'");
    }

    #[test]
    fn page_without_value_is_empty() {
        let page: GraphPage<serde_json::Value> = serde_json::from_str(
            r#"{"@odata.nextLink":"https://graph.microsoft.com/v1.0/x?$skiptoken=a"}"#,
        )
        .expect("parses");
        assert!(page.value.is_empty());
        assert!(page.next_link.is_some());
    }
}
