//! Unknown configuration keys: every key of the file and of the `VDIGW__*` overrides that the
//! gateway does not read, each reported once with its line and a close known key.
//!
//! The `config` crate stops at the first unknown key (serde's `deny_unknown_fields`) and keeps
//! no line numbers, because it drops the TOML parser's spans. So before deserializing, the
//! merged tree is compared with the keys the `Raw*` structs accept, which [`KeyShape`] reads
//! from their `Deserialize` impls, and the file is scanned for the line of each unknown key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The keys a configuration struct accepts, read from its `Deserialize` impl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeyShape {
    /// A struct: only these keys.
    Struct(BTreeMap<&'static str, KeyShape>),
    /// A list whose items have this shape.
    List(Box<KeyShape>),
    /// A free-form table (provider settings), checked by the provider itself.
    AnyKeys,
    /// A single value.
    Value,
}

impl KeyShape {
    /// Reads the keys `T` accepts by deserializing it from a probe that offers every field.
    pub(super) fn of<'de, T: Deserialize<'de>>() -> KeyShape {
        let mut shape = KeyShape::Value;
        // The probe offers every field with a placeholder value, so a struct that validates
        // values while deserializing may fail here. The shape recorded up to then is kept.
        let _ = T::deserialize(Probe { shape: &mut shape });
        shape
    }
}

/// A deserializer that records the fields it is asked for instead of reading data.
struct Probe<'a> {
    shape: &'a mut KeyShape,
}

type ProbeError = de::value::Error;

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bool(false)
    }

    // Every number type gets 0, which fits all of them.
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_f64(0.0)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_f64(0.0)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str("")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str("")
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let mut item = KeyShape::Value;
        let result = visitor.visit_seq(OneItem {
            shape: Some(&mut item),
        });
        *self.shape = KeyShape::List(Box::new(item));
        result
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        *self.shape = KeyShape::AnyKeys;
        visitor.visit_map(de::value::MapDeserializer::new(std::iter::empty::<(
            &str,
            &str,
        )>()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        let mut keys: BTreeMap<&'static str, KeyShape> =
            fields.iter().map(|f| (*f, KeyShape::Value)).collect();
        let result = visitor.visit_map(Fields {
            fields: fields.iter(),
            current: None,
            keys: &mut keys,
        });
        *self.shape = KeyShape::Struct(keys);
        result
    }

    // The configuration structs use none of these. Should one appear, the probe fails at that
    // field, and the fields after it keep the shape `Value`, which reports no unknown key.
    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct tuple tuple_struct enum identifier
        ignored_any
    }
}

/// Offers each field of a struct once, with a [`Probe`] as its value.
struct Fields<'a> {
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<&'static str>,
    keys: &'a mut BTreeMap<&'static str, KeyShape>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        match self.fields.next() {
            None => Ok(None),
            Some(field) => {
                self.current = Some(field);
                seed.deserialize((*field).into_deserializer()).map(Some)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ProbeError> {
        let field = self
            .current
            .take()
            .ok_or_else(|| de::Error::custom("value requested before its key"))?;
        let shape = self
            .keys
            .get_mut(field)
            .ok_or_else(|| de::Error::custom("value of an unknown field"))?;
        seed.deserialize(Probe { shape })
    }
}

/// Offers one list item, with a [`Probe`] as its value.
struct OneItem<'a> {
    shape: Option<&'a mut KeyShape>,
}

impl<'de> SeqAccess<'de> for OneItem<'_> {
    type Error = ProbeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ProbeError> {
        match self.shape.take() {
            None => Ok(None),
            Some(shape) => seed.deserialize(Probe { shape }).map(Some),
        }
    }
}

/// One step of a key path: a table key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    /// A key of a table.
    Key(String),
    /// An index of a list (a `[[section]]` entry).
    Index(usize),
}

/// A key that no configuration struct accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// Path of the key, for example `server.bnd` or `providers[0].enviroment`.
    pub key: String,
    /// Source of the key: `FILE:LINE`, or the environment variable that set it.
    pub location: String,
    /// Known key of the same table whose name is closest, when it is close.
    pub suggestion: Option<String>,
    /// Known keys of the same table, for the message when nothing is close.
    pub known: Vec<String>,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: unknown key {}", self.location, self.key)?;
        match &self.suggestion {
            Some(suggestion) => write!(f, "; did you mean {suggestion}?"),
            None if self.known.is_empty() => Ok(()),
            None => write!(f, "; known keys here: {}", self.known.join(", ")),
        }
    }
}

