//! SDK for broker plugins of the VDI broker gateway.
//!
//! A plugin is a `cdylib` crate that implements the same async [`Provider`] trait as the
//! gateway's built-in providers and exports it with [`export_provider!`]; the crate itself
//! needs no `unsafe` code and can `#![forbid(unsafe_code)]`.
//!
//! ```ignore
//! use vdi_plugin_sdk::{export_provider, PluginContext, ProviderResult};
//!
//! fn build(context: PluginContext) -> ProviderResult<MyProvider> {
//!     let config: MyConfig = context.settings.parse(&context.name)?;
//!     MyProvider::new(&context.name, config)
//! }
//!
//! export_provider!(build);
//! ```
//!
//! What the macro sets up: the entry symbol, a tokio runtime owned by the plugin (so
//! `tokio::spawn`, reqwest and [`broker_http`] work inside provider methods), panic catching at
//! every entry, and forwarding of the plugin's `tracing` events into the gateway's log with the
//! plugin's name. See `docs/plugins.md` for the whole guide.

#![forbid(unsafe_code)]

mod context;
pub mod log;

use std::sync::Arc;

pub use async_trait::async_trait;
pub use broker_http;
pub use context::{PluginContext, Settings};
pub use secrecy::{self, ExposeSecret, SecretString};
pub use serde_json;
pub use vdi_contracts::abi::{BoxFuture, SimulatorFixture};
pub use vdi_contracts::{self as contracts, Provider, ProviderError, ProviderResult};

/// Version of this SDK, reported in the plugin's description.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Exports a provider factory as a gateway plugin.
///
/// Forms:
/// - `export_provider!(build)`: serves one kind, the package name.
/// - `export_provider! { kinds: ["avd", "avd-classic"], factory: build }`
/// - `export_provider! { kinds: ["portal"], factory: build, simulator: start_simulator }`,
///   where `start_simulator` returns a [`BoxFuture`] of a [`SimulatorFixture`], so
///   `vdi-gateway plugins check` can run the conformance suite against the plugin.
///
/// `build` has the signature `fn(PluginContext) -> ProviderResult<P>` for a type `P` that
/// implements [`Provider`]. It runs inside the plugin's runtime, once per configured provider.
#[macro_export]
macro_rules! export_provider {
    ($factory:path $(,)?) => {
        $crate::export_provider! { kinds: [env!("CARGO_PKG_NAME")], factory: $factory }
    };
    (kinds: [$($kind:expr),+ $(,)?], factory: $factory:path $(, simulator: $simulator:path)? $(,)?) => {
        #[doc(hidden)]
        fn __vdigw_plugin_factory(
            params: $crate::__private::InitParams,
        ) -> $crate::ProviderResult<::std::sync::Arc<dyn $crate::Provider>> {
            $crate::__private::instantiate(params, $factory)
        }

        #[doc(hidden)]
        static __VDIGW_PLUGIN_SPEC: $crate::__private::GuestSpec = $crate::__private::GuestSpec {
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
            sdk_version: $crate::SDK_VERSION,
            kinds: &[$($kind),+],
            factory: __vdigw_plugin_factory,
            simulator: $crate::__simulator_entry!($($simulator)?),
            on_load: $crate::log::install,
        };

        /// Entry symbol of the gateway's plugin ABI, major 1.
        #[no_mangle]
        pub extern "C" fn vdigw_plugin_entry_v1(
            host: ::std::option::Option<&'static $crate::__private::HostVTable>,
        ) -> *const $crate::__private::PluginVTable {
            $crate::__private::entry(host, &__VDIGW_PLUGIN_SPEC)
        }
    };
}

/// Expands to the optional simulator entry of [`export_provider!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __simulator_entry {
    () => {
        ::std::option::Option::None
    };
    ($simulator:path) => {
        ::std::option::Option::Some($simulator)
    };
}

/// Items the macro expands to; not part of the public API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use vdi_contracts::abi::guest::entry;
    pub use vdi_contracts::abi::{GuestSpec, HostVTable, InitParams, PluginVTable};

    /// Builds one provider instance through the integrator's factory.
    pub fn instantiate<P: Provider + 'static>(
        params: InitParams,
        factory: fn(PluginContext) -> ProviderResult<P>,
    ) -> ProviderResult<Arc<dyn Provider>> {
        let context = PluginContext {
            name: params.instance,
            kind: params.kind,
            settings: Settings::new(params.settings),
        };
        let provider = factory(context)?;
        tracing::info!(provider = %provider.describe().kind, "Plugin provider instance created.");
        Ok(Arc::new(provider))
    }
}
