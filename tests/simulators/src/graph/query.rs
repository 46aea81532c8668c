//! OData query options of list requests: `$filter`, `$select`, `$top` and `$count`.
//!
//! `$filter` accepts `prop eq 'text'`, `prop ne 'text'`, `prop eq true|false|null` and
//! `startswith(prop,'text')` clauses joined by `and`. Anything else gets 400, as Graph
//! returns for filters a resource does not support. String comparisons ignore case.

use serde_json::{Map, Value};

use super::error::GraphError;

/// One `$filter` clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Clause {
    Eq(String, Value),
    Ne(String, Value),
    StartsWith(String, String),
}

impl Clause {
    fn property(&self) -> &str {
        match self {
            Clause::Eq(name, _) | Clause::Ne(name, _) | Clause::StartsWith(name, _) => name,
        }
    }

    fn matches(&self, object: &Map<String, Value>) -> bool {
        let value = object.get(self.property()).unwrap_or(&Value::Null);
        match self {
            Clause::Eq(_, expected) => values_equal(value, expected),
            Clause::Ne(_, expected) => !values_equal(value, expected),
            Clause::StartsWith(_, prefix) => value
                .as_str()
                .is_some_and(|text| text.to_lowercase().starts_with(&prefix.to_lowercase())),
        }
    }
}

fn values_equal(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        _ => actual == expected,
    }
}

/// Parses a `$filter` expression.
///
/// Fails with 400 on syntax the simulator does not support.
pub(crate) fn parse_filter(text: &str) -> Result<Vec<Clause>, GraphError> {
    let mut clauses = Vec::new();
    for part in split_and(text) {
        clauses.push(parse_clause(part.trim())?);
    }
    Ok(clauses)
}

/// Splits on ` and ` outside quoted strings.
fn split_and(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let lower = text.to_lowercase();
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\'' {
            quoted = !quoted;
        } else if !quoted && lower[index..].starts_with(" and ") {
            parts.push(&text[start..index]);
            index += 5;
            start = index;
            continue;
        }
        index += 1;
    }
    parts.push(&text[start..]);
    parts
}

fn unsupported(clause: &str) -> GraphError {
    GraphError::bad_request(format!(
        "Invalid filter clause: '{clause}' is not supported; use 'property eq value' clauses \
         joined with 'and', or startswith(property,'text')."
    ))
}

fn parse_literal(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        if inner.replace("''", "").contains('\'') {
            return None;
        }
        return Some(Value::String(inner.replace("''", "'")));
    }
    match text {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        _ => None,
    }
}

fn parse_clause(clause: &str) -> Result<Clause, GraphError> {
    if let Some(arguments) = clause
        .strip_prefix("startswith(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let (property, literal) = arguments
            .split_once(',')
            .ok_or_else(|| unsupported(clause))?;
        let Some(Value::String(prefix)) = parse_literal(literal) else {
            return Err(unsupported(clause));
        };
        return Ok(Clause::StartsWith(property.trim().to_string(), prefix));
    }
    let mut words = clause.splitn(3, ' ');
    let (Some(property), Some(operator), Some(literal)) =
        (words.next(), words.next(), words.next())
    else {
        return Err(unsupported(clause));
    };
    let value = parse_literal(literal).ok_or_else(|| unsupported(clause))?;
    match operator.to_lowercase().as_str() {
        "eq" => Ok(Clause::Eq(property.to_string(), value)),
        "ne" => Ok(Clause::Ne(property.to_string(), value)),
        _ => Err(unsupported(clause)),
    }
}

/// Checks that every property a filter or select names exists on the resource.
///
/// Fails with 400 naming the first unknown property, as Graph does.
pub(crate) fn check_properties<'a>(
    names: impl IntoIterator<Item = &'a str>,
    sample: &Map<String, Value>,
    type_name: &str,
) -> Result<(), GraphError> {
    for name in names {
        if !sample.contains_key(name) {
            return Err(GraphError::bad_request(format!(
                "Could not find a property named '{name}' on type '{type_name}'."
            )));
        }
    }
    Ok(())
}

/// Returns whether an object matches every clause.
pub(crate) fn matches_all(clauses: &[Clause], object: &Map<String, Value>) -> bool {
    clauses.iter().all(|clause| clause.matches(object))
}

/// Returns the property names a filter names.
pub(crate) fn filter_properties(clauses: &[Clause]) -> Vec<&str> {
    clauses.iter().map(Clause::property).collect()
}

/// Parses `$select` into property names.
pub(crate) fn parse_select(text: &str) -> Vec<String> {
    text.split(',')
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Keeps only the selected properties and the `@odata.type` annotation.
pub(crate) fn apply_select(object: Map<String, Value>, select: &[String]) -> Map<String, Value> {
    object
        .into_iter()
        .filter(|(key, _)| key == "@odata.type" || select.iter().any(|name| name == key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filter_parses_and_clauses() {
        let clauses =
            parse_filter("status eq 'provisioned' and productType eq 'enterprise'").unwrap();
        assert_eq!(clauses.len(), 2);
        assert_eq!(
            clauses[0],
            Clause::Eq("status".into(), json!("provisioned"))
        );
    }

    #[test]
    fn filter_keeps_and_inside_quotes() {
        let clauses = parse_filter("displayName eq 'Apps and Tools'").unwrap();
        assert_eq!(
            clauses,
            vec![Clause::Eq("displayName".into(), json!("Apps and Tools"))]
        );
    }

    #[test]
    fn filter_rejects_or() {
        assert!(parse_filter("a eq 'x' or b eq 'y'").is_err());
    }

    #[test]
    fn startswith_matches_ignoring_case() {
        let clauses = parse_filter("startswith(displayName,'vdigw-')").unwrap();
        let object = json!({"displayName": "VDIGW-app"});
        assert!(matches_all(&clauses, object.as_object().unwrap()));
    }
}
