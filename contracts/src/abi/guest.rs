//! Plugin side of the ABI: the functions of [`PluginVTable`], the plugin's own tokio runtime
//! and its in-flight requests. The SDK's `export_provider!` macro calls [`entry`] from the
//! exported symbol; integrators never call anything here.
//!
//! Every `extern "C"` function catches panics, because unwinding out of one aborts the host.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

use super::dispatch::{dispatch, GuestSpec, Instances};
use super::envelope::{capability, PluginDescription, Request, Response};
use super::ffi::{AbiBuffer, AbiLevel, AbiStr, HostRef, HostVTable, PluginVTable};
use super::{panic_message, ABI_MAJOR, ABI_MINOR};
use crate::{ErrorKind, ProviderError};

/// Worker threads of a plugin's runtime. Two keep a plugin's broker I/O moving while one task
/// parses a large page, without taking cores from the gateway.
const WORKER_THREADS: usize = 2;

/// State of the plugin in this process; one per loaded library, because each library has its
/// own copy of this crate and its statics.
struct Guest {
    spec: &'static GuestSpec,
    host: HostRef,
    runtime: Runtime,
    instances: Instances,
    in_flight: Mutex<HashMap<u64, AbortHandle>>,
}

static GUEST: OnceLock<Guest> = OnceLock::new();

static VTABLE: PluginVTable = PluginVTable {
    abi_major: ABI_MAJOR,
    abi_minor: ABI_MINOR,
    size: std::mem::size_of::<PluginVTable>(),
    describe: guest_describe,
    call: guest_call,
    cancel: guest_cancel,
    free_buffer: guest_free_buffer,
};

/// Runs the entry symbol: stores the host's vtable, starts the plugin's runtime and returns the
/// plugin's vtable, or null when the host speaks another ABI major or the runtime cannot start.
pub fn entry(host: Option<&'static HostVTable>, spec: &'static GuestSpec) -> *const PluginVTable {
    let result = catch_unwind(|| {
        let host = host?;
        if host.abi_major != ABI_MAJOR {
            return None;
        }
        let host_ref = HostRef(host);
        // The loader returns the same library again when the same file is opened under another
        // name. Its state belongs to the first host, so a second host is rejected.
        if let Some(guest) = GUEST.get() {
            if !std::ptr::eq(guest.host.0, host) {
                let message = format!(
                    "plugin {} is already loaded in this process under another name; list each \
                     library file once",
                    spec.name
                );
                host_ref.log(AbiLevel::Error, spec.name, &message, "{}");
                return None;
            }
        }
        let host = host_ref;
        if GUEST.get().is_none() {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(WORKER_THREADS)
                .thread_name(format!("plugin-{}", spec.name))
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let message = format!("plugin {} cannot start its runtime: {error}", spec.name);
                    host.log(AbiLevel::Error, spec.name, &message, "{}");
                    return None;
                }
            };
            let guest = Guest {
                spec,
                host,
                runtime,
                instances: Instances::default(),
                in_flight: Mutex::new(HashMap::new()),
            };
            if GUEST.set(guest).is_ok() {
                (spec.on_load)();
            }
        }
        Some(&VTABLE as *const PluginVTable)
    });
    result.ok().flatten().unwrap_or(std::ptr::null())
}

/// Forwards a log event to the host; does nothing before the entry symbol ran.
pub fn host_log(level: AbiLevel, target: &str, message: &str, fields_json: &str) {
    if let Some(guest) = GUEST.get() {
        guest.host.log(level, target, message, fields_json);
    }
}

