//! Plugin side: turning a request envelope into a call on the plugin's provider instances.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::envelope::{
    method, InitParams, InitResult, ListMachinesParams, ObserveParams, PlanParams, PublishParams,
    Request, SimulatorFixture, UnpublishParams,
};
use crate::{PlaceRequest, Provider, ProviderError, ProviderResult, UnplaceRequest};

/// A boxed future that a plugin's simulator entry returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Builds a provider instance from its `init` parameters.
pub type FactoryFn = fn(InitParams) -> ProviderResult<Arc<dyn Provider>>;

/// Starts the plugin's simulator and returns a fixture pointing at it.
pub type SimulatorFn = fn() -> BoxFuture<ProviderResult<SimulatorFixture>>;

/// What a plugin exports, filled in by the SDK's `export_provider!` macro.
#[derive(Debug)]
pub struct GuestSpec {
    /// Plugin name.
    pub name: &'static str,
    /// Plugin version.
    pub version: &'static str,
    /// SDK version.
    pub sdk_version: &'static str,
    /// Kinds served.
    pub kinds: &'static [&'static str],
    /// Instance factory.
    pub factory: FactoryFn,
    /// Simulator entry, when the plugin ships one.
    pub simulator: Option<SimulatorFn>,
    /// Runs once after the host's vtable is stored (the SDK installs log forwarding here).
    pub on_load: fn(),
}

/// Provider instances of one plugin, by configured name.
#[derive(Debug, Default)]
pub(crate) struct Instances {
    by_name: RwLock<HashMap<String, Arc<dyn Provider>>>,
}

impl Instances {
    fn get(&self, name: &str) -> ProviderResult<Arc<dyn Provider>> {
        let map = self
            .by_name
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(name).cloned().ok_or_else(|| {
            ProviderError::invalid(format!(
                "provider instance {name:?} was not initialised in this plugin; send `init` first"
            ))
        })
    }

    fn insert(&self, name: String, provider: Arc<dyn Provider>) {
        self.by_name
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name, provider);
    }

    fn remove(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.by_name
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name)
    }
}

fn params<T: DeserializeOwned>(request: &Request) -> ProviderResult<T> {
    serde_json::from_value(request.params.clone()).map_err(|error| {
        ProviderError::invalid(format!(
            "params of `{}` do not match the contract: {error}",
            request.method
        ))
    })
}

fn to_value<T: Serialize>(value: &T) -> ProviderResult<Value> {
    serde_json::to_value(value)
        .map_err(|error| ProviderError::internal(format!("result does not serialize: {error}")))
}

/// Runs one request against the plugin's instances.
pub(crate) async fn dispatch(
    spec: &'static GuestSpec,
    instances: &Instances,
    request: Request,
) -> ProviderResult<Value> {
    match request.method.as_str() {
        method::INIT => {
            let init: InitParams = params(&request)?;
            if !spec.kinds.contains(&init.kind.as_str()) {
                return Err(ProviderError::invalid(format!(
                    "plugin {} does not serve kind {:?}; it serves {}",
                    spec.name,
                    init.kind,
                    spec.kinds.join(", ")
                )));
            }
            let instance = init.instance.clone();
            let provider = (spec.factory)(init)?;
            let description = provider.describe();
            instances.insert(instance, provider);
            to_value(&InitResult { description })
        }
        method::SIMULATOR => match spec.simulator {
            Some(simulator) => to_value(&simulator().await?),
            None => Err(ProviderError::invalid(format!(
                "plugin {} ships no simulator",
                spec.name
            ))),
        },
        _ => provider_call(instances, request).await,
    }
}

async fn provider_call(instances: &Instances, request: Request) -> ProviderResult<Value> {
    let name = request.instance.clone().ok_or_else(|| {
        ProviderError::invalid(format!("`{}` request names no instance", request.method))
    })?;
    if request.method == method::SHUTDOWN {
        if let Some(provider) = instances.remove(&name) {
            provider.shutdown().await;
        }
        return Ok(Value::Null);
    }
    let provider = instances.get(&name)?;
    match request.method.as_str() {
        method::DESCRIBE => to_value(&provider.describe()),
        method::CHECK => to_value(&provider.check().await?),
        method::LIST_TARGETS => to_value(&provider.list_targets().await?),
        method::LIST_MACHINES => {
            let p: ListMachinesParams = params(&request)?;
            to_value(&provider.list_machines(&p.target, p.cursor).await?)
        }
        method::OBSERVE => {
            let p: ObserveParams = params(&request)?;
            to_value(&provider.observe(&p.target, &p.container_id).await?)
        }
        method::PUBLISH => {
            let p: PublishParams = params(&request)?;
            to_value(&provider.publish(&p.target, &p.container).await?)
        }
        method::UNPUBLISH => {
            let p: UnpublishParams = params(&request)?;
            to_value(&provider.unpublish(&p.target, &p.container).await?)
        }
        method::PLACE => {
            let p: PlaceRequest = params(&request)?;
            to_value(&provider.place(&p).await?)
        }
        method::UNPLACE => {
            let p: UnplaceRequest = params(&request)?;
            to_value(&provider.unplace(&p).await?)
        }
        method::PLAN => {
            let p: PlanParams = params(&request)?;
            to_value(&provider.plan(&p.target, &p.container, &p.machines).await?)
        }
        other => Err(ProviderError::invalid(format!(
            "unknown method {other:?}; this plugin speaks ABI {}.{}",
            super::ABI_MAJOR,
            super::ABI_MINOR
        ))),
    }
}
