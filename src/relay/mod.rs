//! The relay: drives each request through its phases (route, authenticate, read body, inspect, choose
//! upstream and credential, exchange, relay response, end record). The only module that sees runtime,
//! providers, sse and sink together. Files import each other one way: `handler` drives the phase
//! modules, which share `context`, `error` and `gateway`; none imports `handler`.

mod authenticate;
mod body;
mod context;
mod credential;
pub mod error;
mod exchange;
mod gateway;
mod handler;
mod instance;
pub mod record;
mod request;
mod response;
mod route;
#[cfg(test)]
mod testing;

pub use body::BodyTimeouts;
pub use gateway::{Gateway, Timeouts, WorkerService};
pub use instance::{build_instances, upstream_hosts, Instance};
pub use route::default_shape;
