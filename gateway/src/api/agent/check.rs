//! Input checks of the agent channel. Agents run on machines the gateway does not control, so
//! every list and string an agent sends is bounded and checked before anything is stored.
//! Errors name the field, the value (shortened when long) and the limit.

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::error::ApiError;

/// Maximum characters of a machine id. DNS host names have at most 253 and Windows and Intune
/// device ids far fewer.
pub(crate) const MAX_MACHINE_LEN: usize = 256;

/// Maximum characters of a session's user name; Windows caps `DOMAIN\user` well below it.
pub(crate) const MAX_USER_LEN: usize = 256;

/// Maximum sessions in one report; an estimate well above the users of one multi-session
/// host, which bounds the stored document.
pub(crate) const MAX_SESSIONS: usize = 1000;

/// Maximum container entries in one report. An estimate well above the containers one
/// machine holds; results are stored per container, so an agent can split a larger list
/// across reports.
pub(crate) const MAX_CONTAINERS: usize = 500;

/// Maximum labels of one machine. With the key and value limits below, one machine's labels
/// stay under 25,000 characters.
pub(crate) const MAX_LABELS: usize = 64;

/// Maximum characters of a label key.
pub(crate) const MAX_LABEL_KEY_LEN: usize = 128;

/// Maximum characters of a label value.
pub(crate) const MAX_LABEL_VALUE_LEN: usize = 256;

/// Characters of a rejected value that an error shows. Longer values are cut.
const SHOWN_CHARS: usize = 40;

