//! Circuit breakers shared by every worker, lock-free: one per provider instance, endpoint (API) and
//! model, with Coder's settings (`CODER_AIBRIDGE_CIRCUIT_BREAKER_*`, off by default).
//!
//! - **closed**: requests pass; upstream 503, 504 and 529 answers count as consecutive failures (any other
//!   answer resets the count, and so does each `interval`); `failure_threshold` of them open it.
//! - **open**: requests are refused at once with 503 "circuit breaker is open" and `Retry-After` (seconds
//!   until `timeout` has passed since it opened), recorded as failed interceptions, never sent upstream.
//! - **half-open** (after `timeout`): `max_requests` trial requests pass; as many successes close it,
//!   one failure reopens it; requests beyond the trials are refused like an open breaker's
//!   (`Retry-After: 1`).
//!
//! A request's outcome is its upstream status, reported when the request ends (so a half-open trial
//! streaming its answer holds its place until the stream is over). A request that gets no upstream answer (connect error, timeout, client gone) is neither a success nor
//! a failure: it only gives its half-open trial place back. Each breaker's state is one `AtomicU64`
//! changed by compare-and-swap; an outcome applies only to the state (phase and start time) its request
//! was admitted in, so a slow answer from before a transition cannot move the breaker.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::BreakerSettings;

/// Breakers a gateway can hold: far more than its instance × endpoint × model combinations in use.
const SLOTS: usize = 1024;
/// Slots probed for a breaker before it shares the last one probed (table crowded).
const PROBES: usize = 16;
/// `Retry-After` for a request refused because the half-open trials are all taken.
const HALF_OPEN_BUSY: Duration = Duration::from_secs(1);

/// Upstream answers that count as failures: unavailable, gateway timeout, and Anthropic's overloaded.
pub(crate) fn is_failure(status: u16) -> bool {
    matches!(status, 503 | 504 | 529)
}

/// What a breaker does with the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Closed,
    Open,
    HalfOpen,
}

/// Which breaker: provider instance name, endpoint (API) and model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BreakerKey {
    pub(crate) instance: String,
    pub(crate) endpoint: &'static str,
    pub(crate) model: String,
}

/// One breaker as the metrics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BreakerView<'a> {
    pub(crate) key: &'a BreakerKey,
    /// Open after its timeout is reported half-open (what the next request finds).
    pub(crate) phase: Phase,
    /// Times it opened (closed → open and half-open → open).
    pub(crate) trips: u64,
    /// Requests it refused with 503.
    pub(crate) rejects: u64,
}

/// The packed state word: phase (2 bits) | a (11 bits) | b (11 bits) | since (40 bits, ms after the
/// epoch: when the phase, or the closed interval, began). Closed: a = consecutive failures. Half-open:
/// a = trials admitted and not given back, b = successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Word {
    phase: Phase,
    a: u64,
    b: u64,
    since: u64,
}

const COUNT_MASK: u64 = (1 << 11) - 1;
const TIME_MASK: u64 = (1 << 40) - 1;

impl Word {
    fn unpack(w: u64) -> Word {
        let phase = match w >> 62 {
            0 => Phase::Closed,
            1 => Phase::Open,
            _ => Phase::HalfOpen,
        };
        Word { phase, a: (w >> 51) & COUNT_MASK, b: (w >> 40) & COUNT_MASK, since: w & TIME_MASK }
    }

    fn pack(self) -> u64 {
        let phase = match self.phase {
            Phase::Closed => 0,
            Phase::Open => 1,
            Phase::HalfOpen => 2,
        };
        (phase << 62) | (self.a.min(COUNT_MASK) << 51) | (self.b.min(COUNT_MASK) << 40) | (self.since & TIME_MASK)
    }

    fn fresh(phase: Phase, since: u64) -> Word {
        Word { phase, a: 0, b: 0, since }
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// Hash of the key owning the slot; 0 is free.
    owner: AtomicU64,
    word: AtomicU64,
    key: OnceLock<BreakerKey>,
    trips: AtomicU64,
    rejects: AtomicU64,
}

/// Every breaker of the gateway (empty when the breaker is disabled).
#[derive(Debug)]
pub(crate) struct Breakers {
    settings: BreakerSettings,
    epoch: Instant,
    slots: Box<[Slot]>,
}

/// How an admitted request ended, for its breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The upstream answered with a status other than 503/504/529.
    Success,
    /// The upstream answered 503, 504 or 529.
    Failure,
    /// No upstream answer (connect error, timeout, client gone): gives a half-open trial place back.
    NoAnswer,
}

