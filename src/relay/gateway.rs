//! What the relay's workers share (the gateway: instances, token cache, sink channel, DNS, TLS,
//! timeouts) and what each worker owns (its connection pool, key pools, open interceptions). Data only:
//! the request phases live in their own modules.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{TokenCache, VerifiedMemo};
use crate::config::Config;
use crate::providers::key_pool::KeyPool;
use crate::runtime::dns::DnsCache;
use crate::runtime::http::client_leg::UpstreamTimeouts;
use crate::runtime::http::server_leg::ClientTimeouts;
use crate::runtime::upstream::Upstreams;
use crate::sink::SinkHandle;

use super::body::BodyTimeouts;
use super::instance::{index_of, Instance};
use super::record::InFlight;

/// Every deadline of a request's life, in one place so that configuration can set them later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub client: ClientTimeouts,
    pub upstream: UpstreamTimeouts,
    pub body: BodyTimeouts,
    /// How long the upstream may take to answer before the gateway starts watching for the client
    /// leaving; quick answers pay nothing for the watch.
    pub client_watch_after: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            client: ClientTimeouts::default(),
            upstream: UpstreamTimeouts::default(),
            body: BodyTimeouts::default(),
            client_watch_after: Duration::from_millis(500),
        }
    }
}

/// What every worker shares: read-only configuration, the token cache and the sink channel.
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
    ) -> Gateway {
        let recording = !matches!(std::env::var("AIBRIDGED_RECORDING").as_deref(), Ok("off") | Ok("0") | Ok("false"));
        Gateway { config, instances, tokens, sink, dns, tls, timeouts: Timeouts::default(), recording }
    }

    /// The index of the instance named `name`.
    pub fn instance_index(&self, name: &str) -> Option<usize> {
        index_of(&self.instances, name)
    }
}

/// One worker's service: the shared gateway plus this worker's pool, key pools and open interceptions.
pub struct WorkerService {
    pub gw: Arc<Gateway>,
    pub(super) upstreams: Upstreams,
    /// Per instance (by index): failover state of its credentials. Worker-local, so no locks.
    pub(super) key_pools: Vec<RefCell<KeyPool>>,
    pub(super) inflight: Rc<InFlight>,
    /// Tokens this worker verified against the current snapshot (skips the SHA-256 for repeat callers).
    pub(super) token_memo: RefCell<VerifiedMemo>,
}

impl WorkerService {
    pub fn new(gw: Arc<Gateway>) -> WorkerService {
        let upstreams = Upstreams::new(gw.dns.clone(), gw.tls.clone(), gw.instances.len());
        let key_pools = gw.instances.iter().map(|i| RefCell::new(KeyPool::new(i.upstream.pool_size()))).collect();
        WorkerService {
            gw,
            upstreams,
            key_pools,
            inflight: Rc::new(InFlight::default()),
            token_memo: RefCell::new(VerifiedMemo::default()),
        }
    }
}
