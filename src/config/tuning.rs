//! The tunables: every deadline of a request's life, the background refresh intervals and the sink's
//! limits — their defaults, their accepted ranges, and their resolution (flag > env > YAML > default).
//! Pure: no I/O, no runtime types; the server turns these into `relay::Timeouts` and `SinkOptions`.
//!
//! Every tunable is an ordinary setting with a flag, a `CODER_AIBRIDGE_*` variable and a YAML key,
//! including the internals an operator would rarely touch (early-answer grace, the client-watch delays,
//! DNS refresh, the sink's report and retention intervals): nothing the gateway waits for is hidden, and
//! the e2e tests shorten a deadline exactly the way an operator would. A value outside its range (zero
//! included) is a start-up error naming the flag, variable or YAML key it came from.

use std::time::Duration;

use super::args::TuningArgs;
use super::error::ConfigError;
use super::sources::{self, Empty, Raw, Setting, Sources};
use super::units::parse_duration;

/// Every deadline of a request's life, client side and upstream side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A keep-alive client connection may sit idle this long between requests before it is closed.
    pub keepalive_idle: Duration,
    /// Once the first byte of a request head arrived, the whole head must arrive within this (slowloris
    /// defence; 408).
    pub request_head: Duration,
    /// Each read of a request body must make progress within this (408).
    pub request_body_read: Duration,
    /// The whole request body must arrive within this, however steadily it trickles (a client sending
    /// one byte every 59 s would otherwise hold a connection forever).
    pub request_body_total: Duration,
    /// A TCP connect to an upstream, per resolved address.
    pub upstream_connect: Duration,
    /// The TLS handshake with an upstream.
    pub upstream_tls_handshake: Duration,
    /// Idle pooled upstream connections older than this are not reused.
    pub upstream_pool_idle: Duration,
    /// How long an upstream may think before sending its response head (time to first byte).
    pub upstream_first_byte: Duration,
    /// After a failed request write, how long to look for an answer the upstream sent before closing.
    pub upstream_early_answer_grace: Duration,
    /// Between two reads of a response body, an upstream may be silent this long.
    pub stream_idle: Duration,
    /// A client that accepts no bytes of a response for this long has stopped reading.
    pub client_write: Duration,
    /// How long the upstream may take to answer before the gateway starts watching for the client
    /// leaving; quick answers pay nothing for the watch.
    pub client_watch_after: Duration,
    /// When the upstream has been silent this long mid-body, the gateway starts watching for the client
    /// leaving; shorter pauses cost nothing beyond a timer.
    pub client_watch_after_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            keepalive_idle: Duration::from_secs(75),
            request_head: Duration::from_secs(10),
            request_body_read: Duration::from_secs(60),
            // Generous: 32 MiB at about 1 Mbit/s.
            request_body_total: Duration::from_secs(300),
            upstream_connect: Duration::from_secs(10),
            upstream_tls_handshake: Duration::from_secs(10),
            // Providers' load balancers close idle keep-alive connections after about a minute, and a
            // reused dead one costs a retry.
            upstream_pool_idle: Duration::from_secs(30),
            // Non-streaming LLM calls can take minutes for long outputs (Coder uses 600 s too).
            upstream_first_byte: Duration::from_secs(600),
            upstream_early_answer_grace: Duration::from_secs(2),
            // Long thinking pauses mid-stream.
            stream_idle: Duration::from_secs(600),
            // nginx's send_timeout is the same: without a bound, a client that stopped reading held its
            // task, the upstream connection and an open interception forever.
            client_write: Duration::from_secs(60),
            client_watch_after: Duration::from_millis(500),
            client_watch_after_idle: Duration::from_secs(2),
        }
    }
}

/// The sink thread's limits and intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkSettings {
    /// Most records committed in one transaction: large enough to amortise the commit, small enough that
    /// a transaction never holds the write lock for long.
    pub batch_max_records: usize,
    /// Longest a received record waits before its transaction commits.
    pub batch_max_delay: Duration,
    /// Bound of the worker → sink channel: about a quarter second of full load before workers feel
    /// backpressure.
    pub channel_capacity: usize,
    /// How often retention runs (it also runs once at start).
    pub retention_interval: Duration,
    /// How often the full-channel counter is checked and, when it moved, reported.
    pub report_interval: Duration,
    // Bounded shutdown (issue 9 item 4).
    /// How long, after the shutdown grace, the sink keeps trying to commit before it writes what is left
    /// to a spill file and the process exits non-zero.
    pub shutdown_drain: Duration,
}

