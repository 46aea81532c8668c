//! The plugin's exports: the factory the gateway calls for each configured provider, and the
//! simulator entry `vdi-gateway plugins check` uses to run the conformance suite.

use serde_json::json;
use vdi_plugin_sdk::contracts::{Container, Launch};
use vdi_plugin_sdk::{BoxFuture, PluginContext, ProviderError, ProviderResult, SimulatorFixture};

use crate::config::PortalConfig;
use crate::provider::{PortalProvider, KIND};
use crate::sim::{PortalSim, SIM_API_KEY};

/// Builds a provider from its `[[providers]]` entry.
///
/// # Errors
/// Returns `invalid` when the settings are wrong, naming the key.
pub fn build(context: PluginContext) -> ProviderResult<PortalProvider> {
    let config: PortalConfig = context.settings.parse(&context.name)?;
    PortalProvider::new(&context.name, config)
}

/// Returns the container the conformance suite publishes and places.
pub fn sample_container() -> Container {
    Container {
        id: "epic-hyperspace".into(),
        version: "2024.3.1".into(),
        display_name: Some("Epic Hyperspace".into()),
        launch: Launch {
            executable: "C:\\Program Files\\Numecent\\Cloudpaging Player\\JukeboxPlayer.exe".into(),
            arguments: Some("/launch epic-hyperspace@2024.3.1".into()),
            working_directory: None,
        },
    }
}

/// Returns settings for a provider pointed at a simulator. A page size of 2 makes every
/// listing span several pages, and the high request rate keeps the suite fast.
pub fn sim_settings(sim: &PortalSim) -> serde_json::Value {
    json!({
        "base_url": sim.base_url(),
        "api_key": SIM_API_KEY,
        "page_size": 2,
        "requests_per_second": 500.0,
        "allow_plain_http_loopback": true,
    })
}

/// Starts a simulator that lives as long as the process and returns a fixture for it.
pub fn simulator() -> BoxFuture<ProviderResult<SimulatorFixture>> {
    Box::pin(async {
        let sim = PortalSim::start().await.map_err(|error| {
            ProviderError::unavailable(format!("cannot start the Portal simulator: {error}"))
        })?;
        let fixture = SimulatorFixture {
            kind: KIND.to_owned(),
            settings: sim_settings(&sim),
            target: "Clinicians".to_owned(),
            container: sample_container(),
            second_version: "2024.4.0".to_owned(),
        };
        sim.leak();
        Ok(fixture)
    })
}
