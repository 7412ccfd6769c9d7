//! Prometheus metrics (`GET /metrics` on `--prometheus-address`, README "Operating"): the per-worker atomic
//! counters the request path writes (`worker`), the families the sink counts from committed records
//! (`recorded`), the sink's own counters, and the text format (`exposition`), served by its own listener
//! thread (`listener`). Nothing here runs I/O on a worker or takes a lock on the request path.

pub(crate) mod exposition;
pub(crate) mod histogram;
pub(crate) mod listener;
pub mod parse;
pub(crate) mod recorded;
pub(crate) mod worker;

use std::sync::{Arc, OnceLock};

use crate::records::Api;
use crate::sink::SinkProbe;
use crate::state::breaker::Phase as BreakerPhase;

use exposition::{Encoder, Kind};
use histogram::{Histogram, OVERHEAD_BUCKETS};
use recorded::Recorded;
use worker::{api_route, Layout, WorkerMetrics, APIS, METHODS, PASSTHROUGH_ROUTES, PHASES};

/// A provider instance as its metrics label it.
#[derive(Debug, Clone)]
pub(crate) struct InstanceLabels {
    /// `provider`: the provider type (`openai`, `anthropic`, `copilot`).
    pub(crate) provider: &'static str,
    /// `provider_name`: the instance's NAME.
    pub(crate) name: String,
}

impl InstanceLabels {
    /// Whether the instance's provider type intercepts `api` (its other in-flight series would always be 0).
    fn serves(&self, api: Api) -> bool {
        (self.provider == "anthropic") == (api == Api::Messages)
    }
}

/// What the process reports about itself in the info metric.
#[derive(Debug, Clone)]
pub(crate) struct BuildInfo {
    pub(crate) driver: &'static str,
    pub(crate) workers: usize,
}

/// One instance's key failover pool as a scrape reads it: keys by state, and its counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPoolReading {
    /// The instance's index.
    pub(crate) instance: usize,
    /// Keys in use or usable now.
    pub(crate) valid: u64,
    /// Keys resting after a 429.
    pub(crate) temporary: u64,
    /// Keys disabled after a 401/403 (until restart).
    pub(crate) permanent: u64,
    /// Attempts moved to another key.
    pub(crate) failover_attempts: u64,
    /// Times no key was usable.
    pub(crate) exhaustions: u64,
}

/// Reads the shared key pools at scrape time (set once the gateway that owns them exists).
pub(crate) type KeyPoolSource = Box<dyn Fn() -> Vec<KeyPoolReading> + Send + Sync>;

/// One circuit breaker in use (provider instance × endpoint × model) as a scrape reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BreakerReading {
    /// The instance's index.
    pub(crate) instance: usize,
    /// The endpoint (API): `chat_completions`, `responses`, `messages`.
    pub(crate) endpoint: &'static str,
    pub(crate) model: String,
    pub(crate) phase: BreakerPhase,
    /// Times it opened.
    pub(crate) trips: u64,
    /// Requests it refused with 503.
    pub(crate) rejects: u64,
}

/// `circuit_breaker_state`'s value for a phase, as Coder's AI Gateway reports it: 0 closed, 0.5
/// half-open, 1 open.
pub(crate) fn breaker_state_value(phase: BreakerPhase) -> f64 {
    match phase {
        BreakerPhase::Closed => 0.0,
        BreakerPhase::HalfOpen => 0.5,
        BreakerPhase::Open => 1.0,
    }
}

/// Reads the shared circuit breakers at scrape time (empty when the breaker is disabled).
pub(crate) type BreakerSource = Box<dyn Fn() -> Vec<BreakerReading> + Send + Sync>;

/// The overload limits' counters as a scrape reads them (`state::limits`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LimitsReading {
    /// Intercepted requests refused with 503 over `CODER_AIBRIDGE_MAX_CONCURRENCY`.
    pub(crate) concurrency_rejected: u64,
    /// Requests refused with 429 over `CODER_AIBRIDGE_RATE_LIMIT`.
    pub(crate) rate_rejected: u64,
    /// Connections closed at accept over `--max-connections`.
    pub(crate) connections_rejected: u64,
    /// Client connections open now, when `--max-connections` is on (only then are they counted).
    pub(crate) connections_open: Option<u64>,
}