impl Default for SinkSettings {
    fn default() -> Self {
        SinkSettings {
            batch_max_records: 1024,
            batch_max_delay: Duration::from_millis(50),
            channel_capacity: 65_536,
            retention_interval: Duration::from_secs(3600),
            report_interval: Duration::from_secs(60),
            shutdown_drain: Duration::from_secs(30),
        }
    }
}

/// Default interval of the token cache reload: a new token works, and a revoked one stops working, within
/// this. Reading the tokens table is cheap and happens off the workers.
pub const DEFAULT_TOKEN_REFRESH: Duration = Duration::from_millis(250);
/// Default interval between DNS resolutions of the upstream hosts.
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);

/// Largest sink batch: one transaction must not hold SQLite's write lock for long.
pub const MAX_SINK_BATCH_RECORDS: usize = 65_536;
/// Largest worker → sink channel: its slots are allocated up front.
pub const MAX_SINK_CHANNEL_CAPACITY: usize = 1 << 20;

/// The accepted range of a duration setting (both ends included).
#[derive(Debug, Clone, Copy)]
struct Range {
    min: Duration,
    max: Duration,
}

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Network deadlines: below 10 ms nothing completes, above a day is a typo.
const TIMEOUT: Range = Range { min: Duration::from_millis(10), max: DAY };
/// Short internal delays (grace periods, watch delays).
const DELAY: Range = Range { min: MS, max: HOUR };
/// The token reload runs a query per round: below 10 ms it would spin.
const TOKEN_REFRESH: Range = Range { min: Duration::from_millis(10), max: HOUR };
/// Background rounds that need not run more than once a second.
const BACKGROUND: Range = Range { min: SEC, max: DAY };
const RETENTION_INTERVAL: Range = Range { min: SEC, max: Duration::from_secs(30 * 86_400) };
const BATCH_DELAY: Range = Range { min: MS, max: Duration::from_secs(10) };
// Bounded shutdown (issue 9 item 4): zero spills at once; above an hour the bound is no bound.
const SHUTDOWN_DRAIN: Range = Range { min: Duration::ZERO, max: HOUR };

/// The tunables of [`super::Config`], resolved together.
pub(super) struct Tuning {
    pub timeouts: Timeouts,
    pub sink: SinkSettings,
    pub token_refresh: Duration,
    pub dns_refresh: Duration,
}

