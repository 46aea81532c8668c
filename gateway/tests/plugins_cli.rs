//! `vdi-gateway plugins check` and `vdi-gateway plugins list` run as the binary.

use std::process::{Command, Output};

mod plugin_support;
use plugin_support::PluginDir;

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vdi-gateway"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("gateway binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_runs_conformance() {
    let dir = PluginDir::new();
    let path = dir.path().join(&dir.file);
    let output = gateway(&["plugins", "check", path.to_str().expect("UTF-8 path")]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("Plugin:         vdigw-example-rest"),
        "{stdout}"
    );
    assert!(stdout.contains("Conformance:    passed"), "{stdout}");
}

#[test]
fn check_rejects_wrong_pin() {
    let dir = PluginDir::new();
    let path = dir.path().join(&dir.file);
    let pin = "0".repeat(64);
    let output = gateway(&[
        "plugins",
        "check",
        path.to_str().expect("UTF-8 path"),
        "--sha256",
        &pin,
    ]);
    let stdout = text(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("SHA-256"), "{stdout}");
}

#[test]
fn list_shows_loaded_and_refused() {
    let dir = PluginDir::new();
    let config = format!(
        "[plugins]\ndirectory = \"{}\"\n\n[[plugins.libraries]]\nfile = \"{}\"\nsha256 = \"{}\"\n\n\
         [[plugins.libraries]]\nfile = \"libmissing.so\"\nsha256 = \"{}\"\n",
        dir.path().display(),
        dir.file,
        dir.sha256(),
        "1".repeat(64)
    );
    let config_file = dir.path().join("gateway.toml");
    std::fs::write(&config_file, config).expect("write configuration");
    let output = gateway(&[
        "plugins",
        "list",
        "--config",
        config_file.to_str().expect("UTF-8"),
    ]);
    let stdout = text(&output.stdout);
    assert!(
        !output.status.success(),
        "a refused library must fail the command"
    );
    assert!(stdout.contains("loaded"), "{stdout}");
    assert!(stdout.contains("vdigw-example-rest"), "{stdout}");
    assert!(stdout.contains("refused: plugin library"), "{stdout}");
    assert!(stdout.contains("libmissing.so"), "{stdout}");
}
