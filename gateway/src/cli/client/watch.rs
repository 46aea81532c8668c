//! `status ID --watch`: follows one assignment until its rollout settles. On a terminal it
//! draws a progress bar per target. Elsewhere (a pipe, a file, a CI log) progress bars print
//! nothing readable, so it prints one plain line per change.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;
use vdi_contracts::model::validate_identifier;

use super::format::wave_label;
use super::http::ApiClient;

/// States after which `status --watch` stops.
const SETTLED: [&str; 5] = ["converged", "rolled_back", "failed", "removed", "paused"];

/// The assignment line and a row per target, from one poll.
struct Frame {
    state: String,
    header: String,
    targets: Vec<TargetRow>,
}

/// Counts of one target in a [`Frame`].
#[derive(Clone, PartialEq)]
struct TargetRow {
    name: String,
    total: u64,
    applied: u64,
    pending: u64,
    deferred: u64,
    failed: u64,
    excluded: u64,
}

impl TargetRow {
    /// Returns the counts after the applied machines, as both renderers show them.
    fn counts(&self) -> String {
        format!(
            "pending {} deferred {} failed {} excluded {}",
            self.pending, self.deferred, self.failed, self.excluded
        )
    }
}

impl Frame {
    fn from_status(id: &str, status: &Value) -> Frame {
        let state = status["state"].as_str().unwrap_or("?").to_owned();
        let mut header = format!(
            "{id} {} revision {}: {state}",
            status["container"]["version"].as_str().unwrap_or("?"),
            status["revision"],
        );
        let wave = wave_label(
            &state,
            status["current_wave"].as_u64().unwrap_or(0),
            status["rollout"]["waves"].as_array().map_or(0, Vec::len),
        );
        if let Some(wave) = wave {
            header.push_str(&format!(", {wave}"));
        }
        if let Some(detail) = status["detail"].as_str().filter(|d| !d.is_empty()) {
            header.push_str(&format!(" ({detail})"));
        }
        let targets = status["per_target"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                let count = |key: &str| row[key].as_u64().unwrap_or(0);
                TargetRow {
                    name: format!(
                        "{}/{}",
                        row["provider"].as_str().unwrap_or("?"),
                        row["target"].as_str().unwrap_or("?")
                    ),
                    total: count("total"),
                    applied: count("applied"),
                    pending: count("pending"),
                    deferred: count("deferred"),
                    failed: count("failed"),
                    excluded: count("excluded"),
                }
            })
            .collect();
        Frame {
            state,
            header,
            targets,
        }
    }

    fn is_settled(&self) -> bool {
        SETTLED.contains(&self.state.as_str())
    }
}

/// Follows `id` until its rollout settles and returns the closing line `ID: STATE`.
///
/// # Errors
/// Fails when the id is invalid, a request fails, or the user presses Ctrl-C.
pub(super) async fn watch(
    client: &ApiClient,
    id: &str,
    interval: Duration,
) -> anyhow::Result<String> {
    validate_identifier("assignment_id", id)?;
    if std::io::stdout().is_terminal() {
        watch_bars(client, id, interval).await
    } else {
        watch_lines(client, id, interval, &mut std::io::stdout()).await
    }
}

async fn next_poll(id: &str, interval: Duration) -> anyhow::Result<()> {
    tokio::select! {
        () = tokio::time::sleep(interval) => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            bail!("stopped watching {id}; the rollout goes on in the gateway");
        }
    }
}

/// Draws a progress bar per target, refreshed on every poll.
async fn watch_bars(client: &ApiClient, id: &str, interval: Duration) -> anyhow::Result<String> {
    let bars = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{prefix:<32} [{bar:40.green/red}] {pos:>5}/{len:<5} {msg}")
            .context("building the progress bar style")?
            .progress_chars("=> ");
    let header = bars.add(ProgressBar::new_spinner());
    let mut per_target: Vec<ProgressBar> = Vec::new();
    loop {
        let status = client.get(client.url(&["assignments", id])).await?;
        let frame = Frame::from_status(id, &status);
        header.set_message(frame.header.clone());
        header.tick();
        while per_target.len() < frame.targets.len() {
            let bar = bars.add(ProgressBar::new(0));
            bar.set_style(style.clone());
            per_target.push(bar);
        }
        for (bar, row) in per_target.iter().zip(&frame.targets) {
            bar.set_prefix(row.name.clone());
            bar.set_length(row.total.saturating_sub(row.excluded));
            bar.set_position(row.applied);
            bar.set_message(row.counts());
        }
        if frame.is_settled() {
            for bar in &per_target {
                bar.finish();
            }
            header.finish();
            return Ok(format!("{id}: {}", frame.state));
        }
        next_poll(id, interval).await?;
    }
}

/// Remembers what was printed, so that [`LinePrinter::changes`] returns only new lines.
#[derive(Default)]
struct LinePrinter {
    header: Option<String>,
    targets: HashMap<String, TargetRow>,
}

