//! The settings of issue 10's overload protection, circuit breaker and readiness: their defaults,
//! ranges and resolution (flag > env > YAML > default). Pure: no I/O; `state` holds what they configure.

use std::time::Duration;

use super::args::LimitsArgs;
use super::error::ConfigError;
use super::sources::{self, Empty, Raw, Setting, Sources};
use super::units::parse_duration;

/// Longest readiness drain: a load balancer notices a failing probe within seconds.
const MAX_SHUTDOWN_DELAY: Duration = Duration::from_secs(300);

/// Overload protection, breaker and readiness settings (README "Configuration", "What each limit answers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
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
    Ok(Limits { shutdown_delay })
}

fn invalid(raw: &Raw, reason: String) -> ConfigError {
    ConfigError::InvalidValue { setting: raw.origin.clone(), reason }
}

/// A duration from 0 to `max`.
fn duration_up_to(raw: &Raw, max: Duration) -> Result<Duration, ConfigError> {
    let d = parse_duration(&raw.value).map_err(|e| invalid(raw, e.to_string()))?;
    if d > max {
        return Err(invalid(raw, format!("must be at most {}s, got {:?}", max.as_secs(), raw.value.trim())));
    }
    Ok(d)
}
