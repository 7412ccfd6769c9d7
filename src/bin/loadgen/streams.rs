//! Streaming jobs: many concurrent slow SSE streams whose events carry the mock's send stamp (per-event
//! delay = receive time − stamp, both CLOCK_MONOTONIC), read on one epoll thread; and idle streams held
//! open for memory measurements.

use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::evloop::{write_request, Epoll};
use crate::http::{encode_request, monotonic_ns, Conn, ResponseParser};
use crate::proto::{JobResult, RequestSpec, Target, TargetStreams};
use crate::stats::{median, summarize_exact};
use crate::THREAD_STACK;

/// The stamp field the mock adds to each event's JSON with `x-mock-stamp: 1`.
const STAMP_KEY: &[u8] = b"\"x_mock_sent_ns\":";
/// An SSE line longer than this is skipped (the mock's events are a few hundred bytes).
const MAX_LINE: usize = 1 << 20;

/// Finds the send stamps in an SSE body fed in arbitrary pieces.
#[derive(Default)]
pub struct StampScanner {
    line: Vec<u8>,
    overflow: bool,
}

impl StampScanner {
    /// Feeds body bytes; calls `on_stamp(stamp_ns)` for every complete `data:` line carrying a stamp.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_stamp: impl FnMut(i64)) {
        while !bytes.is_empty() {
            match memchr::memchr(b'\n', bytes) {
                Some(i) => {
                    if !self.overflow {
                        self.line.extend_from_slice(&bytes[..i]);
                        if let Some(s) = stamp_in_line(&self.line) {
                            on_stamp(s);
                        }
                    }
                    self.line.clear();
                    self.overflow = false;
                    bytes = &bytes[i + 1..];
                }
                None => {
                    if self.line.len() + bytes.len() > MAX_LINE {
                        self.overflow = true;
                        self.line.clear();
                    } else if !self.overflow {
                        self.line.extend_from_slice(bytes);
                    }
                    bytes = &[];
                }
            }
        }
    }
}

/// The stamp of one SSE line, if it is a `data:` line carrying one.
fn stamp_in_line(line: &[u8]) -> Option<i64> {
    if !line.starts_with(b"data:") {
        return None;
    }
    let at = memchr::memmem::find(line, STAMP_KEY)? + STAMP_KEY.len();
    let rest = line[at..].trim_ascii_start();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// One stream's measurements.
struct StreamOutcome {
    ttfb_ns: i64,
    delays: Vec<i64>,
}

/// Read buffer per stream.
const STREAM_BUF: usize = 16 * 1024;
/// Readiness events taken per epoll_wait.
const MAX_EVENTS: usize = 256;
/// Longest epoll_wait, so stream openings and the deadline are served on time.
const MAX_WAIT_MS: u64 = 10;

/// Whether an idle keep-alive connection is still open (a peek finds neither EOF nor an error).
fn still_open(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.peek(&mut b), Err(ref e) if e.kind() == ErrorKind::WouldBlock)
}

/// One stream in flight.
struct Live {
    stream: TcpStream,
    parser: ResponseParser,
    scanner: StampScanner,
    sent_ns: i64,
    first_byte_ns: Option<i64>,
    delays: Vec<i64>,
    acc: Vec<u8>,
    /// The response ended cleanly on a keep-alive connection: the next round may reuse it.
    reusable: bool,
}

impl Live {
    /// Starts a stream on `pooled` when that keep-alive connection is still open, else on a new one.
    fn open(addr: &str, request: &[u8], ep: &Epoll, token: u64, pooled: Option<TcpStream>) -> Result<Live, String> {
        let mut stream = match pooled.filter(still_open) {
            Some(s) => s,
            None => {
                let sock: std::net::SocketAddr = addr.parse().map_err(|e: std::net::AddrParseError| e.to_string())?;
                let s = TcpStream::connect_timeout(&sock, Duration::from_secs(5)).map_err(|e| e.to_string())?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
                s
            }
        };
        ep.add(stream.as_raw_fd(), token).map_err(|e| e.to_string())?;
        let sent_ns = monotonic_ns();
        write_request(&mut stream, request).map_err(|e| e.to_string())?;
        Ok(Live {
            stream,
            parser: ResponseParser::default(),
            scanner: StampScanner::default(),
            sent_ns,
            first_byte_ns: None,
            delays: Vec::with_capacity(64),
            acc: Vec::new(),
            reusable: false,
        })
    }