/// Reads the shared overload limits at scrape time.
pub(crate) type LimitsSource = Box<dyn Fn() -> LimitsReading + Send + Sync>;

/// Everything a scrape reads. Shared by the workers (their blocks), the sink (the recorded families) and
/// the listener thread.
pub(crate) struct Metrics {
    prefix: String,
    instances: Vec<InstanceLabels>,
    info: BuildInfo,
    layout: Layout,
    workers: Box<[WorkerMetrics]>,
    recorded: Arc<Recorded>,
    sink: SinkProbe,
    key_pools: OnceLock<KeyPoolSource>,
    breakers: OnceLock<BreakerSource>,
    limits: OnceLock<LimitsSource>,
}

impl Metrics {
    /// The metrics of a gateway with `instances` and `info.workers` workers; `recorded` is the sink's half.
    pub(crate) fn new(
        prefix: String,
        instances: Vec<InstanceLabels>,
        info: BuildInfo,
        recorded: Arc<Recorded>,
        sink: SinkProbe,
    ) -> Metrics {
        let layout = Layout { instances: instances.len() };
        let workers = (0..info.workers.max(1)).map(|_| WorkerMetrics::new(layout)).collect();
        Metrics {
            prefix,
            instances,
            info,
            layout,
            workers,
            recorded,
            sink,
            key_pools: OnceLock::new(),
            breakers: OnceLock::new(),
            limits: OnceLock::new(),
        }
    }

    /// Where scrapes read the key pools from; the first call wins (the pools live as long as the gateway).
    /// The server sets it to read the gateway's shared key pools (`providers::key_pool`).
    pub(crate) fn read_key_pools_from(&self, source: KeyPoolSource) {
        let _ = self.key_pools.set(source);
    }

    /// Where scrapes read the circuit breakers from (`state::breaker`); the first call wins.
    pub(crate) fn read_breakers_from(&self, source: BreakerSource) {
        let _ = self.breakers.set(source);
    }

    /// Where scrapes read the overload limits' counters from (`state::limits`); the first call wins.
    pub(crate) fn read_limits_from(&self, source: LimitsSource) {
        let _ = self.limits.set(source);
    }

    /// Worker `index`'s block (the last one for an index beyond the configured count).
    pub(crate) fn worker(&self, index: usize) -> &WorkerMetrics {
        &self.workers[index.min(self.workers.len() - 1)]
    }

    /// One scrape's text.
    pub(crate) fn render(&self) -> String {
        let mut e = Encoder::new(&self.prefix);
        self.encode_workers(&mut e);
        self.recorded.encode(&mut e);
        self.encode_sink(&mut e);
        if let Some(source) = self.key_pools.get() {
            self.encode_key_pools(&mut e, &source());
        }
        if let Some(source) = self.breakers.get() {
            self.encode_breakers(&mut e, &source());
        }
        if let Some(source) = self.limits.get() {
            encode_limits(&mut e, &source());
        }
        e.family("info", Kind::Gauge, "The gateway's I/O driver and worker count (value 1).");
        let workers = self.info.workers.to_string();
        e.sample("info", &[("driver", self.info.driver), ("workers", &workers)], 1.0);
        e.finish()
    }

