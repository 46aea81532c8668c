//! The JSON `filter` query parameter of Horizon list endpoints.
//!
//! A filter is `{"type", "name", "value"}` for Equals, NotEquals, Contains, StartsWith and
//! EndsWith, `{"type": "Between", "name", "from_value", "to_value"}`, `{"type": "And" | "Or",
//! "filters": [...]}` or `{"type": "Not", "filter": {...}}` (Horizon Server REST API
//! Pagination and Filter Guide). Each field supports only the operators its reference
//! lists; anything else is rejected with 400.

use serde_json::Value;

/// A leaf comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Equals,
    NotEquals,
    Contains,
    StartsWith,
    EndsWith,
    Between,
}

impl Op {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "Equals" => Op::Equals,
            "NotEquals" => Op::NotEquals,
            "Contains" => Op::Contains,
            "StartsWith" => Op::StartsWith,
            "EndsWith" => Op::EndsWith,
            "Between" => Op::Between,
            _ => return None,
        })
    }
}

/// Operators every field without a narrower rule supports.
pub(crate) const ANY: &[Op] = &[
    Op::Equals,
    Op::NotEquals,
    Op::Contains,
    Op::StartsWith,
    Op::EndsWith,
    Op::Between,
];
/// Equality only.
pub(crate) const EQUALS: &[Op] = &[Op::Equals];
/// Equality and inequality.
pub(crate) const EQUALS_NOT: &[Op] = &[Op::Equals, Op::NotEquals];

/// A filterable field of one resource and the operators it supports.
pub(crate) type FieldRule = (&'static str, &'static [Op]);

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        op: Op,
        name: String,
        value: Value,
    },
    Between {
        name: String,
        from: Value,
        to: Value,
    },
}

/// Parses the decoded `filter` parameter and checks every field and operator against
/// `rules`.
///
/// Fails with a message for the 400 body when the JSON is invalid, a type is unknown, a
/// member is missing, a field is not filterable or an operator is not supported on it.
pub(crate) fn parse(text: &str, rules: &[FieldRule]) -> Result<Filter, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| format!("Invalid filter: the value is not JSON ({error})."))?;
    parse_value(&value, rules, 0)
}

fn parse_value(value: &Value, rules: &[FieldRule], depth: usize) -> Result<Filter, String> {
    if depth > 16 {
        return Err("Invalid filter: nested more than 16 levels deep.".to_string());
    }
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or("Invalid filter: every filter needs a string \"type\".")?;
    match kind {
        "And" | "Or" => {
            let items = value
                .get("filters")
                .and_then(Value::as_array)
                .filter(|items| !items.is_empty())
                .ok_or_else(|| format!("Invalid filter: {kind} needs a non-empty \"filters\"."))?;
            let parsed = items
                .iter()
                .map(|item| parse_value(item, rules, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if kind == "And" {
                Filter::And(parsed)
            } else {
                Filter::Or(parsed)
            })
        }
        "Not" => {
            let inner = value
                .get("filter")
                .ok_or("Invalid filter: Not needs a \"filter\".")?;
            Ok(Filter::Not(Box::new(parse_value(inner, rules, depth + 1)?)))
        }
        _ => {
            let op = Op::parse(kind)
                .ok_or_else(|| format!("Invalid filter: unknown filter type {kind}."))?;
            let name = value
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("Invalid filter: {kind} needs a string \"name\"."))?;
            check_field(name, op, kind, rules)?;
            if op == Op::Between {
                let bound = |key: &str| {
                    value
                        .get(key)
                        .filter(|v| !v.is_null())
                        .cloned()
                        .ok_or_else(|| format!("Invalid filter: Between needs \"{key}\"."))
                };
                return Ok(Filter::Between {
                    name: name.to_string(),
                    from: bound("from_value")?,
                    to: bound("to_value")?,
                });
            }
            let operand = value
                .get("value")
                .filter(|v| !v.is_null())
                .ok_or_else(|| format!("Invalid filter: {kind} on {name} needs a \"value\"."))?;
            Ok(Filter::Compare {
                op,
                name: name.to_string(),
                value: operand.clone(),
            })
        }
    }
}

fn check_field(name: &str, op: Op, kind: &str, rules: &[FieldRule]) -> Result<(), String> {
    let (_, ops) = rules
        .iter()
        .find(|(field, _)| *field == name)
        .ok_or_else(|| format!("Invalid filter: field {name} is not filterable."))?;
    if ops.contains(&op) {
        Ok(())
    } else {
        Err(format!(
            "Invalid filter: {kind} is not supported on field {name}."
        ))
    }
}