    /// Reads what is available. `Some` once the stream ended (well or not).
    fn pump(&mut self, buf: &mut [u8]) -> Option<Result<StreamOutcome, String>> {
        loop {
            let n = match self.stream.read(buf) {
                Ok(0) => {
                    return Some(match self.parser.eof() {
                        Ok(c) => self.outcome(c.status),
                        Err(e) => Err(e.to_string()),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(e.to_string())),
            };
            // One timestamp per read: every event this read completed arrived by now.
            let recv_ns = monotonic_ns();
            self.first_byte_ns.get_or_insert(recv_ns);
            // Bytes the parser could not use yet (a head split across reads) wait in `acc`.
            self.acc.extend_from_slice(&buf[..n]);
            let (scanner, delays) = (&mut self.scanner, &mut self.delays);
            let mut off = 0;
            let mut ended = None;
            while off < self.acc.len() {
                match self
                    .parser
                    .feed(&self.acc[off..], |body| scanner.feed(body, |stamp| delays.push(recv_ns - stamp)))
                {
                    Ok((_, Some(c))) => {
                        self.reusable = !c.close;
                        ended = Some(c.status);
                        break;
                    }
                    Ok((0, None)) => break,
                    Ok((used, None)) => off += used,
                    Err(e) => return Some(Err(e.to_string())),
                }
            }
            if let Some(status) = ended {
                return Some(self.outcome(status));
            }
            self.acc.drain(..off);
        }
    }

    fn outcome(&mut self, status: u16) -> Result<StreamOutcome, String> {
        if !(200..300).contains(&status) {
            return Err(format!("status {status}"));
        }
        if self.delays.is_empty() {
            return Err("no stamped events in the stream (is x-mock-stamp supported?)".into());
        }
        let ttfb_ns = self.first_byte_ns.unwrap_or(self.sent_ns) - self.sent_ns;
        Ok(StreamOutcome { ttfb_ns, delays: std::mem::take(&mut self.delays) })
    }
}

/// Runs `streams` concurrent streams to one target on one epoll thread and waits for all of them. Their
/// starts are spread evenly over one event interval (`stagger`), as independent clients' would be:
/// started together, every stream's events would fall due at the same instant and the figures would
/// measure burst queueing. One thread, not one per stream: a hundred threads waking for every event
/// would add their own scheduling delays to the very figure being measured.
fn run_round(
    target: &Target,
    request: &[u8],
    streams: u32,
    stagger: Duration,
    timeout: Duration,
    pool: &mut Vec<Option<TcpStream>>,
) -> Vec<Result<StreamOutcome, String>> {
    pool.resize_with(streams as usize, || None);
    let ep = match Epoll::new() {
        Ok(ep) => ep,
        Err(e) => return vec![Err(format!("epoll: {e}"))],
    };
    let n = streams as usize;
    let mut live: Vec<Option<Live>> = (0..n).map(|_| None).collect();
    let mut out: Vec<Option<Result<StreamOutcome, String>>> = (0..n).map(|_| None).collect();
    let mut buf = vec![0u8; STREAM_BUF];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    let start = Instant::now();
    let deadline = start + stagger + timeout;
    let mut next = 0usize;
    loop {
        let now = Instant::now();
        while next < n && start + stagger * next as u32 / streams.max(1) <= now {
            match Live::open(&target.addr, request, &ep, next as u64, pool[next].take()) {
                Ok(l) => live[next] = Some(l),
                Err(e) => out[next] = Some(Err(e)),
            }
            next += 1;
        }
        if next == n && live.iter().all(Option::is_none) {
            break;
        }
        if now > deadline {
            for (i, l) in live.iter_mut().enumerate() {
                if l.take().is_some() {
                    out[i] = Some(Err("stream timed out".into()));
                }
            }
            break;
        }
        let until_next = if next < n {
            (start + stagger * next as u32 / streams.max(1)).saturating_duration_since(now)
        } else {
            Duration::from_millis(MAX_WAIT_MS)
        };
        let wait_ms = until_next.as_millis().clamp(0, u128::from(MAX_WAIT_MS)) as i32;
        let ready = ep.wait(&mut events, wait_ms);
        for ev in &events[..ready] {
            let i = ev.u64 as usize;
            let Some(Some(l)) = live.get_mut(i) else { continue };
            if let Some(result) = l.pump(&mut buf) {
                out[i] = Some(result);
                // Keep-alive, as real clients do: the next round's stream i starts on this connection,
                // so neither path pays a connect (or the mock a new thread) in its time to first byte.
                if let Some(done) = live[i].take().filter(|l| l.reusable) {
                    pool[i] = Some(done.stream);
                }
            }
        }
    }
    out.into_iter().map(|o| o.unwrap_or_else(|| Err("stream never finished".into()))).collect()
}

/// Per-target samples across rounds.
#[derive(Default)]
struct Collected {
    /// Per recorded round: TTFBs and event delays of the streams that completed.
    rounds: Vec<(Vec<i64>, Vec<i64>)>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

/// How many streams, how paced, for how long (the sizes of a [`crate::proto::Job::Streams`]).
#[derive(Clone, Copy)]
pub struct StreamsShape {
    /// Concurrent streams per round.
    pub streams: u32,
    /// Spread of the stream starts.
    pub stagger: Duration,
    /// Recorded rounds.
    pub rounds: u32,
    /// No round starts after this.
    pub time_limit: Duration,
    /// One stream's bound.
    pub stream_timeout: Duration,
}

/// See [`crate::proto::Job::Streams`].
pub fn streams(targets: &[Target], baseline: &str, spec: &RequestSpec, shape: &StreamsShape) -> JobResult {
    let StreamsShape { streams, stagger, rounds, time_limit, stream_timeout } = *shape;
    let started = Instant::now();
    let requests: Vec<Vec<u8>> = targets.iter().map(|t| encode_request(t, spec)).collect();
    let mut pools: Vec<Vec<Option<TcpStream>>> = targets.iter().map(|_| Vec::new()).collect();
    let mut collected: Vec<Collected> = targets.iter().map(|_| Collected::default()).collect();
    let n = targets.len();
    let mut rounds_done = 0;
    // Round 0 warms connection pools and is not recorded.
    for r in 0..=rounds {
        if started.elapsed() > time_limit {
            break;
        }
        for k in 0..n {
            let i = (k + r as usize) % n;
            let outcomes = run_round(&targets[i], &requests[i], streams, stagger, stream_timeout, &mut pools[i]);
            if r == 0 {
                continue;
            }
            let c = &mut collected[i];
            let (mut ttfb, mut delays) = (Vec::new(), Vec::new());
            for o in outcomes {
                match o {
                    Ok(s) => {
                        c.ok += 1;
                        ttfb.push(s.ttfb_ns);
                        delays.extend_from_slice(&s.delays);
                    }
                    Err(e) => {
                        c.errors += 1;
                        c.first_error.get_or_insert(e);
                    }
                }
            }
            c.rounds.push((ttfb, delays));
        }
        if r > 0 {
            rounds_done += 1;
        }
    }
    let base = targets.iter().position(|t| t.name == baseline);
    // The baseline's medians per round: what the direct path costs at that moment.
    let base_medians: Vec<(i64, i64)> = match base {
        Some(b) => collected[b].rounds.iter().map(|(t, d)| (median(t), median(d))).collect(),
        None => Vec::new(),
    };
    let results = targets
        .iter()
        .zip(collected)
        .map(|(t, c)| {
            let (mut ttfb, mut delays, mut added_ttfb, mut added_delay) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (r, (rt, rd)) in c.rounds.iter().enumerate() {
                ttfb.extend_from_slice(rt);
                delays.extend_from_slice(rd);
                if let Some(&(bt, bd)) = base_medians.get(r) {
                    added_ttfb.extend(rt.iter().map(|v| v - bt));
                    added_delay.extend(rd.iter().map(|v| v - bd));
                }
            }
            TargetStreams {
                name: t.name.clone(),
                ttfb: summarize_exact(&mut ttfb),
                event_delay: summarize_exact(&mut delays),
                added_ttfb: summarize_exact(&mut added_ttfb),
                added_event_delay: summarize_exact(&mut added_delay),
                streams_ok: c.ok,
                errors: c.errors,
                first_error: c.first_error,
            }
        })
        .collect();
    JobResult::Streams { targets: results, rounds_done }
}

/// See [`crate::proto::Job::Hold`]. Prints the result line once the streams are open, then holds them.
pub fn hold(
    target: &Target,
    spec: &RequestSpec,
    streams: u32,
    head_timeout: Duration,
    hold_limit: Duration,
) -> JobResult {
    let request = encode_request(target, spec);
    let mut conns = Vec::with_capacity(streams as usize);
    let (mut errors, mut first_error) = (0u32, None::<String>);
    // Pass 1: open every stream, without waiting for answers, so opening N streams costs N connects.
    let open_deadline = Instant::now() + head_timeout;
    for _ in 0..streams {
        if Instant::now() > open_deadline {
            break;
        }
        match Conn::connect(&target.addr, None).and_then(|mut c| c.send(&request).map(|_| c)) {
            Ok(c) => conns.push(c),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    // Pass 2: collect the response heads until the shared deadline.
    let deadline = Instant::now() + head_timeout;
    let mut heads = 0u32;
    for c in conns.iter_mut() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if c.set_read_timeout(Some(left)).is_err() {
            continue;
        }
        match c.read_head_only() {
            Ok(s) if (200..300).contains(&s) => heads += 1,
            Ok(s) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("status {s}"));
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let result = JobResult::Hold {
        name: target.name.clone(),
        requested: streams,
        opened: conns.len() as u32,
        heads,
        errors,
        first_error,
    };
    crate::print_result(&result);
    // Hold until told (a line or EOF on stdin) or the limit passes.
    let (tx, rx) = mpsc::channel();
    let _ = std::thread::Builder::new().stack_size(THREAD_STACK).spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(hold_limit);
    drop(conns);
    let _ = std::io::stdout().flush();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamps(pieces: &[&[u8]]) -> Vec<i64> {
        let mut s = StampScanner::default();
        let mut out = Vec::new();
        for p in pieces {
            s.feed(p, |v| out.push(v));
        }
        out
    }

    #[test]
    fn finds_stamps_at_every_split() {
        let body: &[u8] = b"data: {\"id\":\"c\",\"choices\":[],\"x_mock_sent_ns\":123456}\n\n: comment\ndata: {\"x_mock_sent_ns\": 42}\n\ndata: [DONE]\n\n";
        for split in 0..=body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(stamps(&[a, b]), vec![123456, 42], "split at {split}");
        }
    }

    #[test]
    fn ignores_lines_without_stamps_or_not_data() {
        assert_eq!(stamps(&[b"event: x\ndata: {\"a\":1}\nid: \"x_mock_sent_ns\":5\n"]), Vec::<i64>::new());
        assert_eq!(stamps(&[b"data: {\"x_mock_sent_ns\":}\n"]), Vec::<i64>::new());
    }

    #[test]
    fn skips_overlong_lines_and_recovers() {
        let mut s = StampScanner::default();
        let mut out = Vec::new();
        let big = vec![b'a'; MAX_LINE + 10];
        s.feed(b"data: ", |v| out.push(v));
        s.feed(&big, |v| out.push(v));
        s.feed(b"\"x_mock_sent_ns\":1\ndata: {\"x_mock_sent_ns\":2}\n", |v| out.push(v));
        assert_eq!(out, vec![2]);
    }
}
