//! Saturation on one thread with epoll: many keep-alive connections, each sending its next request as
//! soon as its previous response completes. One thread and batched readiness cost far less CPU per
//! request than a blocking thread per connection, so on a small machine the server under test, not the
//! load generator, is what runs out of CPU. Bounded by a deadline; Linux only.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::http::{encode_request, monotonic_ns, HttpError, ResponseParser};
use crate::proto::{JobResult, RequestSpec, Target};
use crate::stats::{new_histogram, record, summarize_hist};

/// Readiness events taken per epoll_wait.
const MAX_EVENTS: usize = 256;
/// Read buffer per connection (responses are a few hundred bytes).
const CONN_BUF: usize = 16 * 1024;
/// epoll_wait timeout, so the deadline is noticed even when nothing is ready.
const WAIT_MS: i32 = 10;
/// How long a blocking write of one request may wait for socket space (never, in practice).
const WRITE_WAIT_MS: i32 = 1000;
/// A connection silent this long with a request outstanding is counted as failed and replaced.
const STALL: Duration = Duration::from_secs(10);

struct Slot {
    stream: TcpStream,
    parser: ResponseParser,
    buf: Box<[u8]>,
    len: usize,
    sent_ns: i64,
}

/// An epoll instance, closed on drop.
pub struct Epoll(i32);

impl Epoll {
    /// A new epoll set.
    pub fn new() -> std::io::Result<Epoll> {
        // SAFETY: epoll_create1 takes a flag and returns a new fd or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Epoll(fd))
    }

    /// Watches `fd` for readability, reporting `token`.
    pub fn add(&self, fd: i32, token: u64) -> std::io::Result<()> {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: both fds are open; the event struct is valid for the call.
        if unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for readiness; the number of events filled in.
    pub fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
        // SAFETY: the buffer holds events.len() entries, all writable.
        let n = unsafe { libc::epoll_wait(self.0, events.as_mut_ptr(), events.len() as i32, timeout_ms) };
        usize::try_from(n).unwrap_or(0)
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: the fd is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

/// Writes a whole request on a non-blocking socket, waiting with poll(2) if the buffer is full.
pub fn write_request(stream: &mut TcpStream, mut bytes: &[u8]) -> Result<(), HttpError> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(HttpError::Closed),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, WRITE_WAIT_MS) } <= 0 {
                    return Err(HttpError::Io(std::io::Error::new(ErrorKind::TimedOut, "request write stalled")));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn open_slot(addr: &str, request: &[u8], ep: &Epoll, token: u64) -> Result<Slot, HttpError> {
    let addr: std::net::SocketAddr = addr.parse()?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    ep.add(stream.as_raw_fd(), token)?;
    let mut slot = Slot {
        stream,
        parser: ResponseParser::default(),
        buf: vec![0u8; CONN_BUF].into_boxed_slice(),
        len: 0,
        sent_ns: 0,
    };
    slot.sent_ns = monotonic_ns();
    write_request(&mut slot.stream, request)?;
    Ok(slot)
}

/// What reading a ready connection produced.
enum Drained {
    /// Responses completed (latencies recorded); connection still usable.
    Ok,
    /// The server closed or broke the connection, or answered badly.
    Failed(String),
}

/// Reads everything available on a slot, completing responses and sending the next request after each.
fn drain(
    slot: &mut Slot,
    request: &[u8],
    hist: &mut hdrhistogram::Histogram<u64>,
    done: &mut u64,
    errors: &mut u64,
) -> Drained {
    loop {
        match slot.stream.read(&mut slot.buf[slot.len..]) {
            Ok(0) => return Drained::Failed(HttpError::Closed.to_string()),
            Ok(n) => slot.len += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Drained::Ok,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Drained::Failed(e.to_string()),
        }
        let now = monotonic_ns();
        let mut off = 0;
        loop {
            match slot.parser.feed(&slot.buf[off..slot.len], |_| {}) {
                Ok((used, Some(c))) => {
                    off += used;
                    if !(200..300).contains(&c.status) {
                        *errors += 1;
                    } else {
                        *done += 1;
                        record(hist, now - slot.sent_ns);
                    }
                    if c.close {
                        return Drained::Failed("server closed the keep-alive connection".into());
                    }
                    slot.sent_ns = monotonic_ns();
                    if let Err(e) = write_request(&mut slot.stream, request) {
                        return Drained::Failed(e.to_string());
                    }
                }
                Ok((used, None)) => {
                    off += used;
                    break;
                }
                Err(e) => return Drained::Failed(e.to_string()),
            }
        }
        slot.buf.copy_within(off..slot.len, 0);
        slot.len -= off;
        if slot.len == slot.buf.len() {
            return Drained::Failed(HttpError::HeadTooLarge.to_string());
        }
    }
}

/// See [`crate::proto::Job::Saturate`].
pub fn saturate(target: &Target, spec: &RequestSpec, connections: u32, duration: Duration) -> JobResult {
    let request = encode_request(target, spec);
    let mut hist = new_histogram();
    let (mut done, mut errors, mut first_error) = (0u64, 0u64, None::<String>);
    let fail = |first_error: Option<String>, errors: u64| JobResult::Saturate {
        name: target.name.clone(),
        completed: 0,
        errors,
        elapsed_ms: 0,
        requests_per_sec: 0.0,
        latency: Default::default(),
        first_error,
    };
    let ep = match Epoll::new() {
        Ok(ep) => ep,
        Err(e) => return fail(Some(format!("epoll: {e}")), 0),
    };
    let mut slots: Vec<Option<Slot>> = Vec::with_capacity(connections as usize);
    let t0 = Instant::now();
    for i in 0..connections.max(1) {
        match open_slot(&target.addr, &request, &ep, u64::from(i)) {
            Ok(s) => slots.push(Some(s)),
            Err(e) => return fail(Some(e.to_string()), 1),
        }
    }
    let deadline = t0 + duration;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    let mut last_progress = Instant::now();
    while Instant::now() < deadline {
        let n = ep.wait(&mut events, WAIT_MS);
        let before = done;
        for ev in &events[..n] {
            let i = ev.u64 as usize;
            let Some(Some(slot)) = slots.get_mut(i) else { continue };
            if let Drained::Failed(e) = drain(slot, &request, &mut hist, &mut done, &mut errors) {
                errors += 1;
                first_error.get_or_insert(e);
                // Replace the connection (closing the old one removes it from the epoll set).
                slots[i] = None;
                if Instant::now() < deadline {
                    match open_slot(&target.addr, &request, &ep, i as u64) {
                        Ok(s) => slots[i] = Some(s),
                        Err(e) => {
                            first_error.get_or_insert(e.to_string());
                        }
                    }
                }
            }
        }
        if done > before {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL || slots.iter().all(Option::is_none) {
            first_error.get_or_insert_with(|| "no progress: server stalled".into());
            break;
        }
    }
    let elapsed = t0.elapsed();
    JobResult::Saturate {
        name: target.name.clone(),
        completed: done,
        errors,
        elapsed_ms: elapsed.as_millis() as u64,
        requests_per_sec: done as f64 / elapsed.as_secs_f64().max(1e-9),
        latency: summarize_hist(&hist),
        first_error,
    }
}
