//! Unit tests of the whole loading path (flags + environment map + YAML → Config): one test per rule of
//! README "Configuration". Pure: every test passes its own environment map; only the `tokens` path test writes a file.

use super::*;
use std::collections::HashMap;
use std::path::Path;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn load_env(pairs: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    load(&ServerArgs::default(), &env(pairs))
}

fn err_env(pairs: &[(&str, &str)]) -> ConfigError {
    match load_env(pairs) {
        Ok(l) => panic!("expected an error, got providers {:?}", names(&l.config)),
        Err(e) => e,
    }
}

fn names(c: &Config) -> Vec<&str> {
    c.providers.iter().map(|p| p.name.as_str()).collect()
}

fn yaml(text: &str) -> serde_yaml_ng::Value {
    parse_yaml(Path::new("test.yaml"), text).unwrap()
}

fn load_yaml(args: &ServerArgs, pairs: &[(&str, &str)], text: &str) -> Result<Loaded, ConfigError> {
    let doc = yaml(text);
    load_with_yaml(args, &env(pairs), Some((Path::new("test.yaml"), &doc)))
}

const SECRET: &str = "sk-SECRETVALUE-0123456789";

#[test]
fn nothing_configured_gives_defaults_and_both_legacy_providers() {
    let l = load_env(&[]).unwrap();
    let c = &l.config;
    assert!(c.enabled);
    assert_eq!(c.http_address, "127.0.0.1:3000");
    assert_eq!(c.database.sqlite_path(), Some(Path::new("aibridge.db")));
    assert!(c.workers >= 1);
    assert_eq!(c.retention, Some(Duration::from_secs(60 * 86_400)));
    assert!(!c.structured_logging);
    assert_eq!(c.log_human.as_deref(), Some("/dev/stderr"));
    assert_eq!(c.log_json, None);
    assert_eq!(c.max_body_size, 32 * 1024 * 1024);
    assert_eq!(c.shutdown_grace, Duration::from_secs(30));
    assert_eq!(names(c), ["openai", "anthropic"]);
    assert_eq!(c.providers[0].kind, ProviderType::OpenAi);
    assert_eq!(c.providers[0].base_url, UpstreamUrl::parse("https://api.openai.com/v1/").unwrap());
    assert_eq!(c.providers[1].base_url, UpstreamUrl::parse("https://api.anthropic.com/").unwrap());
    assert!(c.providers.iter().all(|p| p.keys.is_empty() && p.bedrock.is_none()));
    assert!(l.warnings.is_empty());
}

#[test]
fn indices_zero_to_eleven_come_out_in_numeric_order() {
    let owned: Vec<(String, String)> = (0..12)
        .flat_map(|i| {
            [
                (format!("CODER_AIBRIDGE_PROVIDER_{i}_TYPE"), "openai".to_string()),
                (format!("CODER_AIBRIDGE_PROVIDER_{i}_NAME"), format!("p{i}")),
            ]
        })
        .collect();
    let pairs: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let l = load_env(&pairs).unwrap();
    let expected: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    assert_eq!(names(&l.config), expected);
}

#[test]
fn a_missing_index_is_an_error() {
    let e = err_env(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_1_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_3_TYPE", "copilot"),
    ]);
    assert!(matches!(e, ConfigError::MissingIndex { missing: 2, found: 3 }), "{e}");
    assert!(e.to_string().contains("CODER_AIBRIDGE_PROVIDER_2_TYPE"), "{e}");
    let e = err_env(&[("CODER_AIBRIDGE_PROVIDER_1_TYPE", "openai")]);
    assert!(matches!(e, ConfigError::MissingIndex { missing: 0, found: 1 }), "{e}");
    // 10 needs 2..=9, whatever the textual order.
    let e = err_env(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_1_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_10_TYPE", "openai"),
    ]);
    assert!(matches!(e, ConfigError::MissingIndex { missing: 2, found: 10 }), "{e}");
}

#[test]
fn malformed_indices_are_errors_naming_the_variable() {
    for var in [
        "CODER_AIBRIDGE_PROVIDER_01_TYPE",
        "CODER_AIBRIDGE_PROVIDER_X_TYPE",
        "CODER_AIBRIDGE_PROVIDER_0",
        "CODER_AIBRIDGE_PROVIDER__TYPE",
    ] {
        let e = err_env(&[(var, "openai")]);
        assert!(matches!(&e, ConfigError::BadIndex { setting } if setting == var), "{var}: {e}");
        assert!(e.to_string().starts_with(var));
    }
}

#[test]
fn type_is_required_and_must_be_known() {
    let e = err_env(&[("CODER_AIBRIDGE_PROVIDER_0_NAME", "x")]);
    assert!(matches!(&e, ConfigError::MissingType { provider } if provider == "CODER_AIBRIDGE_PROVIDER_0"), "{e}");
    let e = err_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "")]);
    assert!(matches!(e, ConfigError::MissingType { .. }), "{e}");
    let e = err_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "gemini")]);
    assert!(
        matches!(&e, ConfigError::UnknownType { setting, value } if setting == "CODER_AIBRIDGE_PROVIDER_0_TYPE" && value == "gemini"),
        "{e}"
    );
    let l = load_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "Copilot")]).unwrap();
    assert_eq!(l.config.providers[0].kind, ProviderType::Copilot);
    assert_eq!(l.config.providers[0].name, "copilot");
    assert_eq!(l.config.providers[0].base_url, UpstreamUrl::parse("https://api.individual.githubcopilot.com").unwrap());
}

#[test]
fn names_must_be_unique() {
    let e = err_env(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_0_NAME", "main"),
        ("CODER_AIBRIDGE_PROVIDER_1_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_1_NAME", "main"),
    ]);
    assert!(
        matches!(&e, ConfigError::DuplicateName { name, first, second }
            if name == "main" && first == "CODER_AIBRIDGE_PROVIDER_0_NAME" && second == "CODER_AIBRIDGE_PROVIDER_1_NAME"),
        "{e}"
    );
    // The default name is the type, so two unnamed openai instances collide.
    let e = err_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), ("CODER_AIBRIDGE_PROVIDER_1_TYPE", "openai")]);
    assert!(
        matches!(&e, ConfigError::DuplicateName { second, .. } if second == "CODER_AIBRIDGE_PROVIDER_1_TYPE"),
        "{e}"
    );
}

#[test]
fn names_must_match_the_pattern() {
    for bad in ["Main", "a--b", "-a", "a-", "a_b", "a b", "é", &"a".repeat(64)] {
        let e = err_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), ("CODER_AIBRIDGE_PROVIDER_0_NAME", bad)]);
        assert!(
            matches!(&e, ConfigError::InvalidName { setting, .. } if setting == "CODER_AIBRIDGE_PROVIDER_0_NAME"),
            "{bad}: {e}"
        );
    }
    for good in ["a", "openai-eu-2", "0", &"a".repeat(63)] {
        let l = load_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), ("CODER_AIBRIDGE_PROVIDER_0_NAME", good)])
            .unwrap();
        assert_eq!(names(&l.config), [good]);
    }
}

