//! Control-plane client commands: `assign`, `status`, `rollback`, `pause`, `resume`, `remove`,
//! `providers`, `targets` and `machines` call a running gateway's `/v1` API and print the result
//! as aligned text, or as JSON with `--json`.
//!
//! Each command builds one request (or one per page of a listing), [`execute`] returns the text
//! to print, and [`run`] prints it. Formatting lives in small functions that return strings, so
//! tests check output without a terminal.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::{Host, Url};
use vdi_contracts::model::{
    validate_identifier, validate_version, Activation, Container, Launch, RolloutPolicy, TargetRef,
    Window,
};

/// Time allowed to open a connection to the gateway. A gateway on the same network accepts in
/// milliseconds, so a longer wait means it is down or filtered.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed for a whole request. Writes return once the desired state is stored, without
/// waiting for brokers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Maximum pages a listing command follows, so a gateway that keeps returning cursors cannot
/// keep the client looping.
const MAX_PAGES: usize = 1000;

/// Options shared by every client command.
#[derive(Clone, clap::Args)]
pub struct ClientOptions {
    /// Base URL of the gateway API.
    #[arg(
        long,
        env = "VDIGW_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: Url,
    /// Control-plane bearer token. Prefer the VDIGW_TOKEN variable or --token-file, because
    /// other users can read command-line arguments in the process list.
    #[arg(
        long,
        env = "VDIGW_TOKEN",
        hide_env_values = true,
        value_parser = parse_secret,
        global = true
    )]
    pub token: Option<SecretString>,
    /// File containing the bearer token. A trailing newline is ignored.
    #[arg(
        long,
        env = "VDIGW_TOKEN_FILE",
        conflicts_with = "token",
        global = true
    )]
    pub token_file: Option<PathBuf>,
    /// Print the response JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Send the token over plain http to a host that is not loopback. Anyone on the network
    /// path can then read it.
    #[arg(long, global = true)]
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

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// A client command for the gateway's control-plane API.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientCommand {
    /// Create or update an assignment: a container version on a set of targets.
    Assign(Box<AssignArgs>),
    /// Show one assignment with per-target progress, or list all assignments.
    Status(StatusArgs),
    /// Roll an assignment back to its previous version, or to the given one.
    Rollback {
        /// Assignment id.
        id: String,
        /// Version to return to (default: the previous version).
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
}

/// Failure of a client command that the user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made.
    #[error("cannot reach the gateway at {url}: {detail}; is `vdi-gateway serve` running?")]
    Unreachable {
        /// URL of the request.
        url: String,
        /// Innermost cause, for example `Connection refused (os error 111)`.
        detail: String,
    },
    /// The gateway did not respond in time.
    #[error("request to {url} timed out after {seconds} s; check the gateway's load and logs")]
    TimedOut {
        /// URL of the request.
        url: String,
        /// Time limit in seconds.
        seconds: u64,
    },
    /// The gateway returned its JSON error body.
    #[error("{code}: {message}{hint}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code of the API, for example `not_found`.
        code: String,
        /// Message of the API.
        message: String,
        /// Suggested next step when the client can tell, or an empty string.
        hint: String,
    },
    /// The response was an error without the API's error body (a proxy page, for example).
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        /// HTTP status and reason.
        status: String,
        /// URL of the request.
        url: String,
        /// Start of the body.
        body: String,
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
    print!("{output}");
    Ok(())
}

