//! What the metrics scrape reads of the sink: its counters (queue depth, pending, written, full-channel
//! waits, failures) and the batch commit-time histogram. Read-only, from the scrape thread; holds no
//! `SinkHandle`, so it never keeps the sink alive.

use std::sync::Arc;

use crate::metrics::histogram::{AtomicHistogram, Histogram, OVERHEAD_BUCKETS};

use super::{Counters, SinkStats};

/// The commit-time histogram: commits are bounded like the gateway's own time (5 µs to 1 s and beyond).
pub(super) fn commit_histogram() -> AtomicHistogram {
    AtomicHistogram::new(OVERHEAD_BUCKETS)
}

/// A reader of the sink's counters for /metrics.
#[derive(Clone)]
pub(crate) struct SinkProbe {
    counters: Arc<Counters>,
    commit_time: Arc<AtomicHistogram>,
}

impl SinkProbe {
    pub(super) fn new(counters: Arc<Counters>, commit_time: Arc<AtomicHistogram>) -> SinkProbe {
        SinkProbe { counters, commit_time }
    }

    /// A probe of no sink (all zeros), for tests of the scrape itself.
    #[cfg(test)]
    pub(crate) fn detached() -> SinkProbe {
        SinkProbe::new(Arc::default(), Arc::new(commit_histogram()))
    }

    /// The counters now; `queued` is the channel depth the sink last saw.
    pub(crate) fn stats(&self) -> SinkStats {
        let queued = self.counters.queued.load(std::sync::atomic::Ordering::Relaxed);
        self.counters.snapshot(queued)
    }

    /// Adds the commit times so far to `into` (over `OVERHEAD_BUCKETS`).
    pub(crate) fn commit_time(&self, into: &mut Histogram) {
        self.commit_time.add_to(into);
    }
}
