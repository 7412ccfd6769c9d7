//! The I/O side: worker threads (one monoio runtime each), listeners, the HTTP/1.1 codec, the upstream
//! client with its per-worker pool, TLS and DNS. Knows nothing of providers.

pub mod dns;
pub mod http;
pub mod io;
pub mod listener;
pub mod shutdown;
pub mod tls;
pub mod upstream;
pub mod worker;