/// An admitted request. Settle it with the upstream's answer; dropped unsettled it counts as no answer.
#[derive(Debug)]
pub(crate) struct Ticket<'a> {
    breakers: &'a Breakers,
    slot: &'a Slot,
    admitted_in: Word,
    settled: bool,
}

impl Ticket<'_> {
    /// Reports the upstream's answer (`None`: it gave none) at `now`.
    pub(crate) fn settle(mut self, upstream_status: Option<u16>, now: Instant) {
        let outcome = match upstream_status {
            Some(s) if is_failure(s) => Outcome::Failure,
            Some(_) => Outcome::Success,
            None => Outcome::NoAnswer,
        };
        self.settled = true;
        self.breakers.record(self.slot, self.admitted_in, outcome, now);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breakers.record(self.slot, self.admitted_in, Outcome::NoAnswer, Instant::now());
        }
    }
}

impl Breakers {
    /// One table for the whole gateway; nothing is allocated when the breaker is disabled.
    pub(crate) fn new(settings: BreakerSettings) -> Breakers {
        let n = if settings.enabled { SLOTS } else { 0 };
        Breakers { settings, epoch: Instant::now(), slots: (0..n).map(|_| Slot::default()).collect() }
    }

    /// Admits a request to `endpoint` of `instance` for `model` at `now` (`Ok(None)` when the breaker
    /// is disabled), or refuses it with how long until trying again can succeed.
    pub(crate) fn admit(
        &self,
        instance: &str,
        endpoint: &'static str,
        model: &str,
        now: Instant,
    ) -> Result<Option<Ticket<'_>>, Duration> {
        if self.slots.is_empty() {
            return Ok(None);
        }
        let slot = self.slot_of(instance, endpoint, model);
        let now_ms = self.ms(now);
        let s = &self.settings;
        loop {
            let current = slot.word.load(Ordering::Acquire);
            let w = Word::unpack(current);
            let next = match w.phase {
                Phase::Closed if !s.interval.is_zero() && now_ms.saturating_sub(w.since) >= ms_of(s.interval) => {
                    Word::fresh(Phase::Closed, now_ms)
                }
                Phase::Closed => w,
                Phase::Open => {
                    let open_for = now_ms.saturating_sub(w.since);
                    if open_for < ms_of(s.timeout) {
                        slot.rejects.fetch_add(1, Ordering::Relaxed);
                        return Err(Duration::from_millis(ms_of(s.timeout) - open_for));
                    }
                    Word { a: 1, ..Word::fresh(Phase::HalfOpen, now_ms) }
                }
                Phase::HalfOpen if w.a < u64::from(s.max_requests) => Word { a: w.a + 1, ..w },
                Phase::HalfOpen => {
                    slot.rejects.fetch_add(1, Ordering::Relaxed);
                    return Err(HALF_OPEN_BUSY);
                }
            };
            if next == w
                || slot.word.compare_exchange(current, next.pack(), Ordering::AcqRel, Ordering::Acquire).is_ok()
            {
                return Ok(Some(Ticket { breakers: self, slot, admitted_in: next, settled: false }));
            }
        }
    }

    /// Every breaker in use, for the metrics.
    pub(crate) fn views(&self, now: Instant) -> Vec<BreakerView<'_>> {
        let now_ms = self.ms(now);
        let timeout = ms_of(self.settings.timeout);
        self.slots
            .iter()
            .filter_map(|slot| {
                let key = slot.key.get()?;
                let w = Word::unpack(slot.word.load(Ordering::Acquire));
                let phase = match w.phase {
                    Phase::Open if now_ms.saturating_sub(w.since) >= timeout => Phase::HalfOpen,
                    p => p,
                };
                let (trips, rejects) = (slot.trips.load(Ordering::Relaxed), slot.rejects.load(Ordering::Relaxed));
                Some(BreakerView { key, phase, trips, rejects })
            })
            .collect()
    }

    /// Applies one outcome, if the breaker is still in the state the request was admitted in.
    fn record(&self, slot: &Slot, admitted_in: Word, outcome: Outcome, now: Instant) {
        let s = &self.settings;
        let now_ms = self.ms(now);
        loop {
            let current = slot.word.load(Ordering::Acquire);
            let w = Word::unpack(current);
            if w.phase != admitted_in.phase || w.since != admitted_in.since {
                return; // a transition happened since: this answer belongs to an older state
            }
            let (next, trip) = match (w.phase, outcome) {
                (Phase::Closed, Outcome::Failure) if w.a + 1 >= u64::from(s.failure_threshold) => {
                    (Word::fresh(Phase::Open, now_ms), true)
                }
                (Phase::Closed, Outcome::Failure) => (Word { a: w.a + 1, ..w }, false),
                (Phase::Closed, Outcome::Success) if w.a > 0 => (Word { a: 0, ..w }, false),
                (Phase::HalfOpen, Outcome::Failure) => (Word::fresh(Phase::Open, now_ms), true),
                (Phase::HalfOpen, Outcome::Success) if w.b + 1 >= u64::from(s.max_requests) => {
                    (Word::fresh(Phase::Closed, now_ms), false)
                }
                (Phase::HalfOpen, Outcome::Success) => (Word { b: w.b + 1, ..w }, false),
                (Phase::HalfOpen, Outcome::NoAnswer) => (Word { a: w.a.saturating_sub(1), ..w }, false),
                _ => return,
            };
            if slot.word.compare_exchange(current, next.pack(), Ordering::AcqRel, Ordering::Acquire).is_ok() {
                if trip {
                    slot.trips.fetch_add(1, Ordering::Relaxed);
                    if let Some(k) = slot.key.get() {
                        tracing::warn!(provider = %k.instance, endpoint = k.endpoint, model = %k.model, "circuit breaker opened");
                    }
                }
                return;
            }
        }
    }

    /// Milliseconds since the table's epoch (never 0 for a real request, so a fresh slot's interval
    /// starts with its first request).
    fn ms(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_millis() as u64 + 1) & TIME_MASK
    }

    /// The slot of a breaker, claiming a free one on first use.
    fn slot_of(&self, instance: &str, endpoint: &'static str, model: &str) -> &Slot {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (instance, endpoint, model).hash(&mut h);
        let hash = h.finish().max(1);
        let start = (hash as usize) % self.slots.len();
        let mut last = &self.slots[start];
        for i in 0..PROBES {
            let slot = &self.slots[(start + i) % self.slots.len()];
            last = slot;
            match slot.owner.compare_exchange(0, hash, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let key = BreakerKey { instance: instance.to_string(), endpoint, model: model.to_string() };
                    let _ = slot.key.set(key);
                    return slot;
                }
                Err(owner) if owner == hash => return slot,
                Err(_) => {}
            }
        }
        last
    }
}

