//! The three raw sources of a setting (flag, environment map, YAML document) and the table naming each
//! setting in all three. Resolves precedence flag > env > YAML; knows nothing of what values mean.

use super::error::ConfigError;
use serde_yaml_ng::Value;
use std::collections::HashMap;

/// One scalar setting as the operator can spell it: flag, variable and YAML paths (first is canonical;
/// the others are Coder deployment-file spellings accepted so a Coder YAML moves over unchanged).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setting {
    pub flag: &'static str,
    pub env: &'static str,
    pub yaml: &'static [&'static str],
}

macro_rules! aibridge_setting {
    ($name:ident, $flag:literal, $env:literal, $yaml:literal) => {
        pub(crate) const $name: Setting = Setting { flag: $flag, env: $env, yaml: &[$yaml] };
    };
}

aibridge_setting!(ENABLED, "--aibridge-enabled", "CODER_AIBRIDGE_ENABLED", "aibridge.enabled");
aibridge_setting!(DATABASE_URL, "--aibridge-database-url", "CODER_AIBRIDGE_DATABASE_URL", "aibridge.database_url");
aibridge_setting!(GATEWAY_ID, "--aibridge-gateway-id", "CODER_AIBRIDGE_GATEWAY_ID", "aibridge.gateway_id");
aibridge_setting!(WORKERS, "--aibridge-workers", "CODER_AIBRIDGE_WORKERS", "aibridge.workers");
aibridge_setting!(RETENTION, "--aibridge-retention", "CODER_AIBRIDGE_RETENTION", "aibridge.retention");
aibridge_setting!(
    STRUCTURED_LOGGING,
    "--aibridge-structured-logging",
    "CODER_AIBRIDGE_STRUCTURED_LOGGING",
    "aibridge.structured_logging"
);
aibridge_setting!(MAX_BODY_SIZE, "--aibridge-max-body-size", "CODER_AIBRIDGE_MAX_BODY_SIZE", "aibridge.max_body_size");
aibridge_setting!(
    SHUTDOWN_GRACE,
    "--aibridge-shutdown-grace",
    "CODER_AIBRIDGE_SHUTDOWN_GRACE",
    "aibridge.shutdown_grace"
);
aibridge_setting!(OPENAI_KEY, "--aibridge-openai-key", "CODER_AIBRIDGE_OPENAI_KEY", "aibridge.openai_key");
aibridge_setting!(
    OPENAI_BASE_URL,
    "--aibridge-openai-base-url",
    "CODER_AIBRIDGE_OPENAI_BASE_URL",
    "aibridge.openai_base_url"
);
aibridge_setting!(ANTHROPIC_KEY, "--aibridge-anthropic-key", "CODER_AIBRIDGE_ANTHROPIC_KEY", "aibridge.anthropic_key");
aibridge_setting!(
    ANTHROPIC_BASE_URL,
    "--aibridge-anthropic-base-url",
    "CODER_AIBRIDGE_ANTHROPIC_BASE_URL",
    "aibridge.anthropic_base_url"
);
aibridge_setting!(
    BEDROCK_REGION,
    "--aibridge-bedrock-region",
    "CODER_AIBRIDGE_BEDROCK_REGION",
    "aibridge.bedrock_region"
);
aibridge_setting!(
    BEDROCK_BASE_URL,
    "--aibridge-bedrock-base-url",
    "CODER_AIBRIDGE_BEDROCK_BASE_URL",
    "aibridge.bedrock_base_url"
);
aibridge_setting!(
    BEDROCK_ACCESS_KEY,
    "--aibridge-bedrock-access-key",
    "CODER_AIBRIDGE_BEDROCK_ACCESS_KEY",
    "aibridge.bedrock_access_key"
);
aibridge_setting!(
    BEDROCK_ACCESS_KEY_SECRET,
    "--aibridge-bedrock-access-key-secret",
    "CODER_AIBRIDGE_BEDROCK_ACCESS_KEY_SECRET",
    "aibridge.bedrock_access_key_secret"
);
aibridge_setting!(BEDROCK_MODEL, "--aibridge-bedrock-model", "CODER_AIBRIDGE_BEDROCK_MODEL", "aibridge.bedrock_model");
aibridge_setting!(
    BEDROCK_SMALL_FAST_MODEL,
    "--aibridge-bedrock-small-fast-model",
    "CODER_AIBRIDGE_BEDROCK_SMALL_FAST_MODEL",
    "aibridge.bedrock_small_fast_model"
);

