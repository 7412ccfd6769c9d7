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
/// How much nicer than the process the control plane's threads run: the API's queries (a large page groups a week of
/// interceptions for seconds) yield the CPU to the workers, which run at the process's own priority.
/// Measured with `scripts/bench sessions` (README, Sessions).
const CONTROL_NICE: libc::c_int = 10;

/// Sets the calling thread's nice value to the process's plus [`CONTROL_NICE`] (at most 19). On Linux the nice value belongs
/// to each thread, so this leaves the workers and the sink as they are. Best effort: a failure (a
/// sandbox refusing it) only costs the data plane some tail latency while the API is busy.
fn lower_this_threads_priority() {
    // Relative to the process (its main thread's nice value), not to the calling thread: tokio starts its
    // blocking query threads from already niced threads, which inherit their nice value.
    // SAFETY: getpid and gettid have no preconditions; getpriority and setpriority only read their
    // integer arguments, and the latter changes the nice value of this very thread. (-1 from getpriority
    // is also a valid nice value; a real failure shows in setpriority's result.)
    let rc = unsafe {
        let process = libc::getpriority(libc::PRIO_PROCESS, libc::getpid() as libc::id_t);
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, (process + CONTROL_NICE).min(19))
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a control-plane thread's priority");
    }
}

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
        .on_thread_start(lower_this_threads_priority)
        .enable_io()
        .enable_time()
        .build()
        .map_err(ControlError::Threads)?;
    let state = Arc::new(api::ApiState { tokens, readers: readers::Readers::new(database), prices });
    std::thread::Builder::new()
        .name("aibridged-admin-accept".into())
        .spawn(move || {
            lower_this_threads_priority();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The control plane's threads run niced; threads started elsewhere keep the process's priority.
    #[test]
    fn control_plane_threads_run_at_a_lower_priority() {
        let nice = || {
            // SAFETY: as in lower_this_threads_priority; getpriority only reads.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        };
        let before = std::thread::spawn(nice).join().unwrap();
        let lowered = std::thread::spawn(move || {
            lower_this_threads_priority();
            nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + CONTROL_NICE).min(19));
        // A thread started by a niced thread (as tokio starts its blocking threads) ends at the same level.
        let nested = std::thread::spawn(move || {
            lower_this_threads_priority();
            std::thread::spawn(move || {
                lower_this_threads_priority();
                nice()
            })
            .join()
            .unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(nested, lowered, "niced relative to the process, not to the spawning thread");
        assert_eq!(std::thread::spawn(nice).join().unwrap(), before, "only the calling thread is niced");
    }
}
