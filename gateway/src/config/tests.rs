//! Tests that load whole configuration files and check the result or the problems.

use super::*;

const OPERATOR_TOKEN: &str = "operator-token-0123456789abcdef";
const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef";
const CLIENT_SECRET: &str = "citrix-client-secret-value";

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "gateway.toml", text);
    load_with_env(Some(&path), &env(vars))
}

/// Loads `text` and returns the problems, failing the test when it loads.
fn problems(text: &str, vars: &[(&str, &str)]) -> Vec<Problem> {
    match load_text(text, vars) {
        Err(ConfigError::Invalid(problems)) => problems,
        Err(other) => panic!("expected validation problems, got {other}"),
        Ok(config) => panic!("expected validation problems, got {config:?}"),
    }
}

fn assert_problem(text: &str, vars: &[(&str, &str)], key: &str, fragment: &str) {
    let found = problems(text, vars);
    assert!(
        found
            .iter()
            .any(|p| p.key == key && p.message.contains(fragment)),
        "no problem on {key} containing {fragment:?}; got {found:?}"
    );
}

const OPERATOR: &str = "[[tokens]]\nname = \"ci\"\nrole = \"operator\"\ntoken_env = \"OP\"\n";

#[test]
fn defaults_without_file() {
    let config = load_with_env(None, &HashMap::new()).unwrap();
    let defaults = GatewayConfig::embedded_defaults();

    assert_eq!(config.server.bind, defaults.server.bind);
    assert_eq!(config.server.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(config.server.body_limit_bytes, 1_048_576);
    assert!(config.server.metrics_token.is_none());
    assert_eq!(
        config.store.url.expose_secret(),
        "sqlite://vdi-gateway.db?mode=rwc"
    );
    assert_eq!(config.store.max_connections, 10);
    assert_eq!(config.log, defaults.log);
    assert_eq!(config.log.format, LogFormat::Human);
    assert_eq!(config.log.level, "info");
    assert_eq!(config.engine, defaults.engine);
    assert_eq!(config.engine.reconcile_interval_seconds, 5);
    assert_eq!(config.engine.deferred_recheck_seconds, 15);
    assert_eq!(config.engine.lease_seconds, 30);
    assert_eq!(config.engine.max_parallel_targets, 8);
    assert!(config.tokens.is_empty());
    assert!(config.providers.is_empty());
    assert_eq!(config.warnings, defaults.warnings);
}

#[test]
fn file_then_env_override() {
    let text = "[server]\nbind = \"0.0.0.0:8080\"\nbody_limit_bytes = 2048\n\
                [log]\nformat = \"json\"\n[engine]\nlease_seconds = 60\n";
    let vars = [
        ("VDIGW__SERVER__BIND", "127.0.0.1:9000"),
        ("VDIGW__LOG__LEVEL", "debug"),
        ("VDIGW__ENGINE__MAX_PARALLEL_TARGETS", "3"),
        // Client variables share the prefix but not the separator, so they are ignored.
        ("VDIGW_SERVER", "http://127.0.0.1:8080"),
    ];
    let config = load_text(text, &vars).unwrap();

    assert_eq!(config.server.bind.to_string(), "127.0.0.1:9000");
    assert_eq!(config.server.body_limit_bytes, 2048);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.level, "debug");
    assert_eq!(config.engine.lease_seconds, 60);
    assert_eq!(config.engine.max_parallel_targets, 3);
    assert_eq!(config.engine.reconcile_interval_seconds, 5);
}

#[test]
fn unknown_key_is_rejected() {
    let err = load_text("[server]\nbnd = \"127.0.0.1:1\"\n", &[]).unwrap_err();
    assert!(matches!(err, ConfigError::UnknownKeys { .. }));
    assert!(err.to_string().contains("bnd"), "{err}");
}

/// Loads `text` and returns the unknown keys, failing the test otherwise.
fn unknown_keys(text: &str, vars: &[(&str, &str)]) -> (PathBuf, Vec<UnknownKey>) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "gateway.toml", text);
    match load_with_env(Some(&path), &env(vars)) {
        Err(ConfigError::UnknownKeys { keys, .. }) => (path, keys),
        Err(other) => panic!("expected unknown keys, got {other}"),
        Ok(config) => panic!("expected unknown keys, got {config:?}"),
    }
}

