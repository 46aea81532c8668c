//! Control-plane client commands: `assign`, `status`, `rollback`, `pause`, `resume`, `remove`,
//! `providers`, `targets` and `machines` call a running gateway's `/v1` API and print the result
//! as aligned text, or as JSON with `--json`.
//!
//! Each command builds one request (or one per page of a listing), [`execute`] returns the text
//! to print, and [`run`] prints it. Formatting lives in small functions that return strings, so
//! tests check output without a terminal.

use std::fmt;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, FromArgMatches, Subcommand};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::Value;
use url::Url;
use vdi_contracts::model::{validate_identifier, TargetRef};

use self::args::{assignment_from_flags, read_body_file};
use self::format::{
    format_action_reply, format_assign_reply, format_assignment, format_assignment_list,
    format_machines, format_providers, format_targets, to_json,
};
use self::http::{set_query_param, ApiClient};
use self::views::{AssignmentView, MachineView, ProviderList, TargetList};

pub use self::args::{ActivationArg, AssignArgs, AssignCommand, StatusArgs};
pub(crate) use self::format::wave_label;
pub use self::http::ClientError;
pub use self::safety::{AuditCommand, AuditFormat};

mod args;
mod format;
mod http;
mod safety;
#[cfg(test)]
mod tests;
mod views;
mod watch;