/// Returns every key of `root`, the merged configuration, that `shape` does not accept: the
/// file's keys in line order, then the environment's. `file` is the configuration file and
/// its content, used for line numbers, and `env` the variables the overrides were read from.
pub(super) fn unknown_keys(
    shape: &KeyShape,
    root: &::config::Value,
    file: Option<(&Path, &str)>,
    env: &std::collections::HashMap<String, String>,
) -> Vec<UnknownKey> {
    let mut found = Vec::new();
    let mut path = Vec::new();
    walk(shape, root, &mut path, &mut found);
    let lines = file
        .map(|(_, text)| KeyLines::scan(text))
        .unwrap_or_default();
    let mut located: Vec<(usize, UnknownKey)> = found
        .into_iter()
        .map(|(path, value, known)| {
            let from_env = origin(value) == Some(ENV_ORIGIN);
            let line = lines.line_of(&path).filter(|_| !from_env);
            let location = match (line, file) {
                _ if from_env => environment_name(&path, env),
                (Some(line), Some((file, _))) => format!("{}:{line}", file.display()),
                (Some(line), None) => format!("line {line}"),
                (None, _) => origin(value).unwrap_or("the configuration").to_owned(),
            };
            let leaf = match path.last() {
                Some(Segment::Key(key)) => key.as_str(),
                _ => "",
            };
            let unknown = UnknownKey {
                key: display_path(&path, root),
                location,
                suggestion: closest(leaf, &known),
                known: known.iter().map(|k| (*k).to_owned()).collect(),
            };
            (line.unwrap_or(usize::MAX), unknown)
        })
        .collect();
    // Sorting is stable, so keys from the environment keep their order after the file's.
    located.sort_by_key(|(line, _)| *line);
    located.into_iter().map(|(_, key)| key).collect()
}

/// Origin that the `config` crate (0.15) gives values read from environment variables.
const ENV_ORIGIN: &str = "the environment";

/// Returns where a value came from. A table that an environment variable created has no
/// origin of its own, so it is the origin of its first value.
fn origin(value: &::config::Value) -> Option<&str> {
    value.origin().or_else(|| match &value.kind {
        ::config::ValueKind::Table(table) => table.values().find_map(origin),
        ::config::ValueKind::Array(items) => items.iter().find_map(origin),
        _ => None,
    })
}

type Found<'a> = (Vec<Segment>, &'a ::config::Value, Vec<&'static str>);

fn walk<'a>(
    shape: &KeyShape,
    value: &'a ::config::Value,
    path: &mut Vec<Segment>,
    found: &mut Vec<Found<'a>>,
) {
    match (shape, &value.kind) {
        (KeyShape::Struct(keys), ::config::ValueKind::Table(table)) => {
            for (key, child) in table {
                path.push(Segment::Key(key.clone()));
                match keys.get(key.as_str()) {
                    Some(inner) => walk(inner, child, path, found),
                    None => found.push((path.clone(), child, keys.keys().copied().collect())),
                }
                path.pop();
            }
        }
        (KeyShape::List(item), ::config::ValueKind::Array(items)) => {
            for (index, child) in items.iter().enumerate() {
                path.push(Segment::Index(index));
                walk(item, child, path, found);
                path.pop();
            }
        }
        // A value of the wrong type is reported by the deserializer, with its own message.
        _ => {}
    }
}

/// Returns the path as it is written in messages: `server.bnd`, or `providers["citrix-prod"]`
/// for an entry with a name and `providers[0]` for one without.
fn display_path(path: &[Segment], root: &::config::Value) -> String {
    let mut text = String::new();
    let mut node = Some(root);
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
                node = node.and_then(|n| match &n.kind {
                    ::config::ValueKind::Table(table) => table.get(key),
                    _ => None,
                });
            }
            Segment::Index(index) => {
                node = node.and_then(|n| match &n.kind {
                    ::config::ValueKind::Array(items) => items.get(*index),
                    _ => None,
                });
                let name = node.and_then(|n| match &n.kind {
                    ::config::ValueKind::Table(table) => match table.get("name").map(|v| &v.kind) {
                        Some(::config::ValueKind::String(name)) => Some(name.clone()),
                        _ => None,
                    },
                    _ => None,
                });
                match name {
                    Some(name) => text.push_str(&format!("[{name:?}]")),
                    None => text.push_str(&format!("[{index}]")),
                }
            }
        }
    }
    text
}

