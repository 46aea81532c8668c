//! The binary's output when it is not attached to a terminal: help per command, and logs
//! without colour codes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vdi-gateway"))
        .args(args)
        .env_remove("VDIGW_SERVER")
        .env_remove("VDIGW_TOKEN")
        .env_remove("VDIGW_TOKEN_FILE")
        .output()
        .expect("gateway binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn client_options_only_on_client_help() {
    for command in [&["serve"][..], &["demo"], &["bench"], &["sim", "citrix"]] {
        let mut args = command.to_vec();
        args.push("--help");
        let help = stdout(&gateway(&args));
        assert!(help.contains("Usage: vdi-gateway"), "{command:?}: {help}");
        for option in ["--server", "--token", "--token-file", "--json"] {
            assert!(
                !help.contains(option),
                "{command:?} shows {option}:\n{help}"
            );
        }
    }
    for command in [&["status"][..], &["providers"], &["audit", "export"]] {
        let mut args = command.to_vec();
        args.push("--help");
        let help = stdout(&gateway(&args));
        for option in ["--server", "--token", "--token-file", "--allow-plain-http"] {
            assert!(help.contains(option), "{command:?} lacks {option}:\n{help}");
        }
    }
    let top = stdout(&gateway(&["--help"]));
    assert!(!top.contains("--server"), "{top}");
}

#[test]
fn audit_export_has_format_not_json() {
    let help = stdout(&gateway(&["audit", "export", "--help"]));
    assert!(help.contains("--format"), "{help}");
    assert!(!help.contains("--json"), "{help}");

    let output = gateway(&["audit", "export", "--json"]);

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("--format json"), "{message}");
}

#[test]
fn server_from_environment() {
    // Port 9 on loopback (discard) is closed on test machines, so the request fails at once.
    let output = Command::new(env!("CARGO_BIN_EXE_vdi-gateway"))
        .args(["providers"])
        .env("VDIGW_SERVER", "http://127.0.0.1:9")
        .env_remove("VDIGW_TOKEN")
        .output()
        .expect("gateway binary runs");

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("cannot reach the gateway at http://127.0.0.1:9/v1/providers"),
        "{message}"
    );
}

/// Starts `serve` on embedded defaults with stderr piped and returns its first log lines.
fn first_log_lines(no_color: Option<&str>) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = format!("sqlite://{}?mode=rwc", dir.path().join("gw.db").display());
    let mut command = Command::new(env!("CARGO_BIN_EXE_vdi-gateway"));
    command
        .args(["serve", "--log-format", "human", "--log-level", "info"])
        .env("VDIGW__SERVER__BIND", "127.0.0.1:0")
        .env("VDIGW__STORE__URL", store)
        .env_remove("RUST_LOG")
        .env_remove("VDIGW_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match no_color {
        Some(value) => command.env("NO_COLOR", value),
        None => command.env_remove("NO_COLOR"),
    };

    let mut child = command.spawn().expect("gateway starts");
    let reader = BufReader::new(child.stderr.take().expect("piped stderr"));
    let (sender, receiver) = std::sync::mpsc::channel();
    // The reader thread ends when the child is killed and its stderr closes.
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    // At info level the gateway logs its store migrations and its start, so two lines arrive
    // within the deadline unless it fails to start.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(remaining) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }

    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn logs_uncoloured_off_terminal() {
    for no_color in [None, Some("1")] {
        let lines = first_log_lines(no_color);

        assert_eq!(lines.len(), 2, "{lines:?}");
        for line in &lines {
            assert!(!line.contains('\u{1b}'), "escape code in {line:?}");
        }
        assert!(
            lines
                .iter()
                .any(|l| l.contains(" WARN ") || l.contains(" INFO ")),
            "{lines:?}"
        );
    }
}
