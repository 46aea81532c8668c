//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of this API.
//!
//! Written by hand next to the handlers, because the schemas are the API's contract and read
//! better as one document than as annotations spread over the code. A test checks that every
//! routed path appears here.

use axum::Json;
use serde_json::{json, Value};

use super::agent::check::{
    MAX_CONTAINERS, MAX_LABELS, MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN, MAX_MACHINE_LEN,
    MAX_SESSIONS, MAX_USER_LEN,
};

/// Pattern of agent strings without control characters (Unicode category Cc), which the
/// gateway rejects.
const NO_CONTROL_CHARACTERS: &str = "^[^\\p{Cc}]*$";

/// Schema of a machine id in the agent channel.
fn machine_id() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": MAX_MACHINE_LEN,
        "pattern": "^[^\\s\\p{Cc}]([^\\p{Cc}]*[^\\s\\p{Cc}])?$",
        "description": "Without control characters or leading and trailing whitespace"})
}

fn error_responses(codes: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for code in codes {
        map.insert(
            (*code).to_owned(),
            json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(map)
}

fn ok(status: &str, description: &str, schema: Value, errors: &[&str]) -> Value {
    let mut responses = error_responses(errors);
    responses[status] = json!({
        "description": description,
        "content": {"application/json": {"schema": schema}},
    });
    responses
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn id_parameter() -> Value {
    json!({"name": "id", "in": "path", "required": true,
           "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}})
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

/// Returns the schema of a `POST /v1/plan` body: the `AssignmentSpec` object with one more
/// required property, `assignment_id`. The properties are copied, because `AssignmentSpec`
/// forbids additional properties and an `allOf` of it and `assignment_id` rejects every body.
fn plan_request() -> Value {
    let mut schema = schemas()["AssignmentSpec"].clone();
    schema["properties"]["assignment_id"] = id_parameter()["schema"].clone();
    if let Some(required) = schema["required"].as_array_mut() {
        required.push(json!("assignment_id"));
    }
    schema
}

/// Rule by which a rollback chooses its version, as `engine::rollback::rollback_target` applies it.
const ROLLBACK_RULE: &str =
    "Without to_version, the rollback installs the newest previous version. \
A rollback never returns to the version that the latest rollback left, because that version \
failed and a rollback runs as one wave of every machine that skips maintenance windows and \
change freezes. So when the current version was restored by a rollback, the default is the \
newest previous version installed before the restored one, and 409 (details.rolled_back_from) \
when there is none. A to_version naming the version rolled back from is also 409. To install \
that version again, PUT the assignment with it, which rolls out in waves inside windows. The \
response's rollback object names the version left (from) and the version installed (to).";

/// Returns the schema of a rollback response: the assignment status with a `rollback` object.
fn rollback_status() -> Value {
    json!({"allOf": [reference("AssignmentStatus"), {"type": "object", "properties": {
        "rollback": {"type": "object", "required": ["from", "to"], "properties": {
            "from": {"type": "string", "description": "Version rolled back from"},
            "to": {"type": "string", "description": "Version the rollback installs"}}}}}]})
}

/// Returns the document.
pub fn spec() -> Value {
    let assignment_errors = ["400", "401", "403", "404", "500"];
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "VDI broker integration gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Control-plane API: assign container versions to broker targets, follow rollouts, roll back."
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "Alive"}}}},
            "/readyz": {"get": {"summary": "Readiness: store reachable, providers checked", "security": [],
                "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}}}},
            "/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI document"}}}},
            "/v1/providers": {"get": {"summary": "Configured providers with health and capabilities",
                "responses": ok("200", "Providers", json!({"type": "object", "properties": {"providers": {"type": "array", "items": reference("Provider")}}}), &["401", "403"])}},
            "/v1/providers/{name}/targets": {"get": {"summary": "Targets a provider offers",
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": ok("200", "Targets", json!({"type": "object", "properties": {"targets": {"type": "array", "items": reference("Target")}}}), &["401", "403", "404", "502"])}},
            "/v1/providers/{name}/machines": {"get": {"summary": "Machines of one target, paged",
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "target", "in": "query", "required": true, "schema": {"type": "string"}},
                    query("cursor", "next_cursor of the previous page", json!({"type": "string"})),
                    query("limit", "Machines per page", json!({"type": "integer", "minimum": 1, "maximum": 5000, "default": 500}))
                ],
                "responses": ok("200", "Machines", json!({"type": "object", "properties": {
                    "machines": {"type": "array", "items": reference("Machine")},
                    "next_cursor": {"type": ["string", "null"]}}}), &["400", "401", "403", "404", "502"])}},
            "/v1/assignments": {"get": {"summary": "List assignments",
                "parameters": [
                    query("state", "Only assignments in this state", reference("AssignmentState")),
                    query("provider", "Only assignments with a target at this provider", json!({"type": "string"})),
                    query("cursor", "next_cursor of the previous page", json!({"type": "string"})),
                    query("limit", "Assignments per page", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}))
                ],
                "responses": ok("200", "Assignments", json!({"type": "object", "properties": {
                    "assignments": {"type": "array", "items": reference("AssignmentStatus")},
                    "next_cursor": {"type": ["string", "null"]}}}), &["400", "401", "403"])}},
            "/v1/assignments/{id}": {
                "parameters": [id_parameter()],
                "put": {"summary": "Set the desired state; idempotent",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": reference("AssignmentSpec")}}},
                    "responses": {
                        "200": {"description": "Unchanged", "content": {"application/json": {"schema": reference("AssignmentStatus")}}},
                        "202": {"description": "New revision accepted", "content": {"application/json": {"schema": reference("AssignmentStatus")}}},
                        "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
                        "403": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"},
                        "413": {"$ref": "#/components/responses/Error"}, "415": {"$ref": "#/components/responses/Error"},
                        "422": {"$ref": "#/components/responses/Error"}, "502": {"$ref": "#/components/responses/Error"}}},
                "get": {"summary": "Status of one assignment",
                    "responses": ok("200", "Status", reference("AssignmentStatus"), &assignment_errors)},
                "delete": {"summary": "Withdraw the container from every target",
                    "responses": ok("202", "Removal started", reference("AssignmentStatus"), &assignment_errors)}
            },
            "/v1/assignments/{id}/machines": {"get": {"summary": "Per-machine state of an assignment",
                "parameters": [id_parameter(),
                    query("state", "Only machines in this state", json!({"enum": ["applied", "pending", "deferred", "failed", "excluded"]})),
                    query("cursor", "next_cursor of the previous page", json!({"type": "string"})),
                    query("limit", "Machines per page", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}))],
                "responses": ok("200", "Machines", json!({"type": "object", "properties": {
                    "machines": {"type": "array", "items": reference("MachinePlacement")},
                    "next_cursor": {"type": ["string", "null"]}}}), &assignment_errors)}},
            "/v1/assignments/{id}/rollback": {"post": {"summary": "Roll back to the previous (or a named) version",
                "description": ROLLBACK_RULE,
                "parameters": [id_parameter()],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false,
                    "properties": {"to_version": {"type": "string"}}}}}},
                "responses": ok("202", "Rollback started", rollback_status(), &["400", "401", "403", "404", "409", "422"])}},
            "/v1/assignments/{id}/pause": {"post": {"summary": "Pause a rollout", "parameters": [id_parameter()],
                "responses": ok("202", "Paused", reference("AssignmentStatus"), &["401", "403", "404", "409"])}},
            "/v1/assignments/{id}/resume": {"post": {"summary": "Resume a paused rollout", "parameters": [id_parameter()],
                "responses": ok("202", "Resumed", reference("AssignmentStatus"), &["401", "403", "404", "409"])}},
            "/v1/assignments/{id}/freeze-override": {"post": {"summary": "Let the current revision roll out during a named change freeze (admin; audited)",
                "parameters": [id_parameter()],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false,
                    "required": ["freeze", "reason"], "properties": {"freeze": {"type": "string"}, "reason": {"type": "string"}}}}}},
                "responses": ok("202", "Override recorded", reference("AssignmentStatus"), &["400", "401", "403", "404", "422"])}},
            "/v1/plan": {"post": {"summary": "Dry run: machines affected and excluded, broker requests and duration; writes nothing",
                "description": "withdrawn_targets lists the targets of the existing assignment (and of earlier revisions not yet withdrawn) that the body no longer names. A PUT with this body makes the engine withdraw the container from them: it removes the container from their machines and unpublishes it.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": plan_request()}}},
                "responses": ok("200", "Plan", reference("Plan"), &["400", "401", "403", "413", "415", "422", "502"])}},
            "/v1/promote": {"post": {"summary": "Give a container's assignments in one environment the version another environment runs",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false,
                    "required": ["container", "from", "to"], "properties": {"container": {"type": "string"}, "from": {"type": "string"},
                    "to": {"type": "string"}, "force": {"type": "boolean", "default": false}}}}}},
                "responses": ok("202", "Promoted", json!({"type": "object", "properties": {"source": {"type": "string"}, "version": {"type": "string"},
                    "assignments": {"type": "array", "items": reference("AssignmentStatus")}}}), &["400", "401", "403", "404", "409"])}},
            "/v1/environments/{environment}/rollback": {"post": {"summary": "Roll back every assignment of a container in an environment",
                "description": "Chooses each assignment's version as POST /v1/assignments/{id}/rollback does. When any assignment has no such version, the response is 409 and nothing is rolled back.",
                "parameters": [{"name": "environment", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false,
                    "required": ["container"], "properties": {"container": {"type": "string"}, "to_version": {"type": "string"}}}}}},
                "responses": ok("202", "Rollback started", json!({"type": "object", "properties": {
                    "assignments": {"type": "array", "items": rollback_status()}}}), &["400", "401", "403", "404", "409"])}},
            "/v1/agent/desired": {"get": {"summary": "An agent's desired containers (agent token); 304 while the ETag matches",
                "security": [{"agent": []}],
                "description": "The first poll of an unknown machine id registers the machine, with no labels and unknown sessions.",
                "parameters": [{"name": "machine", "in": "query", "required": true, "schema": machine_id()},
                               {"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "Desired containers", "content": {"application/json": {"schema": reference("AgentDesired")}}},
                              "304": {"description": "Unchanged"}, "400": {"$ref": "#/components/responses/Error"},
                              "401": {"$ref": "#/components/responses/Error"}}}},
            "/v1/agent/report": {"post": {"summary": "An agent reports what it installed and its machine's user sessions (agent token)",
                "security": [{"agent": []}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": reference("AgentReport")}}},
                "description": "The gateway checks the whole report before it stores any of it, then stores the container results and the check-in in one transaction. A 400 therefore means nothing of the report was recorded.",
                "responses": {"204": {"description": "Recorded"}, "400": {"$ref": "#/components/responses/Error"},
                              "401": {"$ref": "#/components/responses/Error"}}}},
            "/v1/events": {"get": {"summary": "State changes as Server-Sent Events; resumable with Last-Event-ID",
                "parameters": [query("since", "Send events after this id", json!({"type": "integer"})),
                               query("assignment", "Only this assignment", json!({"type": "string"}))],
                "responses": {"200": {"description": "Event stream", "content": {"text/event-stream": {"schema": reference("Event")}}}}}},
            "/v1/audit": {"get": {"summary": "Broker writes, append-only; CSV with Accept: text/csv",
                "parameters": [query("since", "RFC 3339, inclusive", json!({"type": "string", "format": "date-time"})),
                               query("until", "RFC 3339, exclusive", json!({"type": "string", "format": "date-time"})),
                               query("assignment", "Only this assignment", json!({"type": "string"})),
                               query("limit", "Records at most", json!({"type": "integer", "minimum": 1, "maximum": 100000}))],
                "responses": {"200": {"description": "Records", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {"records": {"type": "array", "items": reference("AuditRecord")}}}},
                    "text/csv": {}}}}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "agent": {"type": "http", "scheme": "bearer", "description": "A provider's agent token"}},
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": reference("Error")}}}},
            "schemas": schemas()
        }
    })
}