// Timeouts, refresh intervals and sink limits (`config::tuning`).
aibridge_setting!(
    KEEPALIVE_IDLE_TIMEOUT,
    "--aibridge-keepalive-idle-timeout",
    "CODER_AIBRIDGE_KEEPALIVE_IDLE_TIMEOUT",
    "aibridge.keepalive_idle_timeout"
);
aibridge_setting!(
    REQUEST_HEAD_TIMEOUT,
    "--aibridge-request-head-timeout",
    "CODER_AIBRIDGE_REQUEST_HEAD_TIMEOUT",
    "aibridge.request_head_timeout"
);
aibridge_setting!(
    REQUEST_BODY_READ_TIMEOUT,
    "--aibridge-request-body-read-timeout",
    "CODER_AIBRIDGE_REQUEST_BODY_READ_TIMEOUT",
    "aibridge.request_body_read_timeout"
);
aibridge_setting!(
    REQUEST_BODY_TIMEOUT,
    "--aibridge-request-body-timeout",
    "CODER_AIBRIDGE_REQUEST_BODY_TIMEOUT",
    "aibridge.request_body_timeout"
);
aibridge_setting!(
    UPSTREAM_CONNECT_TIMEOUT,
    "--aibridge-upstream-connect-timeout",
    "CODER_AIBRIDGE_UPSTREAM_CONNECT_TIMEOUT",
    "aibridge.upstream_connect_timeout"
);
aibridge_setting!(
    UPSTREAM_TLS_HANDSHAKE_TIMEOUT,
    "--aibridge-upstream-tls-handshake-timeout",
    "CODER_AIBRIDGE_UPSTREAM_TLS_HANDSHAKE_TIMEOUT",
    "aibridge.upstream_tls_handshake_timeout"
);
aibridge_setting!(
    UPSTREAM_POOL_IDLE_TIMEOUT,
    "--aibridge-upstream-pool-idle-timeout",
    "CODER_AIBRIDGE_UPSTREAM_POOL_IDLE_TIMEOUT",
    "aibridge.upstream_pool_idle_timeout"
);
aibridge_setting!(
    UPSTREAM_FIRST_BYTE_TIMEOUT,
    "--aibridge-upstream-first-byte-timeout",
    "CODER_AIBRIDGE_UPSTREAM_FIRST_BYTE_TIMEOUT",
    "aibridge.upstream_first_byte_timeout"
);
aibridge_setting!(
    UPSTREAM_EARLY_ANSWER_GRACE,
    "--aibridge-upstream-early-answer-grace",
    "CODER_AIBRIDGE_UPSTREAM_EARLY_ANSWER_GRACE",
    "aibridge.upstream_early_answer_grace"
);
aibridge_setting!(
    STREAM_IDLE_TIMEOUT,
    "--aibridge-stream-idle-timeout",
    "CODER_AIBRIDGE_STREAM_IDLE_TIMEOUT",
    "aibridge.stream_idle_timeout"
);
aibridge_setting!(
    CLIENT_WRITE_TIMEOUT,
    "--aibridge-client-write-timeout",
    "CODER_AIBRIDGE_CLIENT_WRITE_TIMEOUT",
    "aibridge.client_write_timeout"
);
aibridge_setting!(
    CLIENT_WATCH_AFTER,
    "--aibridge-client-watch-after",
    "CODER_AIBRIDGE_CLIENT_WATCH_AFTER",
    "aibridge.client_watch_after"
);
aibridge_setting!(
    CLIENT_WATCH_AFTER_IDLE,
    "--aibridge-client-watch-after-idle",
    "CODER_AIBRIDGE_CLIENT_WATCH_AFTER_IDLE",
    "aibridge.client_watch_after_idle"
);
aibridge_setting!(
    TOKEN_REFRESH_INTERVAL,
    "--aibridge-token-refresh-interval",
    "CODER_AIBRIDGE_TOKEN_REFRESH_INTERVAL",
    "aibridge.token_refresh_interval"
);
aibridge_setting!(
    DNS_REFRESH_INTERVAL,
    "--aibridge-dns-refresh-interval",
    "CODER_AIBRIDGE_DNS_REFRESH_INTERVAL",
    "aibridge.dns_refresh_interval"
);
aibridge_setting!(
    SINK_BATCH_MAX_RECORDS,
    "--aibridge-sink-batch-max-records",
    "CODER_AIBRIDGE_SINK_BATCH_MAX_RECORDS",
    "aibridge.sink_batch_max_records"
);
aibridge_setting!(
    SINK_BATCH_MAX_DELAY,
    "--aibridge-sink-batch-max-delay",
    "CODER_AIBRIDGE_SINK_BATCH_MAX_DELAY",
    "aibridge.sink_batch_max_delay"
);
aibridge_setting!(
    SINK_CHANNEL_CAPACITY,
    "--aibridge-sink-channel-capacity",
    "CODER_AIBRIDGE_SINK_CHANNEL_CAPACITY",
    "aibridge.sink_channel_capacity"
);
aibridge_setting!(
    SINK_REPORT_INTERVAL,
    "--aibridge-sink-report-interval",
    "CODER_AIBRIDGE_SINK_REPORT_INTERVAL",
    "aibridge.sink_report_interval"
);
aibridge_setting!(
    RETENTION_INTERVAL,
    "--aibridge-retention-interval",
    "CODER_AIBRIDGE_RETENTION_INTERVAL",
    "aibridge.retention_interval"
);
// Bounded shutdown (issue 9 item 4).
aibridge_setting!(
    SHUTDOWN_DRAIN,
    "--aibridge-shutdown-drain",
    "CODER_AIBRIDGE_SHUTDOWN_DRAIN",
    "aibridge.shutdown_drain"
);

