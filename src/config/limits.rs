//! The settings of issue 10's overload protection, circuit breaker and readiness: their defaults,
//! ranges and resolution (flag > env > YAML > default). Pure: no I/O; `state` holds what they configure.

use std::time::Duration;

use super::args::LimitsArgs;
use super::error::ConfigError;
use super::sources::{self, Empty, Raw, Setting, Sources};
use super::units::parse_duration;

/// Largest concurrency or rate limit: far above what one gateway serves, catches typos.
const MAX_LIMIT: u64 = 1_000_000;
/// Longest readiness drain: a load balancer notices a failing probe within seconds.
const MAX_SHUTDOWN_DELAY: Duration = Duration::from_secs(300);

/// Overload protection, breaker and readiness settings (README "Configuration", "What each limit answers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Intercepted requests in flight across all workers (`0`: no limit).
    pub max_concurrency: u64,
    /// Requests per second per gateway token (`0`: no limit).
    pub rate_limit: u32,
    /// Client connections open across all workers (`0`: no limit).
    pub max_connections: u64,
    /// How long after SIGTERM the gateway keeps accepting while `/readyz` answers 503 (default 0: the
    /// listeners close at once, and probes see refused connections).
    pub shutdown_delay: Duration,
}

/// Resolves every setting of [`Limits`].
pub(super) fn resolve(args: &LimitsArgs, src: &Sources<'_>) -> Result<Limits, ConfigError> {
    let get = |s: &Setting, flag: &Option<String>| src.get(s, flag.as_deref(), Empty::IsUnset);
    let d = Limits::default();
    let shutdown_delay = match get(&sources::SHUTDOWN_DELAY, &args.shutdown_delay)? {
        Some(raw) => duration_up_to(&raw, MAX_SHUTDOWN_DELAY)?,
        None => d.shutdown_delay,
    };
    let max_concurrency = match get(&sources::MAX_CONCURRENCY, &args.max_concurrency)? {
        Some(raw) => count_up_to(&raw, MAX_LIMIT)?,
        None => d.max_concurrency,
    };
    let rate_limit = match get(&sources::RATE_LIMIT, &args.rate_limit)? {
        Some(raw) => count_up_to(&raw, MAX_LIMIT)? as u32,
        None => d.rate_limit,
    };
    let max_connections = match get(&sources::MAX_CONNECTIONS, &args.max_connections)? {
        Some(raw) => count_up_to(&raw, MAX_LIMIT)?,
        None => d.max_connections,
    };
    Ok(Limits { max_concurrency, rate_limit, max_connections, shutdown_delay })
}

fn invalid(raw: &Raw, reason: String) -> ConfigError {
    ConfigError::InvalidValue { setting: raw.origin.clone(), reason }
}

/// A whole number from 0 (off) to `max`.
fn count_up_to(raw: &Raw, max: u64) -> Result<u64, ConfigError> {
    match raw.value.trim().parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(invalid(raw, format!("expected a whole number from 0 (off) to {max}, got {:?}", raw.value))),
    }
}

/// A duration from 0 to `max`.
fn duration_up_to(raw: &Raw, max: Duration) -> Result<Duration, ConfigError> {
    let d = parse_duration(&raw.value).map_err(|e| invalid(raw, e.to_string()))?;
    if d > max {
        return Err(invalid(raw, format!("must be at most {}s, got {:?}", max.as_secs(), raw.value.trim())));
    }
    Ok(d)
}
