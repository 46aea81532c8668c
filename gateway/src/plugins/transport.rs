//! Transports that carry envelopes to a plugin: the C ABI in this process, or stdio to a
//! child process (`process.rs`). The provider adapter only uses [`PluginTransport`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use vdi_contracts::abi::{PluginDescription, PluginLibrary, Request};
use vdi_contracts::{ErrorKind, ProviderError, ProviderResult};

/// Sends request envelopes to one plugin library.
#[async_trait]
pub trait PluginTransport: Send + Sync + std::fmt::Debug {
    /// Returns the description from the plugin's handshake.
    fn description(&self) -> &PluginDescription;

    /// Sends one request and returns the `ok` value of its response.
    ///
    /// # Errors
    /// Returns the plugin's error, or `unavailable` (retryable) when the plugin did not respond
    /// within the call timeout or its process is down.
    async fn call(
        &self,
        method: &str,
        instance: Option<&str>,
        params: Value,
    ) -> ProviderResult<Value>;
}

/// Builds a request envelope; transports assign the id.
pub(crate) fn request(method: &str, instance: Option<&str>, params: Value) -> Request {
    Request {
        id: 0,
        method: method.to_owned(),
        instance: instance.map(str::to_owned),
        params,
    }
}

/// Returns the error of a call that ran out of time.
pub(crate) fn timed_out(
    plugin: &str,
    method: &str,
    timeout: Duration,
    consequence: &str,
) -> ProviderError {
    ProviderError::new(
        ErrorKind::Unavailable,
        format!(
            "plugin {plugin} did not respond to `{method}` within {} s; {consequence}",
            timeout.as_secs()
        ),
    )
    .with_retryable(true)
}

/// Logs a panic the plugin caught and turned into an error, which points at a plugin bug.
pub(crate) fn note_panic(plugin: &str, method: &str, error: &ProviderError) {
    if error.kind == ErrorKind::Internal && error.message.contains("panicked") {
        tracing::error!(plugin, method, error = %error.message, "Plugin panicked; the call failed and the plugin keeps serving.");
    }
}

/// A plugin loaded into this process.
#[derive(Debug)]
pub struct InProcessTransport {
    library: Arc<PluginLibrary>,
    timeout: Duration,
}

impl InProcessTransport {
    /// Wraps a loaded library with a per-call timeout.
    pub fn new(library: PluginLibrary, timeout: Duration) -> Self {
        Self {
            library: Arc::new(library),
            timeout,
        }
    }
}

#[async_trait]
impl PluginTransport for InProcessTransport {
    fn description(&self) -> &PluginDescription {
        self.library.description()
    }

    async fn call(
        &self,
        method: &str,
        instance: Option<&str>,
        params: Value,
    ) -> ProviderResult<Value> {
        let name = &self.library.description().name;
        let call = self.library.call(request(method, instance, params));
        // On timeout the call's future is dropped, which cancels the request in the plugin.
        let response = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| {
                timed_out(
                    name,
                    method,
                    self.timeout,
                    "the request was cancelled in the plugin",
                )
            })?;
        response
            .into_result()
            .inspect_err(|error| note_panic(name, method, error))
    }
}