#[test]
fn unknown_keys_all_reported() {
    let text = "\
[server]
bind = \"127.0.0.1:8080\"
bnd = \"127.0.0.1:1\"

[stor]
url = \"sqlite://x\"

[[tokens]]
name = \"ci\"
role = \"operator\"
tokne_env = \"OP\"

[[providers]]
name = \"citrix-prod\"
kind = \"citrix\"
enviroment = \"prod\"
[providers.settings]
any_key = 1

[[providers]]
name = \"horizon\"
kind = \"horizon\"
colour = \"blue\"

[[plugins.libraries]]
file = \"libx.so\"
isolaton = \"process\"
";
    let (path, keys) = unknown_keys(text, &[]);
    let file = path.display();

    let found: Vec<(&str, &str, Option<&str>)> = keys
        .iter()
        .map(|k| (k.key.as_str(), k.location.as_str(), k.suggestion.as_deref()))
        .collect();
    let expected = [
        ("server.bnd", format!("{file}:3"), Some("bind")),
        ("stor", format!("{file}:5"), Some("store")),
        (
            "tokens[\"ci\"].tokne_env",
            format!("{file}:11"),
            Some("token_env"),
        ),
        (
            "providers[\"citrix-prod\"].enviroment",
            format!("{file}:16"),
            Some("environment"),
        ),
        ("providers[\"horizon\"].colour", format!("{file}:23"), None),
        (
            "plugins.libraries[0].isolaton",
            format!("{file}:27"),
            Some("isolation"),
        ),
    ];
    assert_eq!(found.len(), expected.len(), "{keys:#?}");
    for ((key, location, suggestion), (want_key, want_location, want_suggestion)) in
        found.iter().zip(&expected)
    {
        assert_eq!(key, want_key);
        assert_eq!(location, want_location, "{key}");
        assert_eq!(suggestion, want_suggestion, "{key}");
    }
}

#[test]
fn unknown_key_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "gateway.toml", "[server]\nbnd = \"x\"\n");
    let err = anyhow::Error::from(load_with_env(Some(&path), &HashMap::new()).unwrap_err());

    let text = format!("{err:#}");

    assert_eq!(text.matches("bnd").count(), 1, "{text}");
    assert!(
        text.contains(&format!(
            "{}:2: unknown key server.bnd; did you mean bind?",
            path.display()
        )),
        "{text}"
    );
}

#[test]
fn unknown_key_lists_known_keys() {
    let (_, keys) = unknown_keys("[engine]\nturbo = true\n", &[]);

    assert_eq!(keys.len(), 1);
    let message = keys[0].to_string();
    assert!(message.ends_with("unknown key engine.turbo; known keys here: deferred_recheck_seconds, lease_seconds, max_parallel_targets, reconcile_interval_seconds"), "{message}");
}

#[test]
fn unknown_env_override_is_rejected() {
    let err = load_with_env(None, &env(&[("VDIGW__SERVER__PORT", "1")])).unwrap_err();
    let ConfigError::UnknownKeys { keys, .. } = &err else {
        panic!("expected unknown keys, got {err}");
    };
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key, "server.port");
    assert_eq!(keys[0].location, "environment variable VDIGW__SERVER__PORT");
}

#[test]
fn unknown_env_table_names_variable() {
    let (_, keys) = unknown_keys(
        "[server]\nbind = \"127.0.0.1:8080\"\n",
        &[("VDIGW__LOGG__LEVEL", "debug")],
    );

    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].key, "logg");
    assert_eq!(keys[0].location, "environment variable VDIGW__LOGG__LEVEL");
    assert_eq!(keys[0].suggestion.as_deref(), Some("log"));
}