#[test]
fn key_and_keys_are_aliases_and_exclusive() {
    for var in ["CODER_AIBRIDGE_PROVIDER_0_KEY", "CODER_AIBRIDGE_PROVIDER_0_KEYS"] {
        let l = load_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), (var, "k1, k2,k3")]).unwrap();
        let keys: Vec<&str> = l.config.providers[0].keys.iter().map(Secret::expose).collect();
        assert_eq!(keys, ["k1", "k2", "k3"], "{var}");
    }
    let e = err_env(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_0_KEY", "a"),
        ("CODER_AIBRIDGE_PROVIDER_0_KEYS", "b"),
    ]);
    assert!(
        matches!(&e, ConfigError::AliasConflict { first, second }
            if first == "CODER_AIBRIDGE_PROVIDER_0_KEY" && second == "CODER_AIBRIDGE_PROVIDER_0_KEYS"),
        "{e}"
    );
}

#[test]
fn key_lists_reject_empty_duplicate_and_too_many_entries() {
    let cases: [(&str, KeyListProblem); 5] = [
        ("a,,b", KeyListProblem::EmptyEntry { position: 2 }),
        ("a,", KeyListProblem::EmptyEntry { position: 2 }),
        (",a", KeyListProblem::EmptyEntry { position: 1 }),
        ("a,b,a", KeyListProblem::Duplicate { position: 3, first: 1 }),
        ("a,b,c,d,e,f", KeyListProblem::TooMany { count: 6, max: 5 }),
    ];
    for (value, want) in cases {
        let e = err_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), ("CODER_AIBRIDGE_PROVIDER_0_KEYS", value)]);
        assert!(
            matches!(&e, ConfigError::KeyList { setting, problem } if setting == "CODER_AIBRIDGE_PROVIDER_0_KEYS" && *problem == want),
            "{value}: {e}"
        );
    }
    let l = load_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), ("CODER_AIBRIDGE_PROVIDER_0_KEYS", "a,b,c,d,e")])
        .unwrap();
    assert_eq!(l.config.providers[0].keys.len(), 5);
}

#[test]
fn bedrock_settings_only_on_anthropic() {
    for kind in ["openai", "copilot"] {
        let e = err_env(&[
            ("CODER_AIBRIDGE_PROVIDER_0_TYPE", kind),
            ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_REGION", "us-east-1"),
        ]);
        assert!(
            matches!(&e, ConfigError::BedrockOnNonAnthropic { setting, kind: k } if setting == "CODER_AIBRIDGE_PROVIDER_0_BEDROCK_REGION" && *k == kind),
            "{e}"
        );
    }
}

#[test]
fn bedrock_access_keys_and_secrets_pair_up() {
    let base =
        [("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"), ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_REGION", "us-west-2")];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        base.iter().chain(extra).copied().collect()
    };
    let e = err_env(&with(&[
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEYS", "AKIA1,AKIA2"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY_SECRETS", "s1"),
    ]));
    assert!(matches!(e, ConfigError::AccessKeyCountMismatch { keys: 2, secrets: 1, .. }), "{e}");
    let e = err_env(&with(&[("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY", "AKIA1")]));
    assert!(
        matches!(&e, ConfigError::AccessKeyWithoutPair { present, missing }
            if present == "CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY" && missing == "CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY_SECRET"),
        "{e}"
    );
    let e = err_env(&with(&[("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY_SECRET", "s1")]));
    assert!(
        matches!(&e, ConfigError::AccessKeyWithoutPair { missing, .. } if missing == "CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY"),
        "{e}"
    );
    let e = err_env(&with(&[
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY", "AKIA1"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEYS", "AKIA2"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY_SECRET", "s1"),
    ]));
    assert!(matches!(e, ConfigError::AliasConflict { .. }), "{e}");

    let l = load_env(&with(&[
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEYS", "AKIA1,AKIA2"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY_SECRETS", "s1,s2"),
    ]))
    .unwrap();
    let b = l.config.providers[0].bedrock.as_ref().unwrap();
    let pairs: Vec<(&str, &str)> =
        b.credentials.iter().map(|c| (c.access_key_id.expose(), c.secret_access_key.expose())).collect();
    assert_eq!(pairs, [("AKIA1", "s1"), ("AKIA2", "s2")]);
}

#[test]
fn bedrock_needs_a_region_or_a_base_url_and_has_default_models() {
    let e =
        err_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"), ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_MODEL", "m")]);
    assert!(
        matches!(&e, ConfigError::BedrockWithoutEndpoint { region_setting, .. } if region_setting == "CODER_AIBRIDGE_PROVIDER_0_BEDROCK_REGION"),
        "{e}"
    );
    let l = load_env(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_REGION", "eu-west-1"),
    ])
    .unwrap();
    let b = l.config.providers[0].bedrock.as_ref().unwrap();
    assert_eq!(b.region.as_deref(), Some("eu-west-1"));
    assert_eq!(b.model, "global.anthropic.claude-sonnet-4-5-20250929-v1:0");
    assert_eq!(b.small_fast_model, "global.anthropic.claude-haiku-4-5-20251001-v1:0");
    assert!(b.credentials.is_empty());
    let l = load_env(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_BASE_URL", "http://127.0.0.1:9000/bedrock"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_MODEL", "big"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_SMALL_FAST_MODEL", "small"),
    ])
    .unwrap();
    let b = l.config.providers[0].bedrock.as_ref().unwrap();
    assert_eq!(b.region, None);
    assert_eq!(b.base_url.as_ref().unwrap().base_path, "/bedrock");
    assert_eq!((b.model.as_str(), b.small_fast_model.as_str()), ("big", "small"));
}

