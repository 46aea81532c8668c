//! Secret resolution from inline values, `X_env` variables and `X_file` files, and redaction
//! of secrets in URLs and `Debug` output.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use secrecy::SecretString;
use serde_json::{Map, Value};
use url::Url;

use super::validate::Checker;

impl Checker<'_> {
    /// Resolves a secret given as `<base>` (inline), `<base>_env` or `<base>_file`, of which at most one
    /// of them may be set. Returns `None` when none is set or the secret cannot be read.
    pub(super) fn secret(
        &mut self,
        key_prefix: &str,
        base: &str,
        inline: Option<String>,
        env_name: Option<&str>,
        file: Option<&Path>,
    ) -> Option<SecretString> {
        let given: Vec<String> = [
            inline.as_ref().map(|_| base.to_owned()),
            env_name.map(|_| format!("{base}_env")),
            file.map(|_| format!("{base}_file")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            self.problem(
                format!("{key_prefix}{base}"),
                format!(
                    "is given {} ways ({}); keep exactly one",
                    given.len(),
                    given.join(", ")
                ),
            );
            return None;
        }
        if let Some(value) = inline {
            self.warnings.push(format!(
                "{key_prefix}{base} is written inline in the configuration; move it to \
                 {base}_env or {base}_file so the file holds no secret"
            ));
            return self.non_empty(format!("{key_prefix}{base}"), value);
        }
        if let Some(name) = env_name {
            let key = format!("{key_prefix}{base}_env");
            return match read_env_secret(self.env, name) {
                Ok(value) => self.non_empty(key, value),
                Err(message) => {
                    self.problem(key, message);
                    None
                }
            };
        }
        if let Some(path) = file {
            let key = format!("{key_prefix}{base}_file");
            if let Some(warning) = loose_permissions_warning(&key, path) {
                self.warnings.push(warning);
            }
            return match read_file_secret(path) {
                Ok(value) => self.non_empty(key, value),
                Err(message) => {
                    self.problem(key, message);
                    None
                }
            };
        }
        None
    }

    fn non_empty(&mut self, key: String, value: String) -> Option<SecretString> {
        if value.is_empty() {
            self.problem(key, "resolves to an empty value; set the secret");
            return None;
        }
        Some(SecretString::from(value))
    }
}

fn read_env_secret(env: &HashMap<String, String>, name: &str) -> Result<String, String> {
    match env.get(name) {
        Some(value) => Ok(value.clone()),
        None => Err(format!(
            "environment variable {name} is not set; set it or point this key at another variable"
        )),
    }
}

fn read_file_secret(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim_end_matches(['\r', '\n']).to_owned()),
        Err(err) => Err(format!(
            "cannot read file {}: {err}; create it or fix the path",
            path.display()
        )),
    }
}

#[cfg(unix)]
fn loose_permissions_warning(key: &str, path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;

    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{key}: {} is readable by group or others (mode {:o}); run `chmod 600` on it",
            path.display(),
            mode & 0o777
        )
    })
}

#[cfg(not(unix))]
fn loose_permissions_warning(_key: &str, _path: &Path) -> Option<String> {
    None
}

/// Replaces every `X_env` and `X_file` key of a settings table (and of nested tables) by `X`
/// with the secret value.
pub(super) fn resolve_settings(
    checker: &mut Checker<'_>,
    key: &str,
    settings: Map<String, Value>,
) -> Map<String, Value> {
    let mut resolved = Map::new();
    // BTreeMap gives a stable order, so error lists do not change from run to run.
    let sorted: BTreeMap<String, Value> = settings.into_iter().collect();
    let plain_keys: HashSet<String> = sorted
        .keys()
        .filter(|k| !k.ends_with("_env") && !k.ends_with("_file"))
        .cloned()
        .collect();
    for (name, value) in sorted {
        let full_key = format!("{key}.{name}");
        let (target, secret) = if let Some(base) = name.strip_suffix("_env") {
            let Some(variable) = value.as_str() else {
                checker.problem(full_key, "must be the name of an environment variable");
                continue;
            };
            (base.to_owned(), read_env_secret(checker.env, variable))
        } else if let Some(base) = name.strip_suffix("_file") {
            let Some(path) = value.as_str() else {
                checker.problem(full_key, "must be the path of a file");
                continue;
            };
            if let Some(warning) = loose_permissions_warning(&full_key, Path::new(path)) {
                checker.warnings.push(warning);
            }
            (base.to_owned(), read_file_secret(Path::new(path)))
        } else {
            let value = match value {
                Value::Object(table) => Value::Object(resolve_settings(checker, &full_key, table)),
                other => other,
            };
            resolved.insert(name, value);
            continue;
        };

        if plain_keys.contains(&target) || resolved.contains_key(&target) {
            checker.problem(
                full_key,
                format!("{target} is given more than one way; keep exactly one of {target}, {target}_env or {target}_file"),
            );
            continue;
        }
        match secret {
            Ok(value) if value.is_empty() => {
                checker.problem(full_key, "resolves to an empty value; set the secret");
            }
            Ok(value) => {
                resolved.insert(target, Value::String(value));
            }
            Err(message) => checker.problem(full_key, message),
        }
    }
    resolved
}

/// Returns the URL with its password, if any, replaced by `redacted`.
pub(super) fn redact_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            // set_password fails only for URLs that cannot have credentials, which have none.
            let _ = url.set_password(Some("redacted"));
            url.to_string()
        }
        Ok(_) => text.to_owned(),
        Err(_) if text.contains('@') => "[unparsable URL with credentials]".to_owned(),
        Err(_) => text.to_owned(),
    }
}

pub(super) fn redacted_option(secret: &Option<SecretString>) -> &'static str {
    match secret {
        Some(_) => "[redacted]",
        None => "None",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_url_redaction() {
        assert_eq!(
            redact_url("postgres://gw:hunter2@db.example.org/gw"),
            "postgres://gw:redacted@db.example.org/gw"
        );
        assert_eq!(
            redact_url("sqlite://vdi-gateway.db?mode=rwc"),
            "sqlite://vdi-gateway.db?mode=rwc"
        );
    }
}