/// Returns `value` quoted for an error message, cut to [`SHOWN_CHARS`] characters.
fn shown(value: &str) -> String {
    if value.chars().count() <= SHOWN_CHARS {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(SHOWN_CHARS).collect();
    format!("{head:?}...")
}

/// Returns the first control character of `value`, as `U+XXXX`.
fn control_character(value: &str) -> Option<String> {
    value
        .chars()
        .find(|c| c.is_control())
        .map(|c| format!("U+{:04X}", u32::from(c)))
}

/// Checks a machine id, from a report body or the `machine` query parameter.
///
/// # Errors
/// Fails when the id is empty, longer than [`MAX_MACHINE_LEN`] characters, contains a control
/// character, or starts or ends with whitespace.
pub(crate) fn check_machine(machine: &str) -> Result<(), ApiError> {
    let length = machine.chars().count();
    if length == 0 {
        return Err(ApiError::invalid(format!(
            "machine is empty; send the machine's id (1 to {MAX_MACHINE_LEN} characters)"
        )));
    }
    if length > MAX_MACHINE_LEN {
        return Err(ApiError::invalid(format!(
            "machine {} has {length} characters; the maximum is {MAX_MACHINE_LEN}",
            shown(machine)
        )));
    }
    if let Some(code) = control_character(machine) {
        return Err(ApiError::invalid(format!(
            "machine {} contains the control character {code}; send the id without control \
             characters",
            shown(machine)
        )));
    }
    if machine.trim() != machine {
        return Err(ApiError::invalid(format!(
            "machine {} starts or ends with whitespace; send the id without it",
            shown(machine)
        )));
    }
    Ok(())
}

/// Checks the number of container entries in a report.
///
/// # Errors
/// Fails above [`MAX_CONTAINERS`].
pub(crate) fn check_container_count(count: usize) -> Result<(), ApiError> {
    if count > MAX_CONTAINERS {
        return Err(ApiError::invalid(format!(
            "containers has {count} entries; the maximum is {MAX_CONTAINERS} per report, so \
             send the rest in further reports"
        )));
    }
    Ok(())
}

/// Checks reported labels and converts them to a map of strings.
///
/// # Errors
/// Fails when `labels` is not a JSON object, has more than [`MAX_LABELS`] entries, or has a key
/// or value that is too long, contains a control character, or (for values) is not a string.
pub(crate) fn check_labels(labels: Value) -> Result<BTreeMap<String, String>, ApiError> {
    let Value::Object(object) = labels else {
        return Err(ApiError::invalid(format!(
            "labels is {}; send a JSON object of string values, for example \
             {{\"ward\": \"3\"}}, or leave labels out to keep the stored ones",
            described(&labels)
        )));
    };
    if object.len() > MAX_LABELS {
        return Err(ApiError::invalid(format!(
            "labels has {} entries; the maximum is {MAX_LABELS}",
            object.len()
        )));
    }
    let mut checked = BTreeMap::new();
    for (key, value) in object {
        check_label_key(&key)?;
        let Value::String(text) = value else {
            return Err(ApiError::invalid(format!(
                "labels[{}] is {}; label values must be strings, for example \"3\"",
                shown(&key),
                described(&value)
            )));
        };
        check_label_value(&key, &text)?;
        checked.insert(key, text);
    }
    Ok(checked)
}

fn check_label_key(key: &str) -> Result<(), ApiError> {
    let length = key.chars().count();
    if length == 0 || length > MAX_LABEL_KEY_LEN {
        return Err(ApiError::invalid(format!(
            "labels key {} has {length} characters; send 1 to {MAX_LABEL_KEY_LEN}",
            shown(key)
        )));
    }
    if let Some(code) = control_character(key) {
        return Err(ApiError::invalid(format!(
            "labels key {} contains the control character {code}; send it without control \
             characters",
            shown(key)
        )));
    }
    Ok(())
}

fn check_label_value(key: &str, value: &str) -> Result<(), ApiError> {
    let length = value.chars().count();
    if length > MAX_LABEL_VALUE_LEN {
        return Err(ApiError::invalid(format!(
            "labels[{}] {} has {length} characters; the maximum is {MAX_LABEL_VALUE_LEN}",
            shown(key),
            shown(value)
        )));
    }
    if let Some(code) = control_character(value) {
        return Err(ApiError::invalid(format!(
            "labels[{}] {} contains the control character {code}; send it without control \
             characters",
            shown(key),
            shown(value)
        )));
    }
    Ok(())
}

/// Describes a JSON value for messages: its type with an article, then the value, cut like
/// [`shown`]; for example `a string "ward=3"` or `an array [1,2,3]`.
fn described(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(text) => return format!("a string {}", shown(text)),
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let text = value.to_string();
    if text.chars().count() <= SHOWN_CHARS {
        return format!("{kind} {text}");
    }
    let head: String = text.chars().take(SHOWN_CHARS).collect();
    format!("{kind} {head}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(error: ApiError) -> String {
        format!("{error:?}")
    }

    #[test]
    fn shown_cuts_long_values() {
        let long = "x".repeat(100);
        assert_eq!(shown(&long), format!("{:?}...", "x".repeat(SHOWN_CHARS)));
        assert_eq!(shown("LT-1"), "\"LT-1\"");
    }

    #[test]
    fn described_names_type_and_value() {
        let cases = [
            (serde_json::json!("ward=3"), "a string \"ward=3\""),
            (serde_json::json!([1, 2, 3]), "an array [1,2,3]"),
            (serde_json::json!(3), "a number 3"),
            (serde_json::json!(null), "null"),
        ];
        for (value, expected) in cases {
            assert_eq!(described(&value), expected);
        }
        let long = serde_json::json!(vec![1; 100]);
        assert!(described(&long).ends_with("..."));
    }

    #[test]
    fn machine_accepts_real_ids() {
        let ids = [
            "LT-0001",
            "HOSP\\EHR-IC-001",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "ehr-ic-001.hosp.example",
        ];
        for id in ids {
            assert!(check_machine(id).is_ok(), "{id}");
        }
        assert!(check_machine(&"m".repeat(MAX_MACHINE_LEN)).is_ok());
    }

    #[test]
    fn machine_rejections_name_value() {
        let cases = [
            (String::new(), "machine is empty"),
            ("m".repeat(MAX_MACHINE_LEN + 1), "has 257 characters"),
            ("LT\u{7}1".to_owned(), "U+0007"),
            (" LT-1".to_owned(), "whitespace"),
            ("LT-1 ".to_owned(), "whitespace"),
        ];
        for (id, expected) in cases {
            let text = message(check_machine(&id).expect_err(&id));
            assert!(text.contains(expected), "{id:?}: {text}");
        }
    }

    #[test]
    fn labels_accept_strings() {
        let labels = check_labels(serde_json::json!({"site": "north", "ward": ""})).unwrap();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels["site"], "north");
        assert!(check_labels(serde_json::json!({})).unwrap().is_empty());
    }
}