impl LinePrinter {
    /// Returns the lines of `frame` that differ from the previous frame: the assignment line
    /// when it changed, and a line per target whose counts changed.
    fn changes(&mut self, frame: &Frame) -> Vec<String> {
        let mut lines = Vec::new();
        if self.header.as_deref() != Some(frame.header.as_str()) {
            lines.push(frame.header.clone());
            self.header = Some(frame.header.clone());
        }
        for row in &frame.targets {
            if self.targets.get(&row.name) == Some(row) {
                continue;
            }
            lines.push(format!(
                "  {}: applied {}/{} {}",
                row.name,
                row.applied,
                row.total.saturating_sub(row.excluded),
                row.counts()
            ));
            self.targets.insert(row.name.clone(), row.clone());
        }
        lines
    }
}

/// Prints the changes of every poll to `out` as plain lines, each prefixed with the seconds
/// since the watch started.
async fn watch_lines(
    client: &ApiClient,
    id: &str,
    interval: Duration,
    out: &mut dyn Write,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let mut printer = LinePrinter::default();
    loop {
        let status = client.get(client.url(&["assignments", id])).await?;
        let frame = Frame::from_status(id, &status);
        let elapsed = started.elapsed().as_secs_f64();
        for line in printer.changes(&frame) {
            match writeln!(out, "[{elapsed:>6.1}s] {line}") {
                // A reader that stops early (`| head`) ends the watch, not the rollout.
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(String::new());
                }
                other => other.context("writing to standard output")?,
            }
        }
        out.flush().context("writing to standard output")?;
        if frame.is_settled() {
            return Ok(format!("{id}: {}", frame.state));
        }
        next_poll(id, interval).await?;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::cli::client::ClientOptions;

    fn status(state: &str, wave: u64, applied: u64, pending: u64) -> Value {
        json!({
            "id": "epic", "revision": 2, "state": state, "detail": "",
            "container": {"id": "epic-hyperspace", "version": "2024.3.1"},
            "rollout": {"waves": [10, 50, 100]},
            "current_wave": wave,
            "per_target": [
                {"provider": "citrix-prod", "target": "EHR", "total": 12, "applied": applied,
                 "pending": pending, "deferred": 0, "failed": 0, "excluded": 2},
                {"provider": "horizon-prod", "target": "Nursing", "total": 4, "applied": 4,
                 "pending": 0, "deferred": 0, "failed": 0, "excluded": 0}
            ]
        })
    }

    #[test]
    fn printer_prints_only_changes() {
        let mut printer = LinePrinter::default();

        let first = printer.changes(&Frame::from_status("epic", &status("rolling_out", 0, 1, 9)));
        let same = printer.changes(&Frame::from_status("epic", &status("rolling_out", 0, 1, 9)));
        let moved = printer.changes(&Frame::from_status("epic", &status("rolling_out", 1, 5, 5)));

        assert_eq!(
            first,
            [
                "epic 2024.3.1 revision 2: rolling_out, wave 1/3",
                "  citrix-prod/EHR: applied 1/10 pending 9 deferred 0 failed 0 excluded 2",
                "  horizon-prod/Nursing: applied 4/4 pending 0 deferred 0 failed 0 excluded 0",
            ]
        );
        assert!(same.is_empty(), "{same:?}");
        assert_eq!(
            moved,
            [
                "epic 2024.3.1 revision 2: rolling_out, wave 2/3",
                "  citrix-prod/EHR: applied 5/10 pending 5 deferred 0 failed 0 excluded 2",
            ]
        );
    }

    #[tokio::test]
    async fn lines_until_settled() {
        let server = MockServer::start().await;
        for body in [
            status("rolling_out", 0, 1, 9),
            status("rolling_out", 0, 1, 9),
            status("rolling_out", 2, 10, 0),
            status("converged", 2, 10, 0),
        ] {
            Mock::given(method("GET"))
                .and(path("/v1/assignments/epic"))
                .respond_with(ResponseTemplate::new(200).set_body_json(body))
                .up_to_n_times(1)
                .expect(1)
                .mount(&server)
                .await;
        }
        let options = ClientOptions {
            server: url::Url::parse(&server.uri()).unwrap(),
            token: None,
            token_file: None,
            json: false,
            allow_plain_http: false,
        };
        let client = ApiClient::new(&options).unwrap();
        let mut out = Vec::new();

        let closing = watch_lines(&client, "epic", Duration::from_millis(1), &mut out)
            .await
            .unwrap();

        assert_eq!(closing, "epic: converged");
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().map(|l| &l[10..]).collect();
        assert_eq!(
            lines,
            [
                "epic 2024.3.1 revision 2: rolling_out, wave 1/3",
                "  citrix-prod/EHR: applied 1/10 pending 9 deferred 0 failed 0 excluded 2",
                "  horizon-prod/Nursing: applied 4/4 pending 0 deferred 0 failed 0 excluded 0",
                "epic 2024.3.1 revision 2: rolling_out, wave 3/3",
                "  citrix-prod/EHR: applied 10/10 pending 0 deferred 0 failed 0 excluded 2",
                "epic 2024.3.1 revision 2: converged, wave 3/3",
            ]
        );
        assert!(!text.contains('\u{1b}'), "no terminal escapes: {text:?}");
    }
}
