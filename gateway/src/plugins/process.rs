//! Process isolation: the plugin library runs in a child process (`vdi-gateway plugin-host`)
//! that speaks the same envelopes as the C ABI, one JSON document per line over stdio.
//!
//! The child writes a [`Hello`] line first, then one response line per request line; the
//! plugin's logs arrive on its stderr as [`LogRecord`] lines. A call that outlives the call
//! timeout kills the child. When the child exits, pending calls fail with a retryable
//! `unavailable` error, and a supervisor starts a new child with exponential backoff and
//! replays the `init` of every provider instance. The gateway and its other providers keep
//! running throughout.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;
use vdi_contracts::abi::{
    emit_log, method, Hello, LogRecord, PluginDescription, Request, Response, ABI_MAJOR,
    STDIO_PROTOCOL,
};
use vdi_contracts::{ProviderError, ProviderResult};

use super::transport::{note_panic, request, timed_out, PluginTransport};

/// Time a new child has to load the library and write its hello line.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// First restart delay; it doubles with each crash in a row, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Maximum restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A child that ran this long before it stopped counts as healthy, and resets the backoff.
const HEALTHY_UPTIME: Duration = Duration::from_secs(60);

/// The command that starts a child: the gateway binary with `plugin-host` arguments.
#[derive(Debug, Clone)]
pub struct HostCommand {
    /// Gateway executable.
    pub program: PathBuf,
    /// Arguments, starting with `plugin-host`.
    pub args: Vec<OsString>,
}

/// One running child.
#[derive(Debug)]
struct Connection {
    writer: mpsc::UnboundedSender<Vec<u8>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    exit_reason: OnceLock<String>,
    kill: CancellationToken,
    started: Instant,
}

#[derive(Debug)]
enum Slot {
    Running(Arc<Connection>),
    Down(String),
}

#[derive(Debug)]
struct Shared {
    label: String,
    command: HostCommand,
    timeout: Duration,
    description: PluginDescription,
    slot: Mutex<Slot>,
    /// `init` params of every instance, replayed in a new child.
    inits: Mutex<Vec<(String, Value)>>,
    next_id: AtomicU64,
    died: Notify,
    /// Cancelled when the transport is dropped: the child is stopped and not restarted.
    stopped: CancellationToken,
}

/// A plugin in a supervised child process.
#[derive(Debug)]
pub struct ProcessTransport {
    shared: Arc<Shared>,
}

/// A child that wrote its hello line.
struct Launched {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    description: PluginDescription,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section leaves its map or slot consistent, so a poisoned lock is usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ProcessTransport {
    /// Starts the first child and its supervisor.
    ///
    /// # Errors
    /// Returns why the child could not start or refused the library (its message names the
    /// file).
    pub async fn start(
        label: &str,
        command: HostCommand,
        timeout: Duration,
    ) -> Result<Self, String> {
        let launched = launch(&command, label).await?;
        let shared = Arc::new(Shared {
            label: label.to_owned(),
            command,
            timeout,
            description: launched.description.clone(),
            slot: Mutex::new(Slot::Down("starting".to_owned())),
            inits: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            died: Notify::new(),
            stopped: CancellationToken::new(),
        });
        let connection = connect(&shared, launched);
        *lock(&shared.slot) = Slot::Running(connection);
        tokio::spawn(supervise(shared.clone()));
        Ok(Self { shared })
    }
}

/// Starts a child and reads its hello line.
async fn launch(command: &HostCommand, label: &str) -> Result<Launched, String> {
    let mut child = Command::new(&command.program)
        .args(&command.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| {
            format!(
                "cannot start the plugin host {} for {label}: {error}",
                command.program.display()
            )
        })?;
    let stdout = child.stdout.take().ok_or("the plugin host has no stdout")?;
    let mut stdout = BufReader::new(stdout).lines();
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_stderr(
            label.to_owned(),
            BufReader::new(stderr).lines(),
        ));
    }
    let line = match tokio::time::timeout(HELLO_TIMEOUT, stdout.next_line()).await {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) | Ok(Err(_)) => {
            let status = child
                .wait()
                .await
                .map(|s| s.to_string())
                .unwrap_or_default();
            return Err(format!(
                "the plugin host for {label} exited before its hello line ({status})"
            ));
        }
        Err(_) => {
            return Err(format!(
                "the plugin host for {label} wrote no hello line within {} s",
                HELLO_TIMEOUT.as_secs()
            ))
        }
    };
    match serde_json::from_str::<Hello>(&line) {
        Ok(Hello::Ready {
            protocol,
            description,
        }) if protocol == STDIO_PROTOCOL && description.abi_major == ABI_MAJOR => Ok(Launched {
            child,
            stdout,
            description,
        }),
        Ok(Hello::Ready { protocol, .. }) => Err(format!(
            "the plugin host for {label} speaks {protocol:?}, not {STDIO_PROTOCOL:?}; use the \
             same gateway binary for the host"
        )),
        Ok(Hello::Refused { message }) => Err(message),
        Err(error) => Err(format!(
            "the plugin host for {label} wrote a first line that is not a hello ({error}); \
             plugins must log to stderr, never stdout"
        )),
    }
}