impl Filter {
    /// Returns whether a rendered object matches.
    ///
    /// String comparisons ignore ASCII case. An array field matches Equals and Contains when
    /// any element matches, and NotEquals when no element equals the value.
    // NOTE: Horizon does not document the case rules of its filters; ignoring case is a guess.
    pub fn matches(&self, object: &Value) -> bool {
        match self {
            Filter::And(items) => items.iter().all(|f| f.matches(object)),
            Filter::Or(items) => items.iter().any(|f| f.matches(object)),
            Filter::Not(inner) => !inner.matches(object),
            Filter::Compare { op, name, value } => {
                let field = object.get(name).unwrap_or(&Value::Null);
                match (op, field) {
                    (Op::NotEquals, Value::Array(items)) => {
                        !items.iter().any(|item| compare(Op::Equals, item, value))
                    }
                    (_, Value::Array(items)) => items.iter().any(|item| compare(*op, item, value)),
                    (Op::NotEquals, field) => !compare(Op::Equals, field, value),
                    (_, field) => compare(*op, field, value),
                }
            }
            Filter::Between { name, from, to } => {
                let field = object.get(name).unwrap_or(&Value::Null);
                match (field.as_f64(), from.as_f64(), to.as_f64()) {
                    (Some(v), Some(low), Some(high)) => low <= v && v <= high,
                    _ => match (field.as_str(), from.as_str(), to.as_str()) {
                        (Some(v), Some(low), Some(high)) => low <= v && v <= high,
                        _ => false,
                    },
                }
            }
        }
    }
}

fn compare(op: Op, field: &Value, value: &Value) -> bool {
    match (field, value) {
        (Value::String(field), Value::String(value)) => {
            let field = field.to_ascii_lowercase();
            let value = value.to_ascii_lowercase();
            match op {
                Op::Equals => field == value,
                Op::Contains => field.contains(&value),
                Op::StartsWith => field.starts_with(&value),
                Op::EndsWith => field.ends_with(&value),
                Op::NotEquals | Op::Between => false,
            }
        }
        (Value::Null, _) => false,
        // Booleans and numbers may arrive as JSON values or as strings.
        (field, Value::String(value)) => {
            let text = field.to_string();
            op == Op::Equals && text == *value
        }
        (field, value) => op == Op::Equals && field == value,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RULES: &[FieldRule] = &[
        ("name", &[Op::Equals, Op::StartsWith, Op::Contains]),
        ("state", EQUALS),
        ("user_ids", &[Op::Equals, Op::NotEquals, Op::Contains]),
        ("enabled", ANY),
    ];

    fn machine() -> Value {
        json!({"name": "EHR-IC-001", "state": "AVAILABLE", "user_ids": ["S-1", "S-2"],
               "enabled": true})
    }

    #[test]
    fn leaf_and_nested_filters() {
        let cases = [
            (
                r#"{"type":"Equals","name":"state","value":"AVAILABLE"}"#,
                true,
            ),
            (
                r#"{"type":"Equals","name":"name","value":"ehr-ic-001"}"#,
                true,
            ),
            (
                r#"{"type":"StartsWith","name":"name","value":"EHR-"}"#,
                true,
            ),
            (r#"{"type":"Contains","name":"name","value":"RAD"}"#, false),
            (r#"{"type":"Equals","name":"user_ids","value":"S-2"}"#, true),
            (
                r#"{"type":"NotEquals","name":"user_ids","value":"S-2"}"#,
                false,
            ),
            (r#"{"type":"Equals","name":"enabled","value":true}"#, true),
            (r#"{"type":"Equals","name":"enabled","value":"true"}"#, true),
            (
                r#"{"type":"And","filters":[{"type":"Equals","name":"state","value":"AVAILABLE"},
                   {"type":"StartsWith","name":"name","value":"EHR"}]}"#,
                true,
            ),
            (
                r#"{"type":"Or","filters":[{"type":"Equals","name":"state","value":"ERROR"},
                   {"type":"Not","filter":{"type":"Contains","name":"name","value":"EHR"}}]}"#,
                false,
            ),
        ];
        for (text, expected) in cases {
            let filter = parse(text, RULES).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(filter.matches(&machine()), expected, "{text}");
        }
    }

    #[test]
    fn rejects_invalid_filters() {
        let cases = [
            "not json",
            r#"{"name":"state","value":"A"}"#,
            r#"{"type":"Like","name":"state","value":"A"}"#,
            r#"{"type":"StartsWith","name":"state","value":"A"}"#,
            r#"{"type":"Equals","name":"colour","value":"A"}"#,
            r#"{"type":"Equals","name":"state"}"#,
            r#"{"type":"And","filters":[]}"#,
        ];
        for text in cases {
            assert!(parse(text, RULES).is_err(), "{text}");
        }
    }
}
