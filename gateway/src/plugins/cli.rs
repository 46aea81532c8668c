//! `vdi-gateway plugins list` and `vdi-gateway plugins check PATH`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vdi_contracts::abi::{
    capability, method, tracing_sink, PluginDescription, PluginLibrary, SimulatorFixture,
    ABI_MAJOR, ABI_MINOR,
};
use vdi_contracts::conformance::{run_all, Fixture};

use super::checks;
use super::{
    load_all, InProcessTransport, LoadOptions, PluginProvider, PluginSet, PluginTransport,
};
use crate::config;

/// Time `plugins check` gives each plugin call, including the whole conformance suite's calls.
const CHECK_CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Plugin commands.
#[derive(Debug, clap::Subcommand)]
pub enum PluginsCommand {
    /// Show the configured plugin libraries: what each loaded one describes, and why any was
    /// refused. Exits non-zero when a library is refused.
    List {
        /// TOML configuration file; without it, embedded defaults and VDIGW__* variables.
        #[arg(long, short, env = "VDIGW_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Load one plugin library, run its handshake and, when it ships a simulator, the provider
    /// conformance suite against it. Exits non-zero on any failure.
    Check {
        /// Library file, for example `./target/release/libvdigw_avd.so`.
        path: PathBuf,
        /// Expected SHA-256 of the file (64 hex digits, as `sha256sum` prints).
        #[arg(long)]
        sha256: Option<String>,
        /// Skip the conformance suite even when the plugin ships a simulator.
        #[arg(long)]
        no_conformance: bool,
    },
}

/// Runs a plugin command.
///
/// # Errors
/// Fails when the configuration cannot be loaded, a library is refused, or a check fails.
pub async fn run(command: PluginsCommand) -> anyhow::Result<()> {
    match command {
        PluginsCommand::List { config } => {
            let config = config::load(config.as_deref())?;
            let set = load_all(&config.plugins, &LoadOptions::current_exe()).await;
            print!("{}", format_list(&set));
            if !set.refused().is_empty() {
                anyhow::bail!(
                    "{} of the configured plugin libraries were rejected; see the reasons above",
                    set.refused().len()
                );
            }
            Ok(())
        }
        PluginsCommand::Check {
            path,
            sha256,
            no_conformance,
        } => {
            let (report, passed) = check(&path, sha256.as_deref(), !no_conformance).await;
            print!("{report}");
            if !passed {
                anyhow::bail!("plugin check of {} failed", path.display());
            }
            Ok(())
        }
    }
}

/// Formats the loaded and refused plugins as a table, followed by the refusals.
pub fn format_list(set: &PluginSet) -> String {
    let mut out = String::new();
    if set.loaded().is_empty() && set.refused().is_empty() {
        out.push_str("No plugin libraries are configured ([[plugins.libraries]]).\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<32} {:<8} {:<10} {:<24} {:<10} {:<20} CAPABILITIES",
        "FILE", "STATUS", "ISOLATION", "PLUGIN", "VERSION", "KINDS"
    );
    for plugin in set.loaded() {
        let d = plugin.description();
        let _ = writeln!(
            out,
            "{:<32} {:<8} {:<10} {:<24} {:<10} {:<20} {}",
            plugin.file,
            "loaded",
            plugin.isolation.as_str(),
            d.name,
            d.version,
            d.kinds.join(","),
            d.capabilities.join(",")
        );
    }
    for refusal in set.refused() {
        let file = refusal
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(out, "{file:<32} refused");
    }
    for refusal in set.refused() {
        let _ = writeln!(out, "\nrefused: {refusal}");
    }
    out
}

/// Formats a plugin's handshake description.
pub fn format_description(description: &PluginDescription) -> String {
    let mut out = String::new();
    let capabilities = if description.capabilities.is_empty() {
        "none".to_owned()
    } else {
        description.capabilities.join(", ")
    };
    let _ = writeln!(
        out,
        "Plugin:         {} {}",
        description.name, description.version
    );
    let _ = writeln!(
        out,
        "ABI:            {}.{} (this gateway: {ABI_MAJOR}.{ABI_MINOR})",
        description.abi_major, description.abi_minor
    );
    let _ = writeln!(
        out,
        "SDK:            vdi-plugin-sdk {}, vdi-contracts {}",
        description.sdk_version, description.contract_version
    );
    let _ = writeln!(out, "Kinds:          {}", description.kinds.join(", "));
    let _ = writeln!(out, "Capabilities:   {capabilities}");
    let _ = writeln!(out, "Panic strategy: {}", description.panic_strategy);
    if let Some(rustc) = &description.rustc {
        let _ = writeln!(out, "Compiler:       {rustc}");
    }
    out
}

/// Checks one library and returns the report and whether every step passed.
pub async fn check(path: &Path, pin: Option<&str>, conformance: bool) -> (String, bool) {
    let mut report = format!("Library:        {}\n", path.display());
    let (directory, file) = match (path.parent(), path.file_name()) {
        (Some(directory), Some(file)) => {
            let directory = if directory.as_os_str().is_empty() {
                Path::new(".")
            } else {
                directory
            };
            (directory.to_path_buf(), file.to_string_lossy().into_owned())
        }
        _ => {
            report.push_str("Result:         FAILED: the path names no file\n");
            return (report, false);
        }
    };
    let verified = match checks::verify(&directory, &file, pin) {
        Ok(verified) => verified,
        Err(refusal) => {
            let _ = writeln!(report, "Result:         FAILED: {}", refusal.reason);
            return (report, false);
        }
    };
    let _ = writeln!(report, "SHA-256:        {}", verified.sha256);
    let shown_path = verified.shown_path.clone();
    let library = match PluginLibrary::open(&verified.into_load_path(), &shown_path, tracing_sink())
    {
        Ok(library) => library,
        Err(error) => {
            let _ = writeln!(report, "Result:         FAILED: {error}");
            return (report, false);
        }
    };
    report.push_str(&format_description(library.description()));

    let has_simulator = library.description().has_capability(capability::SIMULATOR);
    if !conformance || !has_simulator {
        let reason = if conformance {
            "skipped: the plugin ships no simulator"
        } else {
            "skipped (--no-conformance)"
        };
        let _ = writeln!(report, "Conformance:    {reason}");
        report.push_str("Result:         passed\n");
        return (report, true);
    }
    let transport: Arc<dyn PluginTransport> =
        Arc::new(InProcessTransport::new(library, CHECK_CALL_TIMEOUT));
    match run_conformance(transport).await {
        Ok(()) => {
            report.push_str("Conformance:    passed against the plugin's simulator\n");
            report.push_str("Result:         passed\n");
            (report, true)
        }
        Err(message) => {
            let _ = writeln!(report, "Conformance:    FAILED: {message}");
            report.push_str("Result:         FAILED\n");
            (report, false)
        }
    }
}

/// Starts the plugin's simulator, creates an instance against it and runs the conformance
/// suite through the host-side adapter.
async fn run_conformance(transport: Arc<dyn PluginTransport>) -> Result<(), String> {
    let value = transport
        .call(method::SIMULATOR, None, serde_json::Value::Null)
        .await
        .map_err(|error| format!("the simulator did not start: {error}"))?;
    let fixture: SimulatorFixture = serde_json::from_value(value)
        .map_err(|error| format!("the simulator's fixture does not parse: {error}"))?;
    let provider = PluginProvider::init(
        transport,
        "plugin-check",
        &fixture.kind,
        fixture.settings.clone(),
    )
    .await
    .map_err(|error| format!("init against the simulator failed: {error}"))?;
    let fixture = Fixture {
        provider: Arc::new(provider),
        target: fixture.target,
        container: fixture.container,
        second_version: fixture.second_version,
    };
    // The suite reports a broken expectation by panicking; a task turns that into an error.
    let suite = tokio::spawn(async move { run_all(&fixture).await });
    suite.await.map_err(|error| {
        if error.is_panic() {
            let payload = error.into_panic();
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a check failed".to_owned())
        } else {
            "the suite was cancelled".to_owned()
        }
    })
}
