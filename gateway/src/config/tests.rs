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
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("bnd"), "{err}");
}

#[test]
fn unknown_env_override_is_rejected() {
    let err = load_with_env(None, &env(&[("VDIGW__SERVER__PORT", "1")])).unwrap_err();
    assert!(err.to_string().contains("port"), "{err}");
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