    fn encode_workers(&self, e: &mut Encoder<'_>) {
        let t = worker::totals(self.layout, &self.workers);
        e.family("interceptions_inflight", Kind::Gauge, "Intercepted requests being relayed now.");
        for (i, inst) in self.instances.iter().enumerate() {
            for (slot, api) in APIS.into_iter().enumerate().filter(|(_, api)| inst.serves(*api)) {
                let labels = [("provider", inst.provider), ("provider_name", &*inst.name), ("route", api_route(api))];
                e.sample("interceptions_inflight", &labels, t.inflight[i][slot] as f64);
            }
        }
        e.family("passthrough_total", Kind::Counter, "Requests relayed on allow-listed passthrough routes.");
        for (i, inst) in self.instances.iter().enumerate() {
            for (m, method) in METHODS.into_iter().enumerate() {
                for (r, route) in PASSTHROUGH_ROUTES.into_iter().enumerate() {
                    let n = t.passthrough[i][m][r];
                    if n > 0 {
                        let labels = [
                            ("provider", inst.provider),
                            ("provider_name", &*inst.name),
                            ("method", method),
                            ("route", route),
                        ];
                        e.sample("passthrough_total", &labels, n as f64);
                    }
                }
            }
        }
        e.family(
            "overhead_seconds",
            Kind::Histogram,
            "Time the gateway itself adds to a request, by phase (request_read: head end to body end; \
             upstream_connect: body end to a ready upstream connection; response_relay: upstream response \
             head to the first bytes written to the client).",
        );
        for ((_, phase), h) in PHASES.iter().zip(&t.overhead) {
            e.histogram("overhead_seconds", &[("phase", phase)], h);
        }
        e.family(
            "upstream_ttfb_seconds",
            Kind::Histogram,
            "Upstream time to first byte: from a ready connection to the response head.",
        );
        for (inst, h) in self.instances.iter().zip(&t.ttfb) {
            e.histogram("upstream_ttfb_seconds", &[("provider", inst.provider), ("provider_name", &*inst.name)], h);
        }
    }

    fn encode_key_pools(&self, e: &mut Encoder<'_>, pools: &[KeyPoolReading]) {
        // Each pool's labels are looked up once and shared by its three families (as for the breakers).
        let labelled: Vec<_> = pools
            .iter()
            .filter_map(|r| {
                let i = self.instances.get(r.instance)?;
                Some(([("provider", i.provider), ("provider_name", &*i.name)], r))
            })
            .collect();
        e.family("key_pool_state", Kind::Gauge, "Keys of each failover pool by state (valid, temporary: resting after a 429, permanent: disabled after a 401/403).");
        for ([provider, name], r) in &labelled {
            for (state, n) in [("valid", r.valid), ("temporary", r.temporary), ("permanent", r.permanent)] {
                e.sample("key_pool_state", &[*provider, *name, ("state", state)], n as f64);
            }
        }
        e.family("key_pool_failover_attempts", Kind::Counter, "Attempts moved to another key after a 429, 401 or 403.");
        for (labels, r) in &labelled {
            e.sample("key_pool_failover_attempts", labels, r.failover_attempts as f64);
        }
        e.family("key_pool_exhaustions_total", Kind::Counter, "Times every key of a pool was resting or disabled.");
        for (labels, r) in &labelled {
            e.sample("key_pool_exhaustions_total", labels, r.exhaustions as f64);
        }
    }

    fn encode_breakers(&self, e: &mut Encoder<'_>, breakers: &[BreakerReading]) {
        let labelled: Vec<_> = breakers
            .iter()
            .filter_map(|r| {
                let i = self.instances.get(r.instance)?;
                Some((
                    [
                        ("provider", i.provider),
                        ("provider_name", &*i.name),
                        ("endpoint", r.endpoint),
                        ("model", &*r.model),
                    ],
                    r,
                ))
            })
            .collect();
        e.family(
            "circuit_breaker_state",
            Kind::Gauge,
            "State of each circuit breaker in use (0 closed, 0.5 half-open, 1 open).",
        );
        for (labels, r) in &labelled {
            e.sample("circuit_breaker_state", labels, breaker_state_value(r.phase));
        }
        e.family("circuit_breaker_trips_total", Kind::Counter, "Times a circuit breaker opened.");
        for (labels, r) in &labelled {
            e.sample("circuit_breaker_trips_total", labels, r.trips as f64);
        }
        e.family(
            "circuit_breaker_rejects_total",
            Kind::Counter,
            "Requests a circuit breaker refused with 503 (open, or half-open with its trials taken).",
        );
        for (labels, r) in &labelled {
            e.sample("circuit_breaker_rejects_total", labels, r.rejects as f64);
        }
    }

