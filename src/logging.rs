//! The gateway's own logs (tracing): a human-readable destination and an optional JSON one, as Coder's
//! `--log-human` / `--log-json`. Interception log lines are written by the sink, not here.

use std::fs::OpenOptions;
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot open log destination {path}: {source}")]
    Open { path: String, source: std::io::Error },
}

fn open(path: &str) -> Result<Box<dyn std::io::Write + Send>, LoggingError> {
    match path {
        "/dev/stderr" | "stderr" | "-" => Ok(Box::new(std::io::stderr())),
        "/dev/stdout" | "stdout" => Ok(Box::new(std::io::stdout())),
        _ => OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(|f| Box::new(f) as Box<dyn std::io::Write + Send>)
            .map_err(|source| LoggingError::Open { path: path.to_string(), source }),
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` level.
pub fn init(human: Option<&str>, json: Option<&str>) -> Result<(), LoggingError> {
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
