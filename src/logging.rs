//! The gateway's own logs (tracing): a human-readable destination and an optional JSON one, as Coder's
//! `--log-human` / `--log-json`. Interception log lines are written by the sink, not here.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoggingError {
    #[error("cannot open log destination {path}: {source}")]
    Open { path: String, source: std::io::Error },
}

/// Where a log destination string points. The gateway's own logs and the sink's interception log lines
/// both resolve their `--log-human` / `--log-json` value through [`Destination::resolve`], so one value
/// always means one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    Stdout,
    Stderr,
    /// A file, opened for appending (created if missing).
    File(PathBuf),
}

impl Destination {
    /// `-`, `stderr` and `/dev/stderr` mean the process's standard error, `stdout` and `/dev/stdout` its
    /// standard output; anything else is a file path. The standard streams are used directly rather than
    /// re-opened by path, which fails in sandboxes where /proc is not mounted.
    pub(crate) fn resolve(spec: &str) -> Self {
        match spec {
            "/dev/stderr" | "stderr" | "-" => Destination::Stderr,
            "/dev/stdout" | "stdout" => Destination::Stdout,
            path => Destination::File(PathBuf::from(path)),
        }
    }

    /// Opens the destination for writing. Writes to the standard streams are unbuffered here; callers
    /// buffer as they need.
    pub(crate) fn open(&self) -> std::io::Result<Box<dyn Write + Send>> {
        Ok(match self {
            Destination::Stdout => Box::new(std::io::stdout()),
            Destination::Stderr => Box::new(std::io::stderr()),
            Destination::File(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        })
    }
}

fn open(spec: &str) -> Result<Box<dyn Write + Send>, LoggingError> {
    Destination::resolve(spec).open().map_err(|source| LoggingError::Open { path: spec.to_string(), source })
}

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` level.
pub(crate) fn init(human: Option<&str>, json: Option<&str>) -> Result<(), LoggingError> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let human_layer = match human {
        Some(p) => Some(
            fmt::layer().with_ansi(false).with_target(false).with_writer(Mutex::new(open(p)?)).with_filter(filter()),
        ),
        None => None,
    };
    let json_layer = match json {
        Some(p) => Some(
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_target(false)
                .with_writer(Mutex::new(open(p)?))
                .with_filter(filter()),
        ),
        None => None,
    };
    let _ = tracing_subscriber::registry().with(human_layer).with(json_layer).try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_resolves_to_its_stream_and_the_rest_are_files() {
        for spec in ["-", "stderr", "/dev/stderr"] {
            assert_eq!(Destination::resolve(spec), Destination::Stderr, "{spec}");
        }
        for spec in ["stdout", "/dev/stdout"] {
            assert_eq!(Destination::resolve(spec), Destination::Stdout, "{spec}");
        }
        for spec in ["./-", "--", "/var/log/aibridge.json", "log.json", "/dev/stderr2"] {
            assert_eq!(Destination::resolve(spec), Destination::File(PathBuf::from(spec)), "{spec}");
        }
    }
}
