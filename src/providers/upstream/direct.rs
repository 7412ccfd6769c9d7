//! The provider's own API as the upstream: the configured base URL, the instance's API keys injected the
//! way the provider type expects, path joined onto the base path, bodies as received. Pure: no I/O.

use crate::config::{ProviderConfig, ProviderType, Secret, UpstreamUrl};
use crate::providers::routes::upstream_path;

use super::{Credential, Outbound, UpstreamError};

/// A direct upstream: base URL and API keys of one instance.
pub(crate) struct Direct {
    kind: ProviderType,
    url: UpstreamUrl,
    /// The `Host` header of `url`, rendered once rather than per request.
    host: String,
    keys: Vec<Secret>,
}

impl Direct {
    pub(super) fn new(p: &ProviderConfig) -> Direct {
        Direct { kind: p.kind, url: p.base_url.clone(), host: p.base_url.host_header(), keys: p.keys.clone() }
    }

    pub(super) fn url(&self) -> &UpstreamUrl {
        &self.url
    }

    pub(super) fn host_header(&self) -> &str {
        &self.host
    }

    pub(super) fn pool_size(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn key_hint(&self, k: usize) -> Option<String> {
        self.keys.get(k).map(Secret::hint)
    }

    pub(super) fn prepare(&self, rest: &str, body: Vec<u8>, stream: bool) -> Outbound {
        Outbound { path: upstream_path(self.kind, &self.url.base_path, rest), body, model: None, stream }
    }

    pub(super) fn added_headers(&self, credential: Credential) -> Result<Vec<(String, String)>, UpstreamError> {
        let Credential::Key(k) = credential else {
            return Ok(Vec::new());
        };
        let key = self.keys.get(k).ok_or(UpstreamError::NoCredential)?.expose();
        Ok(vec![match self.kind {
            ProviderType::Anthropic => ("x-api-key".to_string(), key.to_string()),
            ProviderType::OpenAi | ProviderType::Copilot => ("authorization".to_string(), format!("Bearer {key}")),
        }])
    }
}
