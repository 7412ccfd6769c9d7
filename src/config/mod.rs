//! Validated configuration (README "Configuration"). Raw inputs (flags, `CODER_*` variables, YAML) are read and
//! checked elsewhere in this module and turned into these types once at start-up; workers only read them.
//! A leaf module: no I/O past start-up, no runtime.

use std::fmt;
use std::time::Duration;

mod aliases;
pub mod args;
pub mod error;
mod limits;
mod load;
mod metrics;
mod providers;
mod sources;
#[cfg(test)]
mod tests;
mod tuning;
pub mod units;

pub use args::{DatabaseArgs, ServerArgs};
pub use limits::{BreakerSettings, Limits};
pub use load::{canonical_args, database_url, load_from_process, process_env};
pub(crate) use metrics::is_valid_name_prefix;
pub use metrics::MetricsSettings;
pub use tuning::{SinkSettings, Timeouts};
// What the configuration tests name through `config::` (the rest stays inside the module).
#[cfg(test)]
pub(crate) use error::{ConfigError, KeyListProblem};
#[cfg(test)]
pub(crate) use load::{load, parse_yaml, Loaded, DEFAULT_MAX_BODY_SIZE, DEFAULT_RETENTION};
// The fuzz entry point (crate::fuzzing) loads from an injected environment without a YAML file.
pub(crate) use load::load_with_yaml;
#[cfg(test)]
pub(crate) use providers::DEFAULT_BEDROCK_MODEL;
pub(crate) use providers::{MAX_KEYS, MAX_NAME_LEN};

/// Everything `aibridged server` runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// `CODER_AIBRIDGE_ENABLED`: when false every bridge route answers 404 "bridge disabled".
    pub enabled: bool,
    /// `CODER_HTTP_ADDRESS`, e.g. `127.0.0.1:3000`.
    pub http_address: String,
    /// The database: a SQLite file (`sqlite://PATH`) or a PostgreSQL server.
    pub database: crate::db::DatabaseUrl,
    /// Worker threads (one runtime each).
    pub workers: usize,
    /// Records older than this are purged; `None` keeps them forever.
    pub retention: Option<Duration>,
    /// One "interception log" line per record.
    pub structured_logging: bool,
    /// Human log destination (path or `/dev/stderr`); `None` disables it.
    pub log_human: Option<String>,
    /// JSON log destination; `None` disables it.
    pub log_json: Option<String>,
    /// Largest accepted request body, in bytes (`--aibridge-max-body-size`, default 32 MiB).
    pub max_body_size: usize,
    /// How long in-flight requests may run after SIGTERM/SIGINT (`--aibridge-shutdown-grace`, default 30s).
    pub shutdown_grace: Duration,
    /// Which gateway instance this is, stored with every interception it starts
    /// (`--aibridge-gateway-id`, default `HOSTNAME/HTTP_ADDRESS`).
    pub gateway_id: std::sync::Arc<str>,
    /// Provider instances, in index order (legacy ones included).
    pub providers: Vec<ProviderConfig>,
    /// Every deadline of a request's life (`--aibridge-*-timeout`, `--aibridge-client-watch-*`).
    pub timeouts: Timeouts,
    /// The sink's batch limits, channel bound and intervals (`--aibridge-sink-*`, `--aibridge-retention-interval`).
    pub sink: SinkSettings,
    /// How often the token cache is reloaded (`--aibridge-token-refresh-interval`, default 250ms).
    pub token_refresh: Duration,
    /// How often upstream host names are resolved again (`--aibridge-dns-refresh-interval`, default 30s).
    pub dns_refresh: Duration,
    /// `/metrics`: whether and where it is served, the name prefix, the initiator label
    /// (`--prometheus-*`, `--aibridge-metrics-*`).
    pub metrics: MetricsSettings,
    /// Overload protection, circuit breaker and readiness (`config::limits`).
    pub limits: Limits,
    /// The sessions API and web page listener (`--admin-address`, `--aibridge-price-file`).
    pub admin: AdminSettings,
}

/// Where the control-plane listener serves the sessions API and the web page, and its price table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// `--admin-address`, default `127.0.0.1:3001`; `None` when set empty (no listener).
    pub address: Option<String>,
    /// `--aibridge-price-file`: a JSON price table replacing the built-in one.
    pub price_file: Option<std::path::PathBuf>,
}

/// The wire family of a provider instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderType {
    OpenAi,
    Anthropic,
    Copilot,
}

