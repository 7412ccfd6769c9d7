//! Upstream key failover pools (a provider instance with several `KEYS`, or several Bedrock access key
//! pairs): which key to use, and what a response says about that key. **One pool per instance, shared by
//! every worker**: per key a rest-until time and a disabled flag, both atomics, so a 429 seen by any
//! worker rests the key for all of them, a 401/403 disables it everywhere, and every worker picks the same
//! first healthy key. No locks; the clock is passed in. Does no I/O and never sees a key's value, only
//! its index. Only for centralized credentials: a BYOK request never goes through a pool.
//!
//! Policy: **first healthy**. Every request uses the lowest-numbered key that is neither resting nor
//! disabled; later keys are spares. Providers cache prompts per organisation/key, and coding agents
//! resend the same long prefix on every turn, so staying on one key keeps their prompt-cache hits (cheaper,
//! faster first token); round-robin would spread one conversation over every key's cache and pay the
//! cache write several times. It also makes failures easy to read: traffic moves to key 1 only when key 0
//! is resting. Because the state is shared, "one key keeps the cache hits" holds for the whole process,
//! not per worker.
//!
//! Rules:
//! - 429: the key rests for `Retry-After` (delta-seconds or HTTP-date), else [`DEFAULT_REST`], capped at
//!   [`MAX_REST`]; the request fails over to the next key. Two workers resting one key at once keep the
//!   later wake-up (`fetch_max`).
//! - 401 / 403: the key is disabled until restart (revoked or wrong key); the request fails over. Not
//!   a 403 the upstream says refuses only the request's model (Bedrock's `AccessDeniedException`, see
//!   `Upstream::refuses_model_only`): the relay never reports that one here, it relays it, and the key
//!   keeps serving the models it may use.
//! - anything else (success, 4xx about the request, 5xx about the provider) says nothing about the key:
//!   relay it.
//! - when every key rests or is disabled, `pick` returns `None` and the caller relays the provider's
//!   error it already holds (or, for a new request, answers 429 with [`KeyPool::retry_after`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// How long a key rests after a 429 without a usable `Retry-After`: provider rate limits are per-minute
/// windows (Anthropic, OpenAI), so one window is the natural wait.
pub(crate) const DEFAULT_REST: Duration = Duration::from_secs(60);
/// Longest rest honoured: a daily-quota `Retry-After` (or a corrupt one) must not park a key for days;
/// after an hour the key is tried again and, if still limited, rests again.
pub(crate) const MAX_REST: Duration = Duration::from_secs(3600);

/// What the caller should do with the response it just got on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyVerdict {
    /// The response says nothing against the key: relay it.
    Relay,
    /// The key was rate limited and now rests for this long: try [`KeyPool::next_after`]; relay this
    /// response if that returns `None`.
    FailOverRested(Duration),
    /// The key was refused (401/403) and is disabled until restart: fail over as above.
    FailOverDisabled,
}

impl KeyVerdict {
    /// True when the caller should try the next key before relaying anything.
    pub(crate) fn fail_over(self) -> bool {
        !matches!(self, KeyVerdict::Relay)
    }
}

/// The state of one key, as read at one instant (for the relay's tests and the metrics' `key_pool_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyState {
    Healthy,
    /// Rate limited until this instant.
    Resting(Instant),
    /// Refused by the provider; not used again until restart.
    Disabled,
}

/// One key's shared health: both fields are read and written by every worker without a lock.
#[derive(Debug, Default)]
struct KeyHealth {
    /// Milliseconds after the pool's `epoch` until which the key rests; at or before "now" it is usable.
    rest_until_ms: AtomicU64,
    /// Set on a 401/403; never cleared (until restart).
    disabled: AtomicBool,
}

/// The shared health of one instance's keys, by index (index = position in the configured key list),
/// plus the failover and exhaustion counters the metrics read.
#[derive(Debug)]
pub(crate) struct KeyPool {
    /// The instant rest times are measured from (the pool's creation).
    epoch: Instant,
    keys: Box<[KeyHealth]>,
    /// Attempts moved to another key after a 429/401/403 (Coder's `key_pool_failover_attempts`).
    failovers: AtomicU64,
    /// Times no key was usable: a new request answered 429, or a failover found no key left
    /// (Coder's `key_pool_exhaustions_total`).
    exhaustions: AtomicU64,
}

impl KeyPool {
    /// A pool of `n_keys` healthy keys (0 keys: `pick` always returns `None`).
    pub(crate) fn new(n_keys: usize) -> Self {
        KeyPool {
            epoch: Instant::now(),
            keys: (0..n_keys).map(|_| KeyHealth::default()).collect(),
            failovers: AtomicU64::new(0),
            exhaustions: AtomicU64::new(0),
        }
    }

