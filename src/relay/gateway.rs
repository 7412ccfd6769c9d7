//! What the relay's workers share (the gateway: instances, token cache, sink channel, DNS, TLS,
//! timeouts) and what each worker owns (its connection pool, open interceptions). Data only:
//! the request phases live in their own modules.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{TokenCache, VerifiedMemo};
use crate::config::{self, Config};
use crate::metrics::worker::WorkerMetrics;
use crate::metrics::Metrics;
use crate::providers::key_pool::KeyPool;
use crate::runtime::dns::DnsCache;
use crate::runtime::http::client_leg::UpstreamTimeouts;
use crate::runtime::http::server_leg::ClientTimeouts;
use crate::runtime::upstream::{PoolTimeouts, Upstreams};
use crate::sink::SinkHandle;
use crate::state::breaker::Breakers;
use crate::state::limits::{Concurrency, RateLimiter};
use crate::state::readiness::Readiness;

use super::body::BodyTimeouts;
use super::instance::Instance;
use super::record::InFlight;

/// Every deadline of a request's life, grouped by the leg that applies it; built from the validated
/// `config::Timeouts`, where the defaults and their reasons are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub client: ClientTimeouts,
    pub pool: PoolTimeouts,
    pub upstream: UpstreamTimeouts,
    pub body: BodyTimeouts,
    /// How long the upstream may take to answer before the gateway starts watching for the client
    /// leaving; quick answers pay nothing for the watch.
    pub client_watch_after: Duration,
}

impl From<&config::Timeouts> for Timeouts {
    fn from(t: &config::Timeouts) -> Self {
        Timeouts {
            client: ClientTimeouts {
                keepalive_idle: t.keepalive_idle,
                head_read: t.request_head,
                body_read: t.request_body_read,
                body_total: t.request_body_total,
            },
            pool: PoolTimeouts {
                connect: t.upstream_connect,
                tls_handshake: t.upstream_tls_handshake,
                idle: t.upstream_pool_idle,
            },
            upstream: UpstreamTimeouts {
                head: t.upstream_first_byte,
                early_answer_grace: t.upstream_early_answer_grace,
            },
            body: BodyTimeouts {
                upstream_idle: t.stream_idle,
                client_write: t.client_write,
                client_watch_after_idle: t.client_watch_after_idle,
            },
            client_watch_after: t.client_watch_after,
        }
    }
}

/// What every worker shares: read-only configuration, the token cache, the sink channel and the
/// deadlines `config.timeouts` sets.
pub struct Gateway {
    pub config: Arc<Config>,
    pub instances: Vec<Instance>,
    pub tokens: TokenCache,
    pub sink: SinkHandle,
    pub dns: DnsCache,
    pub tls: Arc<rustls::ClientConfig>,
    pub timeouts: Timeouts,
    /// False only for overhead measurements (`AIBRIDGED_RECORDING=off`): requests are relayed unobserved.
    pub recording: bool,
    /// The Prometheus counters, when `/metrics` is enabled; `None` costs the request path one branch.
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// Per instance (by index): the health of its credentials, shared by every worker (atomics).
    pub(crate) key_pools: Vec<KeyPool>,
    /// What `/readyz` answers; set by start-up and the signal thread.
    pub(crate) readiness: Arc<Readiness>,
    /// `CODER_AIBRIDGE_MAX_CONCURRENCY`: intercepted requests in flight across workers.
    pub(crate) concurrency: Concurrency,
    /// `CODER_AIBRIDGE_RATE_LIMIT`: requests per second per gateway token, across workers.
    pub(crate) rate: RateLimiter,
    /// `--max-connections`: client connections open across workers.
    pub(crate) connections: Concurrency,
    /// `CODER_AIBRIDGE_CIRCUIT_BREAKER_*`: one breaker per instance, endpoint and model, across workers.
    pub(crate) breakers: Breakers,
}

impl Gateway {
    /// The gateway over `instances` (see [`super::build_instances`]), whose hosts `dns` resolves.
    pub fn new(
        config: Arc<Config>,
        instances: Vec<Instance>,
        tokens: TokenCache,
        sink: SinkHandle,
        dns: DnsCache,
        tls: Arc<rustls::ClientConfig>,
        readiness: Arc<Readiness>,
    ) -> Gateway {
        let timeouts = Timeouts::from(&config.timeouts);
        let recording = !matches!(std::env::var("AIBRIDGED_RECORDING").as_deref(), Ok("off") | Ok("0") | Ok("false"));
        let key_pools = instances.iter().map(|i| KeyPool::new(i.upstream.pool_size())).collect();
        let concurrency = Concurrency::new(config.limits.max_concurrency);
        let rate = RateLimiter::new(config.limits.rate_limit);
        let connections = Concurrency::new(config.limits.max_connections);
        let breakers = Breakers::new(config.limits.breaker);
        Gateway {
            config,
            instances,
            tokens,
            sink,
            dns,
            tls,
            timeouts,
            recording,
            metrics: None,
            key_pools,
            readiness,
            concurrency,
            rate,
            connections,
            breakers,
        }
    }

    /// The same gateway, counting into `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: Option<Arc<Metrics>>) -> Gateway {
        self.metrics = metrics;
        self
    }
}

/// One worker's service: the shared gateway plus this worker's upstream pool and open interceptions.
pub struct WorkerService {
    pub gw: Arc<Gateway>,
    pub(super) upstreams: Upstreams,
    pub(super) inflight: Rc<InFlight>,
    /// Tokens this worker verified against the current snapshot (skips the SHA-256 for repeat callers).
    pub(super) token_memo: RefCell<VerifiedMemo>,
    /// Which worker this is (its block of metric counters).
    index: usize,
}

impl WorkerService {
    /// The service of worker `index`.
    pub fn new(gw: Arc<Gateway>, index: usize) -> WorkerService {
        let upstreams = Upstreams::new(gw.dns.clone(), gw.tls.clone(), gw.instances.len(), gw.timeouts.pool);
        WorkerService {
            gw,
            upstreams,
            inflight: Rc::new(InFlight::default()),
            token_memo: RefCell::new(VerifiedMemo::default()),
            index,
        }
    }

    /// This worker's metric counters, when metrics are on.
    pub(super) fn metrics(&self) -> Option<&WorkerMetrics> {
        self.gw.metrics.as_deref().map(|m| m.worker(self.index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configured_deadline_reaches_the_leg_that_applies_it() {
        let ms = Duration::from_millis;
        let c = config::Timeouts {
            keepalive_idle: ms(1),
            request_head: ms(2),
            request_body_read: ms(3),
            request_body_total: ms(4),
            upstream_connect: ms(5),
            upstream_tls_handshake: ms(6),
            upstream_pool_idle: ms(7),
            upstream_first_byte: ms(8),
            upstream_early_answer_grace: ms(9),
            stream_idle: ms(10),
            client_write: ms(11),
            client_watch_after: ms(12),
            client_watch_after_idle: ms(13),
        };
        let t = Timeouts::from(&c);
        assert_eq!(
            t,
            Timeouts {
                client: ClientTimeouts { keepalive_idle: ms(1), head_read: ms(2), body_read: ms(3), body_total: ms(4) },
                pool: PoolTimeouts { connect: ms(5), tls_handshake: ms(6), idle: ms(7) },
                upstream: UpstreamTimeouts { head: ms(8), early_answer_grace: ms(9) },
                body: BodyTimeouts { upstream_idle: ms(10), client_write: ms(11), client_watch_after_idle: ms(13) },
                client_watch_after: ms(12),
            }
        );
    }
}
