//! JSON documents exchanged with a plugin: the `describe` handshake, request and response
//! envelopes with their parameters, log records and the stdio hello line. The same documents
//! travel through the C ABI in process and over a pipe to an isolated plugin process.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::ProviderErrorBody;
use crate::{Container, ContainerRef, Description, ErrorKind, ProviderError};

/// Method names of request envelopes.
pub mod method {
    /// Creates a provider instance from its configuration: [`super::InitParams`] →
    /// [`super::InitResult`].
    pub const INIT: &str = "init";
    /// Starts the plugin's own simulator for `plugins check`: no params →
    /// [`super::SimulatorFixture`]. Only plugins with the `simulator` capability serve it.
    pub const SIMULATOR: &str = "simulator";
    /// `Provider::describe`: no params → `Description`.
    pub const DESCRIBE: &str = "describe";
    /// `Provider::check`: no params → `Health`.
    pub const CHECK: &str = "check";
    /// `Provider::list_targets`: no params → `Vec<Target>`.
    pub const LIST_TARGETS: &str = "list_targets";
    /// `Provider::list_machines`: [`super::ListMachinesParams`] → `Page<Machine>`.
    pub const LIST_MACHINES: &str = "list_machines";
    /// `Provider::observe`: [`super::ObserveParams`] → `Vec<Observation>`.
    pub const OBSERVE: &str = "observe";
    /// `Provider::publish`: [`super::PublishParams`] → `Publication`.
    pub const PUBLISH: &str = "publish";
    /// `Provider::unpublish`: [`super::UnpublishParams`] → `Publication`.
    pub const UNPUBLISH: &str = "unpublish";
    /// `Provider::place`: `PlaceRequest` → `PlaceOutcome`.
    pub const PLACE: &str = "place";
    /// `Provider::unplace`: `UnplaceRequest` → `PlaceOutcome`.
    pub const UNPLACE: &str = "unplace";
    /// `Provider::plan`: [`super::PlanParams`] → `Vec<PlannedRequest>`. Added in ABI 1.1, so
    /// hosts send it only to plugins built for minor 1 or later.
    pub const PLAN: &str = "plan";
    /// `Provider::shutdown`, then the instance is dropped: no params → `null`.
    pub const SHUTDOWN: &str = "shutdown";
}

/// Capabilities a plugin may list in its description; hosts ignore names they do not know.
pub mod capability {
    /// The plugin serves the `simulator` method.
    pub const SIMULATOR: &str = "simulator";
    /// The plugin aborts running requests on `cancel`.
    pub const CANCEL: &str = "cancel";
}

/// Description of a plugin library, returned by the `describe` entry of its vtable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginDescription {
    /// ABI major the plugin was built for.
    pub abi_major: u32,
    /// ABI minor the plugin was built for.
    pub abi_minor: u32,
    /// Version of `vdi-plugin-sdk` the plugin was built with.
    pub sdk_version: String,
    /// Version of `vdi-contracts` the plugin was built with.
    pub contract_version: String,
    /// Plugin name, by default its package name.
    pub name: String,
    /// Plugin version, by default its package version.
    pub version: String,
    /// Provider kinds the plugin serves, for example `["example-rest"]`.
    pub kinds: Vec<String>,
    /// Plugin capabilities (see [`capability`]); unknown names are ignored.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// `unwind` or `abort`: whether a panic can be turned into an error envelope.
    pub panic_strategy: String,
    /// Compiler that built the plugin, for diagnostics only.
    #[serde(default)]
    pub rustc: Option<String>,
}

impl PluginDescription {
    /// Returns whether the plugin lists `capability`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// Returns whether a panic in the plugin unwinds (and so becomes an error envelope).
    pub fn unwinds(&self) -> bool {
        self.panic_strategy == "unwind"
    }
}

/// A request envelope: `{id, method, instance, params}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Request id chosen by the sender, echoed by the response.
    pub id: u64,
    /// One of the names in [`method`].
    pub method: String,
    /// Provider instance (its configured name) for provider methods; absent for `simulator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Method parameters; `null` when the method takes none.
    #[serde(default)]
    pub params: Value,
}

