//! The relay: drives each request through its phases (route, authenticate, read body, inspect, choose
//! upstream and credential, exchange, relay response, end record). The only module that sees runtime,
//! providers, sse and sink together. Files import each other one way: `handler` drives the phase
//! modules, which share `context`, `error` and `gateway`; none imports `handler`.

mod authenticate;
mod body;
mod context;
mod credential;
pub(crate) mod decode;
pub(crate) mod error;
mod exchange;
// gateway.rs is rewritten on another branch of issue 8; its dead item goes with that rewrite.
mod gateway;
mod handler;
mod instance;
pub(crate) mod record;
mod request;
mod response;
mod route;
#[cfg(test)]
mod testing;

pub(crate) use gateway::{Gateway, WorkerService};
pub(crate) use instance::{build_instances, upstream_hosts, Instance};
