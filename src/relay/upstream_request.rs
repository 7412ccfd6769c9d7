//! The upstream request of one attempt: which credential it carries (instance key, Bedrock signature, the
//! client's own for BYOK, or none), which client headers are forwarded, and the rendered bytes. Pure
//! functions over the request head and the instance: no I/O.

use std::time::SystemTime;

use crate::config::{ProviderType, Secret};
use crate::providers::bedrock::sign::sign;
use crate::records::CredentialKind;
use crate::runtime::http::{self, RequestHead};

use super::error::RelayError;
use super::exchange::render_request;
use super::handler::bearer_token;
use super::Instance;

/// Which upstream credential a request uses.
#[derive(Clone, Copy)]
pub(super) enum Credential {
    /// The client's own headers go upstream.
    Byok,
    /// Key `n` of the instance (or Bedrock credential pair `n`).
    Key(usize),
    /// No credential configured and none brought.
    None,
}

/// How many credentials the instance can fail over between (keys, or Bedrock credential pairs).
pub(super) fn pool_size(inst: &Instance) -> usize {
    match &inst.bedrock {
        Some(b) => b.credentials.len(),
        None => inst.config.keys.len(),
    }
}

/// The record's `credential_kind` for a credential.
pub(super) fn credential_kind(c: Credential) -> CredentialKind {
    match c {
        Credential::Byok => CredentialKind::Byok,
        Credential::Key(_) => CredentialKind::Centralized,
        Credential::None => CredentialKind::None,
    }
}

/// A masked hint of the credential used; never the secret.
pub(super) fn credential_hint(inst: &Instance, head: &RequestHead, c: Credential) -> Option<String> {
    match c {
        Credential::Key(k) => match &inst.bedrock {
            Some(b) => b.credentials.get(k).map(|c| c.access_key_id.hint()),
            None => inst.config.keys.get(k).map(Secret::hint),
        },
        Credential::Byok => {
            let raw = head
                .header_str("authorization")
                .map(|a| bearer_token(a).unwrap_or(a))
                .or_else(|| head.header_str("x-api-key"))?;
            Some(Secret::new(raw.trim()).hint())
        }
        Credential::None => None,
    }
}

/// Headers never forwarded upstream, beyond the hop-by-hop ones.
pub(super) fn skip_upstream(name: &str, byok: bool, bedrock: bool) -> bool {
    http::is_hop_by_hop(name)
        || name.eq_ignore_ascii_case("host")
        || name.eq_ignore_ascii_case("content-length")
        || name.eq_ignore_ascii_case("accept-encoding")
        || name.eq_ignore_ascii_case("expect")
        || name.eq_ignore_ascii_case("x-coder-ai-governance-token")
        || ((!byok || bedrock)
            && (name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("x-api-key")))
        || (bedrock
            && (name.eq_ignore_ascii_case("anthropic-version") || name.to_ascii_lowercase().starts_with("x-amz-")))
}

/// Renders the upstream request for one credential.
pub(super) fn render(
    inst: &Instance,
    head: &RequestHead,
    path: &str,
    credential: Credential,
    body: &[u8],
    stream: bool,
) -> Result<Vec<u8>, RelayError> {
    let byok = matches!(credential, Credential::Byok);
    let mut forwarded = head.headers.iter().filter(|h| {
        !skip_upstream(&h.name, byok, inst.bedrock.is_some()) && !http::is_connection_nominated(&head.headers, &h.name)
    });
    let host = inst.target.host_header();
    let mut owned: Vec<(String, String)> = Vec::new();
    match (&inst.bedrock, credential) {
        (Some(b), _) => {
            owned.push(("content-type".into(), "application/json".into()));
            owned.push((
                "accept".into(),
                if stream { "application/vnd.amazon.eventstream" } else { "application/json" }.into(),
            ));
            if let Credential::Key(k) = credential {
                let cred = b.credentials.get(k).ok_or_else(|| RelayError::Translate("no AWS credential".into()))?;
                let to_sign: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                let signed = sign("POST", &host, path, &to_sign, body, cred, &b.region, SystemTime::now())
                    .map_err(|e| RelayError::Translate(e.to_string()))?;
                owned.extend(signed);
            }
        }
        (None, Credential::Key(k)) => {
            let key = inst.config.keys[k].expose();
            match inst.config.kind {
                ProviderType::Anthropic => owned.push(("x-api-key".into(), key.to_string())),
                ProviderType::OpenAi | ProviderType::Copilot => {
                    owned.push(("authorization".into(), format!("Bearer {key}")))
                }
            }
        }
        (None, _) => {}
    }
    let extra: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let method = if inst.bedrock.is_some() { "POST" } else { head.method.as_str() };
    Ok(render_request(method, path, &host, &mut forwarded, &extra, body))
}