/// Returns the variable that set a key from the environment, for example
/// `VDIGW__SERVER__PORT`. The `config` crate lowercases variable names, so the name is
/// looked up in `env`, falling back to the uppercase spelling.
fn environment_name(path: &[Segment], env: &std::collections::HashMap<String, String>) -> String {
    let mut expected = super::ENV_PREFIX.to_owned();
    for segment in path {
        if let Segment::Key(key) = segment {
            expected.push_str(super::ENV_SEPARATOR);
            expected.push_str(key);
        }
    }
    // An unknown table (`VDIGW__LOGG__LEVEL`) is named by the variable that created it.
    let nested = format!("{expected}{}", super::ENV_SEPARATOR).to_lowercase();
    let mut names: Vec<&String> = env
        .keys()
        .filter(|name| {
            let lower = name.to_lowercase();
            lower == expected.to_lowercase() || lower.starts_with(&nested)
        })
        .collect();
    names.sort();
    match names.first() {
        Some(name) => format!("environment variable {name}"),
        None => format!("environment variable {}", expected.to_uppercase()),
    }
}

/// Returns the known key closest to `key` when at most a third of it differs, so typos get a
/// suggestion and unrelated names do not.
fn closest(key: &str, known: &[&'static str]) -> Option<String> {
    let limit = (key.chars().count() / 3).max(1);
    known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.to_owned())
}

/// Levenshtein distance: single-character insertions, deletions and substitutions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, left) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, right) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(left != *right);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Line numbers of the keys and table headers of a TOML file, by key path.
#[derive(Default)]
struct KeyLines {
    lines: Vec<(Vec<Segment>, usize)>,
}

impl KeyLines {
    /// Scans `text` line by line: `[table]` and `[[list]]` headers set the current table, and
    /// `key = value` lines record the key under it, dotted and quoted keys included. Keys
    /// inside inline tables and lines inside multi-line strings or arrays are skipped, so such
    /// keys get the line of the key that contains them.
    fn scan(text: &str) -> KeyLines {
        let mut lines = Vec::new();
        let mut table: Vec<Segment> = Vec::new();
        // Entries seen so far of each `[[list]]`, by the list's path.
        let mut list_lengths: BTreeMap<Vec<String>, usize> = BTreeMap::new();
        let mut open_string: Option<&str> = None;
        let mut open_brackets = 0usize;
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            if let Some(delimiter) = open_string {
                if raw.matches(delimiter).count() % 2 == 1 {
                    open_string = None;
                }
                continue;
            }
            if open_brackets > 0 {
                open_brackets = bracket_balance(raw, open_brackets);
                continue;
            }
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(header) = line.strip_prefix("[[") {
                let keys = parse_key(header.split("]]").next().unwrap_or(""));
                table = resolve(&keys, &list_lengths);
                let length = list_lengths.entry(keys).or_insert(0);
                table.push(Segment::Index(*length));
                *length += 1;
                lines.push((table.clone(), number));
                continue;
            }
            if let Some(header) = line.strip_prefix('[') {
                let keys = parse_key(header.split(']').next().unwrap_or(""));
                table = resolve(&keys, &list_lengths);
                lines.push((table.clone(), number));
                continue;
            }
            let Some((key, value)) = split_key_value(line) else {
                continue;
            };
            let mut path = table.clone();
            path.extend(parse_key(key).into_iter().map(Segment::Key));
            lines.push((path, number));
            let value = value.trim_start();
            for delimiter in ["\"\"\"", "'''"] {
                if value.starts_with(delimiter) && value.matches(delimiter).count() == 1 {
                    open_string = Some(delimiter);
                }
            }
            if value.starts_with('[') {
                open_brackets = bracket_balance(value, 0);
            }
        }
        KeyLines { lines }
    }

    /// Returns the line of `path`, or of its nearest enclosing key or table.
    fn line_of(&self, path: &[Segment]) -> Option<usize> {
        (1..=path.len()).rev().find_map(|length| {
            self.lines
                .iter()
                .find(|(known, _)| known.as_slice() == &path[..length])
                .map(|(_, line)| *line)
        })
    }
}