impl ProviderType {
    /// The name used in configuration and records.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::OpenAi => "openai",
            ProviderType::Anthropic => "anthropic",
            ProviderType::Copilot => "copilot",
        }
    }

    /// The base URL used when none is configured.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderType::OpenAi => "https://api.openai.com/v1/",
            ProviderType::Anthropic => "https://api.anthropic.com/",
            ProviderType::Copilot => "https://api.individual.githubcopilot.com",
        }
    }
}

/// One provider instance, reachable at `/api/v2/aibridge/<name>/…`.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderType,
    pub base_url: UpstreamUrl,
    /// Upstream credentials; several form a failover pool (at most 5). Empty: no central key.
    pub keys: Vec<Secret>,
    /// Set when this anthropic instance is routed to AWS Bedrock.
    pub bedrock: Option<BedrockConfig>,
}

/// AWS Bedrock settings of an anthropic instance.
#[derive(Debug, Clone)]
pub struct BedrockConfig {
    pub region: Option<String>,
    /// Explicit endpoint; otherwise `https://bedrock-runtime.{region}.amazonaws.com`.
    pub base_url: Option<UpstreamUrl>,
    /// Access key id / secret pairs; empty means "use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY".
    pub credentials: Vec<AwsCredential>,
    pub model: String,
    pub small_fast_model: String,
}

/// One AWS credential pair.
#[derive(Debug, Clone)]
pub struct AwsCredential {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// A parsed upstream base URL: scheme, host, port and the base path to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash (`""`, `/v1`, `/proxy/anthropic`).
    pub base_path: String,
}

impl UpstreamUrl {
    /// Parses `http(s)://host[:port][/path]`.
    pub fn parse(s: &str) -> Result<UpstreamUrl, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("URL {s:?} must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("URL {s:?} has no valid host"));
        }
        let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
            // [v6]:port
            let end = stripped.find(']').ok_or_else(|| format!("URL {s:?} has a bad IPv6 host"))?;
            let host = &stripped[..end];
            let after = &stripped[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("URL {s:?} has a bad port"))?,
                None if after.is_empty() => {
                    if tls {
                        443
                    } else {
                        80
                    }
                }
                None => return Err(format!("URL {s:?} has a bad host")),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| format!("URL {s:?} has a bad port"))?),
                None => (authority.to_string(), if tls { 443 } else { 80 }),
            }
        };
        if host.is_empty() {
            return Err(format!("URL {s:?} has no host"));
        }
        let path = path.split(['?', '#']).next().unwrap_or("");
        let base_path = path.trim_end_matches('/').to_string();
        Ok(UpstreamUrl { tls, host, port, base_path })
    }

    /// The `Host` header value for this upstream.
    pub fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// A secret (provider key, AWS secret): never printed; `Debug` and `hint()` show a masked form only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for injecting into an upstream request. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A masked hint such as `sk-a…wxyz` (first 4 and last 4 characters; `…` alone for short secrets).
    pub fn hint(&self) -> String {
        // Recorded with every interception: byte offsets of the character boundaries, no intermediate
        // collections.
        let s = self.0.as_str();
        if s.chars().nth(11).is_none() {
            return "…".to_string();
        }
        let head_end = s.char_indices().nth(4).map_or(s.len(), |(i, _)| i);
        let tail_start = s.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
        let mut out = String::with_capacity(head_end + "…".len() + s.len() - tail_start);
        out.push_str(&s[..head_end]);
        out.push('…');
        out.push_str(&s[tail_start..]);
        out
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.hint())
    }
}

#[cfg(test)]
mod secret_hint_tests {
    use super::Secret;

    #[test]
    fn hint_keeps_four_characters_each_side_and_hides_short_secrets() {
        assert_eq!(Secret::new("sk-abcdefgh-wxyz").hint(), "sk-a…wxyz");
        assert_eq!(Secret::new("123456789012").hint(), "1234…9012");
        assert_eq!(Secret::new("12345678901").hint(), "…");
        assert_eq!(Secret::new("").hint(), "…");
        // Characters, not bytes: multi-byte text is cut on its boundaries.
        assert_eq!(Secret::new("ééééxxxxyyyyüüüü").hint(), "éééé…üüüü");
        assert_eq!(Secret::new("ab€dxxxxyyyyzz€q").hint(), "ab€d…zz€q");
    }
}
