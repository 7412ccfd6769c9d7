//! The control plane's read-only database connections: a small pool of [`Store`]s opened on demand, each
//! query run on tokio's blocking pool so the listener's threads only ever wait on sockets. Never used by
//! a worker or the sink.

use std::sync::{Arc, Mutex};

use crate::db::{self, DatabaseUrl, Store, StoreError, Workload};

/// Idle connections kept for the next request; more can be open while requests overlap.
const KEEP_IDLE: usize = 4;

/// A pool of read-only stores over one database.
#[derive(Clone)]
pub(crate) struct Readers {
    database: Arc<DatabaseUrl>,
    idle: Arc<Mutex<Vec<Box<dyn Store>>>>,
}

impl Readers {
    pub(crate) fn new(database: DatabaseUrl) -> Readers {
        Readers { database: Arc::new(database), idle: Arc::new(Mutex::new(Vec::new())) }
    }

    /// Runs `query` on a pooled (or newly opened) read-only store, off the async threads.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || pool.run_blocking(query))
            .await
            .unwrap_or_else(|e| Err(StoreError::Fault(format!("query task failed: {e}").into())))
    }

    fn run_blocking<T>(&self, query: impl FnOnce(&mut dyn Store) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut store = match pooled {
            Some(s) => s,
            None => db::open(&*self.database, Workload::Reader).map_err(|e| StoreError::Fault(Box::new(e)))?,
        };
        let result = query(store.as_mut());
        // A store that failed may hold a broken connection: only a good one goes back.
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < KEEP_IDLE {
                idle.push(store);
            }
        }
        result
    }
}
