//! Overload protection shared by every worker, lock-free: the in-flight cap on intercepted requests
//! (`CODER_AIBRIDGE_MAX_CONCURRENCY`), the cap on open client connections (`--max-connections`) and the
//! per-token request rate (`CODER_AIBRIDGE_RATE_LIMIT`).
//! Neither waits: a request over a limit is refused at once. `0` turns a limit off.
//!
//! What each answers (README "What each limit answers"): over the concurrency cap → 503 "AI Bridge is
//! currently at capacity"; over the rate → 429 with `Retry-After` (seconds until the token's window
//! ends). Both are answered in the provider's error shape before the body is read, never reach the
//! upstream, and are not recorded as interceptions (none was started: Coder's limits also refuse before
//! an interception exists); the metrics count them through [`Concurrency::rejected`] and
//! [`RateLimiter::rejected`]. A connection over `--max-connections` is closed as soon as it is accepted,
//! before a byte is read or written (the client sees EOF or a reset, never a partial answer).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A cap on what is in flight across all workers: intercepted requests (`CODER_AIBRIDGE_MAX_CONCURRENCY`)
/// or open client connections (`--max-connections`), one instance each.
#[derive(Debug)]
pub(crate) struct Concurrency {
    max: u64,
    inflight: AtomicU64,
    rejected: AtomicU64,
}

/// One admitted request; releases its place when dropped (also when the request's task is dropped).
#[derive(Debug)]
pub(crate) struct Permit<'a>(Option<&'a Concurrency>);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.inflight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Concurrency {
    /// At most `max` in flight; `0` means unlimited.
    pub(crate) fn new(max: u64) -> Concurrency {
        Concurrency { max, inflight: AtomicU64::new(0), rejected: AtomicU64::new(0) }
    }

    /// A place for one more request, or `None` when `max` are in flight (counted as a rejection).
    pub(crate) fn try_acquire(&self) -> Option<Permit<'_>> {
        if self.max == 0 {
            return Some(Permit(None));
        }
        // Increment first, undo when over: two workers racing for the last place cannot both win.
        if self.inflight.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.inflight.fetch_sub(1, Ordering::AcqRel);
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Permit(Some(self)))
    }

    /// Admitted and not yet finished (0 when the limit is off).
    pub(crate) fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Refused so far (requests answered 503, or connections closed at accept).
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// Slots of the rate table: far more than the tokens active in one second on one gateway.
const SLOTS: usize = 4096;
/// Slots probed for a token before it shares the last one probed (table crowded).
const PROBES: usize = 16;
/// The window of the rate limit.
const WINDOW: Duration = Duration::from_secs(1);

/// One table slot: which token owns it (its hash, never 0) and that token's window (`second << 32 |
/// count`), both updated with compare-and-swap.
#[derive(Debug, Default)]
struct Slot {
    owner: AtomicU64,
    window: AtomicU64,
}

/// Requests per second per gateway token, exact across workers: each token owns a slot of a fixed table
/// (open addressing by token hash) holding a fixed one-second window and its count, changed only by CAS.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_second: u32,
    epoch: Instant,
    slots: Box<[Slot]>,
    rejected: AtomicU64,
}

impl RateLimiter {
    /// `per_second` requests per token per second; `0` means unlimited (no table is allocated).
    pub(crate) fn new(per_second: u32) -> RateLimiter {
        let n = if per_second == 0 { 0 } else { SLOTS };
        RateLimiter {
            per_second,
            epoch: Instant::now(),
            slots: (0..n).map(|_| Slot::default()).collect(),
            rejected: AtomicU64::new(0),
        }
    }