fn ms_of(d: Duration) -> u64 {
    d.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(threshold: u32, max_requests: u32) -> BreakerSettings {
        BreakerSettings {
            enabled: true,
            failure_threshold: threshold,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_requests,
        }
    }

    fn phase(b: &Breakers, at: Instant) -> Phase {
        b.views(at)[0].phase
    }

    const M: (&str, &str, &str) = ("openai", "chat_completions", "gpt-4o");

    fn admit(b: &Breakers, at: Instant) -> Result<Option<Ticket<'_>>, Duration> {
        b.admit(M.0, M.1, M.2, at)
    }

    #[test]
    fn disabled_admits_everything_without_a_table() {
        let b = Breakers::new(BreakerSettings::default());
        assert!(matches!(admit(&b, Instant::now()), Ok(None)));
        assert!(b.views(Instant::now()).is_empty());
    }

    #[test]
    fn opens_after_threshold_consecutive_failures_and_a_success_resets_the_count() {
        let b = Breakers::new(settings(3, 2));
        let t = b.epoch + Duration::from_secs(1);
        for status in [503, 504, 200, 529, 503] {
            admit(&b, t).unwrap().unwrap().settle(Some(status), t);
        }
        assert_eq!(phase(&b, t), Phase::Closed, "the 200 broke the run");
        admit(&b, t).unwrap().unwrap().settle(Some(504), t);
        assert_eq!(phase(&b, t), Phase::Open);
        let wait = admit(&b, t + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20), "until the timeout since opening");
        let v = &b.views(t)[0];
        assert_eq!((v.trips, v.rejects, v.key.model.as_str()), (1, 1, "gpt-4o"));
        // Other statuses are not failures.
        let other = Breakers::new(settings(1, 1));
        for status in [500, 502, 429, 401, 400] {
            other.admit("a", "messages", "m", t).unwrap().unwrap().settle(Some(status), t);
        }
        assert_eq!(phase(&other, t), Phase::Closed);
    }

    #[test]
    fn the_interval_forgets_failures_while_closed() {
        let b = Breakers::new(settings(2, 1));
        let t = b.epoch + Duration::from_secs(1);
        admit(&b, t).unwrap().unwrap().settle(Some(503), t);
        let t11 = t + Duration::from_secs(11);
        admit(&b, t11).unwrap().unwrap().settle(Some(503), t11);
        assert_eq!(phase(&b, t + Duration::from_secs(11)), Phase::Closed);
        // A failure admitted in an old interval does not count in the new one.
        let old = admit(&b, t + Duration::from_secs(12)).unwrap().unwrap();
        let t22 = t + Duration::from_secs(22);
        admit(&b, t22).unwrap().unwrap().settle(Some(503), t22);
        old.settle(Some(503), t22);
        assert_eq!(phase(&b, t + Duration::from_secs(22)), Phase::Closed);
    }

    #[test]
    fn half_open_lets_max_requests_through_closes_on_their_success_reopens_on_failure() {
        let b = Breakers::new(settings(1, 2));
        let t0 = b.epoch + Duration::from_secs(1);
        admit(&b, t0).unwrap().unwrap().settle(Some(529), t0);
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(phase(&b, t1), Phase::HalfOpen);
        let first = admit(&b, t1).unwrap().unwrap();
        let second = admit(&b, t1).unwrap().unwrap();
        assert_eq!(admit(&b, t1).unwrap_err(), HALF_OPEN_BUSY, "only max_requests trials");
        first.settle(Some(200), t1);
        assert_eq!(phase(&b, t1), Phase::HalfOpen, "one success of two");
        second.settle(Some(200), t1);
        assert_eq!(phase(&b, t1), Phase::Closed);
        // Reopen: a trial failure.
        admit(&b, t1).unwrap().unwrap().settle(Some(503), t1);
        let t2 = t1 + Duration::from_secs(30);
        let trial = admit(&b, t2).unwrap().unwrap();
        trial.settle(Some(503), t2);
        assert_eq!(phase(&b, t2), Phase::Open);
        assert_eq!(b.views(t2)[0].trips, 3);
    }

    #[test]
    fn a_trial_without_answer_gives_its_place_back() {
        let b = Breakers::new(settings(1, 1));
        let t0 = b.epoch + Duration::from_secs(1);
        admit(&b, t0).unwrap().unwrap().settle(Some(503), t0);
        let t1 = t0 + Duration::from_secs(30);
        drop(admit(&b, t1).unwrap().unwrap());
        let trial = admit(&b, t1).unwrap().unwrap();
        assert!(admit(&b, t1).is_err());
        trial.settle(None, t1);
        admit(&b, t1).unwrap().unwrap().settle(Some(200), t1);
        assert_eq!(phase(&b, t1), Phase::Closed);
    }

    #[test]
    fn each_instance_endpoint_and_model_has_its_own_breaker() {
        let b = Breakers::new(settings(1, 1));
        let t = b.epoch + Duration::from_secs(1);
        b.admit("openai", "chat_completions", "gpt-4o", t).unwrap().unwrap().settle(Some(503), t);
        assert!(b.admit("openai", "chat_completions", "gpt-4o", t).is_err());
        assert!(b.admit("openai", "chat_completions", "gpt-4o-mini", t).unwrap().is_some());
        assert!(b.admit("openai", "responses", "gpt-4o", t).unwrap().is_some());
        assert!(b.admit("openai-2", "chat_completions", "gpt-4o", t).unwrap().is_some());
        assert_eq!(b.views(t).len(), 4);
    }

    #[test]
    fn half_open_admits_exactly_max_requests_under_threads() {
        let b = Breakers::new(settings(1, 3));
        let t0 = b.epoch + Duration::from_secs(1);
        admit(&b, t0).unwrap().unwrap().settle(Some(503), t0);
        let t1 = t0 + Duration::from_secs(31);
        let admitted = AtomicU64::new(0);
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    barrier.wait();
                    let mut held = Vec::new();
                    for _ in 0..5 {
                        if let Ok(Some(t)) = admit(&b, t1) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            held.push(t);
                        }
                    }
                    barrier.wait();
                    held.into_iter().for_each(|t| t.settle(Some(200), t1));
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 3);
        assert_eq!(phase(&b, t1), Phase::Closed);
    }

    #[test]
    fn words_round_trip() {
        for w in [
            Word { phase: Phase::Closed, a: 4, b: 0, since: 123 },
            Word { phase: Phase::Open, a: 0, b: 0, since: TIME_MASK },
            Word { phase: Phase::HalfOpen, a: 1000, b: 999, since: 1 },
        ] {
            assert_eq!(Word::unpack(w.pack()), w);
        }
    }
}
