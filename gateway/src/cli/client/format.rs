//! Text output of the client commands: aligned tables, summary lines and pretty JSON.

use reqwest::StatusCode;
use serde_json::Value;

use super::views::{AssignmentView, MachineView, ProviderView, TargetView};

pub(super) fn to_json(body: &Value) -> String {
    // Serializing a Value cannot fail: its map keys are strings.
    serde_json::to_string_pretty(body).unwrap_or_default()
}

pub(super) fn format_assign_reply(status: StatusCode, body: &Value) -> String {
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

pub(super) fn format_action_reply(
    name: &str,
    id: &str,
    status: StatusCode,
    body: &Value,
) -> String {
    let mut line = format!(
        "{name} of {id}: {} ({})",
        status_word(status),
        status.as_u16()
    );
    if let Some(state) = body.get("state").and_then(Value::as_str) {
        line.push_str(&format!(", state {state}"));
    }
    if name == "rollback" {
        line.push_str(&rollback_versions(body));
    }
    line.push('\n');
    line
}

/// Returns `, from OLD to NEW` from a rollback response, or `, to NEW` from a gateway that
/// sends no `rollback` object, where the container version is the version installed.
pub(super) fn rollback_versions(body: &Value) -> String {
    let to = body["rollback"]["to"]
        .as_str()
        .or_else(|| body["container"]["version"].as_str());
    match (body["rollback"]["from"].as_str(), to) {
        (Some(from), Some(to)) => format!(", from {from} to {to}"),
        (None, Some(to)) => format!(", to {to}"),
        _ => String::new(),
    }
}

fn status_word(status: StatusCode) -> &'static str {
    match status {
        StatusCode::ACCEPTED => "accepted",
        StatusCode::OK | StatusCode::NO_CONTENT => "done",
        _ => "succeeded",
    }
}

/// Returns the rollout position as `wave N/M`, counting from 1 like the waves in
/// `rollout.waves`, from the API's `current_wave` index (from 0).
///
/// A rollback runs as one wave of every machine whatever the forward waves were, so
/// `rolling_back` and `rolled_back` show `wave 1/1`. Removal has no waves and returns `None`.
/// A `wave_count` of 0 means the document gave no waves, and only the position is shown.
pub(crate) fn wave_label(state: &str, current_wave: u64, wave_count: usize) -> Option<String> {
    let position = current_wave.saturating_add(1);
    match state {
        "removing" | "removed" => None,
        "rolling_back" | "rolled_back" => Some("wave 1/1".to_owned()),
        _ if wave_count == 0 => Some(format!("wave {position}")),
        _ => Some(format!("wave {position}/{wave_count}")),
    }
}

pub(super) fn format_assignment(view: &AssignmentView) -> String {
    let mut state = view.state.clone();
    let wave = view
        .current_wave
        .and_then(|current| wave_label(&view.state, current, view.rollout.waves.len()));
    if let Some(wave) = wave {
        state.push_str(&format!(" ({wave})"));
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
            "{}/{} applied, {} pending, {} deferred, {} failed, {} excluded",
            counts.applied,
            counts.total,
            counts.pending,
            counts.deferred,
            counts.failed,
            counts.excluded
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
                    c.excluded.to_string(),
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
                ("EXCLUDED", Align::Right),
            ],
            rows,
        ));
    }
    out
}

pub(super) fn format_assignment_list(views: &[AssignmentView]) -> String {
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
            let excluded = v.progress.map(|c| c.excluded.to_string());
            vec![
                v.id.clone(),
                v.state.clone(),
                v.revision.to_string(),
                v.container.id.clone(),
                v.container.version.clone(),
                progress,
                failed.unwrap_or_else(|| "-".into()),
                excluded.unwrap_or_else(|| "-".into()),
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
            ("EXCLUDED", Align::Right),
        ],
        rows,
    )
}

pub(super) fn format_providers(providers: &[ProviderView]) -> String {
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

pub(super) fn format_targets(targets: &[TargetView]) -> String {
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

pub(super) fn format_machines(machines: &[MachineView]) -> String {
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
    use super::*;

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

    #[test]
    fn wave_label_counts_from_one() {
        let cases = [
            ("rolling_out", 0, 3, Some("wave 1/3")),
            ("rolling_out", 2, 3, Some("wave 3/3")),
            ("converged", 2, 3, Some("wave 3/3")),
            ("pending", 0, 0, Some("wave 1")),
            ("rolling_back", 0, 3, Some("wave 1/1")),
            ("rolled_back", 0, 3, Some("wave 1/1")),
            ("removing", 1, 3, None),
        ];
        for (state, current, count, expected) in cases {
            assert_eq!(
                wave_label(state, current, count).as_deref(),
                expected,
                "{state} {current} {count}"
            );
        }
    }
}