#[test]
fn missing_file_is_rejected() {
    let err = load_with_env(
        Some(Path::new("/nonexistent/gateway.toml")),
        &HashMap::new(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
}

#[test]
fn token_from_env() {
    let config = load_text(OPERATOR, &[("OP", OPERATOR_TOKEN)]).unwrap();

    assert_eq!(config.tokens.len(), 1);
    assert_eq!(config.tokens[0].name, "ci");
    assert_eq!(config.tokens[0].role, Role::Operator);
    assert_eq!(config.tokens[0].token.expose_secret(), OPERATOR_TOKEN);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn token_from_file_trims_newline() {
    let dir = tempfile::tempdir().unwrap();
    let token_path = write(dir.path(), "viewer.token", &format!("{VIEWER_TOKEN}\r\n"));
    let text = format!(
        "[[tokens]]\nname = \"dash\"\nrole = \"viewer\"\ntoken_file = {:?}\n",
        token_path.to_str().unwrap()
    );
    let config = load_text(&text, &[]).unwrap();

    assert_eq!(config.tokens[0].token.expose_secret(), VIEWER_TOKEN);
    assert_eq!(config.tokens[0].role, Role::Viewer);
}

#[test]
fn inline_token_warns() {
    let text =
        format!("[[tokens]]\nname = \"root\"\nrole = \"admin\"\ntoken = \"{OPERATOR_TOKEN}\"\n");
    let config = load_text(&text, &[]).unwrap();

    assert_eq!(config.tokens[0].role, Role::Admin);
    assert_eq!(config.warnings.len(), 1);
    assert!(config.warnings[0].contains("token_env"));
}

#[test]
fn settings_secret_from_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = write(dir.path(), "password", "p@ss word\n");
    let text = format!(
        "[[providers]]\nname = \"citrix-prod\"\nkind = \"citrix\"\n\
         [providers.settings]\nclient_secret_env = \"CTX_SECRET\"\nconcurrency = 4\n\
         [providers.settings.nested]\npassword_file = {:?}\n",
        secret_path.to_str().unwrap()
    );
    let config = load_text(&text, &[("CTX_SECRET", CLIENT_SECRET)]).unwrap();
    let settings = &config.providers[0].settings;

    assert_eq!(settings["client_secret"], CLIENT_SECRET);
    assert!(settings.get("client_secret_env").is_none());
    assert_eq!(settings["concurrency"], 4);
    assert_eq!(settings["nested"]["password"], "p@ss word");
    assert_eq!(config.providers[0].environment, "prod");
    assert!(config.providers[0].enabled);
}

#[test]
fn disabled_provider_skips_secrets() {
    let text = "[[providers]]\nname = \"citrix-dr\"\nkind = \"citrix\"\nenabled = false\n\
                [providers.settings]\nclient_secret_env = \"NOT_SET\"\n";
    let config = load_text(text, &[]).unwrap();

    assert!(!config.providers[0].enabled);
    assert_eq!(config.providers[0].settings["client_secret_env"], "NOT_SET");
}

#[test]
fn agent_token_from_env() {
    let text = "[[providers]]\nname = \"agents\"\nkind = \"agent\"\n\
                agent_token_env = \"AGENT\"\n";
    let config = load_text(text, &[("AGENT", "agent-secret-value")]).unwrap();
    let token = config.providers[0].agent_token.as_ref().unwrap();

    assert_eq!(token.expose_secret(), "agent-secret-value");
}

#[test]
fn debug_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let viewer_path = write(dir.path(), "viewer.token", VIEWER_TOKEN);
    let text = format!(
        "[server]\nmetrics_token_env = \"METRICS\"\n\
         [store]\nurl_env = \"DB\"\n\
         {OPERATOR}\
         [[tokens]]\nname = \"dash\"\nrole = \"viewer\"\ntoken_file = {:?}\n\
         [[providers]]\nname = \"citrix-prod\"\nkind = \"citrix\"\n\
         agent_token_env = \"AGENT\"\n\
         [providers.settings]\nclient_secret_env = \"CTX_SECRET\"\n",
        viewer_path.to_str().unwrap()
    );
    let vars = [
        ("OP", OPERATOR_TOKEN),
        ("METRICS", "metrics-secret-value"),
        ("DB", "postgres://gw:db-password-value@db.example.org/gw"),
        ("AGENT", "agent-secret-value"),
        ("CTX_SECRET", CLIENT_SECRET),
    ];
    let config = load_text(&text, &vars).unwrap();
    let debug = format!("{config:?}");
    let pretty = format!("{config:#?}");

    for secret in [
        OPERATOR_TOKEN,
        VIEWER_TOKEN,
        "metrics-secret-value",
        "db-password-value",
        "agent-secret-value",
        CLIENT_SECRET,
    ] {
        assert!(!debug.contains(secret), "{{:?}} shows {secret}: {debug}");
        assert!(!pretty.contains(secret), "{{:#?}} shows {secret}");
    }
    assert!(debug.contains("citrix-prod"));
    assert!(debug.contains("db.example.org"));
}

/// Configuration text, environment, key of the expected problem, part of its message.
type ValidationCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
);