/// Runs a client command and returns the text that [`run`] prints, ending with a newline.
///
/// # Errors
/// As [`run`].
pub async fn execute(global: &ClientOptions, command: ClientCommand) -> anyhow::Result<String> {
    let client = ApiClient::new(global)?;
    let output = match command {
        ClientCommand::Assign(args) => assign(&client, *args).await?,
        ClientCommand::Status(args) => status(&client, args).await?,
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

/// HTTP access to the gateway with the bearer token and error mapping of every command.
struct ApiClient {
    http: reqwest::Client,
    base: Url,
    token: Option<SecretString>,
    json: bool,
}

/// A successful response.
struct Reply {
    status: StatusCode,
    body: Value,
}

impl ApiClient {
    fn new(options: &ClientOptions) -> anyhow::Result<Self> {
        if options.server.cannot_be_a_base() {
            bail!(
                "--server {} is not an http(s) base URL; use for example http://127.0.0.1:8080",
                options.server
            );
        }
        let token = match (&options.token, &options.token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(read_token_file(path)?),
            (None, None) => None,
        };
        check_transport(&options.server, token.is_some(), options.allow_plain_http)?;

        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("vdi-gateway-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("failed to build the HTTP client")?;
        Ok(Self {
            http,
            base: options.server.clone(),
            token,
            json: options.json,
        })
    }

    /// Returns the URL of `/v1/<segments…>`, percent-encoding each segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        url
    }

    async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> anyhow::Result<Reply> {
        let mut request = self
            .http
            .request(method, url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        if let Some(body) = body {
            request = request.json(body);
        }

        let response = request
            .send()
            .await
            .map_err(|err| transport_error(&url, &err))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| transport_error(&url, &err))?;
        if !status.is_success() {
            return Err(api_error(status, &url, &text, self.token.is_some()).into());
        }
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("{url} returned a body that is not JSON"))?
        };
        Ok(Reply { status, body })
    }

    async fn get(&self, url: Url) -> anyhow::Result<Value> {
        Ok(self.send(Method::GET, url, None).await?.body)
    }

    /// Fetches every page of a cursor-paged listing and returns the items under `key`.
    async fn get_all(&self, mut url: Url, key: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            let page = self.get(url.clone()).await?;
            match page.get(key) {
                Some(Value::Array(found)) => items.extend(found.iter().cloned()),
                Some(Value::Null) | None => {}
                Some(_) => bail!("{url} returned a {key:?} field that is not a list"),
            }
            let Some(cursor) = page.get("next_cursor").and_then(Value::as_str) else {
                return Ok(items);
            };
            if !seen.insert(cursor.to_owned()) {
                bail!("{url} returned cursor {cursor:?} twice; stopping to avoid a loop");
            }
            set_query_param(&mut url, "cursor", cursor);
        }
        bail!("stopped after {MAX_PAGES} pages of {key}; narrow the listing with filters")
    }
}

fn read_token_file(path: &std::path::Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the token file {}", path.display()))?;
    let token = text.trim_end_matches(['\r', '\n']);
    if token.is_empty() {
        bail!(
            "token file {} is empty; write the token into it",
            path.display()
        );
    }
    Ok(SecretString::from(token))
}

/// Rejects sending a token in clear text over the network.
fn check_transport(server: &Url, has_token: bool, allow_plain_http: bool) -> anyhow::Result<()> {
    match server.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match server.host() {
                Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if has_token && !loopback && !allow_plain_http {
                bail!(
                    "rejected --server {server}: plain http would expose the token on the network; use \
                     an https URL (a TLS proxy in front of the gateway) or pass --allow-plain-http"
                );
            }
            Ok(())
        }
        other => bail!("--server {server} uses the {other:?} scheme; use http or https"),
    }
}

fn set_query_param(url: &mut Url, name: &str, value: &str) {
    let others: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != name)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let mut pairs = url.query_pairs_mut();
    pairs.clear();
    for (key, value) in &others {
        pairs.append_pair(key, value);
    }
    pairs.append_pair(name, value);
}

fn transport_error(url: &Url, err: &reqwest::Error) -> anyhow::Error {
    let url = url.to_string();
    if err.is_timeout() {
        return ClientError::TimedOut {
            url,
            seconds: REQUEST_TIMEOUT.as_secs(),
        }
        .into();
    }
    if err.is_connect() {
        return ClientError::Unreachable {
            url,
            detail: innermost_cause(err),
        }
        .into();
    }
    anyhow::anyhow!("request to {url} failed: {}", innermost_cause(err))
}

fn innermost_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Error body of the API: `{"error": {"code", "message", "details"}}`.
#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

fn api_error(status: StatusCode, url: &Url, text: &str, has_token: bool) -> ClientError {
    match serde_json::from_str::<ErrorEnvelope>(text) {
        Ok(envelope) => {
            let hint = if status == StatusCode::UNAUTHORIZED && !has_token {
                " (no token was sent; set VDIGW_TOKEN or pass --token-file)".to_owned()
            } else {
                String::new()
            };
            ClientError::Api {
                status: status.as_u16(),
                code: envelope.error.code,
                message: envelope.error.message,
                hint,
            }
        }
        Err(_) => {
            let mut body: String = text.trim().chars().take(200).collect();
            if body.is_empty() {
                body = "(empty body)".to_owned();
            }
            ClientError::Http {
                status: status.to_string(),
                url: url.to_string(),
                body,
            }
        }
    }
}

/// Body of `PUT /v1/assignments/{id}` built from flags.
#[derive(Debug, Serialize)]
struct AssignmentBody {
    container: Container,
    targets: Vec<TargetRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activation: Option<Activation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout: Option<RolloutPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<Window>,
}

async fn assign(client: &ApiClient, args: AssignArgs) -> anyhow::Result<String> {
    validate_identifier("assignment_id", &args.id)?;
    let body = match &args.file {
        Some(path) => read_body_file(path)?,
        None => serde_json::to_value(assignment_from_flags(&args)?)?,
    };
    let url = client.url(&["assignments", &args.id]);
    let reply = client.send(Method::PUT, url, Some(&body)).await?;
    if client.json {
        return Ok(to_json(&reply.body));
    }
    Ok(format_assign_reply(reply.status, &reply.body))
}

