//! [`PluginProvider`]: the [`Provider`] trait over a plugin transport, so the engine treats a
//! plugin's broker like a built-in one; and [`UnavailableProvider`], which replaces a
//! provider whose plugin was rejected.

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use vdi_contracts::abi::{
    method, InitParams, InitResult, ListMachinesParams, ObserveParams, PlanParams, PublishParams,
    UnpublishParams, PLAN_SINCE_MINOR,
};
use vdi_contracts::{
    undescribed_plan, Container, ContainerRef, Description, Health, HealthStatus, Limits, Machine,
    Observation, Page, PlaceOutcome, PlaceRequest, PlannedRequest, Provider, ProviderError,
    ProviderResult, Publication, Target, UnplaceRequest,
};

use super::transport::PluginTransport;

/// A provider instance that lives in a plugin.
#[derive(Debug)]
pub struct PluginProvider {
    name: String,
    transport: Arc<dyn PluginTransport>,
    description: Description,
}

impl PluginProvider {
    /// Creates the instance in the plugin (`init`) and caches its description.
    ///
    /// # Errors
    /// Returns the plugin's error, for example `invalid` settings naming the key.
    pub async fn init(
        transport: Arc<dyn PluginTransport>,
        name: &str,
        kind: &str,
        settings: Value,
    ) -> ProviderResult<Self> {
        let params = InitParams {
            instance: name.to_owned(),
            kind: kind.to_owned(),
            settings,
        };
        let value = transport
            .call(method::INIT, Some(name), encode(&params)?)
            .await?;
        let result: InitResult = decode(transport.as_ref(), method::INIT, value)?;
        Ok(Self {
            name: name.to_owned(),
            transport,
            description: result.description,
        })
    }

    async fn call<P: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> ProviderResult<T> {
        let value = self
            .transport
            .call(method, Some(&self.name), encode(params)?)
            .await?;
        decode(self.transport.as_ref(), method, value)
    }
}

fn encode<P: Serialize>(params: &P) -> ProviderResult<Value> {
    serde_json::to_value(params)
        .map_err(|error| ProviderError::internal(format!("params do not serialize: {error}")))
}

fn decode<T: DeserializeOwned>(
    transport: &dyn PluginTransport,
    method: &str,
    value: Value,
) -> ProviderResult<T> {
    serde_json::from_value(value).map_err(|error| {
        let plugin = transport.description();
        ProviderError::internal(format!(
            "plugin {} {} returned a `{method}` result that does not match the contract \
             ({error}); rebuild it against this gateway's vdi-plugin-sdk",
            plugin.name, plugin.version
        ))
    })
}

#[async_trait]
impl Provider for PluginProvider {
    fn describe(&self) -> Description {
        self.description.clone()
    }

    async fn check(&self) -> ProviderResult<Health> {
        self.call(method::CHECK, &Value::Null).await
    }

    async fn list_targets(&self) -> ProviderResult<Vec<Target>> {
        self.call(method::LIST_TARGETS, &Value::Null).await
    }

    async fn list_machines(
        &self,
        target: &str,
        cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>> {
        let params = ListMachinesParams {
            target: target.to_owned(),
            cursor,
        };
        self.call(method::LIST_MACHINES, &params).await
    }

    async fn observe(&self, target: &str, container_id: &str) -> ProviderResult<Vec<Observation>> {
        let params = ObserveParams {
            target: target.to_owned(),
            container_id: container_id.to_owned(),
        };
        self.call(method::OBSERVE, &params).await
    }

    async fn publish(&self, target: &str, container: &Container) -> ProviderResult<Publication> {
        let params = PublishParams {
            target: target.to_owned(),
            container: container.clone(),
        };
        self.call(method::PUBLISH, &params).await
    }

    async fn unpublish(
        &self,
        target: &str,
        container: &ContainerRef,
    ) -> ProviderResult<Publication> {
        let params = UnpublishParams {
            target: target.to_owned(),
            container: container.clone(),
        };
        self.call(method::UNPUBLISH, &params).await
    }

    async fn place(&self, request: &PlaceRequest) -> ProviderResult<PlaceOutcome> {
        self.call(method::PLACE, request).await
    }

    async fn unplace(&self, request: &UnplaceRequest) -> ProviderResult<PlaceOutcome> {
        self.call(method::UNPLACE, request).await
    }

    /// Requests the plan from the plugin. A plugin built before ABI 1.1 has no `plan`
    /// method, so its plan is the trait's undescribed default.
    async fn plan(
        &self,
        target: &str,
        container: &Container,
        machines: &[String],
    ) -> ProviderResult<Vec<PlannedRequest>> {
        if self.transport.description().abi_minor < PLAN_SINCE_MINOR {
            return Ok(undescribed_plan(machines));
        }
        let params = PlanParams {
            target: target.to_owned(),
            container: container.clone(),
            machines: machines.to_vec(),
        };
        self.call(method::PLAN, &params).await
    }

    async fn shutdown(&self) {
        let result: ProviderResult<Value> = self.call(method::SHUTDOWN, &Value::Null).await;
        if let Err(error) = result {
            tracing::warn!(provider = %self.name, error = %error, "Plugin provider did not shut down cleanly.");
        }
    }
}

/// Stands in for a provider whose kind no loaded plugin serves because a plugin was refused:
/// every call fails with the reason, and `check` reports it as unreachable, so
/// `GET /v1/providers` shows the operator what to fix while other providers keep working.
#[derive(Debug)]
pub struct UnavailableProvider {
    kind: String,
    reason: String,
}

impl UnavailableProvider {
    /// Creates a stand-in for a provider of `kind` with the reason it is unavailable.
    pub fn new(kind: &str, reason: String) -> Self {
        Self {
            kind: kind.to_owned(),
            reason,
        }
    }

