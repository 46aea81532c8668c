//! Tests that parse command lines and run client commands against a mock gateway.

use clap::{Parser, Subcommand};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const TOKEN: &str = "cli-test-token-0123456789";

/// A command line like the gateway binary's, for parsing tests.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Wrapped,
}

#[derive(Debug, Subcommand)]
enum Wrapped {
    /// A command that talks to no server, like `serve`.
    Local,
    #[command(flatten)]
    Client(ClientCommand),
}

/// Returns the test command line with the client options added, as the binary builds it.
fn command_line() -> clap::Command {
    add_client_options(<Cli as clap::CommandFactory>::command())
}

fn try_parse(args: &[&str]) -> Result<(ClientOptions, ClientCommand), clap::Error> {
    let matches = command_line()
        .try_get_matches_from(std::iter::once("vdi-gateway").chain(args.iter().copied()))?;
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches)?;
    let Wrapped::Client(command) = cli.command else {
        panic!("{args:?} is not a client command");
    };
    Ok((client_options(&matches)?, command))
}

fn parse(args: &[&str]) -> (ClientOptions, ClientCommand) {
    try_parse(args).unwrap_or_else(|err| panic!("{err}"))
}

fn options(server: &MockServer) -> ClientOptions {
    ClientOptions {
        server: Url::parse(&server.uri()).unwrap(),
        token: Some(SecretString::from(TOKEN)),
        token_file: None,
        json: false,
        allow_plain_http: false,
    }
}

fn status_document() -> Value {
    json!({
        "id": "epic-prod", "revision": 3,
        "container": {"id": "epic-hyperspace", "version": "2024.3.1",
                      "display_name": "Epic Hyperspace",
                      "launch": {"executable": "C:\\Player\\player.exe"}},
        "targets": [{"provider": "citrix-prod", "target": "EHR Clinicians"}],
        "activation": "when_idle",
        "rollout": {"waves": [5.0, 25.0, 100.0], "max_failure_percent": 2.0,
                    "pause_seconds": 0, "auto_rollback": true},
        "state": "rolling_out",
        "previous_versions": ["2024.2.0"],
        "progress": {"total": 400, "applied": 370, "pending": 10, "deferred": 8, "failed": 2,
                     "excluded": 10},
        "per_target": [{"provider": "citrix-prod", "target": "EHR Clinicians", "total": 400,
                        "applied": 370, "pending": 10, "deferred": 8, "failed": 2,
                        "excluded": 10}],
        "current_wave": 2,
        "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-01T11:00:00Z"
    })
}

async fn run_args(server: &MockServer, args: &[&str]) -> anyhow::Result<String> {
    let (mut opts, command) = parse(args);
    opts.server = Url::parse(&server.uri()).unwrap();
    opts.token = Some(SecretString::from(TOKEN));
    execute(&opts, command).await
}

/// Mounts the 404 the gateway returns for an assignment that does not exist.
async fn mount_absent(server: &MockServer, id: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/v1/assignments/{id}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {
            "code": "not_found", "message": format!("assignment {id:?} does not exist")}})))
        .mount(server)
        .await;
}

