//! The control plane: the sessions API and the web page on their own listener (`--admin-address`), and
//! the views the `sessions`/`usage` CLI prints. Runs on its own tokio runtime on its own threads and reads
//! through read-only [`Store`](crate::db::Store)s; nothing here runs on a worker or touches the data
//! plane (ARCHITECTURE.md, Threads).

pub(crate) mod api;
pub(crate) mod cli;
pub(crate) mod query;
mod readers;
mod ui;
pub(crate) mod usage;
pub(crate) mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::TokenCache;
use crate::db::DatabaseUrl;

/// Threads of the control plane's runtime (the queries run on its blocking pool, bounded below).
const API_THREADS: usize = 2;
/// Most queries running at once; more wait for a free thread.
const MAX_QUERY_THREADS: usize = 4;

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot listen on {addr} for the sessions API: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("{0}")]
    Prices(#[from] usage::PriceError),
    #[error("cannot start the sessions API threads: {0}")]
    Threads(std::io::Error),
}

/// Binds `address` and serves the API and the page on a thread of their own until the process exits.
/// Returns the bound address (a port of 0 picks one).
pub(crate) fn spawn(
    address: &str,
    database: DatabaseUrl,
    tokens: TokenCache,
    price_file: Option<&std::path::Path>,
) -> Result<SocketAddr, ControlError> {
    let prices = usage::PriceTable::load(price_file)?;
    let listen_err = |source| ControlError::Listen { addr: address.to_owned(), source };
    let listener = std::net::TcpListener::bind(address).map_err(listen_err)?;
    listener.set_nonblocking(true).map_err(listen_err)?;
    let bound = listener.local_addr().map_err(listen_err)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(API_THREADS)
        .max_blocking_threads(MAX_QUERY_THREADS)
        .thread_name("aibridged-admin")
        .enable_io()
        .enable_time()
        .build()
        .map_err(ControlError::Threads)?;
    let state = Arc::new(api::ApiState { tokens, readers: readers::Readers::new(database), prices });
    std::thread::Builder::new()
        .name("aibridged-admin-accept".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "sessions API listener failed");
                        return;
                    }
                };
                if let Err(e) = axum::serve(listener, api::router(state)).await {
                    tracing::error!(error = %e, "sessions API stopped");
                }
            });
        })
        .map_err(ControlError::Threads)?;
    Ok(bound)
}