    fn error(&self) -> ProviderError {
        ProviderError::unavailable(self.reason.clone()).with_retryable(false)
    }
}

#[async_trait]
impl Provider for UnavailableProvider {
    fn describe(&self) -> Description {
        Description {
            kind: self.kind.clone(),
            version: "unavailable".to_owned(),
            capabilities: Vec::new(),
            limits: Limits {
                concurrency: 1,
                requests_per_second: 1.0,
                max_batch: 1,
            },
        }
    }

    async fn check(&self) -> ProviderResult<Health> {
        Ok(Health {
            status: HealthStatus::Unreachable,
            detail: self.reason.clone(),
            checked_at: chrono::Utc::now(),
        })
    }

    async fn list_targets(&self) -> ProviderResult<Vec<Target>> {
        Err(self.error())
    }

    async fn list_machines(
        &self,
        _target: &str,
        _cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>> {
        Err(self.error())
    }

    async fn observe(
        &self,
        _target: &str,
        _container_id: &str,
    ) -> ProviderResult<Vec<Observation>> {
        Err(self.error())
    }

    async fn publish(&self, _target: &str, _container: &Container) -> ProviderResult<Publication> {
        Err(self.error())
    }

    async fn unpublish(
        &self,
        _target: &str,
        _container: &ContainerRef,
    ) -> ProviderResult<Publication> {
        Err(self.error())
    }

    async fn place(&self, _request: &PlaceRequest) -> ProviderResult<PlaceOutcome> {
        Err(self.error())
    }

    async fn unplace(&self, _request: &UnplaceRequest) -> ProviderResult<PlaceOutcome> {
        Err(self.error())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use vdi_contracts::abi::PluginDescription;
    use vdi_contracts::Launch;

    use super::*;

    /// Records the methods it is called with and returns a one-request plan.
    #[derive(Debug)]
    struct RecordingTransport {
        description: PluginDescription,
        calls: Mutex<Vec<String>>,
    }

    impl RecordingTransport {
        fn built_for_minor(abi_minor: u32) -> Self {
            Self {
                description: PluginDescription {
                    abi_major: 1,
                    abi_minor,
                    sdk_version: "0.1.0".into(),
                    contract_version: "0.1.0".into(),
                    name: "recording".into(),
                    version: "0.1.0".into(),
                    kinds: vec!["recording".into()],
                    capabilities: Vec::new(),
                    panic_strategy: "unwind".into(),
                    rustc: None,
                },
                calls: Mutex::new(Vec::new()),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("lock").clone()
        }
    }

    #[async_trait]
    impl PluginTransport for RecordingTransport {
        fn description(&self) -> &PluginDescription {
            &self.description
        }

        async fn call(
            &self,
            method: &str,
            _instance: Option<&str>,
            params: Value,
        ) -> ProviderResult<Value> {
            self.calls.lock().expect("lock").push(method.to_owned());
            assert_eq!(params["machines"], serde_json::json!(["m-1"]));
            Ok(serde_json::json!([{
                "operation": "assign_app", "method": "PUT", "path": "api/x", "count": 1
            }]))
        }
    }

    fn provider(transport: Arc<RecordingTransport>) -> PluginProvider {
        PluginProvider {
            name: "recording-prod".into(),
            transport,
            description: Description {
                kind: "recording".into(),
                version: "0.1.0".into(),
                capabilities: Vec::new(),
                limits: Limits {
                    concurrency: 1,
                    requests_per_second: 1.0,
                    max_batch: 1,
                },
            },
        }
    }

    fn container() -> Container {
        Container {
            id: "epic".into(),
            version: "1".into(),
            display_name: None,
            launch: Launch {
                executable: "player.exe".into(),
                arguments: None,
                working_directory: None,
            },
        }
    }

    #[tokio::test]
    async fn plan_goes_to_current_plugins() {
        let transport = Arc::new(RecordingTransport::built_for_minor(PLAN_SINCE_MINOR));
        let planned = provider(transport.clone())
            .plan("t", &container(), &["m-1".to_owned()])
            .await
            .expect("plans");
        assert_eq!(transport.calls(), [method::PLAN]);
        assert_eq!(planned[0].operation, "assign_app");
    }

    #[tokio::test]
    async fn plan_of_older_plugin_is_undescribed() {
        let transport = Arc::new(RecordingTransport::built_for_minor(0));
        let planned = provider(transport.clone())
            .plan("t", &container(), &["m-1".to_owned()])
            .await
            .expect("plans");
        assert!(transport.calls().is_empty(), "{:?}", transport.calls());
        assert_eq!(planned, undescribed_plan(&["m-1".to_owned()]));
    }
}