#[tokio::test]
async fn assign_flags_body_and_202() {
    let server = MockServer::start().await;
    let expected = json!({
        "container": {"id": "epic-hyperspace", "version": "2024.3.1",
                      "display_name": "Epic Hyperspace",
                      "launch": {"executable": "C:\\Player\\player.exe",
                                 "arguments": "/launch epic-hyperspace"}},
        "targets": [{"provider": "citrix-prod", "target": "EHR/Clinicians"},
                    {"provider": "citrix-dr", "target": "EHR"}],
        "activation": "next_logon",
        "rollout": {"waves": [5.0, 25.0, 100.0], "max_failure_percent": 2.0,
                    "pause_seconds": 0, "auto_rollback": true}
    });
    Mock::given(method("PUT"))
        .and(path("/v1/assignments/epic-prod"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(&expected))
        .respond_with(ResponseTemplate::new(202).set_body_json(status_document()))
        .expect(1)
        .mount(&server)
        .await;
    mount_absent(&server, "epic-prod").await;

    let output = run_args(
        &server,
        &[
            "assign",
            "epic-prod",
            "--container",
            "epic-hyperspace",
            "--version",
            "2024.3.1",
            "--executable",
            "C:\\Player\\player.exe",
            "--arguments",
            "/launch epic-hyperspace",
            "--display-name",
            "Epic Hyperspace",
            "--target",
            "citrix-prod/EHR/Clinicians",
            "--target",
            "citrix-dr/EHR",
            "--activation",
            "next_logon",
            "--waves",
            "5,25,100",
            "--max-failure-percent",
            "2",
            "--auto-rollback",
        ],
    )
    .await
    .unwrap();

    assert_eq!(output, "accepted (202), revision 3\n");
}

#[tokio::test]
async fn assign_file_unchanged_200() {
    let server = MockServer::start().await;
    let body = json!({
        "container": {"id": "epic-hyperspace", "version": "2024.3.1",
                      "launch": {"executable": "player.exe"}},
        "targets": [{"provider": "citrix-prod", "target": "EHR Clinicians"}],
        "window": {"timezone": "America/Chicago",
                   "allow": [{"days": ["sat"], "start": "01:00", "end": "05:00"}]},
        "future_field": 1
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("assignment.json");
    std::fs::write(&file, body.to_string()).unwrap();
    Mock::given(method("PUT"))
        .and(path("/v1/assignments/epic-prod"))
        .and(body_json(&body))
        .respond_with(ResponseTemplate::new(200).set_body_json(status_document()))
        .expect(1)
        .mount(&server)
        .await;
    // The stored assignment has the same single target, so nothing is dropped.
    Mock::given(method("GET"))
        .and(path("/v1/assignments/epic-prod"))
        .respond_with(ResponseTemplate::new(200).set_body_json(status_document()))
        .expect(1)
        .mount(&server)
        .await;

    let output = run_args(
        &server,
        &["assign", "epic-prod", "--file", file.to_str().unwrap()],
    )
    .await
    .unwrap();

    assert_eq!(output, "unchanged (200)\n");
}

#[test]
fn assign_file_conflicts_with_flags() {
    let result = try_parse(&["assign", "a", "--file", "x.json", "--container", "c"]);
    assert!(result.is_err());
}

#[test]
fn assign_requires_flags_without_file() {
    let result = try_parse(&["assign", "a", "--container", "c"]);
    assert!(result.is_err());
}

#[tokio::test]
async fn assign_rejects_bad_waves() {
    let server = MockServer::start().await;
    let err = run_args(
        &server,
        &[
            "assign",
            "a",
            "--container",
            "c",
            "--version",
            "1",
            "--executable",
            "p",
            "--target",
            "p/t",
            "--waves",
            "50,25",
        ],
    )
    .await
    .unwrap_err();

    assert!(err.to_string().contains("rollout.waves"), "{err}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn assign_rejects_bad_id_locally() {
    let server = MockServer::start().await;
    let err = run_args(&server, &["pause", "../providers"])
        .await
        .unwrap_err();

    assert!(err.to_string().contains("assignment_id"), "{err}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn status_one_assignment() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/assignments/epic-prod"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(status_document()))
        .mount(&server)
        .await;

    let output = run_args(&server, &["status", "epic-prod"]).await.unwrap();

    let expected = "\
assignment  epic-prod
state       rolling_out (wave 3/3)
revision    3
container   epic-hyperspace 2024.3.1 (Epic Hyperspace)
previous    2024.2.0
activation  when_idle
progress    370/400 applied, 10 pending, 8 deferred, 2 failed, 10 excluded
updated     2024-05-01T11:00:00Z

PROVIDER     TARGET          TOTAL  APPLIED  PENDING  DEFERRED  FAILED  EXCLUDED
citrix-prod  EHR Clinicians    400      370       10         8       2        10
";
    assert_eq!(output, expected);
}

#[tokio::test]
async fn status_list_follows_cursor() {
    let server = MockServer::start().await;
    let mut second = status_document();
    second["id"] = json!("office");
    second["state"] = json!("converged");
    Mock::given(method("GET"))
        .and(path("/v1/assignments"))
        .and(query_param("cursor", "page2"))
        .and(query_param("state", "rolling_out"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"assignments": [second], "next_cursor": null})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/assignments"))
        .and(query_param("state", "rolling_out"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"assignments": [status_document()], "next_cursor": "page2"})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let output = run_args(&server, &["status", "--state", "rolling_out"])
        .await
        .unwrap();

    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 3, "{output}");
    assert!(lines[0].starts_with("ID"), "{output}");
    assert!(lines[0].ends_with("FAILED  EXCLUDED"), "{output}");
    assert!(lines[1].ends_with("370/400       2        10"), "{output}");
    assert!(lines[1].starts_with("epic-prod  rolling_out"), "{output}");
    assert!(lines[2].starts_with("office     converged"), "{output}");
}

/// Arguments, HTTP method, path, expected request body, expected output.
type ActionCase = (
    &'static [&'static str],
    &'static str,
    &'static str,
    Option<Value>,
    &'static str,
);

#[tokio::test]
async fn actions_use_their_paths() {
    let cases: &[ActionCase] = &[
        (
            &["rollback", "epic-prod"],
            "POST",
            "/v1/assignments/epic-prod/rollback",
            Some(json!({})),
            "rollback of epic-prod: accepted (202), state rolling_back, from 2024.3.1 to \
             2024.2.0\n",
        ),
        (
            &["rollback", "epic-prod", "--to", "2024.1.0"],
            "POST",
            "/v1/assignments/epic-prod/rollback",
            Some(json!({"to_version": "2024.1.0"})),
            "rollback of epic-prod: accepted (202), state rolling_back, from 2024.3.1 to \
             2024.2.0\n",
        ),
        (
            &["pause", "epic-prod"],
            "POST",
            "/v1/assignments/epic-prod/pause",
            None,
            "pause of epic-prod: accepted (202), state rolling_back\n",
        ),
        (
            &["resume", "epic-prod"],
            "POST",
            "/v1/assignments/epic-prod/resume",
            None,
            "resume of epic-prod: accepted (202), state rolling_back\n",
        ),
        (
            &["remove", "epic-prod"],
            "DELETE",
            "/v1/assignments/epic-prod",
            None,
            "remove of epic-prod: accepted (202), state rolling_back\n",
        ),
    ];
    for (args, verb, route, body, expected) in cases {
        let server = MockServer::start().await;
        let mut reply = status_document();
        reply["state"] = json!("rolling_back");
        reply["rollback"] = json!({"from": "2024.3.1", "to": "2024.2.0"});
        Mock::given(method(*verb))
            .and(path(*route))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(ResponseTemplate::new(202).set_body_json(reply))
            .expect(1)
            .mount(&server)
            .await;

        let output = run_args(&server, args).await.unwrap();
        assert_eq!(&output, expected, "{args:?}");

        let requests = server.received_requests().await.unwrap();
        let sent: Option<Value> = serde_json::from_slice(&requests[0].body).ok();
        assert_eq!(&sent, body, "{args:?}");
    }
}

#[tokio::test]
async fn resume_conflict_is_printed() {
    let server = MockServer::start().await;
    let message = "assignment \"epic-prod\" is converged, not paused; only paused or failed \
                   assignments can be resumed";
    Mock::given(method("POST"))
        .and(path("/v1/assignments/epic-prod/resume"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"error": {
            "code": "conflict", "message": message,
            "details": {"assignment": "epic-prod", "state": "converged"}}})))
        .expect(1)
        .mount(&server)
        .await;

    let err = run_args(&server, &["resume", "epic-prod"])
        .await
        .unwrap_err();

    assert_eq!(format!("{err:#}"), format!("conflict: {message}"));
    let typed = err.downcast_ref::<ClientError>().unwrap();
    assert!(matches!(typed, ClientError::Api { status: 409, .. }));
}

