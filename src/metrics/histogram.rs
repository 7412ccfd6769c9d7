//! Fixed-bucket histograms: an atomic one that workers observe into without locks or allocation, and a
//! plain one for the sink thread and for summing snapshots at scrape time. Bounds are whole nanoseconds,
//! so observing is an integer search, never floating point.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket bounds (upper, inclusive) for whole requests and upstream answers: 5 ms to 10 min.
pub(crate) static REQUEST_BUCKETS: &[u64] = &[
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
    120_000_000_000,
    300_000_000_000,
    600_000_000_000,
];

/// Bucket bounds for the gateway's own time and the sink's commits: 5 µs to 1 s.
pub(crate) static OVERHEAD_BUCKETS: &[u64] = &[
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// Which bucket `nanos` falls in; `bounds.len()` is the `+Inf` bucket.
pub(crate) fn bucket_of(bounds: &[u64], nanos: u64) -> usize {
    bounds.partition_point(|&b| b < nanos)
}

pub(crate) fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A histogram several threads observe into: one relaxed add per observation for the bucket, the sum and
/// the count. Buckets are per bucket (not cumulative); a snapshot makes them cumulative.
pub(crate) struct AtomicHistogram {
    bounds: &'static [u64],
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl AtomicHistogram {
    /// An empty histogram over `bounds` (ascending nanoseconds).
    pub(crate) fn new(bounds: &'static [u64]) -> AtomicHistogram {
        AtomicHistogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub(crate) fn observe(&self, d: Duration) {
        let nanos = nanos_of(d);
        self.buckets[bucket_of(self.bounds, nanos)].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds what this histogram holds now to `into` (which must have the same bounds).
    pub(crate) fn add_to(&self, into: &mut Histogram) {
        debug_assert_eq!(self.bounds, into.bounds);
        for (dst, src) in into.buckets.iter_mut().zip(self.buckets.iter()) {
            *dst += src.load(Ordering::Relaxed);
        }
        into.sum_nanos = into.sum_nanos.saturating_add(self.sum_nanos.load(Ordering::Relaxed));
        into.count += self.count.load(Ordering::Relaxed);
    }
}

/// A histogram owned by one thread (the sink), or a sum of atomic ones taken for a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Histogram {
    pub(crate) bounds: &'static [u64],
    /// Per-bucket counts; the last one is `+Inf`.
    pub(crate) buckets: Vec<u64>,
    pub(crate) sum_nanos: u64,
    pub(crate) count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub(crate) fn new(bounds: &'static [u64]) -> Histogram {
        Histogram { bounds, buckets: vec![0; bounds.len() + 1], sum_nanos: 0, count: 0 }
    }

    /// Records one observation.
    pub(crate) fn observe(&mut self, d: Duration) {
        let nanos = nanos_of(d);
        self.buckets[bucket_of(self.bounds, nanos)] += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
        self.count += 1;
    }

    /// `(upper bound in seconds, cumulative count)` per bucket, `+Inf` last as `None`.
    pub(crate) fn cumulative(&self) -> impl Iterator<Item = (Option<f64>, u64)> + '_ {
        let mut total = 0;
        self.buckets.iter().enumerate().map(move |(i, n)| {
            total += n;
            (self.bounds.get(i).map(|b| *b as f64 / 1e9), total)
        })
    }

    /// The sum of the observations in seconds.
    pub(crate) fn sum_seconds(&self) -> f64 {
        self.sum_nanos as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_on_a_bound_belongs_to_that_bucket() {
        let b: &'static [u64] = &[10, 20];
        assert_eq!(bucket_of(b, 0), 0);
        assert_eq!(bucket_of(b, 10), 0);
        assert_eq!(bucket_of(b, 11), 1);
        assert_eq!(bucket_of(b, 20), 1);
        assert_eq!(bucket_of(b, 21), 2);
    }

    #[test]
    fn cumulative_counts_sum_and_count_add_up() {
        let h = AtomicHistogram::new(OVERHEAD_BUCKETS);
        for us in [1, 7, 7, 30, 2_000_000] {
            h.observe(Duration::from_micros(us));
        }
        let mut snap = Histogram::new(OVERHEAD_BUCKETS);
        h.add_to(&mut snap);
        h.add_to(&mut snap);
        assert_eq!(snap.count, 10);
        assert_eq!(snap.sum_nanos, 2 * (1 + 7 + 7 + 30 + 2_000_000) * 1000);
        let cum: Vec<_> = snap.cumulative().collect();
        assert_eq!(cum[0], (Some(0.000005), 2));
        assert_eq!(cum[1], (Some(0.00001), 6));
        assert_eq!(cum[3], (Some(0.00005), 8));
        assert_eq!(*cum.last().unwrap(), (None, 10));
        assert_eq!(cum[cum.len() - 2].1, 8, "2 s is beyond the last bound");
    }
}