// Metrics (`config::metrics`): Coder's own Prometheus settings, and this gateway's prefix and label choice.
pub(crate) const PROMETHEUS_ENABLE: Setting = Setting {
    flag: "--prometheus-enable",
    env: "CODER_PROMETHEUS_ENABLE",
    yaml: &["prometheus.enable", "introspection.prometheus.enable"],
};
pub(crate) const PROMETHEUS_ADDRESS: Setting = Setting {
    flag: "--prometheus-address",
    env: "CODER_PROMETHEUS_ADDRESS",
    yaml: &["prometheus.address", "introspection.prometheus.address"],
};
aibridge_setting!(
    METRICS_PREFIX,
    "--aibridge-metrics-prefix",
    "CODER_AIBRIDGE_METRICS_PREFIX",
    "aibridge.metrics_prefix"
);
aibridge_setting!(
    METRICS_INITIATOR_LABEL,
    "--aibridge-metrics-initiator-label",
    "CODER_AIBRIDGE_METRICS_INITIATOR_LABEL",
    "aibridge.metrics_initiator_label"
);
// Overload protection, circuit breaker and readiness (issue 10, `config::limits`).
aibridge_setting!(
    MAX_CONCURRENCY,
    "--aibridge-max-concurrency",
    "CODER_AIBRIDGE_MAX_CONCURRENCY",
    "aibridge.max_concurrency"
);
aibridge_setting!(RATE_LIMIT, "--aibridge-rate-limit", "CODER_AIBRIDGE_RATE_LIMIT", "aibridge.rate_limit");
aibridge_setting!(
    MAX_CONNECTIONS,
    "--aibridge-max-connections",
    "CODER_AIBRIDGE_MAX_CONNECTIONS",
    "aibridge.max_connections"
);
aibridge_setting!(
    BREAKER_ENABLED,
    "--aibridge-circuit-breaker-enabled",
    "CODER_AIBRIDGE_CIRCUIT_BREAKER_ENABLED",
    "aibridge.circuit_breaker_enabled"
);
aibridge_setting!(
    BREAKER_FAILURE_THRESHOLD,
    "--aibridge-circuit-breaker-failure-threshold",
    "CODER_AIBRIDGE_CIRCUIT_BREAKER_FAILURE_THRESHOLD",
    "aibridge.circuit_breaker_failure_threshold"
);
aibridge_setting!(
    BREAKER_INTERVAL,
    "--aibridge-circuit-breaker-interval",
    "CODER_AIBRIDGE_CIRCUIT_BREAKER_INTERVAL",
    "aibridge.circuit_breaker_interval"
);
aibridge_setting!(
    BREAKER_TIMEOUT,
    "--aibridge-circuit-breaker-timeout",
    "CODER_AIBRIDGE_CIRCUIT_BREAKER_TIMEOUT",
    "aibridge.circuit_breaker_timeout"
);
aibridge_setting!(
    BREAKER_MAX_REQUESTS,
    "--aibridge-circuit-breaker-max-requests",
    "CODER_AIBRIDGE_CIRCUIT_BREAKER_MAX_REQUESTS",
    "aibridge.circuit_breaker_max_requests"
);
aibridge_setting!(
    SHUTDOWN_DELAY,
    "--aibridge-shutdown-delay",
    "CODER_AIBRIDGE_SHUTDOWN_DELAY",
    "aibridge.shutdown_delay"
);