#[tokio::test]
async fn providers_table() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/providers"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"providers": [
                {"name": "citrix-prod", "kind": "citrix", "environment": "prod",
                 "source": "builtin",
                 "health": {"status": "ok", "detail": "", "checked_at": "2024-05-01T10:00:00Z"},
                 "capabilities": ["publish_app", "tag_machines"]},
                {"name": "horizon-east", "kind": "horizon", "environment": "test",
                 "source": "plugin",
                 "health": {"status": "unreachable", "detail": "connect timed out",
                            "checked_at": "2024-05-01T10:00:00Z"},
                 "capabilities": []}
            ]})),
        )
        .mount(&server)
        .await;

    let output = run_args(&server, &["providers"]).await.unwrap();

    let expected = "\
NAME          KIND     ENVIRONMENT  SOURCE   HEALTH                          CAPABILITIES
citrix-prod   citrix   prod         builtin  ok                              publish_app,tag_machines
horizon-east  horizon  test         plugin   unreachable: connect timed out
";
    assert_eq!(output, expected);
}

#[tokio::test]
async fn targets_table() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/providers/citrix-prod/targets"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"targets": [
            {"id": "0f1e", "name": "EHR Clinicians", "kind": "delivery_group",
             "machine_count": 412}
        ]})))
        .mount(&server)
        .await;

    let output = run_args(&server, &["targets", "citrix-prod"])
        .await
        .unwrap();

    let expected = "\
ID    NAME            KIND            MACHINES
0f1e  EHR Clinicians  delivery_group       412
";
    assert_eq!(output, expected);
}