/// Re-emits the child's stderr: log records at their level, anything else as a warning.
async fn forward_stderr<R>(label: String, mut lines: Lines<R>)
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str::<LogRecord>(&line) {
            Ok(record) => emit_log(&label, &record),
            Err(_) => tracing::warn!(plugin = %label, line = %line, "Plugin host wrote to stderr."),
        }
    }
}

/// Wires a launched child to a new connection: a writer for stdin, a reader that routes
/// responses to their callers, and a watcher that reports the child's exit.
fn connect(shared: &Arc<Shared>, launched: Launched) -> Arc<Connection> {
    let Launched {
        mut child,
        mut stdout,
        ..
    } = launched;
    let (writer, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
    let connection = Arc::new(Connection {
        writer,
        pending: Mutex::new(HashMap::new()),
        exit_reason: OnceLock::new(),
        kill: CancellationToken::new(),
        started: Instant::now(),
    });

    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            while let Some(mut line) = queue.recv().await {
                line.push(b'\n');
                if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
    }

    let reader = connection.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            let Ok(response) = serde_json::from_str::<Response>(&line) else {
                continue;
            };
            if let Some(sender) = lock(&reader.pending).remove(&response.id) {
                let _ = sender.send(response);
            }
        }
    });

    let watched = connection.clone();
    let shared = shared.clone();
    tokio::spawn(async move {
        let status = tokio::select! {
            status = child.wait() => status,
            () = watched.kill.cancelled() => {
                let _ = child.start_kill();
                child.wait().await
            }
        };
        let reason = match status {
            Ok(status) => format!("the plugin host {status}"),
            Err(error) => format!("waiting for the plugin host failed: {error}"),
        };
        let _ = watched.exit_reason.set(reason.clone());
        // Dropping the senders wakes every pending call with the exit reason.
        lock(&watched.pending).clear();
        {
            let mut slot = lock(&shared.slot);
            if matches!(&*slot, Slot::Running(current) if Arc::ptr_eq(current, &watched)) {
                *slot = Slot::Down(reason.clone());
            }
        }
        if shared.stopped.is_cancelled() {
            return;
        }
        tracing::error!(plugin = %shared.label, reason = %reason, "Plugin process stopped; restarting it.");
        shared.died.notify_one();
    });
    connection
}

