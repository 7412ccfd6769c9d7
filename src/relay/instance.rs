//! Provider instances as the relay uses them: each configured provider with what is derived from it once
//! at start-up (its upstream, error shape, pool slot). Pure: built from the configuration, no I/O.

use crate::config::{AwsCredential, Config, ProviderConfig, ProviderType};
use crate::providers::errors::ErrorShape;
use crate::providers::upstream::Upstream;
use crate::runtime::upstream::PoolKey;

/// A provider instance: its name and type, the upstream it relays to, and its slot in each worker's
/// connection pool.
pub(crate) struct Instance {
    pub(crate) name: String,
    pub(crate) kind: ProviderType,
    pub(crate) shape: ErrorShape,
    pub(crate) upstream: Upstream,
    pub(crate) pool_key: PoolKey,
    /// This instance's slot in each worker's upstream pool (its index).
    pub(crate) pool_slot: usize,
}

impl Instance {
    /// The instance of `p` at index `slot`. `aws_env` are the standard AWS credentials, for an upstream
    /// that signs with AWS credentials and configures none.
    pub(crate) fn new(p: &ProviderConfig, slot: usize, aws_env: Option<&AwsCredential>) -> Instance {
        let upstream = Upstream::new(p, aws_env);
        Instance {
            name: p.name.clone(),
            kind: p.kind,
            shape: ErrorShape::of(p.kind),
            pool_key: PoolKey::of(upstream.url()),
            upstream,
            pool_slot: slot,
        }
    }
}

/// Every instance of the configuration, in order (the order fixes the pool slots).
pub(crate) fn build_instances(config: &Config, aws_env: Option<&AwsCredential>) -> Vec<Instance> {
    config.providers.iter().enumerate().map(|(i, p)| Instance::new(p, i, aws_env)).collect()
}

/// The index of the instance named `name`. A linear scan: gateways have a handful of instances, and
/// comparing a few short names beats hashing the name on every request.
pub(crate) fn index_of(instances: &[Instance], name: &str) -> Option<usize> {
    instances.iter().position(|i| i.name == name)
}

/// Every upstream host the workers may connect to, for the DNS resolver.
pub(crate) fn upstream_hosts(instances: &[Instance]) -> Vec<(String, u16)> {
    let mut hosts: Vec<(String, u16)> =
        instances.iter().map(|i| (i.upstream.url().host.clone(), i.upstream.url().port)).collect();
    hosts.sort();
    hosts.dedup();
    hosts
}
