//! `aibridged server`: wires configuration, the sink, the token cache, DNS, TLS and the workers together,
//! and runs the graceful shutdown sequence (stop accepting, finish in flight, drain the sink, exit).

use std::sync::Arc;
use std::time::Duration;

use crate::auth;
use crate::config::Config;
use crate::metrics::recorded::Recorded;
use crate::metrics::{self, BuildInfo, InstanceLabels, Metrics};
use crate::providers::bedrock::sign::credentials_from_env;
use crate::providers::key_pool::KeyState;
use crate::relay::{self, Gateway, WorkerService};
use crate::runtime::dns;
use crate::runtime::listener::bind_reuseport;
use crate::runtime::shutdown::{install_signal_thread, ShutdownFlag};
use crate::runtime::tls;
use crate::runtime::worker::{spawn_workers, DriverChoice};
use crate::sink::{self, SinkOptions};
use crate::state::readiness::Readiness;

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
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics { addr: String, source: std::io::Error },
    #[error("cannot start threads: {0}")]
    Threads(std::io::Error),
    #[error("{0}")]
    Control(#[from] crate::control::ControlError),
    /// The shutdown drain ended with the database refusing writes: the process must exit non-zero.
    #[error(
        "the database refused writes until the shutdown drain ended: {spilled} records were written to a spill \
         file (imported at the next start), {lost} could not be saved"
    )]
    Unsaved { spilled: u64, lost: u64 },
}

