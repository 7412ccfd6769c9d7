//! The per-request context the phases share: the request head, where it is routed, who is calling, what
//! inspection found, which credential the current attempt uses, the interception being recorded, and
//! the timings of the request's life. Data only: the phases that fill it live in their own modules.

use std::time::{Duration, Instant};

use crate::auth::Principal;
use crate::providers::request::Inspection;
use crate::providers::routes::RouteKind;
use crate::providers::upstream::Credential;
use crate::records::Api;
use crate::runtime::http::RequestHead;

use super::instance::Instance;
use super::record::Interception;

/// Where a request goes: the instance, the path after its name, and what the route is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// Index of the instance in the gateway.
    pub(crate) instance: usize,
    /// Path and query after `/api/v2/aibridge/<name>`.
    pub(crate) rest: String,
    pub(crate) kind: RouteKind,
}

impl Route {
    /// The API of an intercepted route; `None` for a passthrough.
    pub(crate) fn api(&self) -> Option<Api> {
        match self.kind {
            RouteKind::Intercept(api) => Some(api),
            RouteKind::Passthrough => None,
        }
    }
}

/// Who is calling and with which upstream credential policy.
pub(crate) struct Caller {
    pub(crate) principal: Principal,
    /// Set when the client keeps its own provider credential (`X-Coder-AI-Governance-Token` auth).
    pub(crate) byok: Option<ClientCredential>,
}

/// A BYOK caller's own provider credential, read once from its headers. Only the masked hint is kept:
/// the credential itself goes upstream in the client's own headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientCredential {
    pub(crate) hint: Option<String>,
}

/// When each step of a request's life finished; the coming metrics read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timings {
    pub(crate) head_read: Instant,
    pub(crate) body_read: Option<Instant>,
    /// The connection of the attempt that answered was ready.
    pub(crate) upstream_connected: Option<Instant>,
    pub(crate) upstream_first_byte: Option<Instant>,
    pub(crate) client_first_byte: Option<Instant>,
    pub(crate) end: Option<Instant>,
}

impl Timings {
    /// Timings of a request whose head was just read.
    pub(crate) fn new(head_read: Instant) -> Timings {
        Timings {
            head_read,
            body_read: None,
            upstream_connected: None,
            upstream_first_byte: None,
            client_first_byte: None,
            end: None,
        }
    }

    /// How long after the head `at` happened.
    pub(crate) fn since_head(&self, at: Option<Instant>) -> Option<Duration> {
        at.map(|t| t.saturating_duration_since(self.head_read))
    }
}

/// One request as the phases see it.
pub(crate) struct RequestCtx<'a> {
    pub(crate) head: RequestHead,
    pub(crate) route: Route,
    pub(crate) inst: &'a Instance,
    pub(crate) caller: Caller,
    /// What inspection found in the body (intercepted routes only).
    pub(crate) info: Option<Inspection>,
    /// The credential of the current attempt; failover replaces it.
    pub(crate) credential: Credential,
    /// The interception being recorded, until it ends.
    pub(crate) interception: Option<Interception>,
    pub(crate) timings: Timings,
}

impl<'a> RequestCtx<'a> {
    /// A routed, authenticated request whose body is about to be handled.
    pub(crate) fn new(head: RequestHead, route: Route, inst: &'a Instance, caller: Caller, timings: Timings) -> Self {
        RequestCtx { head, route, inst, caller, info: None, credential: Credential::None, interception: None, timings }
    }
}