    fn encode_sink(&self, e: &mut Encoder<'_>) {
        let s = self.sink.stats();
        let gauge = |e: &mut Encoder<'_>, name: &str, help: &str, v: u64| {
            e.family(name, Kind::Gauge, help);
            e.sample(name, &[], v as f64);
        };
        let counter = |e: &mut Encoder<'_>, name: &str, help: &str, v: u64| {
            e.family(name, Kind::Counter, help);
            e.sample(name, &[], v as f64);
        };
        gauge(e, "sink_queue_depth", "Records waiting in the worker-to-sink channel.", s.queued);
        gauge(e, "sink_records_pending", "Records the sink holds that are not committed yet.", s.pending_in_memory);
        counter(e, "sink_records_written_total", "Records committed to the store.", s.records_written);
        counter(
            e,
            "sink_full_channel_waits_total",
            "Times a worker found the record channel full and waited for the sink.",
            s.full_waits,
        );
        counter(
            e,
            "sink_records_failed_total",
            "Records the store rejected for good (each one logged).",
            s.failed_records,
        );
        e.family("sink_batch_commit_seconds", Kind::Histogram, "Time to commit one batch of records to the store.");
        let mut h = Histogram::new(OVERHEAD_BUCKETS);
        self.sink.commit_time(&mut h);
        e.histogram("sink_batch_commit_seconds", &[], &h);
    }
}

