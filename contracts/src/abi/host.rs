//! Host side of the ABI: loading a plugin library with libloading, the `describe` handshake,
//! asynchronous calls bridged to tokio, and the `log` and `complete` callbacks.
//!
//! Libraries are never unloaded: `dlclose` while plugin threads or thread-local destructors are
//! alive crashes the process, so a loaded library stays mapped until the process exits.

use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

use super::envelope::{LogRecord, PluginDescription, Request, Response};
use super::ffi::{AbiLevel, AbiStr, EntryFn, HostVTable, PluginVTable};
use super::{entry_symbol, ABI_MAJOR, ABI_MINOR};
use crate::ProviderError;

/// Receives the log events of a plugin, with the plugin's name.
pub type LogSink = Arc<dyn Fn(&str, LogRecord) + Send + Sync>;

/// Failure to load a plugin library.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The dynamic loader rejected the file.
    #[error("cannot load plugin library {path}: {source}")]
    Open {
        /// Library file.
        path: PathBuf,
        /// Loader error.
        source: libloading::Error,
    },
    /// The library exports no entry symbol of any ABI major.
    #[error(
        "{path} exports no `{symbol}` symbol, so it is not a gateway plugin; build it with \
         vdi-plugin-sdk's export_provider! macro"
    )]
    NoEntry {
        /// Library file.
        path: PathBuf,
        /// Symbol searched for.
        symbol: String,
    },
    /// The library was built for another ABI major.
    #[error(
        "{path} was built for plugin ABI major {found}, but this gateway speaks ABI major \
         {expected}; rebuild the plugin with a vdi-plugin-sdk release for ABI {expected}"
    )]
    AbiMajor {
        /// Library file.
        path: PathBuf,
        /// Major the library exports.
        found: u32,
        /// Major of this host.
        expected: u32,
    },
    /// The entry symbol ran but returned no usable vtable.
    #[error("{path}: the plugin's entry returned no usable vtable: {reason}")]
    Entry {
        /// Library file.
        path: PathBuf,
        /// Description of the problem.
        reason: String,
    },
    /// `describe` returned nothing or a document that does not parse.
    #[error("{path}: the plugin's describe handshake failed: {reason}")]
    Describe {
        /// Library file.
        path: PathBuf,
        /// Description of the problem.
        reason: String,
    },
}

/// State the host's callbacks reach through [`HostVTable::context`]; leaked with the library.
struct HostState {
    name: OnceLock<String>,
    fallback_name: String,
    pending: Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>,
    next_id: AtomicU64,
    sink: LogSink,
}

impl HostState {
    fn name(&self) -> &str {
        self.name.get().unwrap_or(&self.fallback_name)
    }
}

/// A loaded plugin library.
pub struct PluginLibrary {
    path: PathBuf,
    vtable: &'static PluginVTable,
    state: &'static HostState,
    description: PluginDescription,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("path", &self.path)
            .field("name", &self.description.name)
            .field("version", &self.description.version)
            .finish_non_exhaustive()
    }
}