/// A response envelope: `{id, ok}` or `{id, error: {kind, message, retryable}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Id of the request this response belongs to.
    pub id: u64,
    /// Result on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Value>,
    /// Error on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ProviderErrorBody>,
}

impl Response {
    /// Creates a success envelope.
    pub fn ok(id: u64, value: Value) -> Self {
        Self {
            id,
            ok: Some(value),
            error: None,
        }
    }

    /// Creates an error envelope.
    pub fn error(id: u64, error: &ProviderError) -> Self {
        Self {
            id,
            ok: None,
            error: Some(error.to_body()),
        }
    }

    /// Creates a success or error envelope from a result.
    pub fn from_result(id: u64, result: Result<Value, ProviderError>) -> Self {
        match result {
            Ok(value) => Self::ok(id, value),
            Err(error) => Self::error(id, &error),
        }
    }

    /// Returns the result this envelope carries; an envelope with neither field is `internal`.
    ///
    /// # Errors
    /// Returns the carried error, or `internal` for a malformed envelope.
    pub fn into_result(self) -> Result<Value, ProviderError> {
        match (self.ok, self.error) {
            (_, Some(error)) => Err(ProviderError::from(error)),
            (Some(value), None) => Ok(value),
            (None, None) => Err(ProviderError::internal(format!(
                "response {} has neither `ok` nor `error`",
                self.id
            ))),
        }
    }

    /// Parses a response envelope; a document that does not parse becomes an `internal` error
    /// envelope for `id`, naming what was wrong.
    pub fn parse(id: u64, bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes).unwrap_or_else(|error| {
            let message = format!("the plugin sent a response that is not an envelope: {error}");
            Self::error(id, &ProviderError::new(ErrorKind::Internal, message))
        })
    }
}

/// Parameters of `init`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitParams {
    /// Configured provider name, for example `avd-prod`.
    pub instance: String,
    /// Provider kind, one of the plugin's kinds.
    pub kind: String,
    /// The provider's `settings` table, with secrets already resolved.
    pub settings: Value,
}

/// Result of `init`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitResult {
    /// Description of the new instance, which the host caches for `Provider::describe`.
    pub description: Description,
}

/// Parameters of `list_machines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMachinesParams {
    /// Target id or name.
    pub target: String,
    /// Cursor of the page, `None` for the first.
    pub cursor: Option<String>,
}

/// Parameters of `observe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveParams {
    /// Target id or name.
    pub target: String,
    /// Container id.
    pub container_id: String,
}

/// Parameters of `publish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishParams {
    /// Target id or name.
    pub target: String,
    /// Container version to publish.
    pub container: Container,
}

/// Parameters of `unpublish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpublishParams {
    /// Target id or name.
    pub target: String,
    /// Container version to remove.
    pub container: ContainerRef,
}

/// Parameters of `plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanParams {
    /// Target id or name.
    pub target: String,
    /// Container version the plan would publish and place.
    pub container: Container,
    /// Machine ids the plan would place it on.
    pub machines: Vec<String>,
}

/// Result of `simulator`: settings for an instance that talks to the plugin's own simulator,
/// and what the conformance suite needs to know about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulatorFixture {
    /// Kind to initialise.
    pub kind: String,
    /// Settings of an instance pointed at the simulator.
    pub settings: Value,
    /// Target with at least two ready machines.
    pub target: String,
    /// Container at its first version.
    pub container: Container,
    /// A second version of the same container.
    pub second_version: String,
}

/// One plugin log event as it travels over a pipe (the in-process ABI passes the same fields
/// as arguments of [`super::HostVTable::log`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// Module path the event came from.
    pub target: String,
    /// Message.
    pub message: String,
    /// Structured fields of the event.
    #[serde(default)]
    pub fields: Value,
}

/// First line an isolated plugin process writes on stdout: its description, or why it cannot
/// serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hello {
    /// The library loaded; requests may follow.
    Ready {
        /// Protocol name, [`STDIO_PROTOCOL`].
        protocol: String,
        /// The library's description.
        description: PluginDescription,
    },
    /// The library could not be loaded; the process exits after this line.
    Refused {
        /// Why, naming the file.
        message: String,
    },
}

/// Protocol name in the stdio hello line.
pub const STDIO_PROTOCOL: &str = "vdigw-plugin-stdio/1";
