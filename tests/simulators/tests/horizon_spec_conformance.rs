//! Checks every object the Horizon simulator returns against the vendor schemas in
//! `specs/horizon-2111-schemas.json`: only documented fields, required fields present,
//! documented types and enum values.

mod horizon_support;

use broker_sim::horizon::{HorizonFleet, Knobs, UNKNOWN_FIELD, UNKNOWN_MACHINE_STATE};
use horizon_support::{start, Client};
use reqwest::Method;
use serde_json::{json, Value};

struct Spec(Value);

impl Spec {
    fn load() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/specs/horizon-2111-schemas.json"
        );
        let text = std::fs::read_to_string(path).expect("spec file");
        Self(serde_json::from_str(&text).expect("spec JSON"))
    }

    /// Checks `value` against schema `model` and appends one message per violation.
    fn check(&self, model: &str, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(schema) = self.0["schemas"].get(model) else {
            return; // A nested schema the spec file does not define.
        };
        let Some(object) = value.as_object() else {
            errors.push(format!("{at}: {model} is not an object"));
            return;
        };
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap();
            if object.get(name).is_none_or(Value::is_null) {
                errors.push(format!("{at}: {model} lacks required {name}"));
            }
        }
        for (field, field_value) in object {
            match schema["properties"].get(field) {
                Some(property) => {
                    self.check_value(property, field_value, &format!("{at}.{field}"), errors)
                }
                None => errors.push(format!("{at}: {model} has undocumented field {field}")),
            }
        }
    }

    fn check_value(&self, property: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(model) = property["ref"].as_str() {
            self.check(model, value, at, errors);
            return;
        }
        if let Some(values) = property["enum"].as_array() {
            if !values.contains(value) {
                errors.push(format!("{at}: {value} is not a documented value"));
            }
            return;
        }
        let ok = match property["type"].as_str().unwrap_or("") {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "boolean" => value.is_boolean(),
            "array" => match value.as_array() {
                Some(items) => {
                    for (index, item) in items.iter().enumerate() {
                        self.check_value(
                            &property["items"],
                            item,
                            &format!("{at}[{index}]"),
                            errors,
                        );
                    }
                    true
                }
                None => false,
            },
            other => {
                errors.push(format!("{at}: unsupported schema type {other}"));
                true
            }
        };
        if !ok {
            errors.push(format!("{at}: {value} does not match {}", property["type"]));
        }
    }
}