fn read_body_file(path: &std::path::Path) -> anyhow::Result<Value> {
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

fn assignment_from_flags(args: &AssignArgs) -> anyhow::Result<AssignmentBody> {
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

async fn status(client: &ApiClient, args: StatusArgs) -> anyhow::Result<String> {
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

fn to_json(body: &Value) -> String {
    // Serializing a Value cannot fail: its map keys are strings.
    serde_json::to_string_pretty(body).unwrap_or_default()
}

// Views of response documents. They accept unknown fields and fill missing ones, because the
// API may add fields at any time.

/// Assignment status document, as far as the client shows it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AssignmentView {
    id: String,
    revision: u64,
    container: ContainerView,
    activation: Option<String>,
    state: String,
    previous_versions: Vec<String>,
    progress: Option<Counts>,
    per_target: Vec<TargetProgress>,
    current_wave: Option<u64>,
    updated_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ContainerView {
    id: String,
    version: String,
    display_name: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(default)]
struct Counts {
    total: u64,
    applied: u64,
    pending: u64,
    deferred: u64,
    failed: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TargetProgress {
    provider: String,
    target: String,
    #[serde(flatten)]
    counts: Counts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProviderList {
    providers: Vec<ProviderView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProviderView {
    name: String,
    kind: String,
    environment: String,
    source: String,
    health: Option<HealthView>,
    capabilities: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HealthView {
    status: String,
    detail: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TargetList {
    targets: Vec<TargetView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TargetView {
    id: String,
    name: String,
    kind: String,
    machine_count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MachineView {
    id: String,
    name: String,
    state: Value,
    sessions: Vec<SessionView>,
    containers: Vec<ContainerView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SessionView {
    state: String,
}

fn format_assign_reply(status: StatusCode, body: &Value) -> String {
    if status == StatusCode::ACCEPTED {
        match body.get("revision").and_then(Value::as_u64) {
            Some(revision) => format!("accepted (202), revision {revision}\n"),
            None => "accepted (202)\n".to_owned(),
        }
    } else if status == StatusCode::OK {
        "unchanged (200)\n".to_owned()
    } else {
        format!("{} ({})\n", status_word(status), status.as_u16())
    }
}

fn format_action_reply(name: &str, id: &str, status: StatusCode, body: &Value) -> String {
    let mut line = format!(
        "{name} of {id}: {} ({})",
        status_word(status),
        status.as_u16()
    );
    if let Some(state) = body.get("state").and_then(Value::as_str) {
        line.push_str(&format!(", state {state}"));
    }
    line.push('\n');
    line
}

fn status_word(status: StatusCode) -> &'static str {
    match status {
        StatusCode::ACCEPTED => "accepted",
        StatusCode::OK | StatusCode::NO_CONTENT => "done",
        _ => "succeeded",
    }
}

fn format_assignment(view: &AssignmentView) -> String {
    let mut state = view.state.clone();
    if let Some(wave) = view.current_wave {
        state.push_str(&format!(" (wave {wave})"));
    }
    let mut container = format!("{} {}", view.container.id, view.container.version);
    if let Some(name) = &view.container.display_name {
        container.push_str(&format!(" ({name})"));
    }
    let previous = if view.previous_versions.is_empty() {
        "-".to_owned()
    } else {
        view.previous_versions.join(", ")
    };
    let progress = match view.progress {
        Some(counts) => format!(
            "{}/{} applied, {} pending, {} deferred, {} failed",
            counts.applied, counts.total, counts.pending, counts.deferred, counts.failed
        ),
        None => "-".to_owned(),
    };
    let fields = [
        ("assignment", view.id.clone()),
        ("state", state),
        ("revision", view.revision.to_string()),
        ("container", container),
        ("previous", previous),
        (
            "activation",
            view.activation.clone().unwrap_or_else(|| "-".into()),
        ),
        ("progress", progress),
        (
            "updated",
            view.updated_at.clone().unwrap_or_else(|| "-".into()),
        ),
    ];
    let mut out = String::new();
    for (label, value) in fields {
        out.push_str(&format!("{label:<12}{value}\n"));
    }

    if !view.per_target.is_empty() {
        out.push('\n');
        let rows = view
            .per_target
            .iter()
            .map(|t| {
                let c = t.counts;
                vec![
                    t.provider.clone(),
                    t.target.clone(),
                    c.total.to_string(),
                    c.applied.to_string(),
                    c.pending.to_string(),
                    c.deferred.to_string(),
                    c.failed.to_string(),
                ]
            })
            .collect();
        out.push_str(&render_table(
            &[
                ("PROVIDER", Align::Left),
                ("TARGET", Align::Left),
                ("TOTAL", Align::Right),
                ("APPLIED", Align::Right),
                ("PENDING", Align::Right),
                ("DEFERRED", Align::Right),
                ("FAILED", Align::Right),
            ],
            rows,
        ));
    }
    out
}

fn format_assignment_list(views: &[AssignmentView]) -> String {
    if views.is_empty() {
        return "no assignments\n".to_owned();
    }
    let rows = views
        .iter()
        .map(|v| {
            let progress = v
                .progress
                .map(|c| format!("{}/{}", c.applied, c.total))
                .unwrap_or_else(|| "-".into());
            let failed = v.progress.map(|c| c.failed.to_string());
            vec![
                v.id.clone(),
                v.state.clone(),
                v.revision.to_string(),
                v.container.id.clone(),
                v.container.version.clone(),
                progress,
                failed.unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    render_table(
        &[
            ("ID", Align::Left),
            ("STATE", Align::Left),
            ("REVISION", Align::Right),
            ("CONTAINER", Align::Left),
            ("VERSION", Align::Left),
            ("APPLIED", Align::Right),
            ("FAILED", Align::Right),
        ],
        rows,
    )
}

fn format_providers(providers: &[ProviderView]) -> String {
    if providers.is_empty() {
        return "no providers\n".to_owned();
    }
    let rows = providers
        .iter()
        .map(|p| {
            let health = match &p.health {
                Some(h) if h.status != "ok" && !h.detail.is_empty() => {
                    format!("{}: {}", h.status, h.detail)
                }
                Some(h) => h.status.clone(),
                None => "-".into(),
            };
            vec![
                p.name.clone(),
                p.kind.clone(),
                p.environment.clone(),
                p.source.clone(),
                health,
                p.capabilities.join(","),
            ]
        })
        .collect();
    render_table(
        &[
            ("NAME", Align::Left),
            ("KIND", Align::Left),
            ("ENVIRONMENT", Align::Left),
            ("SOURCE", Align::Left),
            ("HEALTH", Align::Left),
            ("CAPABILITIES", Align::Left),
        ],
        rows,
    )
}

fn format_targets(targets: &[TargetView]) -> String {
    if targets.is_empty() {
        return "no targets\n".to_owned();
    }
    let rows = targets
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.kind.clone(),
                t.machine_count
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    render_table(
        &[
            ("ID", Align::Left),
            ("NAME", Align::Left),
            ("KIND", Align::Left),
            ("MACHINES", Align::Right),
        ],
        rows,
    )
}

fn format_machines(machines: &[MachineView]) -> String {
    if machines.is_empty() {
        return "no machines\n".to_owned();
    }
    let rows = machines
        .iter()
        .map(|m| {
            let active = m.sessions.iter().filter(|s| s.state == "active").count();
            let other = m.sessions.len() - active;
            let containers: Vec<String> = m
                .containers
                .iter()
                .map(|c| format!("{}@{}", c.id, c.version))
                .collect();
            vec![
                m.name.clone(),
                m.id.clone(),
                machine_state(&m.state),
                format!("{active} active, {other} disconnected"),
                if containers.is_empty() {
                    "-".into()
                } else {
                    containers.join(", ")
                },
            ]
        })
        .collect();
    render_table(
        &[
            ("NAME", Align::Left),
            ("ID", Align::Left),
            ("STATE", Align::Left),
            ("SESSIONS", Align::Left),
            ("CONTAINERS", Align::Left),
        ],
        rows,
    )
}

/// Returns a machine state as text, whether the API sends `"ready"` or the tagged form
/// `{"state": "unknown", "raw": "…"}`.
fn machine_state(state: &Value) -> String {
    match state {
        Value::String(text) => text.clone(),
        Value::Object(map) => {
            let name = map.get("state").and_then(Value::as_str).unwrap_or("?");
            match map.get("raw").and_then(Value::as_str) {
                Some(raw) => format!("{name} ({raw})"),
                None => name.to_owned(),
            }
        }
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// Renders rows under headers, each column as wide as its widest cell, two spaces apart.
fn render_table(columns: &[(&str, Align)], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = columns.iter().map(|(h, _)| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(columns)
            .zip(&widths)
            .map(|((cell, (_, align)), width)| {
                let pad = " ".repeat(width - cell.chars().count());
                match align {
                    Align::Left => format!("{cell}{pad}"),
                    Align::Right => format!("{pad}{cell}"),
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::{Parser, Subcommand};
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    const TOKEN: &str = "cli-test-token-0123456789";

    /// A command line like the gateway binary's, for parsing tests.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: Wrapped,
    }

    #[derive(Debug, Subcommand)]
    enum Wrapped {
        #[command(flatten)]
        Client(ClientCommand),
    }

    fn parse(args: &[&str]) -> (ClientOptions, ClientCommand) {
        let cli = Cli::try_parse_from(std::iter::once("vdi-gateway").chain(args.iter().copied()))
            .unwrap_or_else(|err| panic!("{err}"));
        let Wrapped::Client(command) = cli.command;
        (cli.options, command)
    }

    fn options(server: &MockServer) -> ClientOptions {
        ClientOptions {
            server: Url::parse(&server.uri()).unwrap(),
            token: Some(SecretString::from(TOKEN)),
            token_file: None,
            json: false,
            allow_plain_http: false,
        }
    }

    fn status_document() -> Value {
        json!({
            "id": "epic-prod", "revision": 3,
            "container": {"id": "epic-hyperspace", "version": "2024.3.1",
                          "display_name": "Epic Hyperspace",
                          "launch": {"executable": "C:\\Player\\player.exe"}},
            "targets": [{"provider": "citrix-prod", "target": "EHR Clinicians"}],
            "activation": "when_idle",
            "state": "rolling_out",
            "previous_versions": ["2024.2.0"],
            "progress": {"total": 400, "applied": 380, "pending": 10, "deferred": 8, "failed": 2},
            "per_target": [{"provider": "citrix-prod", "target": "EHR Clinicians", "total": 400,
                            "applied": 380, "pending": 10, "deferred": 8, "failed": 2}],
            "current_wave": 2,
            "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-01T11:00:00Z"
        })
    }

    async fn run_args(server: &MockServer, args: &[&str]) -> anyhow::Result<String> {
        let (mut opts, command) = parse(args);
        opts.server = Url::parse(&server.uri()).unwrap();
        opts.token = Some(SecretString::from(TOKEN));
        execute(&opts, command).await
    }

    #[tokio::test]
    async fn assign_flags_body_and_202() {
        let server = MockServer::start().await;
        let expected = json!({
            "container": {"id": "epic-hyperspace", "version": "2024.3.1",
                          "display_name": "Epic Hyperspace",
                          "launch": {"executable": "C:\\Player\\player.exe",
                                     "arguments": "/launch epic-hyperspace"}},
            "targets": [{"provider": "citrix-prod", "target": "EHR/Clinicians"},
                        {"provider": "citrix-dr", "target": "EHR"}],
            "activation": "next_logon",
            "rollout": {"waves": [5.0, 25.0, 100.0], "max_failure_percent": 2.0,
                        "pause_seconds": 0, "auto_rollback": true}
        });
        Mock::given(method("PUT"))
            .and(path("/v1/assignments/epic-prod"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(body_json(&expected))
            .respond_with(ResponseTemplate::new(202).set_body_json(status_document()))
            .expect(1)
            .mount(&server)
            .await;

        let output = run_args(
            &server,
            &[
                "assign",
                "epic-prod",
                "--container",
                "epic-hyperspace",
                "--version",
                "2024.3.1",
                "--executable",
                "C:\\Player\\player.exe",
                "--arguments",
                "/launch epic-hyperspace",
                "--display-name",
                "Epic Hyperspace",
                "--target",
                "citrix-prod/EHR/Clinicians",
                "--target",
                "citrix-dr/EHR",
                "--activation",
                "next_logon",
                "--waves",
                "5,25,100",
                "--max-failure-percent",
                "2",
                "--auto-rollback",
            ],
        )
        .await
        .unwrap();

        assert_eq!(output, "accepted (202), revision 3\n");
    }

    #[tokio::test]
    async fn assign_file_unchanged_200() {
        let server = MockServer::start().await;
        let body = json!({
            "container": {"id": "epic-hyperspace", "version": "2024.3.1",
                          "launch": {"executable": "player.exe"}},
            "targets": [{"provider": "citrix-prod", "target": "EHR Clinicians"}],
            "window": {"timezone": "America/Chicago",
                       "allow": [{"days": ["sat"], "start": "01:00", "end": "05:00"}]},
            "future_field": 1
        });
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("assignment.json");
        std::fs::write(&file, body.to_string()).unwrap();
        Mock::given(method("PUT"))
            .and(path("/v1/assignments/epic-prod"))
            .and(body_json(&body))
            .respond_with(ResponseTemplate::new(200).set_body_json(status_document()))
            .expect(1)
            .mount(&server)
            .await;

        let output = run_args(
            &server,
            &["assign", "epic-prod", "--file", file.to_str().unwrap()],
        )
        .await
        .unwrap();

        assert_eq!(output, "unchanged (200)\n");
    }

    #[test]
    fn assign_file_conflicts_with_flags() {
        let result = Cli::try_parse_from([
            "vdi-gateway",
            "assign",
            "a",
            "--file",
            "x.json",
            "--container",
            "c",
        ]);
        assert!(result.is_err());
    }

    #[test]
    fn assign_requires_flags_without_file() {
        let result = Cli::try_parse_from(["vdi-gateway", "assign", "a", "--container", "c"]);
        assert!(result.is_err());
    }

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

    #[tokio::test]
    async fn assign_rejects_bad_waves() {
        let server = MockServer::start().await;
        let err = run_args(
            &server,
            &[
                "assign",
                "a",
                "--container",
                "c",
                "--version",
                "1",
                "--executable",
                "p",
                "--target",
                "p/t",
                "--waves",
                "50,25",
            ],
        )
        .await
        .unwrap_err();

        assert!(err.to_string().contains("rollout.waves"), "{err}");
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn assign_rejects_bad_id_locally() {
        let server = MockServer::start().await;
        let err = run_args(&server, &["pause", "../providers"])
            .await
            .unwrap_err();

        assert!(err.to_string().contains("assignment_id"), "{err}");
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn status_one_assignment() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/assignments/epic-prod"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(status_document()))
            .mount(&server)
            .await;

        let output = run_args(&server, &["status", "epic-prod"]).await.unwrap();

        let expected = "\
assignment  epic-prod
state       rolling_out (wave 2)
revision    3
container   epic-hyperspace 2024.3.1 (Epic Hyperspace)
previous    2024.2.0
activation  when_idle
progress    380/400 applied, 10 pending, 8 deferred, 2 failed
updated     2024-05-01T11:00:00Z

PROVIDER     TARGET          TOTAL  APPLIED  PENDING  DEFERRED  FAILED
citrix-prod  EHR Clinicians    400      380       10         8       2
";
        assert_eq!(output, expected);
    }

    #[tokio::test]
    async fn status_list_follows_cursor() {
        let server = MockServer::start().await;
        let mut second = status_document();
        second["id"] = json!("office");
        second["state"] = json!("converged");
        Mock::given(method("GET"))
            .and(path("/v1/assignments"))
            .and(query_param("cursor", "page2"))
            .and(query_param("state", "rolling_out"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"assignments": [second], "next_cursor": null})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/assignments"))
            .and(query_param("state", "rolling_out"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    json!({"assignments": [status_document()], "next_cursor": "page2"}),
                ),
            )
            .expect(1)
            .mount(&server)
            .await;

        let output = run_args(&server, &["status", "--state", "rolling_out"])
            .await
            .unwrap();

        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), 3, "{output}");
        assert!(lines[0].starts_with("ID"), "{output}");
        assert!(lines[1].starts_with("epic-prod  rolling_out"), "{output}");
        assert!(lines[2].starts_with("office     converged"), "{output}");
    }

    /// Arguments, HTTP method, path, expected request body, expected output.
    type ActionCase = (
        &'static [&'static str],
        &'static str,
        &'static str,
        Option<Value>,
        &'static str,
    );

    #[tokio::test]
    async fn actions_use_their_paths() {
        let cases: &[ActionCase] = &[
            (
                &["rollback", "epic-prod"],
                "POST",
                "/v1/assignments/epic-prod/rollback",
                Some(json!({})),
                "rollback of epic-prod: accepted (202), state rolling_back\n",
            ),
            (
                &["rollback", "epic-prod", "--to", "2024.1.0"],
                "POST",
                "/v1/assignments/epic-prod/rollback",
                Some(json!({"to_version": "2024.1.0"})),
                "rollback of epic-prod: accepted (202), state rolling_back\n",
            ),
            (
                &["pause", "epic-prod"],
                "POST",
                "/v1/assignments/epic-prod/pause",
                None,
                "pause of epic-prod: accepted (202), state rolling_back\n",
            ),
            (
                &["resume", "epic-prod"],
                "POST",
                "/v1/assignments/epic-prod/resume",
                None,
                "resume of epic-prod: accepted (202), state rolling_back\n",
            ),
            (
                &["remove", "epic-prod"],
                "DELETE",
                "/v1/assignments/epic-prod",
                None,
                "remove of epic-prod: accepted (202), state rolling_back\n",
            ),
        ];
        for (args, verb, route, body, expected) in cases {
            let server = MockServer::start().await;
            let mut reply = status_document();
            reply["state"] = json!("rolling_back");
            Mock::given(method(*verb))
                .and(path(*route))
                .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
                .respond_with(ResponseTemplate::new(202).set_body_json(reply))
                .expect(1)
                .mount(&server)
                .await;

            let output = run_args(&server, args).await.unwrap();
            assert_eq!(&output, expected, "{args:?}");

            let requests = server.received_requests().await.unwrap();
            let sent: Option<Value> = serde_json::from_slice(&requests[0].body).ok();
            assert_eq!(&sent, body, "{args:?}");
        }
    }

    #[tokio::test]
    async fn providers_table() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/providers"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"providers": [
                    {"name": "citrix-prod", "kind": "citrix", "environment": "prod",
                     "source": "builtin",
                     "health": {"status": "ok", "detail": "", "checked_at": "2024-05-01T10:00:00Z"},
                     "capabilities": ["publish_app", "tag_machines"]},
                    {"name": "horizon-east", "kind": "horizon", "environment": "test",
                     "source": "plugin",
                     "health": {"status": "unreachable", "detail": "connect timed out",
                                "checked_at": "2024-05-01T10:00:00Z"},
                     "capabilities": []}
                ]})),
            )
            .mount(&server)
            .await;

        let output = run_args(&server, &["providers"]).await.unwrap();

        let expected = "\
NAME          KIND     ENVIRONMENT  SOURCE   HEALTH                          CAPABILITIES
citrix-prod   citrix   prod         builtin  ok                              publish_app,tag_machines
horizon-east  horizon  test         plugin   unreachable: connect timed out
";
        assert_eq!(output, expected);
    }

    #[tokio::test]
    async fn targets_table() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/providers/citrix-prod/targets"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"targets": [
                {"id": "0f1e", "name": "EHR Clinicians", "kind": "delivery_group",
                 "machine_count": 412}
            ]})))
            .mount(&server)
            .await;

        let output = run_args(&server, &["targets", "citrix-prod"])
            .await
            .unwrap();

        let expected = "\
ID    NAME            KIND            MACHINES
0f1e  EHR Clinicians  delivery_group       412
";
        assert_eq!(output, expected);
    }

    #[tokio::test]
    async fn machines_query_and_table() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/providers/citrix-prod/machines"))
            .and(query_param("target", "EHR Clinicians"))
            .and(query_param("limit", "2"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"machines": [
                {"id": "m1", "name": "HOSP\\VDA-001", "target": "0f1e", "state": "ready",
                 "sessions": [{"user": "HOSP\\nurse1", "state": "active"},
                              {"user": "HOSP\\nurse2", "state": "disconnected"}],
                 "containers": [{"id": "epic-hyperspace", "version": "2024.3.1"}]},
                {"id": "m2", "name": "HOSP\\VDA-002", "target": "0f1e",
                 "state": {"state": "unknown", "raw": "Resuming"}, "sessions": [],
                 "containers": []}
            ], "next_cursor": null})),
            )
            .expect(1)
            .mount(&server)
            .await;

        let output = run_args(
            &server,
            &[
                "machines",
                "citrix-prod",
                "--target",
                "EHR Clinicians",
                "--limit",
                "2",
            ],
        )
        .await
        .unwrap();

        let expected = "\
NAME          ID  STATE               SESSIONS                  CONTAINERS
HOSP\\VDA-001  m1  ready               1 active, 1 disconnected  epic-hyperspace@2024.3.1
HOSP\\VDA-002  m2  unknown (Resuming)  0 active, 0 disconnected  -
";
        assert_eq!(output, expected);
    }

    #[tokio::test]
    async fn json_prints_response_body() {
        let server = MockServer::start().await;
        let body = json!({"providers": [{"name": "citrix-prod", "extra": {"a": 1}}]});
        Mock::given(method("GET"))
            .and(path("/v1/providers"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
            .mount(&server)
            .await;
        let mut opts = options(&server);
        opts.json = true;

        let output = execute(&opts, ClientCommand::Providers).await.unwrap();

        let printed: Value = serde_json::from_str(&output).unwrap();
        assert_eq!(printed, body);
    }

    #[tokio::test]
    async fn api_error_is_printed() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/assignments/missing"))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {
                "code": "not_found", "message": "assignment missing does not exist"}})))
            .mount(&server)
            .await;

        let err = run_args(&server, &["status", "missing"]).await.unwrap_err();

        assert_eq!(
            format!("error: {err:#}"),
            "error: not_found: assignment missing does not exist"
        );
        let typed = err.downcast_ref::<ClientError>().unwrap();
        assert!(matches!(typed, ClientError::Api { status: 404, .. }));
    }

    #[tokio::test]
    async fn unauthorized_hint_without_token() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/providers"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
                "code": "unauthorized", "message": "missing bearer token"}})))
            .mount(&server)
            .await;
        let mut opts = options(&server);
        opts.token = None;

        let err = execute(&opts, ClientCommand::Providers).await.unwrap_err();

        let text = err.to_string();
        assert!(
            text.starts_with("unauthorized: missing bearer token"),
            "{text}"
        );
        assert!(text.contains("VDIGW_TOKEN"), "{text}");
        let requests = server.received_requests().await.unwrap();
        assert!(requests[0].headers.get("authorization").is_none());
    }

    #[tokio::test]
    async fn non_json_error_body() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/providers"))
            .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
            .mount(&server)
            .await;

        let err = run_args(&server, &["providers"]).await.unwrap_err();

        let text = err.to_string();
        assert!(
            text.starts_with("HTTP 502 Bad Gateway from http://"),
            "{text}"
        );
        assert!(text.contains("<html>Bad Gateway</html>"), "{text}");
    }

    #[tokio::test]
    async fn connection_refused_message() {
        // Bind and drop a listener so the port is known to be closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let opts = ClientOptions {
            server: Url::parse(&format!("http://{address}")).unwrap(),
            token: Some(SecretString::from(TOKEN)),
            token_file: None,
            json: false,
            allow_plain_http: false,
        };

        let err = execute(&opts, ClientCommand::Providers).await.unwrap_err();

        let text = format!("{err:#}");
        assert!(
            text.starts_with(&format!(
                "cannot reach the gateway at http://{address}/v1/providers"
            )),
            "{text}"
        );
        assert!(text.ends_with("is `vdi-gateway serve` running?"), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
    }

    #[tokio::test]
    async fn token_never_printed() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/providers"))
            .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
                "code": "forbidden", "message": "role viewer cannot do this"}})))
            .mount(&server)
            .await;
        let opts = options(&server);

        let err = execute(&opts, ClientCommand::Providers).await.unwrap_err();

        assert!(!format!("{err:#}").contains(TOKEN));
        assert!(!format!("{err:?}").contains(TOKEN));
        assert!(!format!("{opts:?}").contains(TOKEN));
    }

    #[tokio::test]
    async fn token_file_is_sent() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/providers"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"providers": []})))
            .expect(1)
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
        let mut opts = options(&server);
        opts.token = None;
        opts.token_file = Some(file);

        let output = execute(&opts, ClientCommand::Providers).await.unwrap();

        assert_eq!(output, "no providers\n");
    }

    #[test]
    fn plain_http_token_rejected() {
        let remote = Url::parse("http://gateway.hospital.example:8080").unwrap();
        let err = check_transport(&remote, true, false).unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");

        assert!(check_transport(&remote, true, true).is_ok());
        assert!(check_transport(&remote, false, false).is_ok());
        let loopback = Url::parse("http://127.0.0.1:8080").unwrap();
        assert!(check_transport(&loopback, true, false).is_ok());
        let tls = Url::parse("https://gateway.hospital.example").unwrap();
        assert!(check_transport(&tls, true, false).is_ok());
    }

    #[test]
    fn server_path_prefix_kept() {
        let opts = ClientOptions {
            server: Url::parse("https://proxy.example/vdigw/").unwrap(),
            token: None,
            token_file: None,
            json: false,
            allow_plain_http: false,
        };
        let client = ApiClient::new(&opts).unwrap();

        let url = client.url(&["providers", "a b/c", "targets"]);

        assert_eq!(
            url.as_str(),
            "https://proxy.example/vdigw/v1/providers/a%20b%2Fc/targets"
        );
    }

    #[test]
    fn options_from_env_and_flags() {
        let (opts, command) = parse(&[
            "--server",
            "https://gw.example",
            "--json",
            "status",
            "epic-prod",
        ]);
        assert_eq!(opts.server.as_str(), "https://gw.example/");
        assert!(opts.json);
        assert!(matches!(
            command,
            ClientCommand::Status(StatusArgs { id: Some(_), .. })
        ));

        let (opts, _) = parse(&["status", "epic-prod", "--json"]);
        assert!(opts.json);
        assert_eq!(opts.server.as_str(), "http://127.0.0.1:8080/");
    }

    #[test]
    fn help_hides_token_value() {
        let command = <Cli as clap::CommandFactory>::command();
        let token = command
            .get_arguments()
            .find(|arg| arg.get_id() == "token")
            .unwrap();
        assert!(token.is_hide_env_values_set());
    }

    #[test]
    fn table_alignment() {
        let table = render_table(
            &[("A", Align::Left), ("N", Align::Right)],
            vec![
                vec!["long".into(), "1".into()],
                vec!["x".into(), "100".into()],
            ],
        );
        assert_eq!(table, "A       N\nlong    1\nx     100\n");
    }
}
