//! Readiness (`GET /readyz`): whether this process should be sent traffic. Ready once the database is
//! open with its migrations applied and the sink thread is running, and every worker is listening; not
//! ready again from the moment shutdown begins (a load balancer stops sending before the listeners
//! close). Liveness (`/healthz`) is a different question and stays 200 throughout.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Why the process is not ready (the `/readyz` body says it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotReady {
    /// Start-up has not finished: the sink or some worker is not up yet.
    Starting,
    /// Shutdown has begun.
    Draining,
}

/// The readiness flags, set by start-up and shutdown, read by every worker.
#[derive(Debug)]
pub(crate) struct Readiness {
    workers: usize,
    listening: AtomicUsize,
    sink_running: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// Not ready yet, waiting for `workers` workers.
    pub(crate) fn new(workers: usize) -> Readiness {
        Readiness {
            workers,
            listening: AtomicUsize::new(0),
            sink_running: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    /// The database is open and migrated, and the sink thread runs.
    pub(crate) fn sink_running(&self) {
        self.sink_running.store(true, Ordering::Release);
    }

    /// One more worker accepts connections.
    pub(crate) fn worker_listening(&self) {
        self.listening.fetch_add(1, Ordering::AcqRel);
    }

    /// Shutdown began: never ready again.
    pub(crate) fn draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// `Ok` when traffic should be sent here.
    pub(crate) fn check(&self) -> Result<(), NotReady> {
        if self.draining.load(Ordering::Acquire) {
            return Err(NotReady::Draining);
        }
        if !self.sink_running.load(Ordering::Acquire) || self.listening.load(Ordering::Acquire) < self.workers {
            return Err(NotReady::Starting);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_between_full_start_and_shutdown() {
        let r = Readiness::new(2);
        assert_eq!(r.check(), Err(NotReady::Starting));
        r.sink_running();
        r.worker_listening();
        assert_eq!(r.check(), Err(NotReady::Starting), "one worker of two");
        r.worker_listening();
        assert_eq!(r.check(), Ok(()));
        r.draining();
        assert_eq!(r.check(), Err(NotReady::Draining));
        let early = Readiness::new(1);
        early.draining();
        assert_eq!(early.check(), Err(NotReady::Draining), "draining wins over starting");
    }
}
