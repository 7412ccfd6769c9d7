//! End-to-end tests: a real `aibridged` process and the in-repo mock upstream on loopback ports, checked
//! from the client's side, from what the mock saw, and from the records in SQLite.

mod support;

mod agents;
mod auth;
mod breaker;
mod browser;
mod crash;
mod gzip;
mod key_health;
mod limits;
mod metrics;
mod naming;
mod overload;
mod pg;
mod probes;
mod providers;
mod readiness;
mod records;
mod relay;
mod robustness;
mod sessions;
mod shutdown;
mod spill;
mod tls;
mod upstream_faults;
