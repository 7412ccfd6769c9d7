//! Closed-loop latency at concurrency 1, interleaved across targets (saturation lives in `evloop`). Every
//! loop is bounded by a count and a deadline.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::http::{encode_request, Conn, HttpError};
use crate::proto::{JobResult, RequestSpec, Target, TargetLatency};
use crate::stats::{new_histogram, record, summarize_hist};

/// A request that takes longer than this is a failure (the mock answers in microseconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A target failing this many times in a row is abandoned for the rest of the job.
const MAX_CONSECUTIVE_ERRORS: u32 = 50;

/// One target's connection and tallies during a job.
struct Lane {
    target: Target,
    request: Vec<u8>,
    conn: Option<Conn>,
    hist: Histogram<u64>,
    errors: u64,
    consecutive_errors: u32,
    first_error: Option<String>,
}

impl Lane {
    fn new(target: &Target, spec: &RequestSpec) -> Lane {
        Lane {
            target: target.clone(),
            request: encode_request(target, spec),
            conn: None,
            hist: new_histogram(),
            errors: 0,
            consecutive_errors: 0,
            first_error: None,
        }
    }

    fn abandoned(&self) -> bool {
        self.consecutive_errors >= MAX_CONSECUTIVE_ERRORS
    }

    /// One request on the lane's keep-alive connection (reconnecting when needed); returns its latency.
    /// A reused connection the server had already closed is retried once on a fresh one, as any HTTP
    /// client does; only the retry's time counts.
    fn request_once(&mut self) -> Result<i64, HttpError> {
        let reused = self.conn.is_some();
        match self.exchange() {
            Err(e) if reused && is_stale(&e) => {
                self.conn = None;
                self.exchange()
            }
            other => other,
        }
    }

    fn exchange(&mut self) -> Result<i64, HttpError> {
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self.conn.insert(Conn::connect(&self.target.addr, Some(REQUEST_TIMEOUT))?),
        };
        let sent = conn.send(&self.request)?;
        let ex = conn.read_response(sent, |_, _| {})?;
        if !conn.reusable {
            self.conn = None;
        }
        Ok(ex.done_ns - ex.sent_ns)
    }

    /// Runs one request and tallies it.
    fn step(&mut self, keep: bool) {
        match self.request_once() {
            Ok(ns) => {
                self.consecutive_errors = 0;
                if keep {
                    record(&mut self.hist, ns);
                }
            }
            Err(e) => {
                self.conn = None;
                self.errors += 1;
                self.consecutive_errors += 1;
                self.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Whether an error is what a keep-alive connection closed by the server looks like.
fn is_stale(e: &HttpError) -> bool {
    match e {
        HttpError::Closed => true,
        HttpError::Io(io) => {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            )
        }
        _ => false,
    }
}

/// See [`crate::proto::Job::Latency`].
pub fn latency(
    targets: &[Target],
    spec: &RequestSpec,
    warmup: u32,
    rounds: u32,
    per_round: u32,
    time_limit: Duration,
) -> JobResult {
    let started = Instant::now();
    let mut lanes: Vec<Lane> = targets.iter().map(|t| Lane::new(t, spec)).collect();
    for lane in lanes.iter_mut() {
        for _ in 0..warmup {
            if lane.abandoned() || started.elapsed() > time_limit {
                break;
            }
            lane.step(false);
        }
    }
    let n = lanes.len();
    let mut rounds_done = 0;
    for r in 0..rounds {
        if started.elapsed() > time_limit {
            break;
        }
        for k in 0..n {
            // Rotate the order each round so no target always follows the same neighbour.
            let lane = &mut lanes[(k + r as usize) % n];
            for _ in 0..per_round {
                if lane.abandoned() {
                    break;
                }
                lane.step(true);
            }
        }
        rounds_done += 1;
    }
    JobResult::Latency {
        targets: lanes
            .into_iter()
            .map(|l| TargetLatency {
                name: l.target.name,
                latency: summarize_hist(&l.hist),
                errors: l.errors,
                first_error: l.first_error,
            })
            .collect(),
        rounds_done,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}