#[tokio::test]
async fn machines_query_and_table() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/providers/citrix-prod/machines"))
        .and(query_param("target", "EHR Clinicians"))
        .and(query_param("limit", "2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"machines": [
            {"id": "m1", "name": "HOSP\\VDA-001", "target": "0f1e", "state": "ready",
             "sessions": [{"user": "HOSP\\nurse1", "state": "active"},
                          {"user": "HOSP\\nurse2", "state": "disconnected"}],
             "containers": [{"id": "epic-hyperspace", "version": "2024.3.1"}]},
            {"id": "m2", "name": "HOSP\\VDA-002", "target": "0f1e",
             "state": {"state": "unknown", "raw": "Resuming"}, "sessions": [],
             "containers": []}
        ], "next_cursor": null})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let output = run_args(
        &server,
        &[
            "machines",
            "citrix-prod",
            "--target",
            "EHR Clinicians",
            "--limit",
            "2",
        ],
    )
    .await
    .unwrap();

    let expected = "\
NAME          ID  STATE               SESSIONS                  CONTAINERS
HOSP\\VDA-001  m1  ready               1 active, 1 disconnected  epic-hyperspace@2024.3.1
HOSP\\VDA-002  m2  unknown (Resuming)  0 active, 0 disconnected  -
";
    assert_eq!(output, expected);
}

#[tokio::test]
async fn json_prints_response_body() {
    let server = MockServer::start().await;
    let body = json!({"providers": [{"name": "citrix-prod", "extra": {"a": 1}}]});
    Mock::given(method("GET"))
        .and(path("/v1/providers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
        .mount(&server)
        .await;
    let mut opts = options(&server);
    opts.json = true;

    let output = execute(&opts, ClientCommand::Providers).await.unwrap();

    let printed: Value = serde_json::from_str(&output).unwrap();
    assert_eq!(printed, body);
}

#[tokio::test]
async fn api_error_is_printed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/assignments/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {
            "code": "not_found", "message": "assignment missing does not exist"}})))
        .mount(&server)
        .await;

    let err = run_args(&server, &["status", "missing"]).await.unwrap_err();

    assert_eq!(
        format!("error: {err:#}"),
        "error: not_found: assignment missing does not exist"
    );
    let typed = err.downcast_ref::<ClientError>().unwrap();
    assert!(matches!(typed, ClientError::Api { status: 404, .. }));
}

#[tokio::test]
async fn unauthorized_hint_without_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/providers"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "code": "unauthorized", "message": "missing bearer token"}})))
        .mount(&server)
        .await;
    let mut opts = options(&server);
    opts.token = None;

    let err = execute(&opts, ClientCommand::Providers).await.unwrap_err();

    let text = err.to_string();
    assert!(
        text.starts_with("unauthorized: missing bearer token"),
        "{text}"
    );
    assert!(text.contains("VDIGW_TOKEN"), "{text}");
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn non_json_error_body() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/providers"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
        .mount(&server)
        .await;

    let err = run_args(&server, &["providers"]).await.unwrap_err();

    let text = err.to_string();
    assert!(
        text.starts_with("HTTP 502 Bad Gateway from http://"),
        "{text}"
    );
    assert!(text.contains("<html>Bad Gateway</html>"), "{text}");
}