// --- Sessions API and web page (issue 12) ---
aibridge_setting!(ADMIN_ADDRESS, "--admin-address", "CODER_AIBRIDGE_ADMIN_ADDRESS", "aibridge.admin_address");
aibridge_setting!(PRICE_FILE, "--aibridge-price-file", "CODER_AIBRIDGE_PRICE_FILE", "aibridge.price_file");

pub(crate) const HTTP_ADDRESS: Setting = Setting {
    flag: "--http-address",
    env: "CODER_HTTP_ADDRESS",
    yaml: &["http_address", "networking.http.httpAddress"],
};
pub(crate) const LOG_HUMAN: Setting = Setting {
    flag: "--log-human",
    env: "CODER_LOGGING_HUMAN",
    yaml: &["log_human", "introspection.logging.humanPath"],
};
pub(crate) const LOG_JSON: Setting =
    Setting { flag: "--log-json", env: "CODER_LOGGING_JSON", yaml: &["log_json", "introspection.logging.jsonPath"] };

/// The variable naming the YAML file (the flag is `--config`).
pub(crate) const CONFIG_PATH_ENV: &str = "CODER_CONFIG_PATH";

/// Every `aibridge.*` YAML key this gateway understands; others draw a warning.
pub(crate) const AIBRIDGE_YAML_KEYS: &[&Setting] = &[
    &ENABLED,
    &DATABASE_URL,
    &WORKERS,
    &RETENTION,
    &STRUCTURED_LOGGING,
    &MAX_BODY_SIZE,
    &SHUTDOWN_GRACE,
    &GATEWAY_ID,
    &OPENAI_KEY,
    &OPENAI_BASE_URL,
    &ANTHROPIC_KEY,
    &ANTHROPIC_BASE_URL,
    &BEDROCK_REGION,
    &BEDROCK_BASE_URL,
    &BEDROCK_ACCESS_KEY,
    &BEDROCK_ACCESS_KEY_SECRET,
    &BEDROCK_MODEL,
    &BEDROCK_SMALL_FAST_MODEL,
    &KEEPALIVE_IDLE_TIMEOUT,
    &REQUEST_HEAD_TIMEOUT,
    &REQUEST_BODY_READ_TIMEOUT,
    &REQUEST_BODY_TIMEOUT,
    &UPSTREAM_CONNECT_TIMEOUT,
    &UPSTREAM_TLS_HANDSHAKE_TIMEOUT,
    &UPSTREAM_POOL_IDLE_TIMEOUT,
    &UPSTREAM_FIRST_BYTE_TIMEOUT,
    &UPSTREAM_EARLY_ANSWER_GRACE,
    &STREAM_IDLE_TIMEOUT,
    &CLIENT_WRITE_TIMEOUT,
    &CLIENT_WATCH_AFTER,
    &CLIENT_WATCH_AFTER_IDLE,
    &TOKEN_REFRESH_INTERVAL,
    &DNS_REFRESH_INTERVAL,
    &SINK_BATCH_MAX_RECORDS,
    &SINK_BATCH_MAX_DELAY,
    &SINK_CHANNEL_CAPACITY,
    &SINK_REPORT_INTERVAL,
    &RETENTION_INTERVAL,
    &SHUTDOWN_DRAIN,
    // Metrics.
    &METRICS_PREFIX,
    &METRICS_INITIATOR_LABEL,
    // Overload protection, circuit breaker and readiness (issue 10).
    &MAX_CONCURRENCY,
    &RATE_LIMIT,
    &MAX_CONNECTIONS,
    &BREAKER_ENABLED,
    &BREAKER_FAILURE_THRESHOLD,
    &BREAKER_INTERVAL,
    &BREAKER_TIMEOUT,
    &BREAKER_MAX_REQUESTS,
    &SHUTDOWN_DELAY,
    // Sessions API and web page (issue 12)
    &ADMIN_ADDRESS,
    &PRICE_FILE,
];

/// A value and the name of the source it came from (flag, variable or `YAML <path>`), for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Raw {
    pub value: String,
    pub origin: String,
}

/// Whether an explicitly empty value is a value (log destinations: empty disables) or counts as unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Empty {
    IsUnset,
    IsValue,
}

/// The environment map and the parsed YAML document, read once; flags are passed per lookup.
pub(crate) struct Sources<'a> {
    pub env: &'a HashMap<String, String>,
    pub yaml: Option<&'a Value>,
}

