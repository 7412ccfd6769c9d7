//! The I/O side: worker threads (one monoio runtime each), listeners, the HTTP/1.1 codec, the upstream
//! client with its per-worker pool, TLS and DNS. Knows nothing of providers.

// dns.rs is rewritten on another branch of issue 8; its test-only item moves with that rewrite.
pub(crate) mod dns;
pub mod http;
pub(crate) mod io;
pub(crate) mod listener;
pub(crate) mod shutdown;
pub(crate) mod tls;
pub(crate) mod upstream;
pub(crate) mod worker;
