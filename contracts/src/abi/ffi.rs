//! The `#[repr(C)]` types that cross the library boundary: byte views, owned buffers and the two
//! vtables. Only C types appear here; every payload is JSON inside a byte buffer.

use std::ffi::c_void;

/// Bytes borrowed from the caller for the duration of one call; the callee copies what it keeps.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AbiStr {
    /// First byte, or null when `len` is 0.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl AbiStr {
    /// Borrows `bytes` for an FFI call; the view must not outlive them.
    pub fn new(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// Copies the viewed bytes.
    ///
    /// The other side of the ABI guarantees that `ptr` points at `len` readable bytes for the
    /// duration of the call that passed this view. Call this function only inside that call.
    pub(crate) fn to_vec(self) -> Vec<u8> {
        if self.ptr.is_null() || self.len == 0 {
            return Vec::new();
        }
        // SAFETY: by the ABI contract, a non-null `ptr` points at `len` initialised bytes that
        // stay valid until the call that passed this view returns, and this copy runs inside it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }.to_vec()
    }
}

/// Bytes the plugin allocated and handed to the host. The host copies them and gives the buffer
/// back through [`PluginVTable::free_buffer`], so the plugin's allocator frees them.
#[repr(C)]
#[derive(Debug)]
pub struct AbiBuffer {
    /// First byte, or null for "no buffer".
    pub ptr: *mut u8,
    /// Number of initialised bytes.
    pub len: usize,
    /// Capacity of the allocation, needed to rebuild the `Vec` that owns it.
    pub cap: usize,
}

impl AbiBuffer {
    /// Returns the empty buffer, which owns nothing.
    pub fn empty() -> Self {
        Self {
            ptr: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    /// Returns whether the buffer owns no allocation.
    pub fn is_empty(&self) -> bool {
        self.ptr.is_null()
    }

    /// Gives up ownership of `bytes`; only [`AbiBuffer::into_vec`] in the same library may free
    /// them.
    pub(crate) fn from_vec(bytes: Vec<u8>) -> Self {
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        Self {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
        }
    }

    /// Takes back a buffer made by [`AbiBuffer::from_vec`] in this library, so dropping the
    /// result frees it with the allocator that made it.
    pub(crate) fn into_vec(self) -> Vec<u8> {
        if self.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: buffers reach `free_buffer` only from the plugin that made them with
        // `from_vec`, unchanged, so `ptr`, `len` and `cap` describe a live `Vec<u8>` allocation
        // of this library's allocator, and the host never uses the buffer again afterwards.
        unsafe { Vec::from_raw_parts(self.ptr, self.len, self.cap) }
    }

    /// Copies the bytes of a buffer received from the plugin, leaving the buffer untouched.
    pub(crate) fn copy_bytes(&self) -> Vec<u8> {
        AbiStr {
            ptr: self.ptr,
            len: self.len,
        }
        .to_vec()
    }
}

/// Log level numbers of [`HostVTable::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum AbiLevel {
    /// An operator must act.
    Error = 1,
    /// A recovered fault.
    Warn = 2,
    /// Lifecycle events.
    Info = 3,
    /// Choices and details.
    Debug = 4,
    /// Everything.
    Trace = 5,
}

impl AbiLevel {
    /// Returns the level of a number, treating unknown numbers as `Info`.
    pub fn from_u32(value: u32) -> Self {
        match value {
            1 => AbiLevel::Error,
            2 => AbiLevel::Warn,
            4 => AbiLevel::Debug,
            5 => AbiLevel::Trace,
            _ => AbiLevel::Info,
        }
    }
}

/// Sends one log event of the plugin to the host: level, target, message and a JSON object of
/// fields. Must not block; the host only forwards the event.
pub type LogFn = extern "C" fn(
    context: *const c_void,
    level: u32,
    target: AbiStr,
    message: AbiStr,
    fields: AbiStr,
);

/// Delivers the JSON response envelope of request `id` to the host, from any plugin thread.
pub type CompleteFn = extern "C" fn(context: *const c_void, id: u64, response: AbiStr);

/// Functions the host offers a plugin. The host keeps it alive for the life of the process.
#[repr(C)]
#[derive(Debug)]
pub struct HostVTable {
    /// ABI major of the host.
    pub abi_major: u32,
    /// ABI minor of the host.
    pub abi_minor: u32,
    /// `size_of::<HostVTable>()` of the host; fields added by later minors lie beyond it.
    pub size: usize,
    /// Host state passed back to every callback.
    pub context: *const c_void,
    /// Log forwarding.
    pub log: LogFn,
    /// Completion of an asynchronous call.
    pub complete: CompleteFn,
}

/// Functions a plugin offers the host, returned by the entry symbol.
#[repr(C)]
#[derive(Debug)]
pub struct PluginVTable {
    /// ABI major of the plugin; must equal the host's.
    pub abi_major: u32,
    /// ABI minor of the plugin.
    pub abi_minor: u32,
    /// `size_of::<PluginVTable>()` of the plugin; fields added by later minors lie beyond it.
    pub size: usize,
    /// Returns the JSON [`super::PluginDescription`].
    pub describe: extern "C" fn() -> AbiBuffer,
    /// Starts a request envelope. Returns an empty buffer when the response will arrive through
    /// [`HostVTable::complete`], or the response envelope itself when the request failed at
    /// once (malformed JSON, a panic before the work started).
    pub call: extern "C" fn(request: AbiStr) -> AbiBuffer,
    /// Cancels request `id`; a response may still arrive and is then ignored.
    pub cancel: extern "C" fn(id: u64),
    /// Frees a buffer this plugin returned.
    pub free_buffer: extern "C" fn(buffer: AbiBuffer),
}

/// Signature of the entry symbol: receives the host's vtable and returns the plugin's, or null
/// when the plugin cannot run with this host.
pub type EntryFn = extern "C" fn(host: Option<&'static HostVTable>) -> *const PluginVTable;

/// A reference to the host's vtable that plugin threads may share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostRef(pub(crate) &'static HostVTable);

// SAFETY: the host vtable is immutable after the entry call. Its function pointers may be
// called from any thread, because the ABI requires hosts to make `log` and `complete`
// thread-safe. `context` is only passed back to those functions and never dereferenced here.
unsafe impl Send for HostRef {}
// SAFETY: as for `Send`: shared access only reads immutable fields.
unsafe impl Sync for HostRef {}

impl HostRef {
    /// Forwards a log event to the host.
    pub(crate) fn log(&self, level: AbiLevel, target: &str, message: &str, fields: &str) {
        (self.0.log)(
            self.0.context,
            level as u32,
            AbiStr::new(target.as_bytes()),
            AbiStr::new(message.as_bytes()),
            AbiStr::new(fields.as_bytes()),
        );
    }

    /// Delivers a response envelope to the host.
    pub(crate) fn complete(&self, id: u64, response: &[u8]) {
        (self.0.complete)(self.0.context, id, AbiStr::new(response));
    }
}
