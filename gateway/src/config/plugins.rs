//! Dynamic plugins (`[plugins]` and `[[plugins.libraries]]`): where plugin libraries live,
//! which files to load, their sha256 pins and how each one is isolated.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Default seconds a plugin call may take before the gateway gives up on it.
const DEFAULT_CALL_TIMEOUT_SECONDS: u64 = 300;

/// Isolation mode of a plugin library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Loaded into the gateway process: fastest, but a crash in the plugin stops the gateway.
    InProcess,
    /// Loaded by a child process (`vdi-gateway plugin-host`) that speaks the same envelopes
    /// over stdio. A crash or hang costs only that plugin's calls until the child restarts.
    Process,
}

impl Isolation {
    /// Returns the configuration name of this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::InProcess => "in_process",
            Isolation::Process => "process",
        }
    }
}

/// Plugin settings (`[plugins]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginsConfig {
    /// Directory of the plugin libraries. The gateway loads nothing from elsewhere.
    /// Default none, which is only valid when no library is listed.
    pub directory: Option<PathBuf>,
    /// Libraries to load (`[[plugins.libraries]]`), in file order.
    pub libraries: Vec<PluginLibraryConfig>,
}

/// One plugin library to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLibraryConfig {
    /// File name inside [`PluginsConfig::directory`], for example `libvdigw_avd.so`.
    pub file: String,
    /// Expected SHA-256 of the file as 64 lowercase hex digits (what `sha256sum` prints).
    /// Default none: any file at that path loads, and the gateway warns at startup.
    pub sha256: Option<String>,
    /// Isolation mode. Default `in_process`.
    pub isolation: Isolation,
    /// Time one call may take before it fails and, in `process` isolation, the child restarts.
    /// Default 300 s: longer than the shared HTTP client's 120 s retry deadline, so a slow
    /// broker is not cut off, while a hung plugin is noticed within minutes.
    pub call_timeout: Duration,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawPlugins {
    directory: Option<PathBuf>,
    libraries: Vec<RawPluginLibrary>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPluginLibrary {
    file: String,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    isolation: Option<String>,
    #[serde(default)]
    call_timeout_seconds: Option<u64>,
}

/// Checks and converts `[plugins]`, reporting problems and warnings through the callbacks.
pub(super) fn validate_plugins(
    raw: RawPlugins,
    problem: &mut dyn FnMut(String, String),
    warning: &mut dyn FnMut(String),
) -> PluginsConfig {
    if let Some(directory) = &raw.directory {
        if !directory.is_absolute() {
            problem(
                "plugins.directory".into(),
                format!(
                    "{} is a relative path; use an absolute path such as \
                     /opt/vdi-gateway/plugins",
                    directory.display()
                ),
            );
        }
    } else if !raw.libraries.is_empty() {
        problem(
            "plugins.directory".into(),
            format!(
                "is not set, but plugins.libraries lists {} libraries; set the directory that \
                 holds them",
                raw.libraries.len()
            ),
        );
    }

    let mut files = std::collections::HashSet::new();
    let mut libraries = Vec::new();
    for (index, entry) in raw.libraries.into_iter().enumerate() {
        let key = if entry.file.is_empty() {
            format!("plugins.libraries[{index}]")
        } else {
            format!("plugins.libraries[{:?}]", entry.file)
        };
        let plain_name = !entry.file.is_empty()
            && !entry.file.contains(['/', '\\'])
            && entry.file != "."
            && entry.file != "..";
        if !plain_name {
            problem(
                format!("{key}.file"),
                format!(
                    "{:?} is not a file name; give the library's name inside plugins.directory, \
                     without a path",
                    entry.file
                ),
            );
        } else if !files.insert(entry.file.clone()) {
            problem(
                format!("{key}.file"),
                "is listed twice; keep one entry per library".into(),
            );
        }

        let sha256 = match entry.sha256 {
            Some(pin) if pin.len() == 64 && pin.chars().all(|c| c.is_ascii_hexdigit()) => {
                Some(pin.to_ascii_lowercase())
            }
            Some(pin) => {
                problem(
                    format!("{key}.sha256"),
                    format!(
                        "{pin:?} is not a SHA-256 digest; use the 64 hex digits that \
                         `sha256sum FILE` prints"
                    ),
                );
                None
            }
            None => {
                warning(format!(
                    "{key}.sha256 is not set, so whatever file has that name is loaded; pin it \
                     with the output of `sha256sum FILE`"
                ));
                None
            }
        };
        let isolation = match entry.isolation.as_deref() {
            None | Some("in_process") => Isolation::InProcess,
            Some("process") => Isolation::Process,
            Some(other) => {
                problem(
                    format!("{key}.isolation"),
                    format!(
                        "{other:?} is not an isolation mode; use \"in_process\" or \"process\""
                    ),
                );
                Isolation::InProcess
            }
        };
        let seconds = entry
            .call_timeout_seconds
            .unwrap_or(DEFAULT_CALL_TIMEOUT_SECONDS);
        if seconds == 0 {
            problem(
                format!("{key}.call_timeout_seconds"),
                format!("is 0; use a positive number of seconds (default {DEFAULT_CALL_TIMEOUT_SECONDS})"),
            );
        }
        libraries.push(PluginLibraryConfig {
            file: entry.file,
            sha256,
            isolation,
            call_timeout: Duration::from_secs(seconds.max(1)),
        });
    }
    PluginsConfig {
        directory: raw.directory,
        libraries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(raw: RawPlugins) -> (PluginsConfig, Vec<(String, String)>, Vec<String>) {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let config = validate_plugins(raw, &mut |k, m| problems.push((k, m)), &mut |w| {
            warnings.push(w)
        });
        (config, problems, warnings)
    }

    fn library(file: &str) -> RawPluginLibrary {
        RawPluginLibrary {
            file: file.into(),
            sha256: Some("AB".repeat(32)),
            isolation: None,
            call_timeout_seconds: None,
        }
    }

    #[test]
    fn defaults_and_lowercase_pin() {
        let raw = RawPlugins {
            directory: Some("/opt/plugins".into()),
            libraries: vec![library("libportal.so")],
        };
        let (config, problems, warnings) = run(raw);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(warnings.is_empty(), "{warnings:?}");
        let entry = &config.libraries[0];
        assert_eq!(entry.isolation, Isolation::InProcess);
        assert_eq!(entry.sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(entry.call_timeout, Duration::from_secs(300));
    }

    #[test]
    fn problems_name_keys() {
        let mut bad_pin = library("libb.so");
        bad_pin.sha256 = Some("123".into());
        let mut bad_mode = library("libc.so");
        bad_mode.isolation = Some("sandbox".into());
        let raw = RawPlugins {
            directory: Some("plugins".into()),
            libraries: vec![library("../liba.so"), bad_pin, bad_mode, library("libc.so")],
        };
        let (_, problems, _) = run(raw);
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "plugins.directory",
                "plugins.libraries[\"../liba.so\"].file",
                "plugins.libraries[\"libb.so\"].sha256",
                "plugins.libraries[\"libc.so\"].isolation",
                "plugins.libraries[\"libc.so\"].file",
            ]
        );
    }

    #[test]
    fn libraries_need_directory() {
        let raw = RawPlugins {
            directory: None,
            libraries: vec![library("liba.so")],
        };
        let (_, problems, _) = run(raw);
        assert_eq!(problems[0].0, "plugins.directory");
    }

    #[test]
    fn missing_pin_warns() {
        let mut entry = library("liba.so");
        entry.sha256 = None;
        let raw = RawPlugins {
            directory: Some("/opt/plugins".into()),
            libraries: vec![entry],
        };
        let (_, problems, warnings) = run(raw);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(warnings[0].contains("sha256sum"), "{warnings:?}");
    }
}
