//! The load generator's wire contract: the job it is given (JSON file) and the result it prints (JSON on
//! stdout). Plain data only: no I/O here. `benches/e2e.rs` includes this file by path, so both sides of the
//! process boundary agree on one definition.

use serde::{Deserialize, Serialize};

/// Where requests go: one server (direct mock, nginx, a gateway) and the route and headers it needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// Row name in the report (`direct`, `nginx`, `aibridged-uring-rec-on`, ...).
    pub name: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Headers this target needs (credentials), sent on every request.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

/// What a request looks like apart from its target: body and job-specific headers (mock controls).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestSpec {
    /// JSON body sent with every request.
    pub body: String,
    /// Extra headers (`x-mock-events`, ...), appended after the target's own.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

/// One measurement the load generator runs and then exits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Closed loop at concurrency 1 over several targets, interleaved in rounds so that machine noise
    /// falls on every target alike: round r sends `per_round` requests to each target, the target order
    /// rotating each round.
    Latency {
        /// Targets, interleaved.
        targets: Vec<Target>,
        /// Request shape.
        request: RequestSpec,
        /// Unrecorded requests per target before the first round.
        warmup: u32,
        /// Rounds.
        rounds: u32,
        /// Requests per target per round.
        per_round: u32,
        /// Stop starting rounds after this long.
        time_limit_ms: u64,
    },
    /// Open loop at a fixed rate: request i is due at start + i/rate whatever happened before it, and its
    /// latency is measured from that due time (coordinated-omission corrected, as wrk2 does).
    OpenLoop {
        /// Target.
        target: Target,
        /// Request shape.
        request: RequestSpec,
        /// Requests per second.
        rate: u32,
        /// How long to send.
        duration_ms: u64,
        /// Connections (one sender thread each); request i goes to connection i mod connections.
        connections: u32,
    },
    /// Closed loop with many connections for a fixed time: the server's maximum throughput.
    Saturate {
        /// Target.
        target: Target,
        /// Request shape.
        request: RequestSpec,
        /// Concurrent keep-alive connections, driven by one epoll thread.
        connections: u32,
        /// How long to run.
        duration_ms: u64,
    },
    /// Concurrent slow streams, interleaved in rounds across targets. The mock stamps each event with its
    /// CLOCK_MONOTONIC send time; each event's delay is receive time minus that stamp.
    Streams {
        /// Targets, interleaved; `baseline` names the one the added delays are relative to.
        targets: Vec<Target>,
        /// Name of the baseline target (the direct path).
        baseline: String,
        /// Request shape (streaming body, stamp and pacing headers).
        request: RequestSpec,
        /// Concurrent streams per round.
        streams: u32,
        /// Stream starts are spread evenly over this (one event interval), so events do not all fall due
        /// at the same instant.
        #[serde(default)]
        stagger_ms: u64,
        /// Recorded rounds (one unrecorded warm-up round precedes them).
        rounds: u32,
        /// Stop starting rounds after this long.
        time_limit_ms: u64,
        /// Give up on one stream after this long.
        stream_timeout_ms: u64,
    },
    /// Opens `streams` streams that stay idle, reports readiness (one JSON line on stdout), then holds
    /// them until a line (or EOF) arrives on stdin or `hold_limit_ms` passes.
    Hold {
        /// Target.
        target: Target,
        /// Request shape (a stream the mock keeps open without sending).
        request: RequestSpec,
        /// Streams to open.
        streams: u32,
        /// How long to wait, in total, for the response heads.
        head_timeout_ms: u64,
        /// Upper bound on the hold.
        hold_limit_ms: u64,
    },
}

/// Percentiles of a set of durations, in nanoseconds (signed: added delays can be negative).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min: i64,
    /// Median.
    pub p50: i64,
    /// 90th percentile.
    pub p90: i64,
    /// 99th percentile.
    pub p99: i64,
    /// 99.9th percentile.
    pub p999: i64,
    /// Largest.
    pub max: i64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// Latency of one target in a [`Job::Latency`] run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetLatency {
    /// Target name.
    pub name: String,
    /// Request latency (write of the request to the last byte of the response).
    pub latency: Summary,
    /// Requests that failed (I/O error or non-2xx); not in `latency`.
    pub errors: u64,
    /// First error seen, for the report.
    pub first_error: Option<String>,
}

/// Per-target stream measurements of a [`Job::Streams`] run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetStreams {
    /// Target name.
    pub name: String,
    /// Request write to first response byte.
    pub ttfb: Summary,
    /// Per event: receive time minus the mock's send stamp.
    pub event_delay: Summary,
    /// Per stream: its TTFB minus the baseline's median TTFB in the same round.
    pub added_ttfb: Summary,
    /// Per event: its delay minus the baseline's median event delay in the same round.
    pub added_event_delay: Summary,
    /// Streams that completed.
    pub streams_ok: u64,
    /// Streams that failed.
    pub errors: u64,
    /// First error seen.
    pub first_error: Option<String>,
}

/// What a job measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobResult {
    /// See [`Job::Latency`].
    Latency {
        /// One entry per target, in job order.
        targets: Vec<TargetLatency>,
        /// Rounds completed (fewer than asked if the time limit hit).
        rounds_done: u32,
        /// Wall time.
        elapsed_ms: u64,
    },
    /// See [`Job::OpenLoop`].
    OpenLoop {
        /// Target name.
        name: String,
        /// Asked rate.
        rate: u32,
        /// From each request's due time to its last response byte (coordinated-omission corrected).
        latency: Summary,
        /// From each request's actual write to its last response byte (what a naive client sees).
        service: Summary,
        /// Requests completed.
        completed: u64,
        /// Requests failed.
        errors: u64,
        /// Requests never sent because the run's overall deadline passed.
        unsent: u64,
        /// Completed requests per second actually achieved.
        achieved_rate: f64,
        /// First error seen.
        first_error: Option<String>,
    },
    /// See [`Job::Saturate`].
    Saturate {
        /// Target name.
        name: String,
        /// Requests completed.
        completed: u64,
        /// Requests failed.
        errors: u64,
        /// Measured window.
        elapsed_ms: u64,
        /// completed / elapsed.
        requests_per_sec: f64,
        /// Request latency under saturation.
        latency: Summary,
        /// First error seen.
        first_error: Option<String>,
    },
    /// See [`Job::Streams`].
    Streams {
        /// One entry per target, in job order.
        targets: Vec<TargetStreams>,
        /// Rounds completed.
        rounds_done: u32,
    },
    /// Printed once all streams are open (before the hold), then again as the final result.
    Hold {
        /// Target name.
        name: String,
        /// Streams asked.
        requested: u32,
        /// Connections open with the request written.
        opened: u32,
        /// Of those, streams whose response head arrived (status 2xx).
        heads: u32,
        /// Failures (connect, write, non-2xx).
        errors: u32,
        /// First error seen.
        first_error: Option<String>,
    },
}