impl PluginLibrary {
    /// Loads the library at `load_path`, checks its ABI major and runs the `describe`
    /// handshake. Errors name `shown_path`, which differs from `load_path` when the caller
    /// loads an already opened file through `/proc/self/fd`.
    ///
    /// Loading runs the library's initialisers with the gateway's rights, so callers check the
    /// file first. The library is never unloaded, even when this function fails after opening.
    ///
    /// # Errors
    /// Returns [`LoadError`] naming the file and what is wrong.
    pub fn open(load_path: &Path, shown_path: &Path, sink: LogSink) -> Result<Self, LoadError> {
        let path = shown_path.to_path_buf();
        // SAFETY: loading a library runs its initialisers, which is why callers only load
        // files that passed the gateway's directory, owner, mode and checksum checks and run
        // trusted plugins (documented in docs/plugins.md).
        let loaded = unsafe { libloading::Library::new(load_path) };
        let library = loaded.map_err(|source| LoadError::Open {
            path: path.clone(),
            source,
        })?;
        let symbol = entry_symbol(ABI_MAJOR);
        // SAFETY: the symbol name carries the ABI major, and every SDK of that major exports it
        // with the `EntryFn` signature. Copying the function pointer out is sound because the
        // library is never unloaded.
        let entry: Option<EntryFn> = unsafe { library.get::<EntryFn>(symbol.as_bytes()) }
            .ok()
            .map(|symbol| *symbol);
        let Some(entry) = entry else {
            let exports = |major: u32| {
                let name = entry_symbol(major);
                // SAFETY: only the symbol's presence is checked; its value is never used.
                let symbol = unsafe { library.get::<*const c_void>(name.as_bytes()) };
                symbol.is_ok()
            };
            let found = (0..=16)
                .filter(|major| *major != ABI_MAJOR)
                .find(|major| exports(*major));
            std::mem::forget(library);
            return Err(match found {
                Some(found) => LoadError::AbiMajor {
                    path,
                    found,
                    expected: ABI_MAJOR,
                },
                None => LoadError::NoEntry { path, symbol },
            });
        };
        std::mem::forget(library);

        let fallback_name = shown_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".to_owned());
        let state: &'static HostState = Box::leak(Box::new(HostState {
            name: OnceLock::new(),
            fallback_name,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            sink,
        }));
        let host: &'static HostVTable = Box::leak(Box::new(HostVTable {
            abi_major: ABI_MAJOR,
            abi_minor: ABI_MINOR,
            size: std::mem::size_of::<HostVTable>(),
            context: state as *const HostState as *const c_void,
            log: host_log,
            complete: host_complete,
        }));

        let vtable = entry(Some(host));
        let entry_error = |reason: String| LoadError::Entry {
            path: path.clone(),
            reason,
        };
        if vtable.is_null() {
            return Err(entry_error(format!(
                "it rejected host ABI {ABI_MAJOR}.{ABI_MINOR} or could not start its runtime; \
                 see the plugin's log lines above"
            )));
        }
        // SAFETY: a non-null pointer returned by the entry points at the plugin's static
        // vtable, which lives as long as the library, and the library is never unloaded.
        let vtable: &'static PluginVTable = unsafe { &*vtable };
        if vtable.abi_major != ABI_MAJOR {
            return Err(LoadError::AbiMajor {
                path,
                found: vtable.abi_major,
                expected: ABI_MAJOR,
            });
        }
        if vtable.size < std::mem::size_of::<PluginVTable>() {
            return Err(entry_error(format!(
                "its vtable has {} bytes, fewer than ABI {ABI_MAJOR}.0 defines ({})",
                vtable.size,
                std::mem::size_of::<PluginVTable>()
            )));
        }

        let buffer = (vtable.describe)();
        let bytes = buffer.copy_bytes();
        (vtable.free_buffer)(buffer);
        let description: PluginDescription =
            serde_json::from_slice(&bytes).map_err(|error| LoadError::Describe {
                path: path.clone(),
                reason: if bytes.is_empty() {
                    "describe returned no document".to_owned()
                } else {
                    format!("the document does not parse: {error}")
                },
            })?;
        if description.abi_major != ABI_MAJOR {
            return Err(LoadError::AbiMajor {
                path,
                found: description.abi_major,
                expected: ABI_MAJOR,
            });
        }
        let _ = state.name.set(description.name.clone());
        Ok(Self {
            path,
            vtable,
            state,
            description,
        })
    }

    /// Returns the file this library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the description the plugin sent in the handshake.
    pub fn description(&self) -> &PluginDescription {
        &self.description
    }

    /// Sends a request and waits for its response. The envelope's `id` is replaced by an id
    /// unique within this library while in flight, and restored in the response.
    ///
    /// Dropping the returned future (a timeout, for example) cancels the request in the plugin.
    pub async fn call(&self, mut request: Request) -> Response {
        let caller_id = request.id;
        let id = self.state.next_id.fetch_add(1, Ordering::Relaxed);
        request.id = id;
        let (sender, receiver) = oneshot::channel();
        lock(&self.state.pending).insert(id, sender);
        let mut pending = PendingCall {
            library: self,
            id,
            done: false,
        };

        let bytes = match serde_json::to_vec(&request) {
            Ok(bytes) => bytes,
            Err(error) => {
                pending.done = true;
                lock(&self.state.pending).remove(&id);
                let error = ProviderError::internal(format!("request does not serialize: {error}"));
                return Response::error(caller_id, &error);
            }
        };
        let immediate = self.start(&bytes);
        let reply = match immediate {
            Some(reply) => {
                lock(&self.state.pending).remove(&id);
                reply
            }
            None => receiver.await.unwrap_or_default(),
        };
        pending.done = true;
        let mut response = Response::parse(id, &reply);
        response.id = caller_id;
        response
    }

    /// Passes a request to the plugin and returns the immediate response, if the plugin sent one.
    fn start(&self, request: &[u8]) -> Option<Vec<u8>> {
        let buffer = (self.vtable.call)(AbiStr::new(request));
        if buffer.is_empty() {
            return None;
        }
        let reply = buffer.copy_bytes();
        (self.vtable.free_buffer)(buffer);
        Some(reply)
    }
}

