//! Checks every object the simulator returns against the vendor model definitions in
//! `specs/citrix-orchestration-models.json`: only documented fields, required fields present,
//! documented enum values, and nullability.

mod support;

use broker_sim::citrix::{Fleet, Knobs};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{start, Client};

struct Spec(Value);

impl Spec {
    fn load() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/specs/citrix-orchestration-models.json"
        );
        let text = std::fs::read_to_string(path).expect("spec file");
        Self(serde_json::from_str(&text).expect("spec JSON"))
    }

    /// Checks `value` against `model` and appends one message per violation.
    fn check(&self, model: &str, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(definition) = self.0["models"].get(model) else {
            return; // A nested model the spec file does not define.
        };
        let Some(object) = value.as_object() else {
            errors.push(format!("{at}: {model} is not an object"));
            return;
        };
        for required in definition["required"].as_array().unwrap() {
            let name = required.as_str().unwrap();
            if object.get(name).is_none_or(Value::is_null) {
                errors.push(format!("{at}: {model} lacks required {name}"));
            }
        }
        for (field, field_value) in object {
            let Some(property) = definition["properties"].get(field) else {
                errors.push(format!("{at}: {model} has undocumented field {field}"));
                continue;
            };
            let nullable = property["nullable"].as_bool().unwrap_or(false);
            let kind = property["type"].as_str().unwrap();
            self.check_value(
                kind,
                nullable,
                field_value,
                &format!("{at}.{field}"),
                errors,
            );
        }
    }

    fn check_value(
        &self,
        kind: &str,
        nullable: bool,
        value: &Value,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        if value.is_null() {
            if !nullable {
                errors.push(format!("{at}: null in a non-nullable {kind}"));
            }
            return;
        }
        if let Some(element) = kind.strip_prefix("[]") {
            match value.as_array() {
                Some(items) => {
                    for (index, item) in items.iter().enumerate() {
                        self.check_value(element, false, item, &format!("{at}[{index}]"), errors);
                    }
                }
                None => errors.push(format!("{at}: expected an array of {element}")),
            }
            return;
        }
        if let Some(values) = self.0["enums"].get(kind).and_then(Value::as_array) {
            if !values.contains(value) {
                errors.push(format!("{at}: {value} is not a documented {kind}"));
            }
            return;
        }
        let ok = match kind {
            "string" | "NullableString" => value.is_string(),
            "bool" | "NullableBool" => value.is_boolean(),
            "int32" | "NullableInt32" | "int64" | "NullableInt64" => value.is_i64(),
            _ => {
                self.check(kind, value, at, errors);
                true
            }
        };
        if !ok {
            errors.push(format!("{at}: {value} is not a {kind}"));
        }
    }
}

/// Creates one object of every kind, then fetches every kind through HTTP and returns
/// `(model, value, where)` triples.
async fn collect_objects(client: &Client) -> Vec<(&'static str, Value, String)> {
    client
        .call(Method::POST, "Tags", Some(json!({"Name": "gw:spec"})))
        .await;
    client
        .call(
            Method::POST,
            "Machines/HOSP|EHR-VDA-0004/Tags/gw:spec",
            None,
        )
        .await;
    let group = json!({
        "Name": "gw-spec",
        "RestrictToTag": "gw:spec",
        "DeliveryGroups": [{"Item": "EHR Clinicians", "Priority": 0}],
        "Metadata": [{"Name": "gateway.owned", "Value": "true"}]
    });
    client
        .call(Method::POST, "ApplicationGroups", Some(group))
        .await;
    let app = json!({
        "NewApplications": [{
            "Name": "spec-app",
            "ApplicationFolder": "Gateway",
            "InstalledAppProperties": {"CommandLineExecutable": "player.exe"},
            "ApplicationGroups": ["gw-spec"]
        }]
    });
    let response = client
        .send(Method::POST, "Applications?async=true", Some(app))
        .await;
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let job_id = location.rsplit('/').next().unwrap().to_string();

    let mut objects = Vec::new();
    let (_, me) = client.get("me").await;
    objects.push(("MeResponseModel", me, "/me".to_string()));
    let lists = [
        ("DeliveryGroups", "DeliveryGroupResponseModel"),
        ("Machines", "MachineResponseModel"),
        ("Sessions", "SessionResponseModel"),
        ("Tags", "TagResponseModel"),
        ("ApplicationGroups", "ApplicationGroupResponseModel"),
        ("Applications", "ApplicationResponseModel"),
    ];
    for (path, model) in lists {
        let items = client.get_all(path, 1000).await;
        assert!(!items.is_empty(), "{path} is empty");
        for (index, item) in items.into_iter().enumerate() {
            objects.push((model, item, format!("/{path}[{index}]")));
        }
    }
    let (_, one) = client.get("Machines/HOSP|EHR-VDA-0001").await;
    objects.push(("MachineResponseModel", one, "/Machines/{name}".to_string()));
    for poll in 0..2 {
        let (_, job) = client.get(&format!("Jobs/{job_id}")).await;
        objects.push(("JobResponseModel", job, format!("/Jobs/{{id}} poll {poll}")));
    }
    let (status, error) = client.get("Machines/HOSP|NOPE").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    objects.push(("ErrorResponse", error, "404 body".to_string()));
    objects
}

fn check_collection_shape(client_page: &Value, errors: &mut Vec<String>) {
    for key in client_page.as_object().unwrap().keys() {
        if !["Items", "ContinuationToken", "TotalItems"].contains(&key.as_str()) {
            errors.push(format!("collection has undocumented field {key}"));
        }
    }
}

async fn violations(fleet: Fleet, unknown_values: bool) -> Vec<String> {
    let spec = Spec::load();
    let sim = start(fleet).await;
    let client = Client::cloud(&sim).await;
    sim.set_knobs(Knobs {
        unknown_values,
        ..Knobs::default()
    });
    let mut errors = Vec::new();
    for (model, value, at) in collect_objects(&client).await {
        spec.check(model, &value, &at, &mut errors);
    }
    let (_, page) = client.get("Machines?limit=2").await;
    check_collection_shape(&page, &mut errors);
    errors
}

#[tokio::test]
async fn small_fleet_matches_spec() {
    let errors = violations(Fleet::Small, false).await;
    assert!(errors.is_empty(), "{errors:#?}");
}

#[tokio::test]
async fn hospital_fleet_matches_spec() {
    let errors = violations(Fleet::Hospital, false).await;
    assert!(
        errors.is_empty(),
        "{} violations, first: {:#?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
}

#[tokio::test]
async fn unknown_values_break_spec_only_as_injected() {
    let errors = violations(Fleet::Small, true).await;
    assert!(errors.iter().any(|e| e.contains("ZzUndocumentedField")));
    assert!(errors.iter().any(|e| e.contains("FutureRegistrationValue")));
    let other: Vec<&String> = errors
        .iter()
        .filter(|e| !e.contains("ZzUndocumentedField") && !e.contains("FutureRegistrationValue"))
        .collect();
    assert!(other.is_empty(), "{other:#?}");
}

#[test]
fn spec_copy_defines_core_models() {
    let spec = Spec::load();
    for model in [
        "MachineResponseModel",
        "DeliveryGroupResponseModel",
        "JobResponseModel",
    ] {
        assert!(spec.0["models"].get(model).is_some(), "{model}");
    }
}