#[tokio::test]
async fn connection_refused_message() {
    // Bind and drop a listener so the port is known to be closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let opts = ClientOptions {
        server: Url::parse(&format!("http://{address}")).unwrap(),
        token: Some(SecretString::from(TOKEN)),
        token_file: None,
        json: false,
        allow_plain_http: false,
    };

    let err = execute(&opts, ClientCommand::Providers).await.unwrap_err();

    let text = format!("{err:#}");
    assert!(
        text.starts_with(&format!(
            "cannot reach the gateway at http://{address}/v1/providers"
        )),
        "{text}"
    );
    assert!(text.ends_with("is `vdi-gateway serve` running?"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
}

#[tokio::test]
async fn token_never_printed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/providers"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
            "code": "forbidden", "message": "role viewer cannot do this"}})))
        .mount(&server)
        .await;
    let opts = options(&server);

    let err = execute(&opts, ClientCommand::Providers).await.unwrap_err();

    assert!(!format!("{err:#}").contains(TOKEN));
    assert!(!format!("{err:?}").contains(TOKEN));
    assert!(!format!("{opts:?}").contains(TOKEN));
}

#[tokio::test]
async fn token_file_is_sent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/providers"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"providers": []})))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let mut opts = options(&server);
    opts.token = None;
    opts.token_file = Some(file);

    let output = execute(&opts, ClientCommand::Providers).await.unwrap();

    assert_eq!(output, "no providers\n");
}

#[test]
fn options_after_subcommand() {
    let (opts, command) = parse(&[
        "status",
        "--server",
        "https://gw.example",
        "--json",
        "epic-prod",
    ]);
    assert_eq!(opts.server.as_str(), "https://gw.example/");
    assert!(opts.json);
    assert!(matches!(
        command,
        ClientCommand::Status(StatusArgs { id: Some(_), .. })
    ));

    let (opts, _) = parse(&["status", "epic-prod"]);
    assert!(!opts.json);
    assert_eq!(opts.server.as_str(), "http://127.0.0.1:8080/");
}

#[test]
fn options_only_on_client_commands() {
    let command = command_line();
    let has_arg = |path: &[&str], id: &str| {
        let mut current = &command;
        for name in path {
            current = current.find_subcommand(name).unwrap();
        }
        current.get_arguments().any(|arg| arg.get_id() == id)
    };

    for id in ["server", "token", "token_file", "allow_plain_http"] {
        assert!(!has_arg(&[], id), "top level has --{id}");
        assert!(!has_arg(&["local"], id), "local command has --{id}");
        assert!(has_arg(&["status"], id), "status lacks --{id}");
        assert!(
            has_arg(&["audit", "export"], id),
            "audit export lacks --{id}"
        );
    }
    assert!(has_arg(&["providers"], "json"));
    assert!(!has_arg(&[], "json"));
    let export_json = command
        .find_subcommand("audit")
        .and_then(|audit| audit.find_subcommand("export"))
        .and_then(|export| export.get_arguments().find(|arg| arg.get_id() == "json"));
    assert!(
        export_json.is_none_or(clap::Arg::is_hide_set),
        "audit export shows --json next to --format"
    );
}