/// Turns a header's key path into segments, placing after each `[[list]]` prefix the index of
/// its latest entry, as TOML does for `[list.sub]` headers.
fn resolve(keys: &[String], list_lengths: &BTreeMap<Vec<String>, usize>) -> Vec<Segment> {
    let mut path = Vec::new();
    for end in 1..=keys.len() {
        path.push(Segment::Key(keys[end - 1].clone()));
        if end < keys.len() {
            if let Some(length) = list_lengths.get(&keys[..end]) {
                path.push(Segment::Index(length.saturating_sub(1)));
            }
        }
    }
    path
}

/// Splits a dotted key (`a.b`, `"a b".c`) into its parts, without quotes.
fn parse_key(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in text.trim().chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => quote = Some(c),
            (None, '.') => parts.push(std::mem::take(&mut current).trim().to_owned()),
            (None, c) if c.is_whitespace() => {}
            (None, c) => current.push(c),
        }
    }
    parts.push(current.trim().to_owned());
    parts
}

/// Splits `key = value` at the first `=` outside quotes.
fn split_key_value(line: &str) -> Option<(&str, &str)> {
    let mut quote: Option<char> = None;
    for (index, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '=') => return Some((&line[..index], &line[index + 1..])),
            _ => {}
        }
    }
    None
}

/// Returns the depth of open `[` after `text`, starting at `depth`, ignoring brackets in
/// strings and comments.
fn bracket_balance(text: &str, mut depth: usize) -> usize {
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => break,
            (None, '[') => depth += 1,
            (None, ']') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        name: String,
        #[serde(default)]
        extra: std::collections::BTreeMap<String, String>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(default, deny_unknown_fields)]
    #[derive(Default)]
    struct Outer {
        port: u16,
        path: Option<std::path::PathBuf>,
        items: Vec<Inner>,
    }

    #[test]
    fn shape_lists_fields() {
        let shape = KeyShape::of::<Outer>();

        let KeyShape::Struct(keys) = shape else {
            panic!("not a struct: {shape:?}");
        };
        assert_eq!(
            keys.keys().copied().collect::<Vec<_>>(),
            ["items", "path", "port"]
        );
        assert_eq!(keys["port"], KeyShape::Value);
        let KeyShape::List(item) = &keys["items"] else {
            panic!("items is not a list: {keys:?}");
        };
        let KeyShape::Struct(inner) = item.as_ref() else {
            panic!("items hold no struct: {item:?}");
        };
        assert_eq!(inner["extra"], KeyShape::AnyKeys);
    }

    #[test]
    fn scan_finds_lines() {
        let text = "\
# comment
[server]
bind = \"x\"
\"quoted key\" = 1

[[providers]]
name = \"a\"
[providers.settings]
nested.key = [
  \"not = a key\",
]
after = 2

[[providers]]
name = \"b\"
";
        let lines = KeyLines::scan(text);
        let key = |parts: &[&str]| -> Vec<Segment> {
            parts
                .iter()
                .map(|p| match p.parse::<usize>() {
                    Ok(index) => Segment::Index(index),
                    Err(_) => Segment::Key((*p).to_owned()),
                })
                .collect()
        };

        assert_eq!(lines.line_of(&key(&["server", "bind"])), Some(3));
        assert_eq!(lines.line_of(&key(&["server", "quoted key"])), Some(4));
        assert_eq!(lines.line_of(&key(&["providers", "0", "name"])), Some(7));
        assert_eq!(
            lines.line_of(&key(&["providers", "0", "settings", "nested", "key"])),
            Some(9)
        );
        assert_eq!(
            lines.line_of(&key(&["providers", "0", "settings", "after"])),
            Some(12)
        );
        assert_eq!(lines.line_of(&key(&["providers", "1", "name"])), Some(15));
        assert_eq!(
            lines.line_of(&key(&["providers", "1", "missing"])),
            Some(14)
        );
        assert_eq!(lines.line_of(&key(&["log", "level"])), None);
    }

    #[test]
    fn closest_key_suggestions() {
        let known = ["bind", "body_limit_bytes", "metrics_token"];
        let cases = [
            ("bnd", Some("bind")),
            ("bind_", Some("bind")),
            ("body_limit_byte", Some("body_limit_bytes")),
            ("metricstoken", Some("metrics_token")),
            ("port", None),
            ("x", None),
        ];
        for (key, expected) in cases {
            assert_eq!(closest(key, &known).as_deref(), expected, "{key}");
        }
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