#[test]
fn validation_messages() {
    let cases: &[ValidationCase] = &[
        (
            "[server]\nbind = \"localhost:8080\"\n",
            &[],
            "server.bind",
            "use IP:PORT",
        ),
        (
            "[server]\nbody_limit_bytes = 0\n",
            &[],
            "server.body_limit_bytes",
            "use a positive size",
        ),
        (
            "[log]\nformat = \"xml\"\n",
            &[],
            "log.format",
            "use \"human\" or \"json\"",
        ),
        (
            "[log]\nlevel = \"info,[\"\n",
            &[],
            "log.level",
            "not a valid filter directive",
        ),
        (
            "[store]\nurl = \"mysql://db/gw\"\n",
            &[],
            "store.url",
            "not a supported database URL",
        ),
        (
            "[store]\nmax_connections = 0\n",
            &[],
            "store.max_connections",
            "use at least 1",
        ),
        (
            "[engine]\nlease_seconds = 5\n",
            &[],
            "engine.lease_seconds",
            "must be longer than engine.reconcile_interval_seconds",
        ),
        (
            "[engine]\nmax_parallel_targets = 0\n",
            &[],
            "engine.max_parallel_targets",
            "is 0",
        ),
        (
            "[[tokens]]\nname = \"ci\"\nrole = \"root\"\ntoken_env = \"OP\"\n",
            &[("OP", OPERATOR_TOKEN)],
            "tokens[\"ci\"].role",
            "use \"viewer\", \"operator\" or \"admin\"",
        ),
        (
            "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\n",
            &[],
            "tokens[\"ci\"].token_env",
            "set exactly one of token_env, token_file or token",
        ),
        (
            "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\ntoken_env = \"OP\"\n\
             token = \"0123456789abcdef0123\"\n",
            &[("OP", OPERATOR_TOKEN)],
            "tokens[\"ci\"].token",
            "is given 2 ways (token, token_env); keep exactly one",
        ),
        (
            "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\ntoken_env = \"OP\"\n",
            &[],
            "tokens[\"ci\"].token_env",
            "environment variable OP is not set",
        ),
        (
            "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\n\
             token_file = \"/nonexistent/ci.token\"\n",
            &[],
            "tokens[\"ci\"].token_file",
            "cannot read file /nonexistent/ci.token",
        ),
        (
            "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\ntoken_env = \"OP\"\n",
            &[("OP", "short")],
            "tokens[\"ci\"].token",
            "use at least 16 random characters",
        ),
        (
            "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\ntoken_env = \"OP\"\n\
             [[tokens]]\nname = \"ci\"\nrole = \"admin\"\ntoken_env = \"VIEW\"\n",
            &[("OP", OPERATOR_TOKEN), ("VIEW", VIEWER_TOKEN)],
            "tokens[\"ci\"].name",
            "is used by another token",
        ),
        (
            "[[tokens]]\nname = \"a\"\nrole = \"viewer\"\ntoken_env = \"OP\"\n\
             [[tokens]]\nname = \"b\"\nrole = \"admin\"\ntoken_env = \"OP\"\n",
            &[("OP", OPERATOR_TOKEN)],
            "tokens[\"b\"].token",
            "has the same value as token \"a\"",
        ),
        (
            "[[providers]]\nname = \"Citrix_Prod\"\nkind = \"citrix\"\n",
            &[],
            "providers[\"Citrix_Prod\"].name",
            "lowercase letters, digits and '-'",
        ),
        (
            "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n\
             [[providers]]\nname = \"c\"\nkind = \"citrix\"\n",
            &[],
            "providers[\"c\"].name",
            "is used by another provider",
        ),
        (
            "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n[providers.settings]\n\
             api_base_url = \"http://ddc.hospital.example/cvad/manage/\"\n",
            &[],
            "providers[\"c\"].settings.api_base_url",
            "plain http is allowed only for loopback addresses; use https",
        ),
        (
            "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n[providers.settings]\n\
             token_url = \"ftp://127.0.0.1/\"\n",
            &[],
            "providers[\"c\"].settings.token_url",
            "use https",
        ),
        (
            "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n[providers.settings]\n\
             client_secret_env = \"CTX_SECRET\"\n",
            &[],
            "providers[\"c\"].settings.client_secret_env",
            "environment variable CTX_SECRET is not set",
        ),
        (
            "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n[providers.settings]\n\
             password_file = \"/nonexistent/password\"\n",
            &[],
            "providers[\"c\"].settings.password_file",
            "cannot read file /nonexistent/password",
        ),
        (
            "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n[providers.settings]\n\
             client_secret = \"x\"\nclient_secret_env = \"CTX_SECRET\"\n",
            &[("CTX_SECRET", CLIENT_SECRET)],
            "providers[\"c\"].settings.client_secret_env",
            "client_secret is given more than one way",
        ),
        (
            "[[providers]]\nname = \"c\"\nkind = \"citrix\"\n\
             agent_token_env = \"A\"\nagent_token_file = \"/tmp/a\"\n",
            &[("A", "agent-secret-value")],
            "providers[\"c\"].agent_token",
            "keep exactly one",
        ),
    ];
    for (text, vars, key, fragment) in cases {
        assert_problem(text, vars, key, fragment);
    }
}

