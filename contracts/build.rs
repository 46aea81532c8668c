//! Records the compiler version, which plugins report in their description for diagnostics.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_owned())
        .unwrap_or_default();
    println!("cargo:rustc-env=VDIGW_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
