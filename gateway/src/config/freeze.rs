//! Change freezes (`[[freezes]]`): calendar periods, such as a clinical go-live week, in which
//! no rollout may change the named providers or environments unless an operator overrides the
//! freeze for one assignment, which is audited.

use chrono::{DateTime, Utc};

use super::raw::RawFreeze;

/// One change freeze.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeConfig {
    /// Name used in messages and overrides, 1 to 64 characters of `[A-Za-z0-9._-]`.
    pub name: String,
    /// Start, inclusive.
    pub start: DateTime<Utc>,
    /// End, exclusive.
    pub end: DateTime<Utc>,
    /// Provider names the freeze covers; `*` covers every provider.
    pub providers: Vec<String>,
    /// Environments the freeze covers.
    pub environments: Vec<String>,
    /// Why, shown to operators.
    pub reason: String,
}

impl FreezeConfig {
    /// Returns whether the freeze is in force at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.start <= now && now < self.end
    }

    /// Returns whether the freeze covers a provider of an environment.
    pub fn covers(&self, provider: &str, environment: &str) -> bool {
        self.providers.iter().any(|p| p == "*" || p == provider)
            || self.environments.iter().any(|e| e == environment)
    }
}

/// Checks and converts the `[[freezes]]` entries, reporting problems through `problem`.
pub(super) fn validate_freezes(
    raw: Vec<RawFreeze>,
    problem: &mut dyn FnMut(String, String),
) -> Vec<FreezeConfig> {
    let mut freezes = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (index, entry) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("freezes[{index}].{field}");
        let valid_name = !entry.name.is_empty()
            && entry.name.len() <= 64
            && entry
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid_name {
            problem(
                key("name"),
                format!(
                    "{:?} must be 1 to 64 characters of letters, digits, '.', '_' and '-'",
                    entry.name
                ),
            );
        } else if !names.insert(entry.name.clone()) {
            problem(
                key("name"),
                format!(
                    "{:?} is used by two freezes; names must be unique",
                    entry.name
                ),
            );
        }
        let parse = |field: &str, text: &str, problem: &mut dyn FnMut(String, String)| {
            match DateTime::parse_from_rfc3339(text) {
                Ok(time) => Some(time.with_timezone(&Utc)),
                Err(_) => {
                    problem(
                        key(field),
                        format!("{text:?} is not an RFC 3339 time; write it like 2026-12-07T00:00:00-06:00"),
                    );
                    None
                }
            }
        };
        let start = parse("start", &entry.start, problem);
        let end = parse("end", &entry.end, problem);
        if entry.providers.is_empty() && entry.environments.is_empty() {
            problem(
                key("providers"),
                "the freeze covers nothing; list providers (\"*\" for all) or environments".into(),
            );
        }
        if let (Some(start), Some(end)) = (start, end) {
            if end <= start {
                problem(
                    key("end"),
                    format!("{} is not after start {}", entry.end, entry.start),
                );
            }
            freezes.push(FreezeConfig {
                name: entry.name,
                start,
                end,
                providers: entry.providers,
                environments: entry.environments,
                reason: entry.reason,
            });
        }
    }
    freezes
}