    /// Admits one request of `token` at `now`, or says how long until its window ends.
    pub(crate) fn check(&self, token: &str, now: Instant) -> Result<(), Duration> {
        if self.per_second == 0 {
            return Ok(());
        }
        let slot = self.slot_of(token_hash(token));
        let since = now.saturating_duration_since(self.epoch);
        let second = since.as_secs() & u64::from(u32::MAX);
        loop {
            let current = slot.window.load(Ordering::Acquire);
            let (window, count) = (current >> 32, current & u64::from(u32::MAX));
            let next = if window != second {
                (second << 32) | 1
            } else if count < u64::from(self.per_second) {
                current + 1
            } else {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(WINDOW - Duration::from_nanos(u64::from(since.subsec_nanos())));
            };
            if slot.window.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                return Ok(());
            }
        }
    }

    /// Requests refused with 429 so far.
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The slot `hash` owns, claiming a free one on first use.
    fn slot_of(&self, hash: u64) -> &Slot {
        let start = (hash as usize) % self.slots.len();
        let mut last = &self.slots[start];
        for i in 0..PROBES {
            let slot = &self.slots[(start + i) % self.slots.len()];
            last = slot;
            match slot.owner.compare_exchange(0, hash, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return slot,
                Err(owner) if owner == hash => return slot,
                Err(_) => {}
            }
        }
        last
    }
}

/// A non-zero hash of a token id (0 marks a free slot).
fn token_hash(token: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    token.hash(&mut h);
    h.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn concurrency_admits_exactly_max_and_releases_on_drop() {
        let c = Concurrency::new(2);
        let a = c.try_acquire().unwrap();
        let b = c.try_acquire().unwrap();
        assert!(c.try_acquire().is_none());
        assert_eq!((c.inflight(), c.rejected()), (2, 1));
        drop(a);
        let _c = c.try_acquire().expect("a place came free");
        drop(b);
        assert_eq!(c.inflight(), 1);
        let off = Concurrency::new(0);
        let held: Vec<_> = (0..1000).map(|_| off.try_acquire().unwrap()).collect();
        assert_eq!((held.len(), off.inflight()), (1000, 0));
    }

    #[test]
    fn concurrency_is_exact_under_threads() {
        let c = Concurrency::new(5);
        let admitted = AtomicU64::new(0);
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let mut held = Vec::new();
                    barrier.wait();
                    for _ in 0..10 {
                        if let Some(p) = c.try_acquire() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            held.push(p);
                        }
                    }
                    barrier.wait();
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 5);
        assert_eq!(c.inflight(), 0);
    }

    #[test]
    fn rate_limit_per_token_per_second() {
        let r = RateLimiter::new(3);
        let t = r.epoch + Duration::from_millis(250);
        for _ in 0..3 {
            assert_eq!(r.check("tok-a", t), Ok(()));
        }
        assert_eq!(r.check("tok-a", t), Err(Duration::from_millis(750)), "until the window ends");
        assert_eq!(r.check("tok-b", t), Ok(()), "another token has its own budget");
        assert_eq!(r.check("tok-a", t + Duration::from_millis(750)), Ok(()), "next window");
        assert_eq!(r.rejected(), 1);
        let off = RateLimiter::new(0);
        assert!((0..10_000).all(|_| off.check("x", t).is_ok()));
    }

    proptest! {
        /// However requests of several tokens interleave over threads and seconds, each token gets exactly
        /// `min(limit, sent)` admissions in each second.
        #[test]
        fn rate_limit_is_exact_under_interleavings(limit in 1u32..20, sent in proptest::collection::vec(0u32..40, 1..6), threads in 1usize..5) {
            let r = RateLimiter::new(limit);
            for (second, &n) in sent.iter().enumerate() {
                let at = r.epoch + Duration::from_secs(second as u64) + Duration::from_millis(10);
                let admitted: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
                std::thread::scope(|s| {
                    for w in 0..threads {
                        let (r, admitted) = (&r, &admitted);
                        s.spawn(move || {
                            for i in 0..n {
                                if (i as usize) % threads != w { continue; }
                                for (k, a) in admitted.iter().enumerate() {
                                    if r.check(&format!("token-{k}"), at).is_ok() {
                                        a.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                        });
                    }
                });
                for a in &admitted {
                    prop_assert_eq!(a.load(Ordering::Relaxed), u64::from(limit.min(n)));
                }
            }
        }
    }
}
