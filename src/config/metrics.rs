//! The metrics settings: Coder's `CODER_PROMETHEUS_ENABLE` / `CODER_PROMETHEUS_ADDRESS` (off by default,
//! `127.0.0.1:2112`), the metric-name prefix and whether series carry the initiator. Pure: resolution and
//! validation only.

use super::args::MetricsArgs;
use super::error::ConfigError;
use super::load::{parse_address, parse_bool};
use super::sources::{self, Empty, Sources};

/// Coder's default metrics address.
pub const DEFAULT_PROMETHEUS_ADDRESS: &str = "127.0.0.1:2112";
/// Coder's metric-name prefix for its AI Gateway daemon, so its dashboards and alerts carry over.
pub const DEFAULT_METRICS_PREFIX: &str = "coder_aibridged_";
/// Longest prefix: a name part, not data.
const MAX_PREFIX_LEN: usize = 100;

/// Whether and how `/metrics` is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// `CODER_PROMETHEUS_ENABLE`.
    pub enabled: bool,
    /// `CODER_PROMETHEUS_ADDRESS`, `HOST:PORT`.
    pub address: String,
    /// Prepended to every metric name.
    pub prefix: String,
    /// Label interceptions, prompts and tokens with `initiator_id` (one series per user); off aggregates
    /// over users.
    pub initiator_label: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: false,
            address: DEFAULT_PROMETHEUS_ADDRESS.to_string(),
            prefix: DEFAULT_METRICS_PREFIX.to_string(),
            initiator_label: true,
        }
    }
}

/// Resolves the metrics settings (flag > env > YAML > default).
pub(super) fn resolve(args: &MetricsArgs, src: &Sources<'_>) -> Result<MetricsSettings, ConfigError> {
    let d = MetricsSettings::default();
    let enabled = match src.get(&sources::PROMETHEUS_ENABLE, args.prometheus_enable.as_deref(), Empty::IsUnset)? {
        Some(raw) => parse_bool(&raw)?,
        None => d.enabled,
    };
    let address = match src.get(&sources::PROMETHEUS_ADDRESS, args.prometheus_address.as_deref(), Empty::IsUnset)? {
        Some(raw) => parse_address(&raw)?,
        None => d.address,
    };
    // An empty prefix is a real choice (bare names), so empty is a value here.
    let prefix = match src.get(&sources::METRICS_PREFIX, args.metrics_prefix.as_deref(), Empty::IsValue)? {
        Some(raw) => {
            let p = raw.value.trim();
            if p.len() > MAX_PREFIX_LEN || !is_valid_name_prefix(p) {
                return Err(ConfigError::InvalidValue {
                    setting: raw.origin.clone(),
                    reason: format!(
                        "expected at most {MAX_PREFIX_LEN} letters, digits, '_' or ':' not starting with a digit, got {p:?}"
                    ),
                });
            }
            p.to_string()
        }
        None => d.prefix,
    };
    let initiator_label =
        match src.get(&sources::METRICS_INITIATOR_LABEL, args.metrics_initiator_label.as_deref(), Empty::IsUnset)? {
            Some(raw) => parse_bool(&raw)?,
            None => d.initiator_label,
        };
    Ok(MetricsSettings { enabled, address, prefix, initiator_label })
}

/// Whether `prefix` can start a Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`); empty is allowed.
pub(crate) fn is_valid_name_prefix(prefix: &str) -> bool {
    prefix
        .bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_alphabetic() || b == b'_' || b == b':' || (i > 0 && b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve_env(args: &MetricsArgs, pairs: &[(&str, &str)]) -> Result<MetricsSettings, ConfigError> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        resolve(args, &Sources { env: &env, yaml: None })
    }

    #[test]
    fn off_by_default_on_coders_address_and_prefix() {
        assert_eq!(resolve_env(&MetricsArgs::default(), &[]).unwrap(), MetricsSettings::default());
        assert_eq!(MetricsSettings::default().address, "127.0.0.1:2112");
        assert!(!MetricsSettings::default().enabled);
    }

    #[test]
    fn coders_variables_flags_and_yaml_set_them() {
        let got = resolve_env(
            &MetricsArgs::default(),
            &[
                ("CODER_PROMETHEUS_ENABLE", "true"),
                ("CODER_PROMETHEUS_ADDRESS", "0.0.0.0:9000"),
                ("CODER_AIBRIDGE_METRICS_PREFIX", ""),
                ("CODER_AIBRIDGE_METRICS_INITIATOR_LABEL", "false"),
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            MetricsSettings {
                enabled: true,
                address: "0.0.0.0:9000".into(),
                prefix: String::new(),
                initiator_label: false
            }
        );
        let args = MetricsArgs { metrics_prefix: Some("gw:".into()), ..MetricsArgs::default() };
        assert_eq!(resolve_env(&args, &[("CODER_AIBRIDGE_METRICS_PREFIX", "x_")]).unwrap().prefix, "gw:");
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("introspection:\n  prometheus:\n    enable: true\n    address: 127.0.0.1:9100\n")
                .unwrap();
        let env = HashMap::new();
        let got = resolve(&MetricsArgs::default(), &Sources { env: &env, yaml: Some(&doc) }).unwrap();
        assert!(got.enabled);
        assert_eq!(got.address, "127.0.0.1:9100");
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (k, v) in [
            ("CODER_PROMETHEUS_ENABLE", "maybe"),
            ("CODER_PROMETHEUS_ADDRESS", "2112"),
            ("CODER_AIBRIDGE_METRICS_PREFIX", "9lives_"),
            ("CODER_AIBRIDGE_METRICS_PREFIX", "a-b"),
        ] {
            let e = resolve_env(&MetricsArgs::default(), &[(k, v)]).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
    }
}