/// Options of every client command: where the gateway listens, how to authenticate, and
/// whether to print JSON.
///
/// [`add_client_options`] adds them to the client subcommands only, so `serve`, `demo` and
/// the other local commands do not show them. [`client_options`] reads them back.
#[derive(Clone, clap::Args)]
pub struct ClientOptions {
    /// Base URL of the gateway API.
    #[arg(long, env = "VDIGW_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: Url,
    /// Control-plane bearer token. Prefer the VDIGW_TOKEN variable or --token-file, because
    /// other users can read command-line arguments in the process list.
    #[arg(long, env = "VDIGW_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub token: Option<SecretString>,
    /// File containing the bearer token. A trailing newline is ignored.
    #[arg(long, env = "VDIGW_TOKEN_FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Print the response JSON instead of text. Set by `--json`, which commands that choose
    /// their output with `--format` do not have.
    #[arg(skip)]
    pub json: bool,
    /// Send the token over plain http to a host that is not loopback. Anyone on the network
    /// path can then read it.
    #[arg(long)]
    pub allow_plain_http: bool,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("server", &self.server.as_str())
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("token_file", &self.token_file)
            .field("json", &self.json)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

/// `--json`, added next to [`ClientOptions`] on commands that print a response document.
#[derive(clap::Args)]
struct JsonFlag {
    /// Print the response JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Adds [`ClientOptions`] to every client subcommand of `command`, and `--json` to those
/// without a `--format` option. A subcommand with subcommands of its own (`audit`) gets them
/// on each of its subcommands, where its arguments are.
pub fn add_client_options(mut command: clap::Command) -> clap::Command {
    let names = client_command_names(&ClientCommand::augment_subcommands(clap::Command::new(
        "client",
    )));
    for name in names {
        command = command.mut_subcommand(name, add_options_to_leaves);
    }
    command
}

fn client_command_names(command: &clap::Command) -> Vec<String> {
    command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect()
}

fn add_options_to_leaves(mut command: clap::Command) -> clap::Command {
    if command.has_subcommands() {
        for name in client_command_names(&command) {
            command = command.mut_subcommand(name, add_options_to_leaves);
        }
        return command;
    }
    let has_format = command.get_arguments().any(|arg| arg.get_id() == "format");
    // `augment_args` also sets the command's description from the struct's doc comment, so
    // the subcommand's own description is put back afterwards.
    let about = command.get_about().cloned();
    let long_about = command.get_long_about().cloned();
    let mut command = ClientOptions::augment_args(command);
    if !has_format {
        command = JsonFlag::augment_args(command);
    }
    command = match about {
        Some(text) => command.about(text),
        None => command.about(None::<&str>),
    };
    match long_about {
        Some(text) => command.long_about(text),
        None => command.long_about(None::<&str>),
    }
}

/// Reads the [`ClientOptions`] of the client command that `matches` selected, from a command
/// line built with [`add_client_options`].
///
/// # Errors
/// Fails when the options cannot be read, for example when `matches` selected no client
/// command.
pub fn client_options(matches: &clap::ArgMatches) -> Result<ClientOptions, clap::Error> {
    let mut leaf = matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    let mut options = ClientOptions::from_arg_matches(leaf)?;
    // Commands with a `--format` option have no `--json`.
    options.json = leaf
        .try_get_one::<bool>("json")
        .ok()
        .flatten()
        .copied()
        .unwrap_or(false);
    Ok(options)
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// A client command for the gateway's control-plane API.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientCommand {
    /// Create or update an assignment: a container version on a set of targets. The targets
    /// replace the stored ones, so leaving one out withdraws the container from it. The
    /// command rejects that unless --withdraw-dropped is given.
    Assign(Box<AssignCommand>),
    /// Show one assignment with per-target progress, or list all assignments.
    Status(StatusArgs),
    /// Show what an assignment would do (machines, broker requests, duration) without
    /// changing anything; takes the same arguments as `assign`.
    Plan(Box<AssignArgs>),
    /// Give the assignments of a container in one environment the version another
    /// environment runs, for example from test to prod.
    Promote {
        /// Container id.
        #[arg(long)]
        container: String,
        /// Environment whose version is promoted.
        #[arg(long)]
        from: String,
        /// Environment that receives it.
        #[arg(long)]
        to: String,
        /// Promote even when the source rollout has not converged.
        #[arg(long)]
        force: bool,
    },
    /// Roll every assignment of a container in an environment back to its previous version.
    RollbackEnvironment {
        /// Environment, for example `prod`.
        environment: String,
        /// Container id.
        #[arg(long)]
        container: String,
        /// Version to return to (default: each assignment's previous version).
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
    },
    /// Export the audit trail of broker writes.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Roll an assignment back to its previous version, or to the given one, and print the
    /// version it rolls back to. A rollback never returns to the version that the latest
    /// rollback left.
    Rollback {
        /// Assignment id.
        id: String,
        /// Version to return to (default: the previous version, or after a rollback the
        /// version installed before the restored one).
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
    },
    /// Pause an assignment's rollout after the current machine operations.
    Pause {
        /// Assignment id.
        id: String,
    },
    /// Resume a paused assignment.
    Resume {
        /// Assignment id.
        id: String,
    },
    /// Remove an assignment: withdraw its container from every target.
    Remove {
        /// Assignment id.
        id: String,
    },
    /// List configured providers with their health and capabilities.
    Providers,
    /// List the targets (delivery groups, pools, device groups) a provider offers.
    Targets {
        /// Provider name, for example `citrix-prod`.
        provider: String,
    },
    /// List the machines of one target of a provider.
    Machines {
        /// Provider name, for example `citrix-prod`.
        provider: String,
        /// Target id or name.
        #[arg(long)]
        target: String,
        /// Machines per page requested from the gateway, 1 to 5000 (gateway default 500).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=5000))]
        limit: Option<u32>,
    },
}

/// Runs a client command and prints its output to standard output.
///
/// # Errors
/// Returns [`ClientError`] when the gateway is unreachable or returns an error (print it as
/// `error: {err}` and exit non-zero), and other errors for invalid arguments, unreadable files
/// or unexpected response bodies.
pub async fn run(global: &ClientOptions, command: ClientCommand) -> anyhow::Result<()> {
    let output = execute(global, command).await?;
    let mut stdout = std::io::stdout().lock();
    match std::io::Write::write_all(&mut stdout, output.as_bytes()) {
        // A reader that stops early (`| head`) is not an error of this command.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to standard output"),
    }
}

/// Runs a client command and returns the text that [`run`] prints, ending with a newline.
///
/// # Errors
/// As [`run`].
pub async fn execute(global: &ClientOptions, command: ClientCommand) -> anyhow::Result<String> {
    let client = ApiClient::new(global)?;
    let output = match command {
        ClientCommand::Assign(command) => assign(&client, *command).await?,
        ClientCommand::Status(args) => status(&client, args).await?,
        ClientCommand::Plan(args) => safety::plan(&client, *args).await?,
        ClientCommand::Promote {
            container,
            from,
            to,
            force,
        } => safety::promote(&client, &container, &from, &to, force).await?,
        ClientCommand::RollbackEnvironment {
            environment,
            container,
            to,
        } => safety::rollback_environment(&client, &environment, &container, to.as_deref()).await?,
        ClientCommand::Audit(command) => safety::audit(&client, command).await?,
        ClientCommand::Rollback { id, to } => {
            let body = match to {
                Some(version) => serde_json::json!({ "to_version": version }),
                None => serde_json::json!({}),
            };
            action(&client, "rollback", &id, Method::POST, Some(body)).await?
        }
        ClientCommand::Pause { id } => action(&client, "pause", &id, Method::POST, None).await?,
        ClientCommand::Resume { id } => action(&client, "resume", &id, Method::POST, None).await?,
        ClientCommand::Remove { id } => {
            action(&client, "remove", &id, Method::DELETE, None).await?
        }
        ClientCommand::Providers => providers(&client).await?,
        ClientCommand::Targets { provider } => targets(&client, &provider).await?,
        ClientCommand::Machines {
            provider,
            target,
            limit,
        } => machines(&client, &provider, &target, limit).await?,
    };
    Ok(ensure_newline(output))
}

fn ensure_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

async fn assign(client: &ApiClient, command: AssignCommand) -> anyhow::Result<String> {
    let args = command.assignment;
    validate_identifier("assignment_id", &args.id)?;
    let body = match &args.file {
        Some(path) => read_body_file(path)?,
        None => serde_json::to_value(assignment_from_flags(&args)?)?,
    };
    if !command.withdraw_dropped {
        reject_dropped_targets(client, &args.id, &body).await?;
    }
    let url = client.url(&["assignments", &args.id]);
    let reply = client.send(Method::PUT, url, Some(&body)).await?;
    if client.json {
        return Ok(to_json(&reply.body));
    }
    Ok(format_assign_reply(reply.status, &reply.body))
}

/// Rejects an `assign` whose body leaves out targets of the stored assignment, naming them
/// with their machine counts, because the gateway would withdraw the container from them.
///
/// NOTE: another client can change the assignment between this read and the PUT.
async fn reject_dropped_targets(client: &ApiClient, id: &str, body: &Value) -> anyhow::Result<()> {
    let stored = match client.get(client.url(&["assignments", id])).await {
        Ok(stored) => stored,
        Err(error) => {
            let missing = matches!(
                error.downcast_ref::<ClientError>(),
                Some(ClientError::Api { status: 404, .. })
            );
            return if missing { Ok(()) } else { Err(error) };
        }
    };
    let view: AssignmentView = serde_json::from_value(stored)
        .context("failed to parse the assignment status from the gateway")?;
    if view.state == "removed" {
        return Ok(());
    }
    // A body whose targets do not parse is left for the gateway to reject with its message.
    let Ok(requested) = serde_json::from_value::<Vec<TargetRef>>(body["targets"].clone()) else {
        return Ok(());
    };
    let dropped = dropped_targets(&view, &requested);
    if dropped.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "assignment {id} also has {} target(s) that this command leaves out: {}. \
         Storing it would withdraw the container from them, because the target list replaces \
         the stored one. Add a --target for each target to keep (`vdi-gateway status {id}` \
         lists them), or pass --withdraw-dropped to withdraw the container from them",
        dropped.len(),
        dropped.join(", ")
    )
}

/// Names the targets of `stored` that `requested` leaves out, as `PROVIDER/TARGET (N machines)`.
fn dropped_targets(stored: &AssignmentView, requested: &[TargetRef]) -> Vec<String> {
    stored
        .targets
        .iter()
        .filter(|t| {
            !requested
                .iter()
                .any(|w| w.provider == t.provider && w.target == t.target)
        })
        .map(|t| {
            let machines = stored
                .per_target
                .iter()
                .find(|p| p.provider == t.provider && p.target == t.target)
                .map_or(0, |p| p.counts.total);
            format!("{}/{} ({machines} machines)", t.provider, t.target)
        })
        .collect()
}

async fn status(client: &ApiClient, args: StatusArgs) -> anyhow::Result<String> {
    if args.watch {
        let Some(id) = &args.id else {
            anyhow::bail!(
                "--watch follows one assignment; give its id, for example `status epic --watch`"
            );
        };
        let interval = std::time::Duration::from_millis(args.interval_ms.max(100));
        return watch::watch(client, id, interval).await;
    }
    if let Some(id) = &args.id {
        validate_identifier("assignment_id", id)?;
        let body = client.get(client.url(&["assignments", id])).await?;
        if client.json {
            return Ok(to_json(&body));
        }
        let view: AssignmentView = serde_json::from_value(body)
            .context("failed to parse the assignment status from the gateway")?;
        return Ok(format_assignment(&view));
    }

    let mut url = client.url(&["assignments"]);
    if let Some(state) = &args.state {
        set_query_param(&mut url, "state", state);
    }
    if let Some(provider) = &args.provider {
        set_query_param(&mut url, "provider", provider);
    }
    let items = client.get_all(url, "assignments").await?;
    if client.json {
        return Ok(to_json(
            &serde_json::json!({ "assignments": items, "next_cursor": null }),
        ));
    }
    let views = items
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<Vec<AssignmentView>, _>>()
        .context("failed to parse the assignment status from the gateway")?;
    Ok(format_assignment_list(&views))
}

async fn action(
    client: &ApiClient,
    name: &str,
    id: &str,
    method: Method,
    body: Option<Value>,
) -> anyhow::Result<String> {
    validate_identifier("assignment_id", id)?;
    let url = match name {
        "remove" => client.url(&["assignments", id]),
        _ => client.url(&["assignments", id, name]),
    };
    let reply = client.send(method, url, body.as_ref()).await?;
    if client.json {
        return Ok(to_json(&reply.body));
    }
    Ok(format_action_reply(name, id, reply.status, &reply.body))
}

async fn providers(client: &ApiClient) -> anyhow::Result<String> {
    let body = client.get(client.url(&["providers"])).await?;
    if client.json {
        return Ok(to_json(&body));
    }
    let list: ProviderList = serde_json::from_value(body)
        .context("failed to parse the provider list from the gateway")?;
    Ok(format_providers(&list.providers))
}

async fn targets(client: &ApiClient, provider: &str) -> anyhow::Result<String> {
    let body = client
        .get(client.url(&["providers", provider, "targets"]))
        .await?;
    if client.json {
        return Ok(to_json(&body));
    }
    let list: TargetList =
        serde_json::from_value(body).context("failed to parse the target list from the gateway")?;
    Ok(format_targets(&list.targets))
}

async fn machines(
    client: &ApiClient,
    provider: &str,
    target: &str,
    limit: Option<u32>,
) -> anyhow::Result<String> {
    let mut url = client.url(&["providers", provider, "machines"]);
    set_query_param(&mut url, "target", target);
    if let Some(limit) = limit {
        set_query_param(&mut url, "limit", &limit.to_string());
    }
    let items = client.get_all(url, "machines").await?;
    if client.json {
        return Ok(to_json(
            &serde_json::json!({ "machines": items, "next_cursor": null }),
        ));
    }
    let views = items
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<Vec<MachineView>, _>>()
        .context("failed to parse the machine list from the gateway")?;
    Ok(format_machines(&views))
}
