//! `vdi-gateway plugin-host`: the child process of `isolation = "process"`. It checks and loads
//! one plugin library, writes a hello line, then serves request lines from stdin with response
//! lines on stdout until stdin closes. The plugin's logs go to stderr as JSON lines; nothing
//! else is ever written to stdout.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use vdi_contracts::abi::{
    Hello, LogRecord, LogSink, PluginLibrary, Request, Response, STDIO_PROTOCOL,
};
use vdi_contracts::ProviderError;

use super::checks;

/// Arguments of the hidden `plugin-host` subcommand; the gateway passes them.
#[derive(Debug, Clone, clap::Args)]
pub struct PluginHostArgs {
    /// Plugin directory.
    #[arg(long)]
    pub directory: PathBuf,
    /// Library file name inside the directory.
    #[arg(long)]
    pub file: String,
    /// Expected SHA-256 of the library.
    #[arg(long)]
    pub sha256: Option<String>,
}

/// Writes log records to stderr, one JSON document per line.
fn stderr_sink() -> LogSink {
    Arc::new(|_plugin: &str, record: LogRecord| {
        if let Ok(line) = serde_json::to_string(&record) {
            eprintln!("{line}");
        }
    })
}

/// Checks and loads the library, as the in-process loader does.
fn load(args: &PluginHostArgs) -> Result<PluginLibrary, String> {
    let verified = checks::verify(&args.directory, &args.file, args.sha256.as_deref())
        .map_err(|refusal| refusal.to_string())?;
    let shown_path = verified.shown_path.clone();
    PluginLibrary::open(&verified.into_load_path(), &shown_path, stderr_sink())
        .map_err(|error| error.to_string())
}

/// Runs the plugin host until stdin closes.
///
/// # Errors
/// Fails when the library is refused (after writing the refusal as the hello line) or stdio
/// breaks.
pub async fn run(args: PluginHostArgs) -> anyhow::Result<()> {
    let (lines_out, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(mut line) = queue.recv().await {
            line.push(b'\n');
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });

    let library = match load(&args) {
        Ok(library) => library,
        Err(message) => {
            let hello = Hello::Refused {
                message: message.clone(),
            };
            let _ = lines_out.send(serde_json::to_vec(&hello)?);
            drop(lines_out);
            let _ = writer.await;
            anyhow::bail!(message);
        }
    };
    let hello = Hello::Ready {
        protocol: STDIO_PROTOCOL.to_owned(),
        description: library.description().clone(),
    };
    let _ = lines_out.send(serde_json::to_vec(&hello)?);

    let library = Arc::new(library);
    let mut requests = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = requests.next_line().await? {
        let request: Request = match serde_json::from_str(&line) {
            Ok(request) => request,
            Err(error) => {
                let error =
                    ProviderError::invalid(format!("request line is not an envelope: {error}"));
                let _ = lines_out.send(serde_json::to_vec(&Response::error(0, &error))?);
                continue;
            }
        };
        let library = library.clone();
        let lines_out = lines_out.clone();
        tokio::spawn(async move {
            let response = library.call(request).await;
            if let Ok(bytes) = serde_json::to_vec(&response) {
                let _ = lines_out.send(bytes);
            }
        });
    }
    Ok(())
}