    /// How many keys the pool holds.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the pool holds no key (an instance without a pool: BYOK only; no key-pool metrics).
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key to use for a new request: the first usable one, or `None` when all rest or are disabled
    /// (counted as an exhaustion).
    pub(crate) fn pick(&self, now: Instant) -> Option<usize> {
        let picked = self.first_usable(0, now);
        if picked.is_none() && !self.keys.is_empty() {
            self.exhaustions.fetch_add(1, Ordering::Relaxed);
        }
        picked
    }

    /// The key to fail over to after `tried` failed: the first usable key after it. Only later keys are
    /// considered: `pick` chose the first usable key, so earlier ones were unusable, and walking forward
    /// bounds one request to at most `len()` attempts. Counts a failover attempt, or an exhaustion when
    /// no key is left.
    pub(crate) fn next_after(&self, tried: usize, now: Instant) -> Option<usize> {
        let next = tried.checked_add(1).and_then(|from| self.first_usable(from, now));
        let counter = if next.is_some() { &self.failovers } else { &self.exhaustions };
        counter.fetch_add(1, Ordering::Relaxed);
        next
    }

    /// Records what the provider answered on `key`, reading an HTTP-date `Retry-After` against the
    /// system clock. See [`KeyPool::on_response_at`].
    pub(crate) fn on_response(&self, key: usize, status: u16, retry_after: Option<&str>, now: Instant) -> KeyVerdict {
        self.on_response_at(key, status, retry_after, now, SystemTime::now())
    }

    /// Records what the provider answered on `key`; `wall_now` is the wall clock an HTTP-date
    /// `Retry-After` is measured against. An unknown key index is ignored (`Relay`).
    pub(crate) fn on_response_at(
        &self,
        key: usize,
        status: u16,
        retry_after: Option<&str>,
        now: Instant,
        wall_now: SystemTime,
    ) -> KeyVerdict {
        let Some(health) = self.keys.get(key) else {
            return KeyVerdict::Relay;
        };
        match status {
            429 => {
                let rest =
                    retry_after.and_then(|v| parse_retry_after(v, wall_now)).unwrap_or(DEFAULT_REST).min(MAX_REST);
                // A disabled key stays disabled: the flag is checked before the rest time, so writing the
                // rest anyway is harmless.
                health.rest_until_ms.fetch_max(self.offset(now + rest), Ordering::Release);
                KeyVerdict::FailOverRested(rest)
            }
            401 | 403 => {
                health.disabled.store(true, Ordering::Release);
                KeyVerdict::FailOverDisabled
            }
            _ => KeyVerdict::Relay,
        }
    }

    /// The state of `key` at `now` (a rest that has ended reads as `Healthy`); `None` for an unknown key.
    pub(crate) fn state(&self, key: usize, now: Instant) -> Option<KeyState> {
        let health = self.keys.get(key)?;
        if health.disabled.load(Ordering::Acquire) {
            return Some(KeyState::Disabled);
        }
        let until = health.rest_until_ms.load(Ordering::Acquire);
        Some(if until > self.offset(now) {
            KeyState::Resting(self.epoch + Duration::from_nanos(until))
        } else {
            KeyState::Healthy
        })
    }

