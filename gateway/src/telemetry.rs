//! Log output through `tracing`: human-readable by default, JSON on request.

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
///
/// Human-readable lines are coloured only when standard error is a terminal and `NO_COLOR` is
/// unset or empty, so files, pipes and log collectors get no escape codes.
///
/// # Errors
/// Fails when `level` is not a valid filter directive.
pub fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => EnvFilter::try_new(&value)
            .map_err(|e| anyhow::anyhow!("RUST_LOG {value:?} is not a valid filter: {e}"))?,
        _ => EnvFilter::try_new(level).map_err(|e| {
            anyhow::anyhow!("log level {level:?} is not a valid filter (for example \"info\" or \"vdi_gateway=debug\"): {e}")
        })?,
    };
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
    // A second init (tests, demo inside serve) keeps the first subscriber.
    let _ = result;
    Ok(())
}

/// Returns whether log lines may carry ANSI colour codes: only on a terminal, and not when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
fn use_colour(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_terminal() {
        let cases = [
            (true, None, true),
            (true, Some(""), true),
            (true, Some("1"), false),
            (false, None, false),
            (false, Some("1"), false),
        ];
        for (terminal, no_color, expected) in cases {
            assert_eq!(
                use_colour(terminal, no_color.map(OsStr::new)),
                expected,
                "terminal {terminal}, NO_COLOR {no_color:?}"
            );
        }
    }
}