/// Returns the description of the loaded plugin, as `describe` sends it.
fn description(spec: &GuestSpec) -> PluginDescription {
    let mut capabilities = vec![capability::CANCEL.to_owned()];
    if spec.simulator.is_some() {
        capabilities.push(capability::SIMULATOR.to_owned());
    }
    PluginDescription {
        abi_major: ABI_MAJOR,
        abi_minor: ABI_MINOR,
        sdk_version: spec.sdk_version.to_owned(),
        contract_version: crate::abi::CONTRACT_VERSION.to_owned(),
        name: spec.name.to_owned(),
        version: spec.version.to_owned(),
        kinds: spec.kinds.iter().map(|k| (*k).to_owned()).collect(),
        capabilities,
        panic_strategy: if cfg!(panic = "unwind") {
            "unwind".to_owned()
        } else {
            "abort".to_owned()
        },
        rustc: Some(env!("VDIGW_RUSTC_VERSION").to_owned()).filter(|v| !v.is_empty()),
    }
}

extern "C" fn guest_describe() -> AbiBuffer {
    let result = catch_unwind(|| {
        let guest = GUEST.get()?;
        serde_json::to_vec(&description(guest.spec)).ok()
    });
    match result {
        Ok(Some(bytes)) => AbiBuffer::from_vec(bytes),
        _ => AbiBuffer::empty(),
    }
}

extern "C" fn guest_call(request: AbiStr) -> AbiBuffer {
    let bytes = request.to_vec();
    let result = catch_unwind(AssertUnwindSafe(|| start_call(&bytes)));
    let response = match result {
        Ok(None) => return AbiBuffer::empty(),
        Ok(Some(response)) => response,
        Err(payload) => Response::error(
            request_id(&bytes),
            &ProviderError::internal(format!(
                "plugin panicked while starting a request: {}",
                panic_message(payload.as_ref())
            )),
        ),
    };
    match serde_json::to_vec(&response) {
        Ok(bytes) => AbiBuffer::from_vec(bytes),
        Err(_) => AbiBuffer::empty(),
    }
}

/// Reads the id of a request that did not parse, so its error envelope still reaches the caller.
fn request_id(bytes: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

/// Spawns the work of a request; returns an immediate response when it cannot start.
fn start_call(bytes: &[u8]) -> Option<Response> {
    let Some(guest) = GUEST.get() else {
        let error = ProviderError::internal("plugin received a call before its entry symbol ran");
        return Some(Response::error(request_id(bytes), &error));
    };
    let request: Request = match serde_json::from_slice(bytes) {
        Ok(request) => request,
        Err(error) => {
            let error = ProviderError::new(
                ErrorKind::Invalid,
                format!("request is not a valid envelope: {error}"),
            );
            return Some(Response::error(request_id(bytes), &error));
        }
    };
    let id = request.id;
    let work = guest
        .runtime
        .spawn(async move { dispatch(guest.spec, &guest.instances, request).await });
    lock(&guest.in_flight).insert(id, work.abort_handle());
    guest.runtime.spawn(async move {
        let response = match work.await {
            Ok(result) => Response::from_result(id, result),
            Err(error) if error.is_panic() => {
                let message = panic_message(error.into_panic().as_ref());
                let error = ProviderError::internal(format!("plugin panicked: {message}"));
                Response::error(id, &error)
            }
            Err(_) => Response::error(id, &ProviderError::internal("request was cancelled")),
        };
        lock(&guest.in_flight).remove(&id);
        let bytes = serde_json::to_vec(&response).unwrap_or_default();
        let delivered = catch_unwind(AssertUnwindSafe(|| guest.host.complete(id, &bytes)));
        if delivered.is_err() {
            guest.host.log(
                AbiLevel::Error,
                guest.spec.name,
                "the host's completion callback panicked",
                "{}",
            );
        }
    });
    None
}

extern "C" fn guest_cancel(id: u64) {
    let _ = catch_unwind(|| {
        if let Some(guest) = GUEST.get() {
            if let Some(handle) = lock(&guest.in_flight).remove(&id) {
                handle.abort();
            }
        }
    });
}

extern "C" fn guest_free_buffer(buffer: AbiBuffer) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop(buffer.into_vec())));
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map stays consistent even if a holder panicked between two statements.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