    /// Every key's state at `now`, by index (the metrics' `key_pool_state` gauge reads this).
    pub(crate) fn states(&self, now: Instant) -> impl Iterator<Item = KeyState> + '_ {
        (0..self.keys.len()).filter_map(move |k| self.state(k, now))
    }

    /// Attempts moved to another key so far (Coder's `key_pool_failover_attempts`).
    #[cfg_attr(not(test), allow(dead_code))] // read by the metrics scrape
    pub(crate) fn failover_attempts(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// Times no key was usable so far (Coder's `key_pool_exhaustions_total`).
    #[cfg_attr(not(test), allow(dead_code))] // read by the metrics scrape
    pub(crate) fn exhaustions(&self) -> u64 {
        self.exhaustions.load(Ordering::Relaxed)
    }

    /// When every key is unusable: how long until the first resting key wakes (the `Retry-After` of the
    /// gateway's own 429). `None` when a key is usable now or every key is disabled.
    pub(crate) fn retry_after(&self, now: Instant) -> Option<Duration> {
        let mut soonest: Option<Instant> = None;
        for state in self.states(now) {
            match state {
                KeyState::Healthy => return None,
                KeyState::Resting(until) => soonest = Some(soonest.map_or(until, |x| x.min(until))),
                KeyState::Disabled => {}
            }
        }
        soonest.map(|t| t - now)
    }

    fn first_usable(&self, from: usize, now: Instant) -> Option<usize> {
        (from..self.keys.len()).find(|&k| self.state(k, now) == Some(KeyState::Healthy))
    }

    /// `at` as nanoseconds after the pool's epoch (instants before it read as the epoch).
    fn offset(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delta-seconds, or an HTTP-date (IMF-fixdate) measured against
/// `wall_now`. A date in the past means "now" (zero rest); anything unparsable is `None`.
pub(crate) fn parse_retry_after(value: &str, wall_now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Very long digit strings overflow u64: treat them as "very long", the cap applies later.
        return Some(v.parse::<u64>().map(Duration::from_secs).unwrap_or(MAX_REST));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let when = time::PrimitiveDateTime::parse(v, format).ok()?.assume_utc();
    let when = SystemTime::from(when);
    Some(when.duration_since(wall_now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_healthy_and_stable() {
        let p = KeyPool::new(3);
        let t = Instant::now();
        assert_eq!(p.pick(t), Some(0));
        assert_eq!(p.pick(t), Some(0), "first-healthy, not round-robin");
        assert_eq!(p.on_response(0, 200, None, t), KeyVerdict::Relay);
        assert_eq!(p.on_response(0, 400, None, t), KeyVerdict::Relay);
        assert_eq!(p.on_response(0, 500, Some("5"), t), KeyVerdict::Relay);
        assert_eq!(p.pick(t), Some(0));
    }

    #[test]
    fn rate_limit_without_retry_after_rests_sixty_seconds() {
        let p = KeyPool::new(2);
        let t = Instant::now();
        let v = p.on_response(0, 429, None, t);
        assert_eq!(v, KeyVerdict::FailOverRested(DEFAULT_REST));
        assert!(v.fail_over());
        assert_eq!(p.next_after(0, t), Some(1));
        assert_eq!(p.pick(t + Duration::from_secs(59)), Some(1));
        assert_eq!(p.state(0, t + Duration::from_secs(59)), Some(KeyState::Resting(t + DEFAULT_REST)));
        assert_eq!(p.pick(t + DEFAULT_REST), Some(0), "back after the rest");
        assert_eq!(p.state(0, t + DEFAULT_REST), Some(KeyState::Healthy));
    }

    #[test]
    fn rate_limit_with_retry_after_seconds_and_date() {
        let p = KeyPool::new(2);
        let t = Instant::now();
        assert_eq!(p.on_response(0, 429, Some(" 7 "), t), KeyVerdict::FailOverRested(Duration::from_secs(7)));
        assert_eq!(p.pick(t + Duration::from_secs(6)), Some(1));
        assert_eq!(p.pick(t + Duration::from_secs(7)), Some(0));

        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_757); // Sun, 06 Nov 1994 08:49:17 GMT
        let v = p.on_response_at(0, 429, Some("Sun, 06 Nov 1994 08:49:37 GMT"), t, wall);
        assert_eq!(v, KeyVerdict::FailOverRested(Duration::from_secs(20)));
        // A date in the past: zero rest, but this request still fails over.
        let v = p.on_response_at(1, 429, Some("Sun, 06 Nov 1994 08:49:00 GMT"), t, wall);
        assert_eq!(v, KeyVerdict::FailOverRested(Duration::ZERO));
        assert_eq!(p.pick(t), Some(1));
        // Garbage falls back to the default; huge values are capped.
        assert_eq!(p.on_response(1, 429, Some("soon"), t), KeyVerdict::FailOverRested(DEFAULT_REST));
        assert_eq!(p.on_response(1, 429, Some("99999999999999999999999"), t), KeyVerdict::FailOverRested(MAX_REST));
        assert_eq!(p.on_response(1, 429, Some("86400"), t), KeyVerdict::FailOverRested(MAX_REST));
    }

    #[test]
    fn unauthorized_and_forbidden_disable_until_restart() {
        let p = KeyPool::new(3);
        let t = Instant::now();
        assert_eq!(p.on_response(0, 401, None, t), KeyVerdict::FailOverDisabled);
        assert_eq!(p.next_after(0, t), Some(1));
        assert_eq!(p.on_response(1, 403, None, t), KeyVerdict::FailOverDisabled);
        assert_eq!(p.next_after(1, t), Some(2));
        let much_later = t + Duration::from_secs(10 * 86_400);
        assert_eq!(p.pick(much_later), Some(2));
        assert_eq!(p.state(0, much_later), Some(KeyState::Disabled));
        // A 429 on a disabled key does not bring it back as resting.
        p.on_response(0, 429, Some("1"), t);
        assert_eq!(p.state(0, much_later), Some(KeyState::Disabled));
    }

    #[test]
    fn all_resting_means_none_and_a_retry_after() {
        let p = KeyPool::new(3);
        let t = Instant::now();
        assert_eq!(p.retry_after(t), None);
        p.on_response(0, 429, Some("30"), t);
        assert_eq!(p.next_after(0, t), Some(1));
        p.on_response(1, 401, None, t);
        assert_eq!(p.next_after(1, t), Some(2));
        p.on_response(2, 429, Some("10"), t);
        assert_eq!(p.next_after(2, t), None, "last key failed: relay its error");
        assert_eq!(p.pick(t), None);
        assert_eq!(p.retry_after(t), Some(Duration::from_secs(10)));
        assert_eq!(p.pick(t + Duration::from_secs(10)), Some(2));
        assert_eq!(p.retry_after(t + Duration::from_secs(10)), None);
    }

    #[test]
    fn all_disabled_has_no_retry_after() {
        let p = KeyPool::new(2);
        let t = Instant::now();
        p.on_response(0, 401, None, t);
        p.on_response(1, 403, None, t);
        assert_eq!(p.pick(t), None);
        assert_eq!(p.retry_after(t), None);
    }

    #[test]
    fn empty_pool_and_out_of_range_indices_are_harmless() {
        let p = KeyPool::new(0);
        let t = Instant::now();
        assert!(p.is_empty());
        assert_eq!(p.pick(t), None);
        assert_eq!(p.next_after(0, t), None);
        assert_eq!(p.next_after(usize::MAX, t), None);
        assert_eq!(p.on_response(5, 429, None, t), KeyVerdict::Relay);
        assert_eq!(p.state(5, t), None);
        let p = KeyPool::new(1);
        assert_eq!(p.len(), 1);
        assert_eq!(p.next_after(0, t), None);
    }

    #[test]
    fn one_pool_is_shared_by_every_thread() {
        let p = std::sync::Arc::new(KeyPool::new(3));
        let t = Instant::now();
        // "Worker A" sees a 429 on key 0 and a 401 on key 1.
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(p.on_response(0, 429, Some("30"), t).fail_over());
                assert_eq!(p.next_after(0, t), Some(1));
                assert!(p.on_response(1, 401, None, t).fail_over());
                assert_eq!(p.next_after(1, t), Some(2));
            });
        });
        // "Worker B" never saw either answer and still starts on key 2.
        let seen_by_b: Vec<Option<usize>> = std::thread::scope(|s| {
            (0..4).map(|_| s.spawn(|| p.pick(t))).collect::<Vec<_>>().into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(seen_by_b, [Some(2); 4]);
        assert_eq!(p.failover_attempts(), 2);
        assert_eq!(p.exhaustions(), 0);
        let states: Vec<KeyState> = p.states(t).collect();
        assert_eq!(states, [KeyState::Resting(t + Duration::from_secs(30)), KeyState::Disabled, KeyState::Healthy]);
        // Key 2 refused too: nothing left, counted once per request that found no key.
        p.on_response(2, 403, None, t);
        assert_eq!(p.next_after(2, t), None);
        assert_eq!(p.pick(t), None);
        assert_eq!(p.exhaustions(), 2);
        assert_eq!(p.retry_after(t), Some(Duration::from_secs(30)));
    }

    #[test]
    fn concurrent_rests_keep_the_later_wake_up() {
        let p = KeyPool::new(2);
        let t = Instant::now();
        p.on_response(0, 429, Some("50"), t);
        p.on_response(0, 429, Some("5"), t);
        assert_eq!(p.state(0, t), Some(KeyState::Resting(t + Duration::from_secs(50))));
        // A 429 on a disabled key leaves it disabled.
        p.on_response(1, 401, None, t);
        p.on_response(1, 429, Some("1"), t);
        assert_eq!(p.state(1, t + Duration::from_secs(2)), Some(KeyState::Disabled));
    }

    #[test]
    fn retry_after_parsing() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_757);
        assert_eq!(parse_retry_after("0", wall), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("120", wall), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("-1", wall), None);
        assert_eq!(parse_retry_after("1.5", wall), None);
        assert_eq!(parse_retry_after("", wall), None);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:17 GMT", wall), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", wall), None);
    }
}
