//! The plugin ABI: a small, versioned C interface that carries JSON envelopes, so brokers the
//! gateway does not ship can be added as shared libraries without rebuilding the gateway.
//!
//! A plugin library exports one symbol, [`ENTRY_SYMBOL`] (`vdigw_plugin_entry_v1`), whose name
//! carries the ABI major. The host calls it with its [`HostVTable`] and receives the plugin's
//! [`PluginVTable`]; then `describe` returns a [`PluginDescription`] (the handshake). Requests
//! are [`Request`] envelopes `{id, method, instance, params}`; the plugin runs them on its own
//! tokio runtime and answers through [`HostVTable::complete`] with a [`Response`]
//! `{id, ok}` or `{id, error: {kind, message, retryable}}`.
//!
//! Rules both sides follow:
//! - Only C types cross: integers, byte views ([`AbiStr`], valid for one call) and buffers
//!   ([`AbiBuffer`]) that the side which allocated them frees.
//! - Every `extern "C"` function catches panics; a panic becomes an `internal` error envelope.
//! - Callbacks (`log`, `complete`) may run on any plugin thread and never block on host work.
//! - Versioning: a new major renames the entry symbol, so an old host finds no symbol instead
//!   of misreading a vtable. A minor only appends vtable fields (each vtable has its `size`)
//!   or adds methods and optional JSON fields, and readers ignore capabilities and fields
//!   they do not know.
//!
//! This module is the only place in the workspace allowed `unsafe`.

mod dispatch;
mod envelope;
mod ffi;
pub mod guest;
mod host;

pub use dispatch::{BoxFuture, FactoryFn, GuestSpec, SimulatorFn};
pub use envelope::{
    capability, method, Hello, InitParams, InitResult, ListMachinesParams, LogRecord,
    ObserveParams, PlanParams, PluginDescription, PublishParams, Request, Response,
    SimulatorFixture, UnpublishParams, STDIO_PROTOCOL,
};
pub use ffi::{AbiBuffer, AbiLevel, AbiStr, CompleteFn, EntryFn, HostVTable, LogFn, PluginVTable};
pub use host::{emit_log, level_name, tracing_sink, LoadError, LogSink, PluginLibrary};

/// ABI major: changes only with incompatible changes, and renames the entry symbol.
pub const ABI_MAJOR: u32 = 1;

/// ABI minor: grows with additive changes that older peers may ignore. Minor 1 added the
/// `plan` method.
pub const ABI_MINOR: u32 = 1;

/// First ABI minor whose plugins serve `plan`.
pub const PLAN_SINCE_MINOR: u32 = 1;

/// Name of the entry symbol of ABI major 1.
pub const ENTRY_SYMBOL: &str = "vdigw_plugin_entry_v1";

/// Version of this contracts crate, which plugins report as their contract version.
pub const CONTRACT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Returns the entry symbol name of an ABI major.
pub fn entry_symbol(major: u32) -> String {
    format!("vdigw_plugin_entry_v{major}")
}

/// Returns the text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_symbol_carries_major() {
        assert_eq!(entry_symbol(ABI_MAJOR), ENTRY_SYMBOL);
    }

    #[test]
    fn response_round_trips_error() {
        let error = crate::ProviderError::not_found("group g-9 not found");
        let text = serde_json::to_string(&Response::error(7, &error)).expect("serializes");
        assert_eq!(
            text,
            r#"{"id":7,"error":{"kind":"not_found","message":"group g-9 not found","retryable":false}}"#
        );
    }

    #[test]
    fn response_without_result_is_internal() {
        let response = Response::parse(3, br#"{"id":3}"#);
        let error = response.into_result().expect_err("no result");
        assert_eq!(error.kind, crate::ErrorKind::Internal);
    }

    #[test]
    fn unparsable_response_is_internal() {
        let error = Response::parse(4, b"not json")
            .into_result()
            .expect_err("not json");
        assert_eq!(error.kind, crate::ErrorKind::Internal);
    }

    #[test]
    fn request_omits_missing_instance() {
        let request = Request {
            id: 1,
            method: method::SIMULATOR.to_owned(),
            instance: None,
            params: serde_json::Value::Null,
        };
        let text = serde_json::to_string(&request).expect("serializes");
        assert_eq!(text, r#"{"id":1,"method":"simulator","params":null}"#);
    }

    #[test]
    fn level_numbers_round_trip() {
        for level in [
            AbiLevel::Error,
            AbiLevel::Warn,
            AbiLevel::Info,
            AbiLevel::Debug,
            AbiLevel::Trace,
        ] {
            assert_eq!(AbiLevel::from_u32(level as u32), level);
        }
    }

    #[test]
    fn buffer_round_trips_bytes() {
        let buffer = AbiBuffer::from_vec(b"{}".to_vec());
        assert_eq!(buffer.copy_bytes(), b"{}");
        assert_eq!(buffer.into_vec(), b"{}");
    }
}