#[test]
fn legacy_and_indexed_with_the_same_name_conflict_with_the_exact_message() {
    let e = err_env(&[("CODER_AIBRIDGE_OPENAI_KEY", SECRET), ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai")]);
    assert_eq!(
        e.to_string(),
        r#"legacy CODER_AIBRIDGE_OPENAI_KEY conflicts with indexed provider named "openai"; remove one or the other"#
    );
    let e = err_env(&[
        ("CODER_AIBRIDGE_ANTHROPIC_BASE_URL", "https://proxy.example/anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_0_NAME", "anthropic"),
    ]);
    assert_eq!(
        e.to_string(),
        r#"legacy CODER_AIBRIDGE_ANTHROPIC_BASE_URL conflicts with indexed provider named "anthropic"; remove one or the other"#
    );
    let e = err_env(&[("CODER_AIBRIDGE_BEDROCK_REGION", "us-east-1"), ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic")]);
    assert_eq!(
        e.to_string(),
        r#"legacy CODER_AIBRIDGE_BEDROCK_REGION conflicts with indexed provider named "anthropic"; remove one or the other"#
    );
    // A flag names itself.
    let args = ServerArgs { openai_key: Some(SECRET.into()), ..ServerArgs::default() };
    let e = load(&args, &env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai")])).unwrap_err();
    assert!(matches!(&e, ConfigError::LegacyConflict { legacy, .. } if legacy == "--aibridge-openai-key"), "{e}");
}

#[test]
fn legacy_providers_exist_only_when_set_or_when_nothing_is_indexed() {
    let l = load_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"), ("CODER_AIBRIDGE_PROVIDER_0_NAME", "claude")])
        .unwrap();
    assert_eq!(names(&l.config), ["claude"]);
    let l = load_env(&[
        ("CODER_AIBRIDGE_OPENAI_KEY", SECRET),
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_0_NAME", "claude"),
    ])
    .unwrap();
    assert_eq!(names(&l.config), ["openai", "claude"]);
    assert_eq!(l.config.providers[0].keys, [Secret::new(SECRET)]);
    let l = load_env(&[("CODER_AIBRIDGE_OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")]).unwrap();
    assert_eq!(names(&l.config), ["openai", "anthropic"]);
    assert_eq!(l.config.providers[0].base_url.port, 8080);
}

#[test]
fn legacy_bedrock_is_the_anthropic_instance_and_excludes_the_anthropic_key() {
    let l = load_env(&[
        ("CODER_AIBRIDGE_BEDROCK_REGION", "us-east-1"),
        ("CODER_AIBRIDGE_BEDROCK_ACCESS_KEY", "AKIAEXAMPLE"),
        ("CODER_AIBRIDGE_BEDROCK_ACCESS_KEY_SECRET", SECRET),
    ])
    .unwrap();
    let a = &l.config.providers[1];
    assert_eq!((a.name.as_str(), a.kind), ("anthropic", ProviderType::Anthropic));
    let b = a.bedrock.as_ref().unwrap();
    assert_eq!(b.region.as_deref(), Some("us-east-1"));
    assert_eq!(b.credentials.len(), 1);
    assert_eq!(b.model, DEFAULT_BEDROCK_MODEL);

    let e = err_env(&[("CODER_AIBRIDGE_BEDROCK_REGION", "us-east-1"), ("CODER_AIBRIDGE_ANTHROPIC_KEY", SECRET)]);
    assert!(
        matches!(&e, ConfigError::BedrockWithAnthropicKey { bedrock, key }
            if bedrock == "CODER_AIBRIDGE_BEDROCK_REGION" && key == "CODER_AIBRIDGE_ANTHROPIC_KEY"),
        "{e}"
    );
    let e = err_env(&[
        ("CODER_AIBRIDGE_BEDROCK_ACCESS_KEY", "AKIAEXAMPLE"),
        ("CODER_AIBRIDGE_BEDROCK_REGION", "us-east-1"),
    ]);
    assert!(
        matches!(&e, ConfigError::AccessKeyWithoutPair { missing, .. } if missing == "CODER_AIBRIDGE_BEDROCK_ACCESS_KEY_SECRET"),
        "{e}"
    );
    let e = err_env(&[("CODER_AIBRIDGE_BEDROCK_MODEL", "m")]);
    assert!(
        matches!(&e, ConfigError::BedrockWithoutEndpoint { region_setting, .. } if region_setting == "CODER_AIBRIDGE_BEDROCK_REGION"),
        "{e}"
    );
}

#[test]
fn unknown_provider_keys_are_warnings() {
    let l = load_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), ("CODER_AIBRIDGE_PROVIDER_0_COLOUR", "blue")])
        .unwrap();
    assert_eq!(names(&l.config), ["openai"]);
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0].contains("CODER_AIBRIDGE_PROVIDER_0_COLOUR"), "{:?}", l.warnings);
    // An index with only unknown keys is still an instance, and it has no TYPE: never silently dropped.
    let e = err_env(&[("CODER_AIBRIDGE_PROVIDER_0_COLOUR", "blue")]);
    assert!(matches!(e, ConfigError::MissingType { .. }), "{e}");
}

#[test]
fn bad_base_urls_name_the_variable() {
    for (var, url) in [
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", "ftp://x"),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", "https://"),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", "https://h:99999"),
    ] {
        let e = err_env(&[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), (var, url)]);
        assert!(matches!(&e, ConfigError::BadUrl { setting, .. } if setting == var), "{e}");
    }
    let e = err_env(&[("CODER_AIBRIDGE_OPENAI_BASE_URL", "api.openai.com")]);
    assert!(matches!(&e, ConfigError::BadUrl { setting, .. } if setting == "CODER_AIBRIDGE_OPENAI_BASE_URL"), "{e}");
    let l = load_env(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", "https://gw.example/proxy/anthropic/"),
    ])
    .unwrap();
    assert_eq!(l.config.providers[0].base_url.base_path, "/proxy/anthropic");
}

#[test]
fn database_url_is_sqlite_or_postgres() {
    let l = load_env(&[("CODER_AIBRIDGE_DATABASE_URL", "sqlite:///var/lib/aibridge/db.sqlite")]).unwrap();
    assert_eq!(l.config.database.sqlite_path(), Some(Path::new("/var/lib/aibridge/db.sqlite")));
    let l = load_env(&[("CODER_AIBRIDGE_DATABASE_URL", "postgres://u:secretpw@db/aibridge")]).unwrap();
    assert!(matches!(l.config.database, crate::db::DatabaseUrl::Postgres(_)));
    assert!(!format!("{:?} {}", l.config, l.config.database).contains("secretpw"));
    let e = err_env(&[("CODER_AIBRIDGE_DATABASE_URL", "mysql://u:secretpw@db/aibridge")]);
    assert!(e.to_string().contains("only sqlite:// and postgres:// are supported"), "{e}");
    assert!(e.to_string().starts_with("CODER_AIBRIDGE_DATABASE_URL"), "{e}");
    assert!(!e.to_string().contains("secretpw"), "{e}");
    let e = err_env(&[("CODER_AIBRIDGE_DATABASE_URL", "postgres://u:secretpw@db:port/aibridge")]);
    assert!(matches!(e, ConfigError::InvalidValue { .. }), "{e}");
    assert!(!e.to_string().contains("secretpw"), "{e}");
    let e = err_env(&[("CODER_AIBRIDGE_DATABASE_URL", "sqlite://")]);
    assert!(matches!(e, ConfigError::InvalidValue { .. }), "{e}");
}

#[test]
fn retention_durations_and_zero_means_forever() {
    let get = |v: &str| load_env(&[("CODER_AIBRIDGE_RETENTION", v)]).map(|l| l.config.retention);
    assert_eq!(get("90d").unwrap(), Some(Duration::from_secs(90 * 86_400)));
    assert_eq!(get("36h").unwrap(), Some(Duration::from_secs(36 * 3_600)));
    assert_eq!(get("30m").unwrap(), Some(Duration::from_secs(1_800)));
    assert_eq!(get("1h30m").unwrap(), Some(Duration::from_secs(5_400)));
    assert_eq!(get("0").unwrap(), None);
    let e = get("forever").unwrap_err();
    assert!(matches!(&e, ConfigError::InvalidValue { setting, .. } if setting == "CODER_AIBRIDGE_RETENTION"), "{e}");
}

