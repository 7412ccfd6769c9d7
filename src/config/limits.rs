//! The settings of issue 10's overload protection, circuit breaker and readiness: their defaults,
//! ranges and resolution (flag > env > YAML > default). Pure: no I/O; `state` holds what they configure.

use std::time::Duration;

use super::args::LimitsArgs;
use super::error::ConfigError;
use super::load::parse_bool;
use super::sources::{self, Empty, Raw, Setting, Sources};
use super::units::parse_duration;

/// Largest concurrency or rate limit: far above what one gateway serves, catches typos.
const MAX_LIMIT: u64 = 1_000_000;
/// Largest breaker threshold and half-open budget.
const MAX_BREAKER_COUNT: u64 = 1000;
/// Longest breaker interval and open timeout.
const MAX_BREAKER_PERIOD: Duration = Duration::from_secs(3600);
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
    /// The circuit breaker (Coder's `CODER_AIBRIDGE_CIRCUIT_BREAKER_*`).
    pub breaker: BreakerSettings,
    /// How long after SIGTERM the gateway keeps accepting while `/readyz` answers 503 (default 0: the
    /// listeners close at once, and probes see refused connections).
    pub shutdown_delay: Duration,
}

/// The circuit breaker's settings, with Coder's defaults (README "What each limit answers").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Off by default, as in Coder.
    pub enabled: bool,
    /// Consecutive upstream failures (503, 504, 529) that open a closed breaker.
    pub failure_threshold: u32,
    /// How often a closed breaker forgets its failure count (`0`: never).
    pub interval: Duration,
    /// How long an open breaker refuses before turning half-open.
    pub timeout: Duration,
    /// Requests a half-open breaker lets through; as many successes close it, one failure reopens it.
    pub max_requests: u32,
}

impl Default for BreakerSettings {
    fn default() -> BreakerSettings {
        BreakerSettings {
            enabled: false,
            failure_threshold: 5,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_requests: 3,
        }
    }
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
    let breaker = resolve_breaker(args, src)?;
    Ok(Limits { max_concurrency, rate_limit, max_connections, breaker, shutdown_delay })
}

fn resolve_breaker(args: &LimitsArgs, src: &Sources<'_>) -> Result<BreakerSettings, ConfigError> {
    let get = |s: &Setting, flag: &Option<String>| src.get(s, flag.as_deref(), Empty::IsUnset);
    let d = BreakerSettings::default();
    let enabled = match get(&sources::BREAKER_ENABLED, &args.breaker_enabled)? {
        Some(raw) => parse_bool(&raw)?,
        None => d.enabled,
    };
    let failure_threshold = match get(&sources::BREAKER_FAILURE_THRESHOLD, &args.breaker_failure_threshold)? {
        Some(raw) => count_between(&raw, 1, MAX_BREAKER_COUNT)? as u32,
        None => d.failure_threshold,
    };
    let interval = match get(&sources::BREAKER_INTERVAL, &args.breaker_interval)? {
        Some(raw) => duration_up_to(&raw, MAX_BREAKER_PERIOD)?,
        None => d.interval,
    };
    let timeout = match get(&sources::BREAKER_TIMEOUT, &args.breaker_timeout)? {
        Some(raw) => match duration_up_to(&raw, MAX_BREAKER_PERIOD)? {
            Duration::ZERO => return Err(invalid(&raw, "must be at least 1ms".to_string())),
            t => t,
        },
        None => d.timeout,
    };
    let max_requests = match get(&sources::BREAKER_MAX_REQUESTS, &args.breaker_max_requests)? {
        Some(raw) => count_between(&raw, 1, MAX_BREAKER_COUNT)? as u32,
        None => d.max_requests,
    };
    Ok(BreakerSettings { enabled, failure_threshold, interval, timeout, max_requests })
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

/// A whole number from `min` to `max`.
fn count_between(raw: &Raw, min: u64, max: u64) -> Result<u64, ConfigError> {
    match raw.value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(raw, format!("expected a whole number from {min} to {max}, got {:?}", raw.value))),
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
