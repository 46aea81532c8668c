//! Rollout-safety commands: `plan`, `promote`, `rollback-environment` and `audit export`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use reqwest::Method;
use serde_json::{json, Value};
use vdi_contracts::model::validate_identifier;

use super::args::{assignment_from_flags, read_body_file, AssignArgs};
use super::format::{rollback_versions, to_json};
use super::http::{set_query_param, ApiClient};

/// Format of `audit export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// A JSON document `{"records": [...]}`.
    Json,
}

/// Subcommands of `audit`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Write the audit trail of broker writes to a file or standard output.
    Export {
        /// Earliest record, RFC 3339 (inclusive).
        #[arg(long)]
        since: Option<String>,
        /// Latest record, RFC 3339 (exclusive).
        #[arg(long)]
        until: Option<String>,
        /// Only records of this assignment.
        #[arg(long)]
        assignment: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: AuditFormat,
        /// File to write; standard output when omitted.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Accepted only to reject it with a pointer to `--format json`, because `--format`
        /// alone chooses the output of the export.
        #[arg(long, hide = true)]
        json: bool,
    },
}

/// `plan ID ...`: the assignment body of `assign`, sent to `POST /v1/plan`.
pub(super) async fn plan(client: &ApiClient, args: AssignArgs) -> anyhow::Result<String> {
    validate_identifier("assignment_id", &args.id)?;
    let mut body = match &args.file {
        Some(path) => read_body_file(path)?,
        None => serde_json::to_value(assignment_from_flags(&args)?)?,
    };
    body["assignment_id"] = json!(args.id);
    let reply = client
        .send(Method::POST, client.url(&["plan"]), Some(&body))
        .await?;
    if client.json {
        return Ok(to_json(&reply.body));
    }
    Ok(format_plan(&reply.body))
}

/// Formats a plan: per target the machines and requests, then the estimate.
pub(super) fn format_plan(plan: &Value) -> String {
    let mut out = format!(
        "plan for {} (nothing was changed)\n",
        plan["assignment_id"].as_str().unwrap_or("?")
    );
    if let Some(blocked) = plan["blocked"].as_str() {
        out.push_str(&format!("  would wait: {blocked}\n"));
    }
    for target in plan["targets"].as_array().into_iter().flatten() {
        let count = |key: &str| target[key].as_array().map_or(0, Vec::len);
        out.push_str(&format!(
            "\n{}/{}: {} machines, {} already applied, {} to change, {} deferred by sessions, {} excluded\n",
            target["provider"].as_str().unwrap_or("?"),
            target["target"].as_str().unwrap_or("?"),
            target["total"],
            target["already_applied"],
            count("affected"),
            count("deferred"),
            count("excluded"),
        ));
        if let Some(error) = target["error"].as_str() {
            out.push_str(&format!("  error: {error}\n"));
        }
        for request in target["requests"].as_array().into_iter().flatten() {
            let note = request["note"].as_str().unwrap_or("");
            out.push_str(&format!(
                "  {:>6} x {:<6} {:<40} {}{}\n",
                request["count"],
                request["method"].as_str().unwrap_or(""),
                request["path"].as_str().unwrap_or(""),
                request["operation"].as_str().unwrap_or(""),
                if note.is_empty() {
                    String::new()
                } else {
                    format!(" ({note})")
                },
            ));
        }
        for machine in target["excluded"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  excluded {}: {}\n",
                machine["name"].as_str().unwrap_or("?"),
                machine["reason"].as_str().unwrap_or("")
            ));
        }
        out.push_str(&format!(
            "  {} HTTP requests; about {:.1} s at {} requests/s, concurrency {}\n",
            target["http_requests"],
            target["estimated_seconds"].as_f64().unwrap_or(0.0),
            target["requests_per_second"],
            target["concurrency"],
        ));
    }
    let withdrawn = plan["withdrawn_targets"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if !withdrawn.is_empty() {
        out.push_str(&format!(
            "\nwould withdraw the container from {} target(s) the body leaves out:\n",
            withdrawn.len()
        ));
        for target in withdrawn {
            out.push_str(&format!(
                "  {}/{}: {} machines, {} with the container\n",
                target["provider"].as_str().unwrap_or("?"),
                target["target"].as_str().unwrap_or("?"),
                target["machines"],
                target["applied"],
            ));
        }
    }
    out.push_str(&format!(
        "\nestimated duration: about {:.0} s (targets in parallel, waves and pauses in sequence)\n",
        plan["estimated_seconds"].as_f64().unwrap_or(0.0)
    ));
    out
}

/// `promote --container C --from ENV --to ENV`.
pub(super) async fn promote(
    client: &ApiClient,
    container: &str,
    from: &str,
    to: &str,
    force: bool,
) -> anyhow::Result<String> {
    validate_identifier("container", container)?;
    let body = json!({"container": container, "from": from, "to": to, "force": force});
    let reply = client
        .send(Method::POST, client.url(&["promote"]), Some(&body))
        .await?;
    if client.json {
        return Ok(to_json(&reply.body));
    }
    let mut out = format!(
        "promoted {container} {} from {from} to {to}\n",
        reply.body["version"].as_str().unwrap_or("?")
    );
    for assignment in reply.body["assignments"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}: revision {}, state {}\n",
            assignment["id"].as_str().unwrap_or("?"),
            assignment["revision"],
            assignment["state"].as_str().unwrap_or("?")
        ));
    }
    Ok(out)
}

/// `rollback-environment ENV --container C [--to VERSION]`.
pub(super) async fn rollback_environment(
    client: &ApiClient,
    environment: &str,
    container: &str,
    to: Option<&str>,
) -> anyhow::Result<String> {
    validate_identifier("container", container)?;
    let mut body = json!({"container": container});
    if let Some(version) = to {
        body["to_version"] = json!(version);
    }
    let url = client.url(&["environments", environment, "rollback"]);
    let reply = client.send(Method::POST, url, Some(&body)).await?;
    if client.json {
        return Ok(to_json(&reply.body));
    }
    let mut out = format!("rolling back {container} in {environment}\n");
    for assignment in reply.body["assignments"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}: revision {}{}\n",
            assignment["id"].as_str().unwrap_or("?"),
            assignment["revision"],
            rollback_versions(assignment),
        ));
    }
    Ok(out)
}

/// `audit export`: CSV or JSON to a file or standard output.
pub(super) async fn audit(client: &ApiClient, command: AuditCommand) -> anyhow::Result<String> {
    let AuditCommand::Export {
        since,
        until,
        assignment,
        format,
        output,
        json,
    } = command;
    if json {
        bail!("audit export has no --json option; choose the output with --format json or --format csv");
    }
    let mut url = client.url(&["audit"]);
    for (name, value) in [
        ("since", &since),
        ("until", &until),
        ("assignment", &assignment),
    ] {
        if let Some(value) = value {
            set_query_param(&mut url, name, value);
        }
    }
    let text = match format {
        AuditFormat::Csv => client.get_text(url, "text/csv").await?,
        AuditFormat::Json => to_json(&client.get(url).await?),
    };
    match output {
        Some(path) => {
            std::fs::write(&path, &text)
                .with_context(|| format!("cannot write the audit export to {}", path.display()))?;
            let records = text.lines().count().saturating_sub(1);
            Ok(match format {
                AuditFormat::Csv => format!("wrote {records} audit records to {}", path.display()),
                AuditFormat::Json => format!("wrote the audit export to {}", path.display()),
            })
        }
        None => Ok(text),
    }
}