impl Sources<'_> {
    /// The winning value of `setting`: the flag if given, else the variable, else the first YAML path set.
    pub fn get(&self, setting: &Setting, flag: Option<&str>, empty: Empty) -> Result<Option<Raw>, ConfigError> {
        let keep = |v: &str| empty == Empty::IsValue || !v.trim().is_empty();
        if let Some(v) = flag.filter(|v| keep(v)) {
            return Ok(Some(Raw { value: v.to_string(), origin: setting.flag.to_string() }));
        }
        if let Some(v) = self.env.get(setting.env).filter(|v| keep(v)) {
            return Ok(Some(Raw { value: v.clone(), origin: setting.env.to_string() }));
        }
        if let Some(doc) = self.yaml {
            for path in setting.yaml {
                if let Some(node) = yaml_lookup(doc, path) {
                    if let Some(v) = yaml_scalar(node, path)?.filter(|v| keep(v)) {
                        return Ok(Some(Raw { value: v, origin: format!("YAML {path}") }));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Follows a dotted path through nested mappings.
pub(crate) fn yaml_lookup<'v>(doc: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(doc, |node, segment| node.as_mapping()?.get(segment))
}

/// A YAML scalar as text; a sequence of scalars becomes a comma-separated list (for key lists);
/// `null` counts as unset.
pub(crate) fn yaml_scalar(node: &Value, path: &str) -> Result<Option<String>, ConfigError> {
    let scalar = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    match node {
        Value::Null => Ok(None),
        Value::Sequence(items) => {
            let parts: Option<Vec<String>> = items.iter().map(scalar).collect();
            match parts {
                Some(parts) => Ok(Some(parts.join(","))),
                None => Err(ConfigError::Yaml {
                    path: path.to_string(),
                    reason: "list entries must be plain values".to_string(),
                }),
            }
        }
        other => scalar(other).map(Some).ok_or_else(|| ConfigError::Yaml {
            path: path.to_string(),
            reason: "expected a plain value, not a mapping".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn flag_beats_env_beats_yaml() {
        let doc = yaml("aibridge:\n  retention: 1d\n");
        let mut env = HashMap::new();
        env.insert("CODER_AIBRIDGE_RETENTION".to_string(), "2d".to_string());
        let s = Sources { env: &env, yaml: Some(&doc) };
        let got = s.get(&RETENTION, Some("3d"), Empty::IsUnset).unwrap().unwrap();
        assert_eq!((got.value.as_str(), got.origin.as_str()), ("3d", "--aibridge-retention"));
        let got = s.get(&RETENTION, None, Empty::IsUnset).unwrap().unwrap();
        assert_eq!((got.value.as_str(), got.origin.as_str()), ("2d", "CODER_AIBRIDGE_RETENTION"));
        let empty = HashMap::new();
        let s = Sources { env: &empty, yaml: Some(&doc) };
        let got = s.get(&RETENTION, None, Empty::IsUnset).unwrap().unwrap();
        assert_eq!((got.value.as_str(), got.origin.as_str()), ("1d", "YAML aibridge.retention"));
        let s = Sources { env: &empty, yaml: None };
        assert_eq!(s.get(&RETENTION, None, Empty::IsUnset).unwrap(), None);
    }

    #[test]
    fn empty_values_fall_through_unless_they_are_values() {
        let mut env = HashMap::new();
        env.insert("CODER_LOGGING_HUMAN".to_string(), String::new());
        let s = Sources { env: &env, yaml: None };
        assert_eq!(s.get(&LOG_HUMAN, None, Empty::IsUnset).unwrap(), None);
        assert_eq!(s.get(&LOG_HUMAN, None, Empty::IsValue).unwrap().unwrap().value, "");
    }

    #[test]
    fn coder_yaml_spellings_and_scalars() {
        let doc =
            yaml("networking:\n  http:\n    httpAddress: 0.0.0.0:8080\naibridge:\n  workers: 4\n  enabled: false\n");
        let env = HashMap::new();
        let s = Sources { env: &env, yaml: Some(&doc) };
        assert_eq!(s.get(&HTTP_ADDRESS, None, Empty::IsUnset).unwrap().unwrap().value, "0.0.0.0:8080");
        assert_eq!(s.get(&WORKERS, None, Empty::IsUnset).unwrap().unwrap().value, "4");
        assert_eq!(s.get(&ENABLED, None, Empty::IsUnset).unwrap().unwrap().value, "false");
    }

    #[test]
    fn yaml_mapping_where_a_value_belongs_is_an_error() {
        let doc = yaml("aibridge:\n  retention:\n    days: 3\n");
        let env = HashMap::new();
        let s = Sources { env: &env, yaml: Some(&doc) };
        assert!(matches!(s.get(&RETENTION, None, Empty::IsUnset), Err(ConfigError::Yaml { .. })));
    }
}
