//! Command-line arguments of `assign`, `plan` and `status`, and the assignment body built from
//! them.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::Value;
use vdi_contracts::model::{
    validate_identifier, validate_version, Activation, Container, Launch, RolloutPolicy, TargetRef,
    Window,
};

/// Arguments of `assign`: a JSON body from a file, or the assignment described with flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AssignArgs {
    /// Assignment id, chosen by the caller: 1 to 128 characters of `[A-Za-z0-9._:-]`.
    pub id: String,
    /// JSON body of PUT /v1/assignments/{id}, sent unchanged, or `-` for standard input.
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with_all = [
            "container", "version", "executable", "arguments", "working_directory",
            "display_name", "targets", "activation", "waves", "max_failure_percent",
            "pause_seconds", "auto_rollback",
        ]
    )]
    pub file: Option<PathBuf>,
    /// Container id, for example `epic-hyperspace`.
    #[arg(long, required_unless_present = "file")]
    pub container: Option<String>,
    /// Container version, for example `2024.3.1`.
    #[arg(long, required_unless_present = "file")]
    pub version: Option<String>,
    /// Player executable that starts the container.
    #[arg(long, value_name = "PATH", required_unless_present = "file")]
    pub executable: Option<String>,
    /// Command-line arguments of the executable.
    #[arg(long, allow_hyphen_values = true)]
    pub arguments: Option<String>,
    /// Working directory of the launched process.
    #[arg(long, value_name = "PATH")]
    pub working_directory: Option<String>,
    /// Name users see in their launcher (default: the container id).
    #[arg(long, value_name = "NAME")]
    pub display_name: Option<String>,
    /// Target as PROVIDER/TARGET, split at the first '/'. Repeat the flag for several targets.
    #[arg(
        long = "target",
        value_name = "PROVIDER/TARGET",
        required_unless_present = "file"
    )]
    pub targets: Vec<String>,
    /// When machines switch to the new version (the gateway's default is when_idle).
    #[arg(long, value_enum)]
    pub activation: Option<ActivationArg>,
    /// Cumulative wave percentages, comma-separated and ending at 100, for example 5,25,100.
    #[arg(long, value_delimiter = ',', value_name = "PERCENTS")]
    pub waves: Vec<f64>,
    /// Percentage of failed machines above which the rollout stops (default 0).
    #[arg(long, value_name = "PERCENT")]
    pub max_failure_percent: Option<f64>,
    /// Seconds to wait between waves (default 0).
    #[arg(long, value_name = "SECONDS")]
    pub pause_seconds: Option<u64>,
    /// Roll back automatically when the failure budget is exceeded, instead of pausing.
    #[arg(long)]
    pub auto_rollback: bool,
}

/// Arguments of the `assign` command: the assignment, and whether it may drop targets.
#[derive(Debug, Clone, clap::Args)]
pub struct AssignCommand {
    /// The assignment to store.
    #[command(flatten)]
    pub assignment: AssignArgs,
    /// Store the assignment even when it names fewer targets than the stored one. The gateway
    /// then withdraws the container from the targets left out, because the target list
    /// replaces the stored one.
    #[arg(long)]
    pub withdraw_dropped: bool,
}

/// Activation mode as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ActivationArg {
    /// Change only machines with no session, so users get the version at their next logon.
    #[value(name = "next_logon")]
    NextLogon,
    /// Change a machine once it has no active session.
    #[value(name = "when_idle")]
    WhenIdle,
    /// Change now. Users see the version at their next launch of the app.
    #[value(name = "immediate")]
    Immediate,
}

impl From<ActivationArg> for Activation {
    fn from(value: ActivationArg) -> Self {
        match value {
            ActivationArg::NextLogon => Activation::NextLogon,
            ActivationArg::WhenIdle => Activation::WhenIdle,
            ActivationArg::Immediate => Activation::Immediate,
        }
    }
}

/// Arguments of `status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Assignment id. Without it, every assignment is listed.
    pub id: Option<String>,
    /// List only assignments in this state, for example `rolling_out`.
    #[arg(long, conflicts_with = "id")]
    pub state: Option<String>,
    /// List only assignments with a target at this provider.
    #[arg(long, conflicts_with = "id")]
    pub provider: Option<String>,
    /// Follow the assignment until its rollout settles: a progress bar per target on a
    /// terminal, otherwise one line per change.
    #[arg(long)]
    pub watch: bool,
    /// Milliseconds between refreshes with --watch.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
}

/// Body of `PUT /v1/assignments/{id}` built from flags.
#[derive(Debug, Serialize)]
pub(super) struct AssignmentBody {
    container: Container,
    targets: Vec<TargetRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activation: Option<Activation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout: Option<RolloutPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<Window>,
}

pub(super) fn read_body_file(path: &std::path::Path) -> anyhow::Result<Value> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("failed to read standard input")?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?
    };
    let body: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    if !body.is_object() {
        bail!(
            "{} must contain a JSON object with container and targets",
            path.display()
        );
    }
    Ok(body)
}

pub(super) fn assignment_from_flags(args: &AssignArgs) -> anyhow::Result<AssignmentBody> {
    // clap enforces these when --file is absent; the messages cover direct callers.
    let id = args.container.clone().context("--container is required")?;
    let version = args.version.clone().context("--version is required")?;
    let executable = args
        .executable
        .clone()
        .context("--executable is required")?;
    validate_identifier("container.id", &id)?;
    validate_version(&version)?;
    if args.targets.is_empty() {
        bail!("--target is required; give at least one PROVIDER/TARGET");
    }
    let targets = args
        .targets
        .iter()
        .map(|value| parse_target(value))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let rollout_given = !args.waves.is_empty()
        || args.max_failure_percent.is_some()
        || args.pause_seconds.is_some()
        || args.auto_rollback;
    let rollout = if rollout_given {
        let defaults = RolloutPolicy::default();
        let policy = RolloutPolicy {
            waves: if args.waves.is_empty() {
                defaults.waves
            } else {
                args.waves.clone()
            },
            max_failure_percent: args.max_failure_percent.unwrap_or(0.0),
            pause_seconds: args.pause_seconds.unwrap_or(0),
            auto_rollback: args.auto_rollback,
        };
        policy.validate().map_err(anyhow::Error::msg)?;
        Some(policy)
    } else {
        None
    };

    Ok(AssignmentBody {
        container: Container {
            id,
            version,
            display_name: args.display_name.clone(),
            launch: Launch {
                executable,
                arguments: args.arguments.clone(),
                working_directory: args.working_directory.clone(),
            },
        },
        targets,
        activation: args.activation.map(Activation::from),
        rollout,
        window: None,
    })
}

/// Splits `PROVIDER/TARGET` at the first '/', so target names may contain '/'.
fn parse_target(value: &str) -> anyhow::Result<TargetRef> {
    match value.split_once('/') {
        Some((provider, target)) if !provider.is_empty() && !target.is_empty() => Ok(TargetRef {
            provider: provider.to_owned(),
            target: target.to_owned(),
        }),
        _ => bail!(
            "--target {value:?} is not PROVIDER/TARGET; write for example \
             citrix-prod/EHR Clinicians"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_splits_at_first_slash() {
        let target = parse_target("citrix-prod/Site A/EHR").unwrap();
        assert_eq!(target.provider, "citrix-prod");
        assert_eq!(target.target, "Site A/EHR");
        for bad in ["citrix-prod", "/EHR", "citrix-prod/"] {
            let err = parse_target(bad).unwrap_err().to_string();
            assert!(err.contains("PROVIDER/TARGET"), "{bad}: {err}");
        }
    }
}
