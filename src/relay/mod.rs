//! Drives one request through its phases (parse, auth, route, inspect, upstream, relay + observe, record).
//! The only module that sees runtime, providers, sse and sink together.

pub mod client;
pub mod error;
pub mod exchange;
mod handler;
pub mod record;
pub mod response;
mod upstream_request;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use monoio::net::TcpStream;

use crate::auth::{TokenCache, VerifiedMemo};
use crate::config::{AwsCredential, Config, ProviderConfig, ProviderType, UpstreamUrl};
use crate::providers::errors::ErrorShape;
use crate::providers::key_pool::KeyPool;
use crate::runtime::dns::DnsCache;
use crate::runtime::io::Conn;
use crate::runtime::shutdown::LocalShutdown;
use crate::runtime::upstream::{PoolKey, Upstreams};
use crate::runtime::worker::Service;
use crate::sink::SinkHandle;

use record::InFlight;

/// A provider instance as the relay uses it: its configuration plus what is derived from it once.
pub struct Instance {
    pub config: ProviderConfig,
    pub shape: ErrorShape,
    /// Where requests go: the base URL, or the Bedrock runtime endpoint.
    pub target: UpstreamUrl,
    pub pool_key: PoolKey,
    /// This instance's slot in each worker's upstream pool (its index).
    pub pool_slot: usize,
    /// Set for anthropic instances routed to Bedrock.
    pub bedrock: Option<BedrockTarget>,
}

/// Bedrock routing of an instance.
pub struct BedrockTarget {
    pub region: String,
    /// Explicit pairs, else the AWS_* variables read at start-up.
    pub credentials: Vec<AwsCredential>,
}

/// What every worker shares: read-only configuration, the token cache and the sink channel.
pub struct Gateway {
    pub config: Arc<Config>,
    pub instances: Vec<Instance>,
    pub tokens: TokenCache,
    pub sink: SinkHandle,
    pub dns: DnsCache,
    pub tls: Arc<rustls::ClientConfig>,
    /// False only for overhead measurements (`AIBRIDGED_RECORDING=off`): requests are relayed unobserved.
    pub recording: bool,
}

impl Gateway {
    /// The instance named `name`. A linear scan: gateways have a handful of instances, and comparing a few
    /// short names beats hashing the name on every request.
    pub fn instance_index(&self, name: &str) -> Option<usize> {
        self.instances.iter().position(|i| i.config.name == name)
    }

    /// Derives the instances from the configuration. `aws_env` are the standard AWS credentials, used by
    /// Bedrock instances that configure none.
    pub fn new(
        config: Arc<Config>,
        tokens: TokenCache,
        sink: SinkHandle,
        dns: DnsCache,
        tls: Arc<rustls::ClientConfig>,
        aws_env: Option<AwsCredential>,
    ) -> Gateway {
        let mut instances = Vec::new();
        for p in &config.providers {
            let (target, bedrock) = match &p.bedrock {
                Some(b) => {
                    let target = crate::providers::bedrock::request::endpoint(b);
                    let credentials = if b.credentials.is_empty() {
                        aws_env.iter().cloned().collect()
                    } else {
                        b.credentials.clone()
                    };
                    let region = b.region.clone().unwrap_or_else(|| "us-east-1".to_string());
                    (target, Some(BedrockTarget { region, credentials }))
                }
                None => (p.base_url.clone(), None),
            };
            instances.push(Instance {
                pool_slot: instances.len(),
                pool_key: PoolKey::of(&target),
                shape: ErrorShape::of(p.kind),
                target,
                bedrock,
                config: p.clone(),
            });
        }
        let recording = !matches!(std::env::var("AIBRIDGED_RECORDING").as_deref(), Ok("off") | Ok("0") | Ok("false"));
        Gateway { config, instances, tokens, sink, dns, tls, recording }
    }

    /// Every upstream host the workers may connect to, for the DNS resolver.
    pub fn upstream_hosts(instances: &[Instance]) -> Vec<(String, u16)> {
        let mut hosts: Vec<(String, u16)> = instances.iter().map(|i| (i.target.host.clone(), i.target.port)).collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

/// One worker's service: the shared gateway plus this worker's pool, key pools and open interceptions.
pub struct WorkerService {
    pub gw: Arc<Gateway>,
    upstreams: Upstreams,
    /// Per instance (by index): failover state of its keys. Worker-local, so no locks.
    key_pools: Vec<RefCell<KeyPool>>,
    inflight: Rc<InFlight>,
    /// Tokens this worker verified against the current snapshot (skips the SHA-256 for repeat callers).
    token_memo: RefCell<VerifiedMemo>,
}

impl WorkerService {
    pub fn new(gw: Arc<Gateway>) -> WorkerService {
        let upstreams = Upstreams::new(gw.dns.clone(), gw.tls.clone(), gw.instances.len());
        let key_pools = gw
            .instances
            .iter()
            .map(|i| {
                let n = match &i.bedrock {
                    Some(b) => b.credentials.len(),
                    None => i.config.keys.len(),
                };
                RefCell::new(KeyPool::new(n))
            })
            .collect();
        WorkerService {
            gw,
            upstreams,
            key_pools,
            inflight: Rc::new(InFlight::default()),
            token_memo: RefCell::new(VerifiedMemo::default()),
        }
    }
}

impl Service for WorkerService {
    async fn serve(self: Rc<Self>, conn: TcpStream, _peer: SocketAddr, shutdown: Rc<LocalShutdown>) {
        let mut client = Conn::Plain(conn);
        handler::serve_connection(&self, &mut client, &shutdown).await;
        client.shutdown().await;
    }

    fn abandon(&self) {
        self.inflight.abandon_all(&self.gw.sink);
    }
}

/// The provider type a route belongs to, for requests that never reached an instance.
pub fn default_shape() -> ErrorShape {
    ErrorShape::of(ProviderType::OpenAi)
}