#[test]
fn workers_must_be_at_least_one() {
    assert_eq!(load_env(&[("CODER_AIBRIDGE_WORKERS", "4")]).unwrap().config.workers, 4);
    for bad in ["0", "-1", "two", "100000"] {
        let e = err_env(&[("CODER_AIBRIDGE_WORKERS", bad)]);
        assert!(
            matches!(&e, ConfigError::InvalidValue { setting, .. } if setting == "CODER_AIBRIDGE_WORKERS"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn body_size_and_shutdown_grace() {
    let l = load_env(&[("CODER_AIBRIDGE_MAX_BODY_SIZE", "10MB"), ("CODER_AIBRIDGE_SHUTDOWN_GRACE", "1m30s")]).unwrap();
    assert_eq!(l.config.max_body_size, 10_000_000);
    assert_eq!(l.config.shutdown_grace, Duration::from_secs(90));
    assert_eq!(load_env(&[("CODER_AIBRIDGE_MAX_BODY_SIZE", "512KiB")]).unwrap().config.max_body_size, 512 * 1024);
    assert_eq!(load_env(&[("CODER_AIBRIDGE_MAX_BODY_SIZE", "1048576")]).unwrap().config.max_body_size, 1 << 20);
    assert_eq!(load_env(&[("CODER_AIBRIDGE_SHUTDOWN_GRACE", "0")]).unwrap().config.shutdown_grace, Duration::ZERO);
    for bad in ["0", "2GiB", "lots"] {
        let e = err_env(&[("CODER_AIBRIDGE_MAX_BODY_SIZE", bad)]);
        assert!(
            matches!(&e, ConfigError::InvalidValue { setting, .. } if setting == "CODER_AIBRIDGE_MAX_BODY_SIZE"),
            "{bad}: {e}"
        );
    }
    let e = err_env(&[("CODER_AIBRIDGE_SHUTDOWN_GRACE", "30")]);
    assert!(
        matches!(&e, ConfigError::InvalidValue { setting, .. } if setting == "CODER_AIBRIDGE_SHUTDOWN_GRACE"),
        "{e}"
    );
}

#[test]
fn shutdown_drain_defaults_to_30s_and_is_bounded() {
    assert_eq!(load_env(&[]).unwrap().config.sink.shutdown_drain, Duration::from_secs(30));
    let drain = |v: &str| load_env(&[("CODER_AIBRIDGE_SHUTDOWN_DRAIN", v)]).unwrap().config.sink.shutdown_drain;
    assert_eq!(drain("0s"), Duration::ZERO, "zero spills at once");
    assert_eq!(drain("2m"), Duration::from_secs(120));
    assert_eq!(drain("1h"), Duration::from_secs(3600));
    for bad in ["1h1s", "30", "-1s", "forever"] {
        let e = err_env(&[("CODER_AIBRIDGE_SHUTDOWN_DRAIN", bad)]);
        assert!(
            matches!(&e, ConfigError::InvalidValue { setting, .. } if setting == "CODER_AIBRIDGE_SHUTDOWN_DRAIN"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn booleans_addresses_and_log_destinations() {
    let l = load_env(&[
        ("CODER_AIBRIDGE_ENABLED", "false"),
        ("CODER_AIBRIDGE_STRUCTURED_LOGGING", "1"),
        ("CODER_HTTP_ADDRESS", "[::1]:8443"),
        ("CODER_LOGGING_JSON", "/var/log/aibridge.json"),
        ("CODER_LOGGING_HUMAN", ""),
    ])
    .unwrap();
    assert!(!l.config.enabled);
    assert!(l.config.structured_logging);
    assert_eq!(l.config.http_address, "[::1]:8443");
    assert_eq!(l.config.log_json.as_deref(), Some("/var/log/aibridge.json"));
    assert_eq!(l.config.log_human, None);
    let e = err_env(&[("CODER_AIBRIDGE_ENABLED", "maybe")]);
    assert!(matches!(&e, ConfigError::InvalidValue { setting, .. } if setting == "CODER_AIBRIDGE_ENABLED"), "{e}");
    for bad in ["3000", "localhost", "host:port", ":80"] {
        let e = err_env(&[("CODER_HTTP_ADDRESS", bad)]);
        assert!(
            matches!(&e, ConfigError::InvalidValue { setting, .. } if setting == "CODER_HTTP_ADDRESS"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn precedence_is_flag_then_env_then_yaml_then_default() {
    let text =
        "aibridge:\n  retention: 1d\n  workers: 3\n  enabled: false\n  max_body_size: 1MiB\nhttp_address: 0.0.0.0:1\n";
    let env_all = [
        ("CODER_AIBRIDGE_RETENTION", "2d"),
        ("CODER_AIBRIDGE_WORKERS", "2"),
        ("CODER_AIBRIDGE_ENABLED", "true"),
        ("CODER_HTTP_ADDRESS", "0.0.0.0:2"),
    ];
    let flags =
        ServerArgs { retention: Some("3d".into()), http_address: Some("0.0.0.0:3".into()), ..ServerArgs::default() };
    // flag > env > YAML
    let c = load_yaml(&flags, &env_all, text).unwrap().config;
    assert_eq!(c.retention, Some(Duration::from_secs(3 * 86_400)));
    assert_eq!(c.http_address, "0.0.0.0:3");
    assert_eq!(c.workers, 2);
    assert!(c.enabled);
    assert_eq!(c.max_body_size, 1 << 20);
    // env > YAML
    let c = load_yaml(&ServerArgs::default(), &env_all, text).unwrap().config;
    assert_eq!(c.retention, Some(Duration::from_secs(2 * 86_400)));
    assert_eq!(c.http_address, "0.0.0.0:2");
    // YAML > default
    let c = load_yaml(&ServerArgs::default(), &[], text).unwrap().config;
    assert_eq!(c.retention, Some(Duration::from_secs(86_400)));
    assert_eq!(c.workers, 3);
    assert!(!c.enabled);
    assert_eq!(c.http_address, "0.0.0.0:1");
    // default
    let c = load_yaml(&ServerArgs::default(), &[], "{}").unwrap().config;
    assert_eq!(c.retention, Some(DEFAULT_RETENTION));
    assert_eq!(c.max_body_size, DEFAULT_MAX_BODY_SIZE);
}

#[test]
fn yaml_providers_follow_the_same_rules() {
    let text = r#"
aibridge:
  providers:
    - type: openai
      name: openai-eu
      keys: [k1, k2]
      base_url: https://eu.example/v1
    - type: anthropic
      bedrock_region: us-east-1
      bedrock_access_keys: AKIA1
      bedrock_access_key_secrets: s1
"#;
    let l = load_yaml(&ServerArgs::default(), &[], text).unwrap();
    assert_eq!(names(&l.config), ["openai-eu", "anthropic"]);
    assert_eq!(l.config.providers[0].keys, [Secret::new("k1"), Secret::new("k2")]);
    assert_eq!(l.config.providers[1].bedrock.as_ref().unwrap().credentials.len(), 1);

    let e = load_yaml(
        &ServerArgs::default(),
        &[],
        "aibridge:\n  providers:\n    - type: openai\n      key: a\n      keys: b\n",
    )
    .unwrap_err();
    assert!(matches!(&e, ConfigError::AliasConflict { first, .. } if first == "YAML aibridge.providers[0].key"), "{e}");
    let e = load_yaml(&ServerArgs::default(), &[], "aibridge:\n  providers:\n    - name: x\n").unwrap_err();
    assert!(matches!(&e, ConfigError::MissingType { provider } if provider == "YAML aibridge.providers[0]"), "{e}");
    let l = load_yaml(
        &ServerArgs::default(),
        &[],
        "aibridge:\n  providers:\n    - type: copilot\n      colour: blue\n  colour: red\n",
    )
    .unwrap();
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
}

#[test]
fn hostile_yaml_is_a_yaml_error_not_a_panic() {
    // Nine levels of ten aliases each: 10^9 nodes once expanded.
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for pair in names.windows(2) {
        let (prev, name) = (pair[0], pair[1]);
        let refs = vec![format!("*{prev}"); 10].join(", ");
        laughs.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    let cases = [
        ("alias expansion", laughs),
        // Far past the parser's recursion limit (128); deeper only costs time (libyaml's flow nesting is
        // quadratic), not safety.
        ("deep flow nesting", format!("aibridge: {}{}", "[".repeat(5_000), "]".repeat(5_000))),
        ("deep block nesting", (0..2_000).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect()),
        ("unterminated flow", "aibridge: {providers: [".to_string()),
        ("unknown alias", "aibridge: *nowhere\n".to_string()),
        ("tab indentation", "aibridge:\n\tretention: 1d\n".to_string()),
        ("a scalar document", "just text".to_string()),
        ("a sequence document", "- a\n- b\n".to_string()),
    ];
    for (what, text) in cases {
        let e = parse_yaml(Path::new("hostile.yaml"), &text).expect_err(what);
        assert!(matches!(&e, ConfigError::Yaml { path, .. } if path == "hostile.yaml"), "{what}: {e}");
    }
}

#[test]
fn env_providers_replace_yaml_providers() {
    let text = "aibridge:\n  providers:\n    - type: openai\n      name: from-yaml\n";
    let l = load_yaml(&ServerArgs::default(), &[("CODER_AIBRIDGE_PROVIDER_0_TYPE", "copilot")], text).unwrap();
    assert_eq!(names(&l.config), ["copilot"]);
    assert!(l.warnings.iter().any(|w| w.contains("aibridge.providers is ignored")), "{:?}", l.warnings);
}

#[test]
fn tokens_database_url_uses_the_same_precedence() {
    let dir = std::env::temp_dir().join(format!("aibridged-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.yaml");
    std::fs::write(&file, "aibridge:\n  database_url: sqlite://from-yaml.db\n").unwrap();
    let file_str = file.to_str().unwrap();

    let none = DatabaseArgs::default();
    assert_eq!(database_url(&none, &env(&[])).unwrap().sqlite_path(), Some(Path::new("aibridge.db")));
    let by_env = env(&[("CODER_CONFIG_PATH", file_str)]);
    assert_eq!(database_url(&none, &by_env).unwrap().sqlite_path(), Some(Path::new("from-yaml.db")));
    let with_var = env(&[("CODER_CONFIG_PATH", file_str), ("CODER_AIBRIDGE_DATABASE_URL", "sqlite://from-env.db")]);
    assert_eq!(database_url(&none, &with_var).unwrap().sqlite_path(), Some(Path::new("from-env.db")));
    let flags = DatabaseArgs { config: Some(file.clone()), database_url: Some("sqlite://from-flag.db".into()) };
    assert_eq!(database_url(&flags, &with_var).unwrap().sqlite_path(), Some(Path::new("from-flag.db")));
    let flags = DatabaseArgs { config: Some(file.clone()), database_url: None };
    assert_eq!(database_url(&flags, &env(&[])).unwrap().sqlite_path(), Some(Path::new("from-yaml.db")));
    // The server reads the same file.
    let l = load(&ServerArgs { db: flags, ..ServerArgs::default() }, &env(&[])).unwrap();
    assert_eq!(l.config.database.sqlite_path(), Some(Path::new("from-yaml.db")));

    let missing = DatabaseArgs { config: Some(dir.join("nope.yaml")), database_url: None };
    assert!(matches!(database_url(&missing, &env(&[])), Err(ConfigError::ReadFile { .. })));
    std::fs::write(&file, "aibridge: [1, 2\n").unwrap();
    assert!(matches!(
        database_url(&DatabaseArgs { config: Some(file), database_url: None }, &env(&[])),
        Err(ConfigError::Yaml { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_secret_appears_in_any_error() {
    let dup = format!("{SECRET},{SECRET}");
    let six = format!("{SECRET},b,c,d,e,f");
    let empty_entry = format!("{SECRET},");
    let url_with_key = format!("https://user:{SECRET}@host/v1");
    let url_with_query = format!("ftp://host/v1?key={SECRET}");
    let db = format!("postgres://u:{SECRET}@db:port/x");
    let other_db = format!("mysql://u:{SECRET}@db/x");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), ("CODER_AIBRIDGE_PROVIDER_0_KEYS", &dup)],
        vec![("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), ("CODER_AIBRIDGE_PROVIDER_0_KEYS", &six)],
        vec![("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), ("CODER_AIBRIDGE_PROVIDER_0_KEY", &empty_entry)],
        vec![
            ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
            ("CODER_AIBRIDGE_PROVIDER_0_KEY", SECRET),
            ("CODER_AIBRIDGE_PROVIDER_0_KEYS", SECRET),
        ],
        vec![("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", &url_with_key)],
        vec![("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"), ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", &url_with_query)],
        vec![
            ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
            ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY_SECRET", SECRET),
        ],
        vec![
            ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
            ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_REGION", "us-east-1"),
            ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEYS", "A1,A2"),
            ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY_SECRETS", SECRET),
        ],
        vec![
            ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
            ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY_SECRET", SECRET),
        ],
        vec![("CODER_AIBRIDGE_OPENAI_KEY", SECRET), ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai")],
        vec![("CODER_AIBRIDGE_ANTHROPIC_KEY", SECRET), ("CODER_AIBRIDGE_BEDROCK_ACCESS_KEY_SECRET", SECRET)],
        vec![("CODER_AIBRIDGE_BEDROCK_ACCESS_KEY_SECRET", SECRET)],
        vec![("CODER_AIBRIDGE_DATABASE_URL", &db)],
        vec![("CODER_AIBRIDGE_DATABASE_URL", &other_db)],
        vec![("CODER_AIBRIDGE_OPENAI_BASE_URL", &url_with_key)],
    ];
    for pairs in cases {
        let e = err_env(&pairs);
        let shown = format!("{e} / {e:?}");
        assert!(!shown.contains("SECRETVALUE"), "secret leaked for {pairs:?}: {shown}");
    }
}

#[test]
fn bedrock_region_must_look_like_a_region() {
    for bad in ["us east 1", "evil.example/x", "US-EAST-1"] {
        let e = err_env(&[
            ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
            ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_REGION", bad),
        ]);
        assert!(
            matches!(&e, ConfigError::InvalidValue { setting, .. } if setting == "CODER_AIBRIDGE_PROVIDER_0_BEDROCK_REGION"),
            "{bad}: {e}"
        );
    }
}

// ---- tunables (config::tuning) ----

/// Everything the tunables settings resolve into, compared as one value so a miswired setting shows.
#[derive(Debug, PartialEq)]
struct Tuned {
    timeouts: Timeouts,
    sink: SinkSettings,
    token_refresh: Duration,
    dns_refresh: Duration,
}

fn tuned(c: &Config) -> Tuned {
    Tuned { timeouts: c.timeouts, sink: c.sink, token_refresh: c.token_refresh, dns_refresh: c.dns_refresh }
}

fn default_tuned() -> Tuned {
    tuned(&load_env(&[]).unwrap().config)
}

/// One tunable: its setting, a valid non-default value, and how that value must change [`Tuned`].
type Tunable = (&'static sources::Setting, &'static str, fn(&mut Tuned));

/// Every tunable, each with the field its value must land in.
fn tunables() -> Vec<Tunable> {
    const MS: fn(u64) -> Duration = Duration::from_millis;
    const S: fn(u64) -> Duration = Duration::from_secs;
    vec![
        (&sources::KEEPALIVE_IDLE_TIMEOUT, "5s", |t| t.timeouts.keepalive_idle = S(5)),
        (&sources::REQUEST_HEAD_TIMEOUT, "1500ms", |t| t.timeouts.request_head = MS(1500)),
        (&sources::REQUEST_BODY_READ_TIMEOUT, "7s", |t| t.timeouts.request_body_read = S(7)),
        (&sources::REQUEST_BODY_TIMEOUT, "2m", |t| t.timeouts.request_body_total = S(120)),
        (&sources::UPSTREAM_CONNECT_TIMEOUT, "3s", |t| t.timeouts.upstream_connect = S(3)),
        (&sources::UPSTREAM_TLS_HANDSHAKE_TIMEOUT, "4s", |t| t.timeouts.upstream_tls_handshake = S(4)),
        (&sources::UPSTREAM_POOL_IDLE_TIMEOUT, "11s", |t| t.timeouts.upstream_pool_idle = S(11)),
        (&sources::UPSTREAM_FIRST_BYTE_TIMEOUT, "15m", |t| t.timeouts.upstream_first_byte = S(900)),
        (&sources::UPSTREAM_EARLY_ANSWER_GRACE, "300ms", |t| t.timeouts.upstream_early_answer_grace = MS(300)),
        (&sources::STREAM_IDLE_TIMEOUT, "1h", |t| t.timeouts.stream_idle = S(3600)),
        (&sources::CLIENT_WRITE_TIMEOUT, "2s", |t| t.timeouts.client_write = S(2)),
        (&sources::CLIENT_WATCH_AFTER, "100ms", |t| t.timeouts.client_watch_after = MS(100)),
        (&sources::CLIENT_WATCH_AFTER_IDLE, "200ms", |t| t.timeouts.client_watch_after_idle = MS(200)),
        (&sources::TOKEN_REFRESH_INTERVAL, "1s", |t| t.token_refresh = S(1)),
        (&sources::DNS_REFRESH_INTERVAL, "5m", |t| t.dns_refresh = S(300)),
        (&sources::SINK_BATCH_MAX_RECORDS, "256", |t| t.sink.batch_max_records = 256),
        (&sources::SINK_BATCH_MAX_DELAY, "5ms", |t| t.sink.batch_max_delay = MS(5)),
        (&sources::SINK_CHANNEL_CAPACITY, "1000", |t| t.sink.channel_capacity = 1000),
        (&sources::SINK_REPORT_INTERVAL, "10s", |t| t.sink.report_interval = S(10)),
        (&sources::RETENTION_INTERVAL, "15m", |t| t.sink.retention_interval = S(900)),
    ]
}

#[test]
fn tunables_default_to_the_values_the_gateway_always_used() {
    let t = default_tuned();
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    assert_eq!(t.timeouts.keepalive_idle, s(75));
    assert_eq!(t.timeouts.request_head, s(10));
    assert_eq!(t.timeouts.request_body_read, s(60));
    assert_eq!(t.timeouts.request_body_total, s(300));
    assert_eq!(t.timeouts.upstream_connect, s(10));
    assert_eq!(t.timeouts.upstream_tls_handshake, s(10));
    assert_eq!(t.timeouts.upstream_pool_idle, s(30));
    assert_eq!(t.timeouts.upstream_first_byte, s(600));
    assert_eq!(t.timeouts.upstream_early_answer_grace, s(2));
    assert_eq!(t.timeouts.stream_idle, s(600));
    assert_eq!(t.timeouts.client_write, s(60));
    assert_eq!(t.timeouts.client_watch_after, ms(500));
    assert_eq!(t.timeouts.client_watch_after_idle, s(2));
    assert_eq!(t.token_refresh, ms(250));
    assert_eq!(t.dns_refresh, s(30));
    assert_eq!(t.sink.batch_max_records, 1024);
    assert_eq!(t.sink.batch_max_delay, ms(50));
    assert_eq!(t.sink.channel_capacity, 65_536);
    assert_eq!(t.sink.retention_interval, s(3600));
    assert_eq!(t.sink.report_interval, s(60));
    assert_eq!(t.timeouts, Timeouts::default());
    assert_eq!(t.sink, SinkSettings::default());
}

#[test]
fn the_sink_defaults_match_the_sinks_own() {
    // SinkOptions::new (tests, benches) keeps its own copies of the values the server passes from Config.
    let sink = SinkSettings::default();
    assert_eq!(sink.channel_capacity, crate::sink::DEFAULT_CHANNEL_CAPACITY);
    assert_eq!(sink.retention_interval, crate::sink::DEFAULT_RETENTION_INTERVAL);
    assert_eq!(sink.batch_max_records, crate::sink::MAX_BATCH_RECORDS);
    assert_eq!(sink.batch_max_delay, crate::sink::MAX_BATCH_DELAY);
}

#[test]
fn each_tunable_lands_in_its_own_field_from_env_and_yaml() {
    for (setting, value, apply) in tunables() {
        let mut want = default_tuned();
        apply(&mut want);
        let got = tuned(&load_env(&[(setting.env, value)]).unwrap().config);
        assert_eq!(got, want, "{}={value}", setting.env);
        let key = setting.yaml[0].strip_prefix("aibridge.").unwrap();
        let l = load_yaml(&ServerArgs::default(), &[], &format!("aibridge:\n  {key}: {value}\n")).unwrap();
        assert_eq!(tuned(&l.config), want, "YAML {key}: {value}");
        assert!(l.warnings.is_empty(), "{key} is a known YAML key: {:?}", l.warnings);
    }
}

#[test]
fn each_tunable_is_spelled_the_same_way_as_flag_variable_and_yaml_key() {
    use clap::Args;
    let cmd = ServerArgs::augment_args(clap::Command::new("server"));
    for (setting, _, _) in tunables() {
        let stem = setting.flag.strip_prefix("--aibridge-").expect(setting.flag);
        assert_eq!(setting.env, format!("CODER_AIBRIDGE_{}", stem.replace('-', "_").to_uppercase()));
        assert_eq!(setting.yaml, [format!("aibridge.{}", stem.replace('-', "_"))]);
        let arg = cmd.get_arguments().find(|a| a.get_long() == Some(&setting.flag[2..]));
        assert!(arg.is_some(), "{} is a flag of `aibridged server`", setting.flag);
        let help = arg.unwrap().get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(help.contains(setting.env), "the help of {} names {}: {help}", setting.flag, setting.env);
    }
}

#[test]
fn a_tunable_flag_beats_its_variable_beats_its_yaml_key() {
    let text = "aibridge:\n  client_write_timeout: 3s\n";
    let env_var = [("CODER_AIBRIDGE_CLIENT_WRITE_TIMEOUT", "4s")];
    let mut flags = ServerArgs::default();
    flags.tuning.client_write_timeout = Some("5s".into());
    let get = |args: &ServerArgs, pairs: &[(&str, &str)]| load_yaml(args, pairs, text).unwrap().config.timeouts;
    assert_eq!(get(&flags, &env_var).client_write, Duration::from_secs(5));
    assert_eq!(get(&ServerArgs::default(), &env_var).client_write, Duration::from_secs(4));
    assert_eq!(get(&ServerArgs::default(), &[]).client_write, Duration::from_secs(3));
    let c = load_yaml(&ServerArgs::default(), &[], "{}").unwrap().config;
    assert_eq!(c.timeouts.client_write, Duration::from_secs(60));
}

#[test]
fn zero_absurd_or_malformed_tunables_are_rejected_naming_the_setting() {
    let durations = ["0", "0s", "30", "soon", "1000d", "-5s"];
    let counts = ["0", "-1", "many", "1.5", "99999999"];
    for (setting, _, _) in tunables() {
        let bad: &[&str] =
            if setting.env.ends_with("_RECORDS") || setting.env.ends_with("_CAPACITY") { &counts } else { &durations };
        for value in bad {
            let e = err_env(&[(setting.env, value)]);
            assert!(
                matches!(&e, ConfigError::InvalidValue { setting: s, .. } if s == setting.env),
                "{}={value}: {e}",
                setting.env
            );
            assert!(e.to_string().starts_with(setting.env), "{e}");
        }
    }
    // The range is in the message, and a flag or YAML key is named as the operator wrote it.
    let e = err_env(&[("CODER_AIBRIDGE_CLIENT_WRITE_TIMEOUT", "0")]);
    assert_eq!(e.to_string(), "CODER_AIBRIDGE_CLIENT_WRITE_TIMEOUT: must be between 10ms and 1d, got \"0\"");
    let mut flags = ServerArgs::default();
    flags.tuning.upstream_connect_timeout = Some("2d".into());
    let e = load_env_args(&flags, &[]).unwrap_err();
    assert!(e.to_string().starts_with("--aibridge-upstream-connect-timeout: must be between"), "{e}");
    let e = load_yaml(&ServerArgs::default(), &[], "aibridge:\n  sink_channel_capacity: 0\n").unwrap_err();
    assert!(e.to_string().starts_with("YAML aibridge.sink_channel_capacity: expected a whole number"), "{e}");
}

fn load_env_args(args: &ServerArgs, pairs: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    load(args, &env(pairs))
}

#[test]
fn legacy_settings_follow_precedence_too() {
    let args = ServerArgs { openai_key: Some("from-flag".into()), ..ServerArgs::default() };
    let text = "aibridge:\n  openai_key: from-yaml\n  anthropic_key: yaml-anthropic\n";
    let l = load_yaml(&args, &[("CODER_AIBRIDGE_OPENAI_KEY", "from-env")], text).unwrap();
    assert_eq!(l.config.providers[0].keys, [Secret::new("from-flag")]);
    assert_eq!(l.config.providers[1].keys, [Secret::new("yaml-anthropic")]);
    let l = load_yaml(&ServerArgs::default(), &[("CODER_AIBRIDGE_OPENAI_KEY", "from-env")], text).unwrap();
    assert_eq!(l.config.providers[0].keys, [Secret::new("from-env")]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary indexed variables never panic the loader, and a success always yields valid names.
        #[test]
        fn arbitrary_provider_variables_never_panic(
            vars in proptest::collection::vec(("[0-9A-Z_]{0,24}", "\\PC{0,20}"), 0..6)
        ) {
            let env: HashMap<String, String> = vars
                .into_iter()
                .map(|(k, v)| (format!("CODER_AIBRIDGE_PROVIDER_{k}"), v))
                .collect();
            if let Ok(l) = load(&ServerArgs::default(), &env) {
                for p in &l.config.providers {
                    prop_assert!(!p.name.is_empty() && p.name.len() <= MAX_NAME_LEN);
                }
            }
        }

        /// Arbitrary text never panics the YAML parser or the loader behind it.
        #[test]
        fn arbitrary_yaml_never_panics(text in "[ \\t\\n:\\-\\[\\]{}&*!|>'\",#a-z0-9]{0,200}") {
            if let Ok(doc) = parse_yaml(Path::new("any.yaml"), &text) {
                let _ = load_with_yaml(&ServerArgs::default(), &HashMap::new(), Some((Path::new("any.yaml"), &doc)));
            }
        }

        /// Indices given in any order come out sorted by number.
        #[test]
        fn providers_come_out_in_index_order(n in 1usize..15) {
            let env: HashMap<String, String> = (0..n)
                .rev()
                .flat_map(|i| [
                    (format!("CODER_AIBRIDGE_PROVIDER_{i}_TYPE"), "copilot".to_string()),
                    (format!("CODER_AIBRIDGE_PROVIDER_{i}_NAME"), format!("c{i}")),
                ])
                .collect();
            let l = load(&ServerArgs::default(), &env).unwrap();
            let got: Vec<String> = l.config.providers.iter().map(|p| p.name.clone()).collect();
            let want: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn gateway_id_defaults_to_host_and_listen_address_and_is_validated() {
    let c = load_env(&[("CODER_HTTP_ADDRESS", "0.0.0.0:8080")]).unwrap().config;
    assert!(c.gateway_id.ends_with("/0.0.0.0:8080"), "{}", c.gateway_id);
    assert!(c.gateway_id.len() > "/0.0.0.0:8080".len(), "a host name comes first: {}", c.gateway_id);
    assert_eq!(super::load::default_gateway_id("gw-1", "[::1]:3000"), "gw-1/[::1]:3000");

    let c = load_env(&[("CODER_AIBRIDGE_GATEWAY_ID", "  eu-west-a  ")]).unwrap().config;
    assert_eq!(&*c.gateway_id, "eu-west-a");
    let args = ServerArgs { gateway_id: Some("from-flag".into()), ..ServerArgs::default() };
    let c = load(&args, &env(&[("CODER_AIBRIDGE_GATEWAY_ID", "from-env")])).unwrap().config;
    assert_eq!(&*c.gateway_id, "from-flag");

    for bad in ["a\nb", &"x".repeat(201)] {
        let e = err_env(&[("CODER_AIBRIDGE_GATEWAY_ID", bad)]);
        assert!(
            matches!(&e, ConfigError::InvalidValue { setting, .. } if setting == "CODER_AIBRIDGE_GATEWAY_ID"),
            "{bad:?}: {e:?}"
        );
    }
}

#[test]
fn every_setting_has_its_ai_gateway_spelling() {
    let l = load_env(&[
        ("CODER_AI_GATEWAY_RETENTION", "3d"),
        ("CODER_AI_GATEWAY_STREAM_IDLE_TIMEOUT", "42s"),
        ("CODER_AI_GATEWAY_PROVIDER_0_TYPE", "anthropic"),
        ("CODER_AI_GATEWAY_PROVIDER_0_NAME", "claude"),
    ])
    .unwrap();
    assert_eq!(l.config.retention, Some(std::time::Duration::from_secs(3 * 86_400)));
    assert_eq!(l.config.timeouts.stream_idle, std::time::Duration::from_secs(42));
    assert_eq!(names(&l.config), ["claude"]);
    let l = load_yaml(&ServerArgs::default(), &[], "ai_gateway:\n  workers: 3\n  retention: 1d\n").unwrap();
    assert_eq!((l.config.workers, l.config.retention), (3, Some(std::time::Duration::from_secs(86_400))));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // One value under both names is fine; two is an error naming both.
    assert!(load_env(&[("CODER_AIBRIDGE_WORKERS", "2"), ("CODER_AI_GATEWAY_WORKERS", "2")]).is_ok());
    let e = err_env(&[("CODER_AIBRIDGE_WORKERS", "2"), ("CODER_AI_GATEWAY_WORKERS", "4")]);
    assert!(matches!(e, ConfigError::SpellingConflict { .. }), "{e}");
    let e = load_yaml(&ServerArgs::default(), &[], "ai_gateway:\n  workers: 3\naibridge:\n  workers: 4\n").unwrap_err();
    assert!(e.to_string().contains("YAML ai_gateway.workers"), "{e}");
}

#[test]
fn overload_limits_and_breaker_settings_default_and_are_bounded() {
    let l = load_env(&[]).unwrap().config.limits;
    assert_eq!((l.max_concurrency, l.rate_limit, l.max_connections), (0, 0, 0), "off by default");
    assert_eq!(l.breaker, BreakerSettings::default());
    assert!(!l.breaker.enabled);
    assert_eq!(
        (l.breaker.failure_threshold, l.breaker.interval, l.breaker.timeout, l.breaker.max_requests),
        (5, Duration::from_secs(10), Duration::from_secs(30), 3),
        "Coder's defaults"
    );
    let set = load_env(&[
        ("CODER_AIBRIDGE_MAX_CONCURRENCY", "7"),
        ("CODER_AIBRIDGE_RATE_LIMIT", "9"),
        ("CODER_AIBRIDGE_MAX_CONNECTIONS", "11"),
        ("CODER_AIBRIDGE_CIRCUIT_BREAKER_ENABLED", "true"),
        ("CODER_AIBRIDGE_CIRCUIT_BREAKER_FAILURE_THRESHOLD", "2"),
        ("CODER_AIBRIDGE_CIRCUIT_BREAKER_INTERVAL", "0s"),
        ("CODER_AIBRIDGE_CIRCUIT_BREAKER_TIMEOUT", "250ms"),
        ("CODER_AIBRIDGE_CIRCUIT_BREAKER_MAX_REQUESTS", "1"),
    ])
    .unwrap()
    .config
    .limits;
    assert_eq!((set.max_concurrency, set.rate_limit, set.max_connections), (7, 9, 11));
    let b = set.breaker;
    assert!(b.enabled);
    assert_eq!(
        (b.failure_threshold, b.interval, b.timeout, b.max_requests),
        (2, Duration::ZERO, Duration::from_millis(250), 1)
    );
    for (name, bad) in [
        ("CODER_AIBRIDGE_MAX_CONCURRENCY", "-1"),
        ("CODER_AIBRIDGE_RATE_LIMIT", "1000001"),
        ("CODER_AIBRIDGE_MAX_CONNECTIONS", "many"),
        ("CODER_AIBRIDGE_CIRCUIT_BREAKER_ENABLED", "maybe"),
        ("CODER_AIBRIDGE_CIRCUIT_BREAKER_FAILURE_THRESHOLD", "0"),
        ("CODER_AIBRIDGE_CIRCUIT_BREAKER_INTERVAL", "2h"),
        ("CODER_AIBRIDGE_CIRCUIT_BREAKER_TIMEOUT", "0s"),
        ("CODER_AIBRIDGE_CIRCUIT_BREAKER_MAX_REQUESTS", "1001"),
    ] {
        let e = err_env(&[(name, bad)]);
        assert!(matches!(&e, ConfigError::InvalidValue { setting, .. } if setting == name), "{name}={bad}: {e}");
    }
    // The AI Gateway spelling and the --max-connections flag reach the same settings.
    let l = load_env(&[("CODER_AI_GATEWAY_CIRCUIT_BREAKER_MAX_REQUESTS", "4")]).unwrap().config.limits;
    assert_eq!(l.breaker.max_requests, 4);
    let flags = ServerArgs {
        limits: args::LimitsArgs { max_connections: Some("5".into()), ..Default::default() },
        ..ServerArgs::default()
    };
    let l = load(&flags, &env(&[("CODER_AIBRIDGE_MAX_CONNECTIONS", "6")])).unwrap().config.limits;
    assert_eq!(l.max_connections, 5, "flag over env");
}