/// The overload limits' families: refusals of each limit, and the open connections when they are capped.
fn encode_limits(e: &mut Encoder<'_>, l: &LimitsReading) {
    let counter = |e: &mut Encoder<'_>, name: &str, help: &str, v: u64| {
        e.family(name, Kind::Counter, help);
        e.sample(name, &[], v as f64);
    };
    counter(
        e,
        "concurrency_rejections_total",
        "Intercepted requests refused with 503 over CODER_AIBRIDGE_MAX_CONCURRENCY.",
        l.concurrency_rejected,
    );
    counter(
        e,
        "rate_limit_rejections_total",
        "Requests refused with 429 over the per-token CODER_AIBRIDGE_RATE_LIMIT.",
        l.rate_rejected,
    );
    counter(
        e,
        "connections_rejected_total",
        "Client connections closed at accept over --max-connections.",
        l.connections_rejected,
    );
    if let Some(open) = l.connections_open {
        e.family("connections_open", Kind::Gauge, "Client connections open now (served only with --max-connections).");
        e.sample("connections_open", &[], open as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::worker::Phase;
    use std::time::Duration;

    #[test]
    fn a_scrape_of_every_family_parses_and_sums_the_workers() {
        let m = Metrics::new(
            "coder_aibridged_".into(),
            vec![
                InstanceLabels { provider: "openai", name: "oa".into() },
                InstanceLabels { provider: "anthropic", name: "an\"t".into() },
            ],
            BuildInfo { driver: "epoll", workers: 2 },
            Arc::new(Recorded::new(true)),
            SinkProbe::detached(),
        );
        let _a = m.worker(0).inflight(1, Api::Messages);
        let _b = m.worker(1).inflight(1, Api::Messages);
        m.worker(1).passthrough(0, "GET", "/v1/models");
        m.worker(0).overhead(Phase::RequestRead, Duration::from_micros(40));
        let text = m.render();
        let samples = parse::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let find = |name: &str, labels: &[(&str, &str)]| {
            samples
                .iter()
                .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
                .map(|s| s.value)
        };
        let inflight = [("provider_name", "an\"t"), ("route", "/v1/messages")];
        assert_eq!(find("coder_aibridged_interceptions_inflight", &inflight), Some(2.0));
        assert_eq!(find("coder_aibridged_passthrough_total", &[("route", "/v1/models"), ("method", "GET")]), Some(1.0));
        assert_eq!(find("coder_aibridged_overhead_seconds_count", &[("phase", "request_read")]), Some(1.0));
        assert_eq!(find("coder_aibridged_info", &[("driver", "epoll"), ("workers", "2")]), Some(1.0));
        assert_eq!(find("coder_aibridged_sink_queue_depth", &[]), Some(0.0));
        assert_eq!(find("coder_aibridged_sink_batch_commit_seconds_count", &[]), Some(0.0));
        assert!(!text.contains("key_pool"), "no key-pool families until a source is set");

        m.read_key_pools_from(Box::new(|| {
            vec![KeyPoolReading {
                instance: 0,
                valid: 1,
                temporary: 2,
                permanent: 0,
                failover_attempts: 5,
                exhaustions: 1,
            }]
        }));
        let text = m.render();
        let samples = parse::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let find = |name: &str, labels: &[(&str, &str)]| {
            samples
                .iter()
                .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
                .map(|s| s.value)
        };
        assert_eq!(
            find("coder_aibridged_key_pool_state", &[("provider_name", "oa"), ("state", "temporary")]),
            Some(2.0)
        );
        assert_eq!(find("coder_aibridged_key_pool_failover_attempts", &[("provider", "openai")]), Some(5.0));
        assert_eq!(find("coder_aibridged_key_pool_exhaustions_total", &[("provider_name", "oa")]), Some(1.0));
    }

    #[test]
    fn breaker_states_encode_as_coders_values() {
        assert_eq!(breaker_state_value(BreakerPhase::Closed), 0.0);
        assert_eq!(breaker_state_value(BreakerPhase::HalfOpen), 0.5);
        assert_eq!(breaker_state_value(BreakerPhase::Open), 1.0);

        let m = Metrics::new(
            "coder_aibridged_".into(),
            vec![InstanceLabels { provider: "openai", name: "oa".into() }],
            BuildInfo { driver: "epoll", workers: 1 },
            Arc::new(Recorded::new(true)),
            SinkProbe::detached(),
        );
        let text = m.render();
        assert!(!text.contains("circuit_breaker") && !text.contains("rejections"), "nothing until sources are set");
        let reading = |model: &str, phase| BreakerReading {
            instance: 0,
            endpoint: "chat_completions",
            model: model.into(),
            phase,
            trips: 2,
            rejects: 7,
        };
        let breakers = vec![
            reading("a", BreakerPhase::Closed),
            reading("b", BreakerPhase::HalfOpen),
            reading("c", BreakerPhase::Open),
            BreakerReading {
                instance: 9, // an unknown instance is skipped
                ..reading("d", BreakerPhase::Open)
            },
        ];
        m.read_breakers_from(Box::new(move || breakers.clone()));
        m.read_limits_from(Box::new(|| LimitsReading {
            concurrency_rejected: 3,
            rate_rejected: 4,
            connections_rejected: 5,
            connections_open: Some(2),
        }));
        let text = m.render();
        let samples = parse::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let find = |name: &str, labels: &[(&str, &str)]| {
            samples
                .iter()
                .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
                .map(|s| s.value)
        };
        let labels = |model| {
            [("provider", "openai"), ("provider_name", "oa"), ("endpoint", "chat_completions"), ("model", model)]
        };
        assert_eq!(find("coder_aibridged_circuit_breaker_state", &labels("a")), Some(0.0));
        assert_eq!(find("coder_aibridged_circuit_breaker_state", &labels("b")), Some(0.5));
        assert_eq!(find("coder_aibridged_circuit_breaker_state", &labels("c")), Some(1.0));
        assert_eq!(find("coder_aibridged_circuit_breaker_state", &[("model", "d")]), None);
        assert_eq!(find("coder_aibridged_circuit_breaker_trips_total", &labels("c")), Some(2.0));
        assert_eq!(find("coder_aibridged_circuit_breaker_rejects_total", &labels("c")), Some(7.0));
        assert_eq!(find("coder_aibridged_concurrency_rejections_total", &[]), Some(3.0));
        assert_eq!(find("coder_aibridged_rate_limit_rejections_total", &[]), Some(4.0));
        assert_eq!(find("coder_aibridged_connections_rejected_total", &[]), Some(5.0));
        assert_eq!(find("coder_aibridged_connections_open", &[]), Some(2.0));
    }
}
