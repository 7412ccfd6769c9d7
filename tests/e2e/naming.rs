//! Coder renamed AI Bridge to AI Gateway: every `CODER_AIBRIDGE_*` variable has a `CODER_AI_GATEWAY_*`
//! spelling, every `--aibridge-*` flag an `--ai-gateway-*` one, and the routes live under
//! `/api/v2/ai-gateway/` too. One setting given under both names with different values stops the start.

use std::process::{Command, Stdio};

use aibridged::mock::MockUpstream;

use crate::support::*;

const CHAT_JSON: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn ai_gateway_variables_flags_and_routes_work_like_the_aibridge_ones() {
    let mock = MockUpstream::start().unwrap();
    let base = format!("{}/v1", mock.base_url());
    let gw = Gateway::start_with_args(
        &["--ai-gateway-max-body-size", "1KiB"],
        &[
            ("CODER_AI_GATEWAY_PROVIDER_0_TYPE", "openai"),
            ("CODER_AI_GATEWAY_PROVIDER_0_NAME", "gpt"),
            ("CODER_AI_GATEWAY_PROVIDER_0_KEY", "sk-gateway-spelling-000001"),
            ("CODER_AI_GATEWAY_PROVIDER_0_BASE_URL", &base),
            // Both names, one value: fine.
            ("CODER_AIBRIDGE_WORKERS", "2"),
            ("CODER_AI_GATEWAY_WORKERS", "2"),
        ],
    );
    let auth = format!("Bearer {}", gw.token("olga"));
    for prefix in ["/api/v2/ai-gateway", "/api/v2/aibridge"] {
        let path = format!("{prefix}/gpt/v1/chat/completions");
        let r = request(gw.addr, "POST", &path, &[("Authorization", &auth)], CHAT_JSON.as_bytes());
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|q| q.path == "/v1/chat/completions"), "both routes reach the same upstream path");
    assert!(seen.iter().all(|q| q.header("authorization") == Some("Bearer sk-gateway-spelling-000001")));
    assert_eq!(
        wait_count(
            &gw.db,
            "SELECT COUNT(*) FROM aibridge_interceptions WHERE provider_name = 'gpt' AND ended_at IS NOT NULL",
            2
        ),
        2,
        "both are recorded"
    );
    // The flag's value applies: a 2 KiB body is over the 1 KiB limit.
    let big = format!(r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(2048));
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/ai-gateway/gpt/v1/chat/completions",
        &[("Authorization", &auth)],
        big.as_bytes(),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    // Preconnect probes on the new base path too.
    assert_eq!(request(gw.addr, "HEAD", "/api/v2/ai-gateway/gpt", &[], b"").status, 200);
}

/// Runs `aibridged server` expecting it to refuse to start; returns its stderr.
fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = ScratchDir::new("naming");
    let mut cmd = Command::new(BIN);
    cmd.arg("server")
        .args(args)
        .env_clear()
        .env("CODER_HTTP_ADDRESS", "127.0.0.1:0")
        .env("CODER_AIBRIDGE_DATABASE_URL", format!("sqlite://{}", dir.0.join("db").display()))
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run aibridged");
    assert!(!out.status.success(), "a conflicting configuration must not start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn one_setting_under_both_names_with_different_values_is_a_start_up_error_naming_both() {
    let err = refused_start(&[], &[("CODER_AIBRIDGE_RETENTION", "1d"), ("CODER_AI_GATEWAY_RETENTION", "2d")]);
    assert!(err.contains("CODER_AIBRIDGE_RETENTION") && err.contains("CODER_AI_GATEWAY_RETENTION"), "{err}");
    let err = refused_start(&["--aibridge-workers", "1", "--ai-gateway-workers=3"], &[]);
    assert!(err.contains("--aibridge-workers") && err.contains("--ai-gateway-workers"), "{err}");
    let dir = ScratchDir::new("naming-yaml");
    let yaml = dir.0.join("c.yaml");
    std::fs::write(&yaml, "aibridge:\n  workers: 1\nai_gateway:\n  workers: 2\n").unwrap();
    let err = refused_start(&["--config", yaml.to_str().unwrap()], &[]);
    assert!(err.contains("YAML aibridge.workers") && err.contains("YAML ai_gateway.workers"), "{err}");
}