fn schemas() -> Value {
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"enum": ["invalid_request", "unauthorized", "forbidden", "not_found", "conflict", "payload_too_large",
                              "unsupported_media_type", "provider_unavailable", "rate_limited", "internal"]},
            "message": {"type": "string"}, "details": {"type": "object"}}}}},
        "Launch": {"type": "object", "additionalProperties": false, "required": ["executable"], "properties": {
            "executable": {"type": "string"}, "arguments": {"type": "string"}, "working_directory": {"type": "string"}}},
        "Container": {"type": "object", "additionalProperties": false, "required": ["id", "version", "launch"], "properties": {
            "id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
            "version": {"type": "string", "pattern": "^[A-Za-z0-9._+-]{1,64}$"},
            "display_name": {"type": "string"}, "launch": reference("Launch")}},
        "TargetRef": {"type": "object", "additionalProperties": false, "required": ["provider", "target"], "properties": {
            "provider": {"type": "string"}, "target": {"type": "string", "description": "Target id or name"}}},
        "Rollout": {"type": "object", "additionalProperties": false, "properties": {
            "waves": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 100}, "default": [100]},
            "max_failure_percent": {"type": "number", "minimum": 0, "maximum": 100, "default": 0},
            "pause_seconds": {"type": "integer", "minimum": 0, "default": 0},
            "auto_rollback": {"type": "boolean", "default": false}}},
        "Window": {"type": "object", "additionalProperties": false, "required": ["timezone", "allow"], "properties": {
            "timezone": {"type": "string"},
            "allow": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["days", "start", "end"], "properties": {
                "days": {"type": "array", "items": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}},
                "start": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                "end": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"}}}}}},
        "Activation": {"enum": ["next_logon", "when_idle", "immediate"], "default": "when_idle"},
        "AssignmentSpec": {"type": "object", "additionalProperties": false, "required": ["container", "targets"], "properties": {
            "container": reference("Container"), "targets": {"type": "array", "minItems": 1, "items": reference("TargetRef")},
            "activation": reference("Activation"), "rollout": reference("Rollout"), "window": reference("Window")}},
        "AssignmentState": {"enum": ["pending", "waiting_for_window", "rolling_out", "paused", "converged", "failed",
                                     "rolling_back", "rolled_back", "removing", "removed"]},
        "Progress": {"type": "object", "properties": {
            "total": {"type": "integer"}, "applied": {"type": "integer"}, "pending": {"type": "integer"},
            "deferred": {"type": "integer"}, "failed": {"type": "integer"}, "excluded": {"type": "integer"}}},
        "AssignmentStatus": {"type": "object", "properties": {
            "id": {"type": "string"}, "revision": {"type": "integer"}, "container": reference("Container"),
            "targets": {"type": "array", "items": reference("TargetRef")}, "activation": reference("Activation"),
            "rollout": reference("Rollout"), "window": {"oneOf": [reference("Window"), {"type": "null"}]},
            "state": reference("AssignmentState"), "detail": {"type": "string"},
            "previous_versions": {"type": "array", "items": {"type": "string"}},
            "progress": reference("Progress"),
            "per_target": {"type": "array", "items": {"type": "object", "properties": {
                "provider": {"type": "string"}, "target": {"type": "string"}, "target_id": {"type": ["string", "null"]},
                "total": {"type": "integer"}, "applied": {"type": "integer"}, "pending": {"type": "integer"},
                "deferred": {"type": "integer"}, "failed": {"type": "integer"}, "excluded": {"type": "integer"},
                "published_versions": {"type": "array", "items": {"type": "string"}}, "detail": {"type": "string"}}}},
            "current_wave": {"type": "integer", "description": "Index of the current wave in rollout.waves, from 0. A rollback runs as one wave, index 0."},
            "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"}}},
        "MachinePlacement": {"type": "object", "properties": {
            "provider": {"type": "string"}, "target": {"type": "string"}, "machine": {"type": "string"}, "name": {"type": "string"},
            "state": {"enum": ["applied", "pending", "deferred", "failed", "excluded"]},
            "version": {"type": "string"}, "desired_version": {"type": "string"}, "detail": {"type": "string"},
            "updated_at": {"type": "string", "format": "date-time"}}},
        "Provider": {"type": "object", "properties": {
            "name": {"type": "string"}, "kind": {"type": "string"}, "environment": {"type": "string"},
            "source": {"enum": ["builtin", "plugin"]},
            "health": {"type": "object", "properties": {"status": {"enum": ["ok", "degraded", "unreachable"]},
                "detail": {"type": "string"}, "checked_at": {"type": ["string", "null"], "format": "date-time"}}},
            "capabilities": {"type": "array", "items": {"type": "string"}}}},
        "Target": {"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"},
            "kind": {"enum": ["delivery_group", "desktop_pool", "farm", "cloud_pc_group", "device_group"]},
            "machine_count": {"type": "integer"}}},
        "Machine": {"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "dns_name": {"type": ["string", "null"]},
            "target": {"type": "string"}, "state": {"type": "string"},
            "sessions": {"type": "array", "items": {"type": "object", "properties": {
                "user": {"type": "string"}, "state": {"enum": ["active", "disconnected"]}}}},
            "containers": {"type": "array", "description": "Gateway container versions on the machine: those the broker shows, and those its agent reported installed",
                "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "version": {"type": "string"}}}}}},
        "Plan": {"type": "object", "properties": {
            "assignment_id": {"type": "string"}, "blocked": {"type": "string"}, "estimated_seconds": {"type": "number"},
            "targets": {"type": "array", "items": {"type": "object", "properties": {
                "provider": {"type": "string"}, "target": {"type": "string"}, "target_id": {"type": "string"},
                "total": {"type": "integer"}, "already_applied": {"type": "integer"},
                "affected": {"type": "array", "items": reference("PlannedMachine")},
                "deferred": {"type": "array", "items": reference("PlannedMachine")},
                "excluded": {"type": "array", "items": reference("PlannedMachine")},
                "requests": {"type": "array", "items": {"type": "object", "properties": {
                    "operation": {"type": "string"}, "method": {"type": "string"}, "path": {"type": "string"},
                    "count": {"type": "integer"}, "note": {"type": "string"}, "batched": {"type": "boolean"}}}},
                "http_requests": {"type": "integer"}, "estimated_seconds": {"type": "number"},
                "requests_per_second": {"type": "number"}, "concurrency": {"type": "integer"},
                "error": {"type": "string"}}}},
            "withdrawn_targets": {"type": "array", "description": "Targets a PUT with this body would withdraw the container from",
                "items": {"type": "object", "properties": {
                "provider": {"type": "string"}, "target": {"type": "string"},
                "machines": {"type": "integer", "description": "Machines of the target the gateway tracks for this assignment"},
                "applied": {"type": "integer", "description": "Machines of the target that have the container"}}}}}},
        "PlannedMachine": {"type": "object", "properties": {
            "machine": {"type": "string"}, "name": {"type": "string"}, "wave": {"type": "integer"}, "reason": {"type": "string"}}},
        "AgentDesired": {"type": "object", "properties": {"machine": {"type": "string"},
            "containers": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "version": {"type": "string"}, "display_name": {"type": ["string", "null"]},
                "launch": reference("Launch"), "activation": reference("Activation")}}}}},
        "AgentReport": {"type": "object", "required": ["machine", "containers"], "properties": {"machine": machine_id(),
            "labels": {"type": ["object", "null"], "maxProperties": MAX_LABELS,
                "description": "Labels of the machine, which device-group rules match on. Leave it out (or send null) to keep the stored labels; send {} to clear them.",
                "propertyNames": {"minLength": 1, "maxLength": MAX_LABEL_KEY_LEN, "pattern": NO_CONTROL_CHARACTERS},
                "additionalProperties": {"type": "string", "maxLength": MAX_LABEL_VALUE_LEN, "pattern": NO_CONTROL_CHARACTERS}},
            "containers": {"type": "array", "maxItems": MAX_CONTAINERS,
                "description": "Results per container; a later report replaces the result of the same container, so a longer list can be split across reports.",
                "items": {"type": "object", "required": ["id", "version", "state"], "properties": {
                "id": {"type": "string"}, "version": {"type": "string"},
                "state": {"enum": ["installed", "failed", "removed"]}, "detail": {"type": "string"}}}},
            "sessions": {"type": ["array", "null"], "maxItems": MAX_SESSIONS,
                "description": "User sessions open on the machine; an empty list means none. Leave it out (or send null) when the agent cannot see them: the Windows 365 and physical providers then hold the machine in when_idle and next_logon rollouts.",
                "items": {"type": "object", "required": ["user", "state"], "properties": {
                    "user": {"type": "string", "minLength": 1, "maxLength": MAX_USER_LEN, "pattern": NO_CONTROL_CHARACTERS},
                    "state": {"enum": ["active", "disconnected"]}}}}}},
        "Event": {"type": "object", "properties": {
            "id": {"type": "integer"}, "time": {"type": "string"}, "assignment": {"type": "string"},
            "kind": {"type": "string"}, "detail": {"type": "object"}}},
        "AuditRecord": {"type": "object", "properties": {
            "time": {"type": "string"}, "actor": {"type": "string"}, "assignment": {"type": "string"},
            "provider": {"type": "string"}, "target": {"type": "string"}, "machine": {"type": "string"},
            "operation": {"type": "string"},
            "request": {"type": "object", "properties": {"method": {"type": "string"}, "path": {"type": "string"}}},
            "result": {"type": "string"}, "broker_request_id": {"type": "string"}}}
    })
}

/// `GET /v1/openapi.json`.
pub async fn document() -> Json<Value> {
    Json(spec())
}
