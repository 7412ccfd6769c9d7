//! Turning samples into [`Summary`] percentiles: HdrHistogram for request latencies (bounded memory at
//! any rate), exact sorting for the signed per-event deltas. Pure: no I/O.

use hdrhistogram::Histogram;

use crate::proto::Summary;

/// Largest latency a histogram records (60 s); slower samples are clamped to it, not lost.
const HIST_MAX_NS: u64 = 60_000_000_000;
/// Significant figures kept by the histograms (0.1% resolution).
const HIST_SIGFIG: u8 = 3;

/// A latency histogram in nanoseconds.
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants known to be valid (1 ≤ low, high ≥ 2·low, sigfig ≤ 5): this cannot fail.
    Histogram::new_with_bounds(1, HIST_MAX_NS, HIST_SIGFIG).expect("constant histogram bounds are valid")
}

/// Records a nanosecond duration, clamping into the histogram's range.
pub fn record(h: &mut Histogram<u64>, ns: i64) {
    let v = u64::try_from(ns).unwrap_or(0).clamp(1, HIST_MAX_NS);
    h.saturating_record(v);
}

/// Percentiles of a histogram.
pub fn summarize_hist(h: &Histogram<u64>) -> Summary {
    if h.is_empty() {
        return Summary::default();
    }
    let q = |p: f64| i64::try_from(h.value_at_quantile(p)).unwrap_or(i64::MAX);
    Summary {
        count: h.len(),
        min: i64::try_from(h.min()).unwrap_or(i64::MAX),
        p50: q(0.50),
        p90: q(0.90),
        p99: q(0.99),
        p999: q(0.999),
        max: i64::try_from(h.max()).unwrap_or(i64::MAX),
        mean: h.mean(),
    }
}

/// Exact percentiles of signed samples (nearest rank); sorts in place.
pub fn summarize_exact(samples: &mut [i64]) -> Summary {
    if samples.is_empty() {
        return Summary::default();
    }
    samples.sort_unstable();
    let n = samples.len();
    let rank = |p: f64| {
        let r = (p * n as f64).ceil() as usize;
        samples[r.clamp(1, n) - 1]
    };
    let sum: i128 = samples.iter().map(|&v| i128::from(v)).sum();
    Summary {
        count: n as u64,
        min: samples[0],
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        p999: rank(0.999),
        max: samples[n - 1],
        mean: sum as f64 / n as f64,
    }
}

/// Median of samples without disturbing their order (a copy is sorted); 0 when empty.
pub fn median(samples: &[i64]) -> i64 {
    if samples.is_empty() {
        return 0;
    }
    let mut v = samples.to_vec();
    let mid = v.len() / 2;
    *v.select_nth_unstable(mid).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_percentiles_nearest_rank() {
        let mut v: Vec<i64> = (1..=1000).rev().collect();
        let s = summarize_exact(&mut v);
        assert_eq!((s.count, s.min, s.p50, s.p99, s.p999, s.max), (1000, 1, 500, 990, 999, 1000));
        assert!((s.mean - 500.5).abs() < 1e-9);
    }

    #[test]
    fn exact_handles_negative_and_empty() {
        let mut v = vec![-5, 3, -1];
        let s = summarize_exact(&mut v);
        assert_eq!((s.min, s.p50, s.max), (-5, -1, 3));
        assert_eq!(summarize_exact(&mut []).count, 0);
    }

    #[test]
    fn histogram_within_resolution() {
        let mut h = new_histogram();
        for ns in 1..=10_000i64 {
            record(&mut h, ns * 1000);
        }
        record(&mut h, -7); // clamped, not lost
        let s = summarize_hist(&h);
        assert_eq!(s.count, 10_001);
        assert!((s.p50 - 5_000_000).abs() <= 5_000, "p50 {}", s.p50);
        assert!((s.p99 - 9_900_000).abs() <= 10_000, "p99 {}", s.p99);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[5, 1, 3]), 3);
        assert_eq!(median(&[4, 1, 3, 2]), 3);
        assert_eq!(median(&[]), 0);
    }
}
