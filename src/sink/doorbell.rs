//! How workers wake the sink while it gathers a batch. The sink sleeps (parked) until the batch's deadline
//! instead of waiting in a channel receive, so a worker's send is a plain queue push: no futex call, no
//! preemption of the worker by a woken sink. A sender rings only when waiting would be wrong: the channel
//! holds a few full batches, or it is full and the sender must block. Closing rings too. Everything else waits
//! for the deadline, so the sink wakes about once per batch (ARCHITECTURE.md, Threads).

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::Instant;

/// Shared by the sink thread and every [`super::SinkHandle`].
pub(super) struct Doorbell {
    /// The sink thread, set once right after it is spawned (before any handle exists).
    sink: OnceLock<Thread>,
    /// True while the sink is parked (or about to park) gathering a batch.
    gathering: AtomicBool,
    /// Records queued that are worth a wake-up (a few full batches, `sink::WAKE_BATCHES`).
    full_batch: usize,
    /// Set when the owner joins or closes the sink: stop gathering, drain and commit at once.
    finishing: AtomicBool,
}

impl Doorbell {
    pub(super) fn new(full_batch: usize) -> Self {
        Doorbell {
            sink: OnceLock::new(),
            gathering: AtomicBool::new(false),
            full_batch: full_batch.max(1),
            finishing: AtomicBool::new(false),
        }
    }

    /// Records the sink thread to wake.
    pub(super) fn install(&self, sink: Thread) {
        let _ = self.sink.set(sink);
    }

    /// Wakes the sink whatever it is doing (a close, a full channel). A wake it does not need costs it one
    /// loop turn.
    pub(super) fn ring(&self) {
        if let Some(t) = self.sink.get() {
            t.unpark();
        }
    }

    /// The sink is being joined or closed: from now on it commits what it receives without gathering.
    pub(super) fn finish(&self) {
        self.finishing.store(true, Ordering::SeqCst);
        self.ring();
    }

    /// Called by a sender after its record went in, with the channel's length then. Costs a comparison
    /// unless a full batch waits.
    #[inline]
    pub(super) fn after_send(&self, queued: usize) {
        if queued >= self.full_batch {
            // Pairs with the fence in `gather`: either the sink sees this record in the channel's length, or
            // this sender sees it gathering and wakes it.
            fence(Ordering::SeqCst);
            if self.gathering.load(Ordering::Relaxed) {
                self.ring();
            }
        }
    }

    /// Parks the sink until `deadline`, or until `enough()` holds (enough batches are queued) or the sink is
    /// finishing. `enough` is checked after announcing the park, so a ring is never missed; spurious
    /// wake-ups only cost a loop turn.
    pub(super) fn gather(&self, deadline: Instant, enough: impl Fn() -> bool) {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            self.gathering.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if enough() || self.finishing.load(Ordering::Relaxed) {
                self.gathering.store(false, Ordering::Relaxed);
                return;
            }
            std::thread::park_timeout(deadline - now);
            self.gathering.store(false, Ordering::Relaxed);
        }
    }
}