/// Restarts the child after each exit, with backoff, and replays the instances' `init`.
async fn supervise(shared: Arc<Shared>) {
    let mut crashes_in_a_row = 0u32;
    let mut last_start = Instant::now();
    loop {
        tokio::select! {
            () = shared.died.notified() => {}
            () = shared.stopped.cancelled() => return,
        }
        if last_start.elapsed() >= HEALTHY_UPTIME {
            crashes_in_a_row = 0;
        }
        loop {
            let delay = FIRST_BACKOFF
                .saturating_mul(2u32.saturating_pow(crashes_in_a_row.min(16)))
                .min(MAX_BACKOFF);
            crashes_in_a_row = crashes_in_a_row.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shared.stopped.cancelled() => return,
            }
            match launch(&shared.command, &shared.label).await {
                Ok(launched) => {
                    let connection = connect(&shared, launched);
                    if shared.stopped.is_cancelled() {
                        connection.kill.cancel();
                        return;
                    }
                    last_start = connection.started;
                    replay_inits(&shared, &connection).await;
                    *lock(&shared.slot) = Slot::Running(connection);
                    tracing::info!(plugin = %shared.label, "Plugin process restarted.");
                    break;
                }
                Err(reason) => {
                    tracing::error!(plugin = %shared.label, reason = %reason, "Plugin process failed to restart.");
                    *lock(&shared.slot) = Slot::Down(reason);
                }
            }
        }
    }
}

async fn replay_inits(shared: &Shared, connection: &Arc<Connection>) {
    let inits = lock(&shared.inits).clone();
    for (instance, params) in inits {
        let request = request(method::INIT, Some(&instance), params);
        if let Err(error) = send(shared, connection, request).await {
            tracing::error!(plugin = %shared.label, provider = %instance, error = %error, "Plugin provider could not be initialised again after a restart.");
        }
    }
}

/// Sends one request on a connection and waits for its response within the call timeout;
/// on timeout the child is killed.
async fn send(
    shared: &Shared,
    connection: &Arc<Connection>,
    mut request: Request,
) -> ProviderResult<Value> {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    request.id = id;
    let method = request.method.clone();
    let line = serde_json::to_vec(&request)
        .map_err(|error| ProviderError::internal(format!("request does not serialize: {error}")))?;
    let (sender, receiver) = oneshot::channel();
    lock(&connection.pending).insert(id, sender);
    let exited = || {
        let reason = connection
            .exit_reason
            .get()
            .map_or("it stopped", String::as_str);
        ProviderError::unavailable(format!(
            "plugin process {} ended during `{method}` ({reason}); it is being restarted, so \
             retry later",
            shared.label
        ))
    };
    // The exit watcher records the reason before it clears the pending calls, so a call
    // registered after that clear finds the reason here instead of waiting for the timeout.
    if connection.exit_reason.get().is_some() || connection.writer.send(line).is_err() {
        lock(&connection.pending).remove(&id);
        return Err(exited());
    }
    match tokio::time::timeout(shared.timeout, receiver).await {
        Ok(Ok(response)) => response.into_result(),
        Ok(Err(_)) => Err(exited()),
        Err(_) => {
            lock(&connection.pending).remove(&id);
            connection.kill.cancel();
            Err(timed_out(
                &shared.label,
                &method,
                shared.timeout,
                "its process was stopped and is being restarted",
            ))
        }
    }
}

impl Drop for ProcessTransport {
    fn drop(&mut self) {
        self.shared.stopped.cancel();
        if let Slot::Running(connection) = &*lock(&self.shared.slot) {
            connection.kill.cancel();
        }
    }
}

#[async_trait]
impl PluginTransport for ProcessTransport {
    fn description(&self) -> &PluginDescription {
        &self.shared.description
    }

    async fn call(
        &self,
        method: &str,
        instance: Option<&str>,
        params: Value,
    ) -> ProviderResult<Value> {
        let shared = &self.shared;
        let connection = match &*lock(&shared.slot) {
            Slot::Running(connection) => connection.clone(),
            Slot::Down(reason) => {
                return Err(ProviderError::unavailable(format!(
                    "plugin process {} is not running ({reason}); it is being restarted, so \
                     retry later",
                    shared.label
                )))
            }
        };
        let result = send(
            shared,
            &connection,
            request(method, instance, params.clone()),
        )
        .await;
        match &result {
            Ok(_) if method == method::INIT => {
                let instance = instance.unwrap_or_default().to_owned();
                let mut inits = lock(&shared.inits);
                inits.retain(|(name, _)| *name != instance);
                inits.push((instance, params));
            }
            Err(error) => note_panic(&shared.label, method, error),
            Ok(_) => {}
        }
        result
    }
}