/// Runs the gateway until SIGTERM/SIGINT, then shuts down gracefully.
pub fn run(config: Config) -> Result<(), StartError> {
    // Signals first, before any thread exists, so every thread inherits the blocked mask.
    let flag = ShutdownFlag::new();
    let readiness = Arc::new(Readiness::new(config.workers));
    let drain = (readiness.clone(), config.limits.shutdown_delay);
    install_signal_thread(flag.clone(), move |sig| {
        let (readiness, delay) = drain;
        readiness.draining();
        if !delay.is_zero() {
            tracing::info!(
                signal = sig,
                ?delay,
                "shutdown requested: /readyz answers 503; still accepting for the shutdown delay"
            );
            std::thread::sleep(delay);
        }
        tracing::info!(signal = sig, "shutdown: no new connections; finishing requests in flight");
    })
    .map_err(StartError::Threads)?;
    let _ = rustls::crypto::ring::default_provider().install_default();

    let config = Arc::new(config);
    let recorded = config.metrics.enabled.then(|| Arc::new(Recorded::new(config.metrics.initiator_label)));
    let (sink_handle, sink_thread) = sink::start(SinkOptions {
        database: config.database.clone(),
        structured_logging: config.structured_logging,
        log_json: config.log_json.clone(),
        log_human: config.log_human.clone(),
        retention: config.retention,
        retention_interval: config.sink.retention_interval,
        channel_capacity: config.sink.channel_capacity,
        max_batch_records: config.sink.batch_max_records,
        max_batch_delay: config.sink.batch_max_delay,
        gateway_id: Some(config.gateway_id.clone()),
        recorded: recorded.clone(),
        shutdown_drain: config.sink.shutdown_drain,
        shutdown: Some(flag.clone()),
        max_pending_records: sink::MAX_PENDING_RECORDS,
    })?;
    readiness.sink_running();
    spawn_sink_reporter(sink_thread.stats_source(), config.sink.report_interval);
    let tokens = auth::load_token_cache(&config.database)?;
    auth::spawn_token_refresher(config.database.clone(), tokens.clone(), config.token_refresh);
    if let Some(address) = &config.admin.address {
        let bound = crate::control::spawn(
            address,
            config.database.clone(),
            tokens.clone(),
            config.admin.price_file.as_deref(),
        )?;
        tracing::info!(address = %bound, "sessions API and web page on http://{bound}/ui/ (admin)");
    }
    let tls_config = tls::client_config()?;
    let aws_env = credentials_from_env(&|k| std::env::var(k).ok());

    // Start-up runs one way: configuration → instances → DNS for their hosts (resolved off the workers,
    // before they start) → the gateway the workers share.
    let instances = relay::build_instances(&config, aws_env.as_ref());
    let (dns_cache, _dns_thread) = dns::spawn_resolver(relay::upstream_hosts(&instances), config.dns_refresh);
    let driver = DriverChoice::from_env();
    let metrics = match recorded {
        Some(recorded) => Some(start_metrics(&config, &instances, driver, recorded, sink_thread.probe())?),
        None => None,
    };
    let gateway = Arc::new(
        Gateway::new(config.clone(), instances, tokens, sink_handle, dns_cache, tls_config, readiness.clone())
            .with_metrics(metrics),
    );
    if let Some(m) = &gateway.metrics {
        m.read_key_pools_from(key_pool_source(Arc::downgrade(&gateway)));
        m.read_breakers_from(breaker_source(Arc::downgrade(&gateway)));
        m.read_limits_from(limits_source(Arc::downgrade(&gateway), config.limits.max_connections > 0));
    }

    let (listeners, bound) = bind_reuseport(&config.http_address, config.workers)
        .map_err(|source| StartError::Listen { addr: config.http_address.clone(), source })?;
    for inst in &gateway.instances {
        let url = inst.upstream.url();
        tracing::info!(
            provider = %inst.name,
            kind = inst.kind.as_str(),
            upstream = %format!("{}://{}{}", if url.tls { "https" } else { "http" }, url.host_header(), url.base_path),
            via = inst.upstream.label(),
            keys = inst.upstream.pool_size(),
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
    // The factory runs on each worker once its listener is registered: that worker now accepts.
    let handles = spawn_workers(listeners, driver, flag, config.shutdown_grace, move |index| {
        let service = WorkerService::new(worker_gateway.clone(), index);
        worker_gateway.readiness.worker_listening();
        service
    })
    .map_err(StartError::Threads)?;
    for h in handles {
        let _ = h.join();
    }
    // Every worker is gone. Tasks abandoned at the end of the grace period may still own sink handles
    // (their records were settled by `abandon`), so the sink is closed explicitly rather than by the
    // last handle being dropped.
    drop(gateway);
    tracing::info!("workers stopped; draining records");
    let stats = sink_thread.close();
    tracing::info!(
        records_written = stats.records_written,
        batches = stats.batches,
        full_waits = stats.full_waits,
        retries = stats.retries,
        failed_records = stats.failed_records,
        "records committed; bye"
    );
    if stats.spilled_records > 0 || stats.lost_at_shutdown > 0 {
        return Err(StartError::Unsaved { spilled: stats.spilled_records, lost: stats.lost_at_shutdown });
    }
    Ok(())
}

/// Builds the metrics over the instances and starts their listener thread (README "Operating").
fn start_metrics(
    config: &Config,
    instances: &[relay::Instance],
    driver: DriverChoice,
    recorded: Arc<Recorded>,
    sink: sink::SinkProbe,
) -> Result<Arc<Metrics>, StartError> {
    let labels = instances.iter().map(|i| InstanceLabels { provider: i.kind.as_str(), name: i.name.clone() }).collect();
    let info = BuildInfo { driver: driver.metric_name(), workers: config.workers };
    let m = Arc::new(Metrics::new(config.metrics.prefix.clone(), labels, info, recorded, sink));
    let addr = &config.metrics.address;
    let bound = metrics::listener::spawn(addr, m.clone())
        .map_err(|source| StartError::Metrics { addr: addr.clone(), source })?;
    tracing::info!(address = %bound, prefix = %config.metrics.prefix, "metrics on http://{bound}/metrics");
    Ok(m)
}

/// What a scrape reads of the gateway's shared circuit breakers (`state::breaker`'s atomics: phase,
/// trips, rejects of each breaker in use). Holds the gateway weakly, like [`key_pool_source`].
fn breaker_source(gateway: std::sync::Weak<Gateway>) -> metrics::BreakerSource {
    Box::new(move || {
        let Some(gw) = gateway.upgrade() else { return Vec::new() };
        gw.breakers
            .views(std::time::Instant::now())
            .into_iter()
            .filter_map(|v| {
                let instance = gw.instances.iter().position(|i| i.name == v.key.instance)?;
                Some(metrics::BreakerReading {
                    instance,
                    endpoint: v.key.endpoint,
                    model: v.key.model.clone(),
                    phase: v.phase,
                    trips: v.trips,
                    rejects: v.rejects,
                })
            })
            .collect()
    })
}

/// What a scrape reads of the gateway's overload limits (`state::limits`' counters); the open
/// connections only when `--max-connections` is on (`connections_capped`), the only case they are counted.
fn limits_source(gateway: std::sync::Weak<Gateway>, connections_capped: bool) -> metrics::LimitsSource {
    Box::new(move || {
        let Some(gw) = gateway.upgrade() else { return metrics::LimitsReading::default() };
        metrics::LimitsReading {
            concurrency_rejected: gw.concurrency.rejected(),
            rate_rejected: gw.rate.rejected(),
            connections_rejected: gw.connections.rejected(),
            connections_open: connections_capped.then(|| gw.connections.inflight()),
        }
    })
}

/// What a scrape reads of the gateway's shared key pools (the health atomics and counters of
/// `providers::key_pool`). Holds the gateway weakly: the gateway holds the metrics, and a scrape after
/// the gateway is gone reads no pools.
fn key_pool_source(gateway: std::sync::Weak<Gateway>) -> metrics::KeyPoolSource {
    Box::new(move || {
        let Some(gw) = gateway.upgrade() else { return Vec::new() };
        let now = std::time::Instant::now();
        gw.key_pools
            .iter()
            .enumerate()
            .filter(|(_, pool)| !pool.is_empty())
            .map(|(instance, pool)| {
                let mut r = metrics::KeyPoolReading { instance, ..Default::default() };
                for state in pool.states(now) {
                    match state {
                        KeyState::Healthy => r.valid += 1,
                        KeyState::Resting(_) => r.temporary += 1,
                        KeyState::Disabled => r.permanent += 1,
                    }
                }
                r.failover_attempts = pool.failover_attempts();
                r.exhaustions = pool.exhaustions();
                r
            })
            .collect()
    })
}

/// Says loudly when workers had to wait for a full sink channel (the records were kept, but the relay
/// slowed down): the counter is checked every `interval` (default a minute) off the workers.
fn spawn_sink_reporter(stats: impl Fn() -> sink::SinkStats + Send + 'static, interval: Duration) {
    let _ = std::thread::Builder::new().name("aibridged-sink-report".into()).spawn(move || {
        let mut last = stats().full_waits;
        loop {
            std::thread::sleep(interval);
            let now = stats();
            if now.full_waits > last {
                tracing::warn!(
                    waits = now.full_waits - last,
                    pending = now.pending_in_memory,
                    "the record channel was full: workers waited for the sink (no record was dropped)"
                );
            }
            last = now.full_waits;
        }
    });
}
