//! `aibridged server`: wires configuration, the sink, the token cache, DNS, TLS and the workers together,
//! and runs the graceful shutdown sequence (stop accepting, finish in flight, drain the sink, exit).

use std::sync::Arc;
use std::time::Duration;

use crate::auth;
use crate::config::Config;
use crate::providers::bedrock::sign::credentials_from_env;
use crate::relay::{Gateway, WorkerService};
use crate::runtime::dns;
use crate::runtime::listener::bind_reuseport;
use crate::runtime::shutdown::{install_signal_thread, ShutdownFlag};
use crate::runtime::tls;
use crate::runtime::worker::{spawn_workers, DriverChoice};
use crate::sink::{self, SinkOptions};

/// How often the token cache is reloaded from SQLite: a new token works, and a revoked one stops working,
/// within this. Reading the tokens table is cheap and happens off the workers.
const TOKEN_REFRESH: Duration = Duration::from_millis(250);
/// How often upstream host names are resolved again.
const DNS_REFRESH: Duration = Duration::from_secs(30);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Sink(#[from] sink::SinkError),
    #[error("{0}")]
    Auth(#[from] auth::AuthError),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("cannot start threads: {0}")]
    Threads(std::io::Error),
}

/// Runs the gateway until SIGTERM/SIGINT, then shuts down gracefully.
pub fn run(config: Config) -> Result<(), StartError> {
    // Signals first, before any thread exists, so every thread inherits the blocked mask.
    let flag = ShutdownFlag::new();
    install_signal_thread(flag.clone(), |sig| {
        tracing::info!(signal = sig, "shutdown requested: no new connections; finishing requests in flight");
    })
    .map_err(StartError::Threads)?;
    let _ = rustls::crypto::ring::default_provider().install_default();

    let config = Arc::new(config);
    let (sink_handle, sink_thread) = sink::start(SinkOptions {
        database_path: config.database_path.clone(),
        structured_logging: config.structured_logging,
        log_json: config.log_json.clone(),
        log_human: config.log_human.clone(),
        retention: config.retention,
        retention_interval: sink::DEFAULT_RETENTION_INTERVAL,
        channel_capacity: sink::DEFAULT_CHANNEL_CAPACITY,
    })?;
    let tokens = auth::load_token_cache(&config.database_path)?;
    auth::spawn_token_refresher(config.database_path.clone(), tokens.clone(), TOKEN_REFRESH);
    let tls_config = tls::client_config()?;
    let aws_env = credentials_from_env(&|k| std::env::var(k).ok());

    // Resolve every upstream host off the workers before they start.
    let probe = Gateway::new(config.clone(), tokens.clone(), sink_handle.clone(), dns::DnsCache::fixed(std::iter::empty()), tls_config.clone(), aws_env.clone());
    let hosts = Gateway::upstream_hosts(&probe.instances);
    drop(probe);
    let (dns_cache, _dns_thread) = dns::spawn_resolver(hosts, DNS_REFRESH);
    let gateway = Arc::new(Gateway::new(config.clone(), tokens, sink_handle, dns_cache, tls_config, aws_env));

    let (listeners, bound) = bind_reuseport(&config.http_address, config.workers)
        .map_err(|source| StartError::Listen { addr: config.http_address.clone(), source })?;
    let driver = DriverChoice::from_env();
    for inst in &gateway.instances {
        tracing::info!(
            provider = %inst.config.name,
            kind = inst.config.kind.as_str(),
            upstream = %format!("{}://{}{}", if inst.target.tls { "https" } else { "http" }, inst.target.host_header(), inst.target.base_path),
            keys = inst.config.keys.len(),
            bedrock = inst.bedrock.is_some(),
            "provider ready"
        );
    }
    tracing::info!(
        address = %bound,
        workers = config.workers,
        driver = driver.resolved_name(),
        enabled = config.enabled,
        "aibridged listening on http://{bound}"
    );

    let worker_gateway = gateway.clone();
    let handles = spawn_workers(listeners, driver, flag, config.shutdown_grace, move |_| WorkerService::new(worker_gateway.clone()))
        .map_err(StartError::Threads)?;
    for h in handles {
        let _ = h.join();
    }
    // Every worker is gone; dropping the last gateway reference drops the last sink handle.
    drop(gateway);
    tracing::info!("workers stopped; draining records");
    sink_thread.join();
    tracing::info!("records committed; bye");
    Ok(())
}