#[test]
fn problems_are_all_reported() {
    let found = problems(
        "[server]\nbody_limit_bytes = 0\n[log]\nformat = \"xml\"\n",
        &[],
    );
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn secret_error_hides_value() {
    let err = load_text(
        "[[tokens]]\nname = \"ci\"\nrole = \"viewer\"\ntoken_env = \"OP\"\n",
        &[("OP", "tiny-secret")],
    )
    .unwrap_err();
    assert!(!err.to_string().contains("tiny-secret"), "{err}");
}

#[test]
fn role_order() {
    assert!(Role::Admin.allows(Role::Operator));
    assert!(Role::Operator.allows(Role::Viewer));
    assert!(!Role::Viewer.allows(Role::Operator));
    assert!(!Role::Operator.allows(Role::Admin));
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;

    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

/// Loads an example file after pointing its secret files into a temporary directory.
fn load_example(name: &str, vars: &[(&str, &str)]) -> GatewayConfig {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples")
        .join(name);
    let text = std::fs::read_to_string(&source).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    for file in [
        "operator.token",
        "viewer.token",
        "metrics.token",
        "agent.token",
        "citrix-password",
    ] {
        let path = write(&secrets, file, &format!("{file}-0123456789abcdef\n"));
        restrict_permissions(&path);
    }
    let text = text.replace("/etc/vdi-gateway/secrets", secrets.to_str().unwrap());
    let path = write(dir.path(), name, &text);
    load_with_env(Some(&path), &env(vars)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

#[test]
fn example_citrix_cloud_loads() {
    let config = load_example(
        "citrix-cloud.toml",
        &[
            ("CONTROL_PLANE_TOKEN", OPERATOR_TOKEN),
            ("DASHBOARD_TOKEN", VIEWER_TOKEN),
            ("CITRIX_CLIENT_SECRET", CLIENT_SECRET),
        ],
    );
    let provider = config.provider("citrix-cloud").unwrap();

    assert_eq!(provider.kind, "citrix");
    assert_eq!(provider.settings["mode"], "cloud");
    assert_eq!(provider.settings["client_secret"], CLIENT_SECRET);
    assert!(config.tokens.len() >= 2);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn example_citrix_onprem_loads() {
    let config = load_example("citrix-onprem.toml", &[]);
    let provider = config.provider("citrix-onprem").unwrap();

    assert_eq!(provider.kind, "citrix");
    assert_eq!(provider.settings["mode"], "on_premises");
    assert!(provider.settings.get("password").is_some());
    assert!(provider.settings.get("password_file").is_none());
    assert!(provider.agent_token.is_some());
    assert!(config.server.metrics_token.is_some());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[tokio::test]
async fn simulator_entries_load() {
    let citrix = broker_sim::citrix::CitrixSim::start(Default::default())
        .await
        .unwrap();
    let horizon = broker_sim::horizon::HorizonSim::start(Default::default())
        .await
        .unwrap();
    let graph = broker_sim::graph::GraphSim::start(Default::default())
        .await
        .unwrap();
    let agents: std::sync::Arc<dyn vdi_contracts::AgentChannel> =
        std::sync::Arc::new(vdi_contracts::MemoryAgentChannel::default());
    let entries = [
        broker_sim::cli::citrix_gateway_entry(&citrix),
        broker_sim::cli::horizon_gateway_entry(&horizon),
        broker_sim::cli::graph_gateway_entry(&graph),
    ];

    for entry in entries {
        let text = format!("{OPERATOR}\n{}", entry.toml);
        let mut vars: Vec<(&str, &str)> = vec![("OP", OPERATOR_TOKEN)];
        vars.extend(
            entry
                .variables
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );

        let config = load_text(&text, &vars).unwrap_or_else(|err| panic!("{err}\n{text}"));

        assert_eq!(config.providers.len(), 1, "{text}");
        let built = crate::providers::build(&config.providers[0], &agents);
        assert!(built.is_ok(), "{}: {:?}", text, built.err());
    }
    citrix.shutdown().await;
    horizon.shutdown().await;
    graph.shutdown().await;
}