/// Resolves every tunable from `args` and `src`, falling back to the defaults above.
pub(super) fn resolve(args: &TuningArgs, src: &Sources<'_>) -> Result<Tuning, ConfigError> {
    let d = Timeouts::default();
    let duration = |setting: &Setting, flag: &Option<String>, default: Duration, range: Range| match src.get(
        setting,
        flag.as_deref(),
        Empty::IsUnset,
    )? {
        Some(raw) => parse_bounded_duration(&raw, range),
        None => Ok(default),
    };
    let timeouts = Timeouts {
        keepalive_idle: duration(
            &sources::KEEPALIVE_IDLE_TIMEOUT,
            &args.keepalive_idle_timeout,
            d.keepalive_idle,
            TIMEOUT,
        )?,
        request_head: duration(&sources::REQUEST_HEAD_TIMEOUT, &args.request_head_timeout, d.request_head, TIMEOUT)?,
        request_body_read: duration(
            &sources::REQUEST_BODY_READ_TIMEOUT,
            &args.request_body_read_timeout,
            d.request_body_read,
            TIMEOUT,
        )?,
        request_body_total: duration(
            &sources::REQUEST_BODY_TIMEOUT,
            &args.request_body_timeout,
            d.request_body_total,
            TIMEOUT,
        )?,
        upstream_connect: duration(
            &sources::UPSTREAM_CONNECT_TIMEOUT,
            &args.upstream_connect_timeout,
            d.upstream_connect,
            TIMEOUT,
        )?,
        upstream_tls_handshake: duration(
            &sources::UPSTREAM_TLS_HANDSHAKE_TIMEOUT,
            &args.upstream_tls_handshake_timeout,
            d.upstream_tls_handshake,
            TIMEOUT,
        )?,
        upstream_pool_idle: duration(
            &sources::UPSTREAM_POOL_IDLE_TIMEOUT,
            &args.upstream_pool_idle_timeout,
            d.upstream_pool_idle,
            TIMEOUT,
        )?,
        upstream_first_byte: duration(
            &sources::UPSTREAM_FIRST_BYTE_TIMEOUT,
            &args.upstream_first_byte_timeout,
            d.upstream_first_byte,
            TIMEOUT,
        )?,
        upstream_early_answer_grace: duration(
            &sources::UPSTREAM_EARLY_ANSWER_GRACE,
            &args.upstream_early_answer_grace,
            d.upstream_early_answer_grace,
            DELAY,
        )?,
        stream_idle: duration(&sources::STREAM_IDLE_TIMEOUT, &args.stream_idle_timeout, d.stream_idle, TIMEOUT)?,
        client_write: duration(&sources::CLIENT_WRITE_TIMEOUT, &args.client_write_timeout, d.client_write, TIMEOUT)?,
        client_watch_after: duration(
            &sources::CLIENT_WATCH_AFTER,
            &args.client_watch_after,
            d.client_watch_after,
            DELAY,
        )?,
        client_watch_after_idle: duration(
            &sources::CLIENT_WATCH_AFTER_IDLE,
            &args.client_watch_after_idle,
            d.client_watch_after_idle,
            DELAY,
        )?,
    };
    let s = SinkSettings::default();
    let count = |setting: &Setting, flag: &Option<String>, default: usize, max: usize| match src.get(
        setting,
        flag.as_deref(),
        Empty::IsUnset,
    )? {
        Some(raw) => parse_count(&raw, max),
        None => Ok(default),
    };
    let sink = SinkSettings {
        batch_max_records: count(
            &sources::SINK_BATCH_MAX_RECORDS,
            &args.sink_batch_max_records,
            s.batch_max_records,
            MAX_SINK_BATCH_RECORDS,
        )?,
        batch_max_delay: duration(
            &sources::SINK_BATCH_MAX_DELAY,
            &args.sink_batch_max_delay,
            s.batch_max_delay,
            BATCH_DELAY,
        )?,
        channel_capacity: count(
            &sources::SINK_CHANNEL_CAPACITY,
            &args.sink_channel_capacity,
            s.channel_capacity,
            MAX_SINK_CHANNEL_CAPACITY,
        )?,
        retention_interval: duration(
            &sources::RETENTION_INTERVAL,
            &args.retention_interval,
            s.retention_interval,
            RETENTION_INTERVAL,
        )?,
        report_interval: duration(
            &sources::SINK_REPORT_INTERVAL,
            &args.sink_report_interval,
            s.report_interval,
            BACKGROUND,
        )?,
        // Bounded shutdown (issue 9 item 4).
        shutdown_drain: duration(&sources::SHUTDOWN_DRAIN, &args.shutdown_drain, s.shutdown_drain, SHUTDOWN_DRAIN)?,
    };
    let token_refresh =
        duration(&sources::TOKEN_REFRESH_INTERVAL, &args.token_refresh_interval, DEFAULT_TOKEN_REFRESH, TOKEN_REFRESH)?;
    let dns_refresh =
        duration(&sources::DNS_REFRESH_INTERVAL, &args.dns_refresh_interval, DEFAULT_DNS_REFRESH, BACKGROUND)?;
    Ok(Tuning { timeouts, sink, token_refresh, dns_refresh })
}

fn invalid(raw: &Raw, reason: String) -> ConfigError {
    ConfigError::InvalidValue { setting: raw.origin.clone(), reason }
}

fn parse_bounded_duration(raw: &Raw, range: Range) -> Result<Duration, ConfigError> {
    let d = parse_duration(&raw.value).map_err(|e| invalid(raw, e.to_string()))?;
    if d < range.min || d > range.max {
        return Err(invalid(
            raw,
            format!("must be between {} and {}, got {:?}", show(range.min), show(range.max), raw.value.trim()),
        ));
    }
    Ok(d)
}

fn parse_count(raw: &Raw, max: usize) -> Result<usize, ConfigError> {
    match raw.value.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(invalid(raw, format!("expected a whole number from 1 to {max}, got {:?}", raw.value))),
    }
}

/// A range bound in the units an operator would write it in.
fn show(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
