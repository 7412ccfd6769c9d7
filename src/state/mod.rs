//! Process-wide state the workers share, lock-free (atomics only): readiness, and (below) the overload
//! limits and circuit breakers. Each piece is built once at start-up, shared through the `Gateway`'s
//! `Arc`, and read by the metrics scrape through small accessors. A leaf module: no I/O, no runtime
//! types; clocks are passed in. The per-instance key health lives in `providers::key_pool` (the
//! failover policy and its shared atomics are one thing).

pub(crate) mod breaker;
pub(crate) mod limits;
pub(crate) mod readiness;