fn push_all(
    objects: &mut Vec<(&'static str, Value, String)>,
    model: &'static str,
    list: Value,
    at: &str,
) {
    let items = list
        .as_array()
        .unwrap_or_else(|| panic!("{at} is not a list: {list}"));
    assert!(!items.is_empty(), "{at} is empty");
    for (index, item) in items.iter().enumerate() {
        objects.push((model, item.clone(), format!("{at}[{index}]")));
    }
}

/// Creates an application pool and entitlements, runs bulk actions, then fetches every
/// kind through HTTP and returns `(schema, value, where)` triples.
async fn collect_objects(
    sim: &broker_sim::horizon::HorizonSim,
    client: &Client,
) -> Vec<(&'static str, Value, String)> {
    let mut objects = Vec::new();
    let http = reqwest::Client::new();
    let config = sim.config();
    let tokens: Value = http
        .post(format!("{}login", client.api))
        .json(&json!({"username": config.username, "password": config.password, "domain": config.domain}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    objects.push(("AuthTokens", tokens.clone(), "/login".to_string()));
    let (_, access) = client
        .call(
            Method::POST,
            "refresh",
            Some(json!({"refresh_token": tokens["refresh_token"]})),
        )
        .await;
    objects.push(("AccessToken", access, "/refresh".to_string()));

    let snapshot = sim.snapshot();
    let farm = snapshot.farms[0].id.clone();
    let body = json!({"name": "gw-spec", "executable_path": "C:\\player.exe", "farm_id": farm,
                      "parameters": "--container spec", "shortcut_locations": ["START_MENU"]});
    client
        .call(Method::POST, "inventory/v3/application-pools", Some(body))
        .await;

    for version in 1..=5 {
        let model = if version == 1 {
            "DesktopPoolInfo"
        } else {
            "DesktopPoolInfoV5"
        };
        let path = format!("inventory/v{version}/desktop-pools");
        push_all(&mut objects, model, client.get(&path).await.1, &path);
    }
    let lists = [
        ("inventory/v1/machines", "MachineInfo"),
        ("inventory/v2/machines", "MachineInfoV2"),
        ("inventory/v1/sessions", "SessionInfo"),
        ("inventory/v1/farms", "FarmInfoV3"),
        ("inventory/v3/farms", "FarmInfoV3"),
        ("inventory/v1/rds-servers", "RDSServerInfo"),
        ("inventory/v1/application-pools", "ApplicationPoolInfo"),
        ("inventory/v2/application-pools", "ApplicationPoolInfoV2"),
        ("inventory/v3/application-pools", "ApplicationPoolInfoV2"),
        ("entitlements/v1/desktop-pools", "EntitlementInfo"),
        ("entitlements/v1/application-pools", "EntitlementInfo"),
        ("external/v1/ad-users-or-groups", "ADUserOrGroupInfo"),
    ];
    for (path, model) in lists {
        let (items, _) = client.get_all(path, 1000).await;
        push_all(&mut objects, model, Value::Array(items), path);
    }

    let app = sim
        .snapshot()
        .application_pool("gw-spec")
        .unwrap()
        .id
        .clone();
    let (_, one) = client
        .get(&format!("inventory/v1/application-pools/{app}"))
        .await;
    objects.push((
        "ApplicationPoolInfo",
        one,
        "/application-pools/{id}".to_string(),
    ));
    let machine = &snapshot.machines[0];
    let (_, one) = client
        .get(&format!("inventory/v2/machines/{}", machine.id))
        .await;
    objects.push(("MachineInfoV2", one, "/machines/{id}".to_string()));

    let entitle = json!([{"id": app, "ad_user_or_group_ids":
        ["S-1-5-21-1004336348-1177238915-682003330-5000", "S-1-5-21-0-0-0-1"]},
        {"id": "missing", "ad_user_or_group_ids": ["S-1-5-21-0-0-0-1"]}]);
    let (_, results) = client
        .call(
            Method::POST,
            "entitlements/v1/application-pools",
            Some(entitle),
        )
        .await;
    push_all(
        &mut objects,
        "BulkEntitlementResponseInfo",
        results,
        "POST entitlements",
    );

    let (_, results) = client
        .call(
            Method::POST,
            "inventory/v1/machines/action/enter-maintenance",
            Some(json!([machine.id, "missing"])),
        )
        .await;
    push_all(
        &mut objects,
        "BulkItemResponseInfo",
        results,
        "enter-maintenance",
    );
    let (_, sessions) = client.get("inventory/v1/sessions").await;
    let message = json!({"session_ids": [sessions[0]["id"], "missing"], "message": "hello",
                         "message_type": "INFO"});
    let (_, results) = client
        .call(
            Method::POST,
            "inventory/v1/sessions/action/send-message",
            Some(message),
        )
        .await;
    push_all(
        &mut objects,
        "BulkItemResponseInfo",
        results,
        "send-message",
    );
    let (_, results) = client
        .call(
            Method::POST,
            "inventory/v1/machines/action/restart",
            Some(json!([machine.id])),
        )
        .await;
    push_all(
        &mut objects,
        "BulkItemResponseInfo",
        results,
        "denied restart",
    );
    objects
}

async fn violations(fleet: HorizonFleet, unknown_values: bool) -> Vec<String> {
    let spec = Spec::load();
    let sim = start(fleet).await;
    let client = Client::login(&sim).await;
    sim.set_knobs(Knobs {
        unknown_values,
        ..Knobs::default()
    });
    let mut errors = Vec::new();
    for (model, value, at) in collect_objects(&sim, &client).await {
        spec.check(model, &value, &at, &mut errors);
    }
    errors
}

#[tokio::test]
async fn small_fleet_matches_spec() {
    let errors = violations(HorizonFleet::Small, false).await;
    assert!(errors.is_empty(), "{errors:#?}");
}

#[tokio::test]
async fn hospital_fleet_matches_spec() {
    let errors = violations(HorizonFleet::Hospital, false).await;
    assert!(
        errors.is_empty(),
        "{} violations, first: {:#?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
}

#[tokio::test]
async fn unknown_values_break_spec_only_as_injected() {
    let errors = violations(HorizonFleet::Small, true).await;
    assert!(errors.iter().any(|e| e.contains(UNKNOWN_FIELD)));
    assert!(errors.iter().any(|e| e.contains(UNKNOWN_MACHINE_STATE)));
    let other: Vec<&String> = errors
        .iter()
        .filter(|e| !e.contains(UNKNOWN_FIELD) && !e.contains(UNKNOWN_MACHINE_STATE))
        .collect();
    assert!(other.is_empty(), "{other:#?}");
}

#[test]
fn spec_copy_defines_core_schemas() {
    let spec = Spec::load();
    for model in [
        "MachineInfoV2",
        "DesktopPoolInfoV5",
        "SessionInfo",
        "BulkItemResponseInfo",
    ] {
        assert!(spec.0["schemas"].get(model).is_some(), "{model}");
    }
}
