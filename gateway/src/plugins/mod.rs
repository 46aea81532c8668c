//! Dynamic plugins: loading broker plugin libraries from the configured directory, in process
//! or in a supervised child process, and building providers of the kinds they serve.
//!
//! A library that fails a check (outside the directory, wrong owner or mode, SHA-256 pin
//! mismatch, another ABI major, a kind that is already served) is refused. The refusal is
//! logged at `error` and shown by `vdi-gateway plugins list`, and the gateway starts with its
//! other providers. A `[[providers]]` entry whose kind only a refused library could have
//! served becomes an [`UnavailableProvider`], which `GET /v1/providers` shows as unreachable
//! with the refusal as its detail. Loaded libraries are never unloaded.

pub mod adapter;
pub mod checks;
pub mod cli;
pub mod host_main;
pub mod process;
pub mod transport;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vdi_contracts::abi::{tracing_sink, PluginDescription, PluginLibrary};
use vdi_contracts::{ErrorKind, Provider};

pub use adapter::{PluginProvider, UnavailableProvider};
pub use checks::Refusal;
pub use transport::{InProcessTransport, PluginTransport};

use crate::config::{Isolation, PluginLibraryConfig, PluginsConfig, ProviderConfig};
use crate::providers::BUILTIN_KINDS;
use process::{HostCommand, ProcessTransport};

/// A plugin library that loaded.
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    /// Configured file name.
    pub file: String,
    /// Directory joined with the file name.
    pub path: PathBuf,
    /// Isolation mode.
    pub isolation: Isolation,
    /// SHA-256 of the file that was loaded.
    pub sha256: String,
    /// Transport of its envelopes.
    pub transport: Arc<dyn PluginTransport>,
}

impl LoadedPlugin {
    /// Returns the plugin's handshake description.
    pub fn description(&self) -> &PluginDescription {
        self.transport.description()
    }
}

/// Every configured plugin library: the loaded ones and the refused ones.
#[derive(Debug, Default)]
pub struct PluginSet {
    loaded: Vec<LoadedPlugin>,
    refused: Vec<Refusal>,
}

/// Options of [`load_all`]: the gateway binary that `isolation = "process"` starts as
/// `plugin-host`.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The `vdi-gateway` executable.
    pub host_program: PathBuf,
}

impl LoadOptions {
    /// Uses the running executable, which is the gateway binary when serving.
    pub fn current_exe() -> Self {
        Self {
            host_program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("vdi-gateway")),
        }
    }
}

impl PluginSet {
    /// Returns the loaded plugins in configuration order.
    pub fn loaded(&self) -> &[LoadedPlugin] {
        &self.loaded
    }

    /// Returns the refused libraries in configuration order.
    pub fn refused(&self) -> &[Refusal] {
        &self.refused
    }

    /// Returns the plugin that serves `kind`, if one loaded.
    pub fn plugin_for(&self, kind: &str) -> Option<&LoadedPlugin> {
        self.loaded
            .iter()
            .find(|p| p.description().kinds.iter().any(|k| k == kind))
    }

    /// Returns every kind the loaded plugins serve.
    pub fn kinds(&self) -> Vec<String> {
        self.loaded
            .iter()
            .flat_map(|p| p.description().kinds.clone())
            .collect()
    }

    /// Builds a provider of a plugin's kind; `None` when no loaded plugin serves the kind.
    ///
    /// A provider whose settings the plugin rejects as `invalid` is an error, like a built-in
    /// provider with bad settings. Any other failure (the plugin's process is down, for
    /// example) gives an [`UnavailableProvider`] carrying the reason, so the gateway starts.
    pub async fn build(
        &self,
        config: &ProviderConfig,
    ) -> Option<Result<Arc<dyn Provider>, String>> {
        let plugin = self.plugin_for(&config.kind)?;
        let init = PluginProvider::init(
            plugin.transport.clone(),
            &config.name,
            &config.kind,
            config.settings.clone(),
        )
        .await;
        Some(match init {
            Ok(provider) => Ok(Arc::new(provider) as Arc<dyn Provider>),
            Err(error) if error.kind == ErrorKind::Invalid => Err(error.message),
            Err(error) => {
                let reason = format!(
                    "plugin {} could not create this provider: {error}",
                    plugin.file
                );
                tracing::error!(provider = %config.name, reason = %reason, "Plugin provider is unavailable.");
                Ok(Arc::new(UnavailableProvider::new(&config.kind, reason)) as Arc<dyn Provider>)
            }
        })
    }