/// Cancels a request in the plugin when its future is dropped before the response arrived.
struct PendingCall<'a> {
    library: &'a PluginLibrary,
    id: u64,
    done: bool,
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.library.state.pending).remove(&self.id);
            (self.library.vtable.cancel)(self.id);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The pending map stays consistent even if a holder panicked between two statements.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Returns the host state behind a callback's context pointer.
fn state_of(context: *const c_void) -> Option<&'static HostState> {
    if context.is_null() {
        return None;
    }
    // SAFETY: the only context the host hands out is a leaked `HostState`, set in
    // `PluginLibrary::open`, which lives until the process exits.
    Some(unsafe { &*(context as *const HostState) })
}

extern "C" fn host_complete(context: *const c_void, id: u64, response: AbiStr) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let Some(state) = state_of(context) else {
            return;
        };
        let bytes = response.to_vec();
        if let Some(sender) = lock(&state.pending).remove(&id) {
            let _ = sender.send(bytes);
        }
    }));
}

extern "C" fn host_log(
    context: *const c_void,
    level: u32,
    target: AbiStr,
    message: AbiStr,
    fields: AbiStr,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let Some(state) = state_of(context) else {
            return;
        };
        let text = |view: AbiStr| String::from_utf8_lossy(&view.to_vec()).into_owned();
        let fields = serde_json::from_slice(&fields.to_vec()).unwrap_or(serde_json::Value::Null);
        let record = LogRecord {
            level: level_name(AbiLevel::from_u32(level)).to_owned(),
            target: text(target),
            message: text(message),
            fields,
        };
        (state.sink)(state.name(), record);
    }));
}

/// Returns the lowercase name of a level, as [`LogRecord::level`] carries it.
pub fn level_name(level: AbiLevel) -> &'static str {
    match level {
        AbiLevel::Error => "error",
        AbiLevel::Warn => "warn",
        AbiLevel::Info => "info",
        AbiLevel::Debug => "debug",
        AbiLevel::Trace => "trace",
    }
}

/// Emits a plugin's log event into the host's `tracing` subscriber, at the event's level, with
/// the plugin's name in the `plugin` field.
pub fn emit_log(plugin: &str, record: &LogRecord) {
    let target = record.target.as_str();
    let message = record.message.as_str();
    let fields = match &record.fields {
        serde_json::Value::Null => String::new(),
        value => value.to_string(),
    };
    match record.level.as_str() {
        "error" => {
            tracing::error!(target: "vdigw::plugin", plugin, plugin_target = target, fields, "{message}")
        }
        "warn" => {
            tracing::warn!(target: "vdigw::plugin", plugin, plugin_target = target, fields, "{message}")
        }
        "debug" => {
            tracing::debug!(target: "vdigw::plugin", plugin, plugin_target = target, fields, "{message}")
        }
        "trace" => {
            tracing::trace!(target: "vdigw::plugin", plugin, plugin_target = target, fields, "{message}")
        }
        _ => {
            tracing::info!(target: "vdigw::plugin", plugin, plugin_target = target, fields, "{message}")
        }
    }
}

/// Returns a sink that emits into the host's `tracing` subscriber with [`emit_log`].
pub fn tracing_sink() -> LogSink {
    Arc::new(|plugin: &str, record: LogRecord| emit_log(plugin, &record))
}
