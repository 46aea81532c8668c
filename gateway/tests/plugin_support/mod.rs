//! Helpers of the plugin tests: finding the example plugin's cdylib, laying out a plugin
//! directory the loader accepts, and building configurations.
//!
//! The gateway lists `vdigw-example-rest` as a dev-dependency, so every `cargo test` that
//! builds these tests also builds the example's `cdylib` into `target/<profile>/deps/`, the
//! directory of the test executable. No test runs Cargo itself.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use vdi_gateway::config::{Isolation, PluginLibraryConfig, PluginsConfig, ProviderConfig};
use vdi_gateway::plugins::LoadOptions;
use vdigw_example_rest::sim::PortalSim;

/// File name of the example plugin on this platform, for example `libvdigw_example_rest.so`.
pub fn library_name() -> String {
    format!(
        "{}vdigw_example_rest{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Returns the example plugin's cdylib next to the test executable.
pub fn example_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("test executable directory");
    let candidates = [
        deps.join(library_name()),
        deps.join("..").join(library_name()),
    ];
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the example plugin's cdylib is missing (looked at {candidates:?}); it is built \
                 as a dev-dependency of vdi-gateway, so run the tests through cargo test"
            )
        })
}

/// A plugin directory with a copy of the example plugin, mode 0644 in a 0755 directory.
pub struct PluginDir {
    pub dir: tempfile::TempDir,
    pub file: String,
}

impl PluginDir {
    /// Creates the directory and copies the example plugin into it.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod directory");
        let file = library_name();
        let path = dir.path().join(&file);
        std::fs::copy(example_library(), &path).expect("copy the example plugin");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .expect("chmod library");
        Self { dir, file }
    }

    /// Returns the directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Returns the SHA-256 of the copied library.
    pub fn sha256(&self) -> String {
        let mut file = std::fs::File::open(self.path().join(&self.file)).expect("open library");
        vdi_gateway::plugins::checks::hash(&mut file).expect("hash library")
    }

    /// Returns a `[plugins]` section that loads the example plugin.
    pub fn config(&self, isolation: Isolation, call_timeout: Duration) -> PluginsConfig {
        PluginsConfig {
            directory: Some(self.path().to_path_buf()),
            libraries: vec![PluginLibraryConfig {
                file: self.file.clone(),
                sha256: Some(self.sha256()),
                isolation,
                call_timeout,
            }],
        }
    }
}

/// Load options that start `plugin-host` children from the gateway binary Cargo built.
pub fn load_options() -> LoadOptions {
    LoadOptions {
        host_program: PathBuf::from(env!("CARGO_BIN_EXE_vdi-gateway")),
    }
}

/// Settings of an example provider against `sim`, with fault injection on.
pub fn settings(sim: &PortalSim) -> Value {
    let mut settings = vdigw_example_rest::plugin::sim_settings(sim);
    settings["fault_injection"] = json!(true);
    settings
}

/// Returns a `[[providers]]` entry of the example plugin's kind.
pub fn provider(name: &str, settings: Value) -> ProviderConfig {
    ProviderConfig {
        name: name.into(),
        kind: vdigw_example_rest::KIND.into(),
        environment: "test".into(),
        enabled: true,
        agent_token: None,
        settings,
    }
}

/// Compiles a small C shared library into `dir`; `None` when no C compiler is installed.
pub fn compile_c_library(dir: &Path, name: &str, source: &str) -> Option<PathBuf> {
    let source_path = dir.join(format!("{name}.c"));
    std::fs::write(&source_path, source).expect("write C source");
    let output = dir.join(format!("lib{name}.so"));
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&output)
        .arg(&source_path)
        .status()
        .ok()?;
    std::fs::remove_file(&source_path).expect("remove C source");
    if !status.success() {
        return None;
    }
    std::fs::set_permissions(&output, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    Some(output)
}