#[test]
fn options_before_subcommand_rejected() {
    let err = try_parse(&["--server", "https://gw.example", "status"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
}

#[test]
fn help_hides_token_value() {
    let command = command_line();
    let token = command
        .find_subcommand("providers")
        .unwrap()
        .get_arguments()
        .find(|arg| arg.get_id() == "token")
        .unwrap();
    assert!(token.is_hide_env_values_set());
}

#[test]
fn subcommand_keeps_description() {
    let mut command = command_line();
    let help = command
        .find_subcommand_mut("providers")
        .unwrap()
        .render_help()
        .to_string();
    assert!(
        help.starts_with("List configured providers with their health and capabilities"),
        "{help}"
    );
}

#[tokio::test]
async fn audit_export_rejects_json_flag() {
    let server = MockServer::start().await;

    let err = run_args(&server, &["audit", "export", "--json"])
        .await
        .unwrap_err();

    assert!(err.to_string().contains("--format json"), "{err}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// Returns the assignment status document of `epic-prod` on two targets, 400 and 40 machines.
fn two_target_document() -> Value {
    let mut document = status_document();
    document["targets"] = json!([
        {"provider": "citrix-prod", "target": "EHR Clinicians"},
        {"provider": "citrix-prod", "target": "ICU"}
    ]);
    document["per_target"] = json!([
        {"provider": "citrix-prod", "target": "EHR Clinicians", "total": 400, "applied": 400},
        {"provider": "citrix-prod", "target": "ICU", "total": 40, "applied": 40}
    ]);
    document
}

const NARROW_ASSIGN: &[&str] = &[
    "assign",
    "epic-prod",
    "--container",
    "epic-hyperspace",
    "--version",
    "2024.4.0",
    "--executable",
    "C:\\Player\\player.exe",
    "--target",
    "citrix-prod/EHR Clinicians",
];

#[tokio::test]
async fn assign_rejects_dropped_targets() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/assignments/epic-prod"))
        .respond_with(ResponseTemplate::new(200).set_body_json(two_target_document()))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(202).set_body_json(status_document()))
        .expect(0)
        .mount(&server)
        .await;

    let err = run_args(&server, NARROW_ASSIGN)
        .await
        .unwrap_err()
        .to_string();

    assert!(err.contains("citrix-prod/ICU (40 machines)"), "{err}");
    assert!(!err.contains("EHR Clinicians"), "{err}");
    assert!(err.contains("--withdraw-dropped"), "{err}");
}

#[tokio::test]
async fn assign_withdraw_dropped_sends_put() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(two_target_document()))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v1/assignments/epic-prod"))
        .respond_with(ResponseTemplate::new(202).set_body_json(status_document()))
        .expect(1)
        .mount(&server)
        .await;
    let mut args = NARROW_ASSIGN.to_vec();
    args.push("--withdraw-dropped");

    let output = run_args(&server, &args).await.unwrap();

    assert_eq!(output, "accepted (202), revision 3\n");
}

#[tokio::test]
async fn assign_lookup_failure_stops() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/assignments/epic-prod"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"error": {
            "code": "provider_unavailable", "message": "not ready"}})))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(202).set_body_json(status_document()))
        .expect(0)
        .mount(&server)
        .await;

    let err = run_args(&server, NARROW_ASSIGN).await.unwrap_err();

    let typed = err.downcast_ref::<ClientError>().unwrap();
    assert!(
        matches!(typed, ClientError::Api { status: 503, .. }),
        "{err}"
    );
}

#[test]
fn rollback_versions_cases() {
    let cases = [
        (
            json!({"rollback": {"from": "2.0", "to": "1.0"}, "container": {"version": "1.0"}}),
            ", from 2.0 to 1.0",
        ),
        (json!({"container": {"version": "1.0"}}), ", to 1.0"),
        (json!({"state": "rolling_back"}), ""),
    ];
    for (body, expected) in cases {
        assert_eq!(format::rollback_versions(&body), expected, "{body}");
    }
}

#[tokio::test]
async fn rollback_environment_prints_versions() {
    let server = MockServer::start().await;
    let mut document = status_document();
    document["rollback"] = json!({"from": "2024.3.1", "to": "2024.2.0"});
    Mock::given(method("POST"))
        .and(path("/v1/environments/prod/rollback"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"assignments": [document]})))
        .expect(1)
        .mount(&server)
        .await;

    let output = run_args(
        &server,
        &[
            "rollback-environment",
            "prod",
            "--container",
            "epic-hyperspace",
        ],
    )
    .await
    .unwrap();

    assert_eq!(
        output,
        "rolling back epic-hyperspace in prod\n  epic-prod: revision 3, from 2024.3.1 to 2024.2.0\n"
    );
}

#[test]
fn plan_lists_withdrawn_targets() {
    let plan = json!({
        "assignment_id": "epic-prod", "targets": [], "estimated_seconds": 0.0,
        "withdrawn_targets": [
            {"provider": "citrix-prod", "target": "ICU", "machines": 40, "applied": 38}
        ]
    });

    let text = safety::format_plan(&plan);

    assert!(
        text.contains("would withdraw the container from 1 target(s)"),
        "{text}"
    );
    assert!(
        text.contains("  citrix-prod/ICU: 40 machines, 38 with the container\n"),
        "{text}"
    );
}