    /// Returns why no provider of `kind` can be built when libraries were refused, naming
    /// them. Returns `None` when nothing was refused, so an unknown kind stays a configuration
    /// error.
    pub fn unavailable_reason(&self, kind: &str) -> Option<String> {
        if self.refused.is_empty() {
            return None;
        }
        let refused: Vec<String> = self.refused.iter().map(ToString::to_string).collect();
        Some(format!(
            "no loaded plugin serves kind {kind:?}; refused: {}",
            refused.join("; ")
        ))
    }
}

/// Loads every configured library, refusing the ones that fail a check.
pub async fn load_all(config: &PluginsConfig, options: &LoadOptions) -> PluginSet {
    let mut set = PluginSet::default();
    let Some(directory) = &config.directory else {
        return set;
    };
    for entry in &config.libraries {
        let result = match load_one(directory, entry, options).await {
            Ok(plugin) => check_kinds(&set, plugin),
            Err(refusal) => Err(refusal),
        };
        match result {
            Ok(plugin) => {
                let description = plugin.description();
                tracing::info!(
                    plugin = %description.name, version = %description.version,
                    file = %plugin.path.display(), kinds = ?description.kinds,
                    isolation = plugin.isolation.as_str(), "Plugin loaded."
                );
                set.loaded.push(plugin);
            }
            Err(refusal) => {
                tracing::error!(file = %refusal.path.display(), reason = %refusal.reason, "Plugin library rejected.");
                set.refused.push(refusal);
            }
        }
    }
    set
}

/// Refuses a plugin whose kind is built in or served by a plugin loaded before it.
fn check_kinds(set: &PluginSet, plugin: LoadedPlugin) -> Result<LoadedPlugin, Refusal> {
    for kind in &plugin.description().kinds {
        if BUILTIN_KINDS.contains(&kind.as_str()) {
            return Err(Refusal::new(
                &plugin.path,
                format!("it serves kind {kind:?}, which is built into the gateway; rename the plugin's kind"),
            ));
        }
        if let Some(other) = set.plugin_for(kind) {
            return Err(Refusal::new(
                &plugin.path,
                format!(
                    "it serves kind {kind:?}, which {} already serves; keep one of the two libraries",
                    other.file
                ),
            ));
        }
    }
    Ok(plugin)
}

/// Checks and loads one library in the configured isolation.
async fn load_one(
    directory: &Path,
    entry: &PluginLibraryConfig,
    options: &LoadOptions,
) -> Result<LoadedPlugin, Refusal> {
    let verified = checks::verify(directory, &entry.file, entry.sha256.as_deref())?;
    let path = verified.shown_path.clone();
    let sha256 = verified.sha256.clone();
    let transport: Arc<dyn PluginTransport> = match entry.isolation {
        Isolation::InProcess => {
            let library = PluginLibrary::open(&verified.into_load_path(), &path, tracing_sink())
                .map_err(|error| Refusal::new(&path, error.to_string()))?;
            if !library.description().unwinds() {
                return Err(Refusal::new(
                    &path,
                    "it was built with panic = \"abort\", so any panic in it would stop the \
                     gateway; build it with panic = \"unwind\" or set isolation = \"process\"",
                ));
            }
            Arc::new(InProcessTransport::new(library, entry.call_timeout))
        }
        Isolation::Process => {
            drop(verified);
            let command = host_command(options, directory, entry);
            let transport = ProcessTransport::start(&entry.file, command, entry.call_timeout)
                .await
                .map_err(|reason| Refusal::new(&path, reason))?;
            Arc::new(transport)
        }
    };
    Ok(LoadedPlugin {
        file: entry.file.clone(),
        path,
        isolation: entry.isolation,
        sha256,
        transport,
    })
}

/// Returns the `plugin-host` command for a library; the child repeats every check.
fn host_command(
    options: &LoadOptions,
    directory: &Path,
    entry: &PluginLibraryConfig,
) -> HostCommand {
    let mut args: Vec<OsString> = vec![
        "plugin-host".into(),
        "--directory".into(),
        directory.as_os_str().to_owned(),
        "--file".into(),
        entry.file.clone().into(),
    ];
    if let Some(pin) = &entry.sha256 {
        args.push("--sha256".into());
        args.push(pin.into());
    }
    HostCommand {
        program: options.host_program.clone(),
        args,
    }
}
