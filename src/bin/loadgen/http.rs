//! A minimal blocking HTTP/1.1 client for the load generator: one keep-alive connection, one request at a
//! time, response bodies framed by Content-Length, chunked encoding or close. It times reads; it must not
//! allocate per request beyond the connection's reusable buffer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::proto::{RequestSpec, Target};

/// Read buffer per connection: one read takes up to this many bytes.
const READ_BUF: usize = 64 * 1024;
/// A response head larger than this is an error (the servers under test send a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;
/// Response headers parsed; the servers under test send about ten.
const MAX_HEADERS: usize = 64;
/// A connect slower than this is a failure (loopback connects take microseconds unless the backlog is full).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Hex digits accepted in a chunk size (16 = 64-bit sizes).
const MAX_CHUNK_SIZE_DIGITS: u32 = 16;
/// Bytes tolerated in a chunk extension or trailer line before the decoder gives up.
const MAX_CHUNK_LINE: usize = 4096;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad target address: {0}")]
    Addr(#[from] std::net::AddrParseError),
    #[error("connection closed before the response completed")]
    Closed,
    #[error("malformed response head: {0}")]
    Head(httparse::Error),
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("bad Content-Length")]
    ContentLength,
    #[error("bad chunked encoding: {0}")]
    Chunked(#[from] ChunkError),
    #[error("status {0}")]
    Status(u16),
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the mock stamps events with, so the two processes agree.
pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The bytes of one request, built once per (target, spec) and written as is every time.
pub fn encode_request(target: &Target, spec: &RequestSpec) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + spec.body.len());
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(target.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(target.addr.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
    out.extend_from_slice(spec.body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in target.headers.iter().chain(spec.headers.iter()) {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(spec.body.as_bytes());
    out
}

/// How the response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// What a completed exchange looked like.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// Monotonic ns just before the request write.
    pub sent_ns: i64,
    /// Monotonic ns when the last body byte was read.
    pub done_ns: i64,
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: Box<[u8]>,
    /// Bytes of `buf` read but not consumed yet (only a head's tail, since we never pipeline).
    start: usize,
    end: usize,
    /// False once the server asked to close or the body was close-delimited.
    pub reusable: bool,
}

impl Conn {
    /// Connects with TCP_NODELAY (as the gateway does on both legs) and an optional read timeout.
    pub fn connect(addr: &str, read_timeout: Option<Duration>) -> Result<Conn, HttpError> {
        let addr: std::net::SocketAddr = addr.parse()?;
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(read_timeout)?;
        Ok(Conn { stream, buf: vec![0u8; READ_BUF].into_boxed_slice(), start: 0, end: 0, reusable: true })
    }

    /// Writes a request and returns the monotonic time just before the write.
    pub fn send(&mut self, request: &[u8]) -> Result<i64, HttpError> {
        let t = monotonic_ns();
        self.stream.write_all(request)?;
        Ok(t)
    }

    /// Sets the socket read timeout (streams use a long one, the idle-hold pass a shrinking one).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> Result<(), HttpError> {
        self.stream.set_read_timeout(t)?;
        Ok(())
    }

    fn fill(&mut self) -> Result<i64, HttpError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.stream.read(&mut self.buf[self.end..])?;
        let now = monotonic_ns();
        if n == 0 {
            return Err(HttpError::Closed);
        }
        self.end += n;
        Ok(now)
    }

    /// Reads the response head; returns (status, framing, time of the first byte).
    fn read_head(&mut self) -> Result<(u16, Framing, i64), HttpError> {
        let mut first_byte_ns = None;
        loop {
            if self.end > self.start {
                if let Some(head) = parse_head(&self.buf[self.start..self.end])? {
                    if head.close || head.framing == Framing::UntilClose {
                        self.reusable = false;
                    }
                    self.start += head.len;
                    let first = first_byte_ns.unwrap_or_else(monotonic_ns);
                    return Ok((head.status, head.framing, first));
                }
            }
            let t = self.fill()?;
            first_byte_ns.get_or_insert(t);
        }
    }

    /// Reads one whole response. `on_body(bytes, recv_ns)` sees the decoded body as it arrives, stamped
    /// with the time of the read that brought it. A non-2xx status is an error after the body is drained.
    pub fn read_response(&mut self, sent_ns: i64, mut on_body: impl FnMut(&[u8], i64)) -> Result<Exchange, HttpError> {
        let (status, framing, first_byte_ns) = self.read_head()?;
        let mut recv_ns = first_byte_ns;
        let mut done_ns = first_byte_ns;
        match framing {
            Framing::Length(mut left) => {
                while left > 0 {
                    if self.start == self.end {
                        recv_ns = self.fill()?;
                    }
                    let take = (self.end - self.start).min(usize::try_from(left).unwrap_or(usize::MAX));
                    on_body(&self.buf[self.start..self.start + take], recv_ns);
                    self.start += take;
                    left -= take as u64;
                    done_ns = recv_ns;
                }
            }
            Framing::Chunked => {
                let mut dec = ChunkedDecoder::default();
                loop {
                    if self.start < self.end {
                        let used = dec.feed(&self.buf[self.start..self.end], |b| on_body(b, recv_ns))?;
                        self.start += used;
                        done_ns = recv_ns;
                        if dec.is_done() {
                            break;
                        }
                    }
                    recv_ns = self.fill()?;
                }
            }
            Framing::UntilClose => loop {
                if self.start < self.end {
                    on_body(&self.buf[self.start..self.end], recv_ns);
                    self.start = self.end;
                    done_ns = recv_ns;
                }
                match self.fill() {
                    Ok(t) => recv_ns = t,
                    Err(HttpError::Closed) => break,
                    Err(e) => return Err(e),
                }
            },
        }
        if !(200..300).contains(&status) {
            return Err(HttpError::Status(status));
        }
        Ok(Exchange { sent_ns, done_ns })
    }

    /// Waits for the response head only (idle streams), leaving the body unread.
    pub fn read_head_only(&mut self) -> Result<u16, HttpError> {
        let (status, _, _) = self.read_head()?;
        Ok(status)
    }
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, blank line included.
    pub len: usize,
    pub status: u16,
    framing: Framing,
    /// `Connection: close` was sent.
    pub close: bool,
}

/// Parses a response head from the start of `buf`: `Ok(None)` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf).map_err(HttpError::Head)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() >= MAX_HEAD => return Err(HttpError::HeadTooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    let status = resp.code.unwrap_or(0);
    let mut framing = Framing::UntilClose;
    let mut close = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let s = std::str::from_utf8(h.value).map_err(|_| HttpError::ContentLength)?;
            let n = s.trim().parse::<u64>().map_err(|_| HttpError::ContentLength)?;
            if framing != Framing::Chunked {
                framing = Framing::Length(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if contains_token(h.value, b"chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") && contains_token(h.value, b"close") {
            close = true;
        }
    }
    // 1xx, 204 and 304 carry no body.
    if status < 200 || status == 204 || status == 304 {
        framing = Framing::Length(0);
    }
    Ok(Some(Head { len, status, framing, close }))
}

/// Where an incremental response parse stands.
#[derive(Debug)]
enum ParseState {
    Head,
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// Incremental parser of one response at a time, for non-blocking sockets: feed whatever arrived, learn
/// when the response is complete. A close-delimited body completes at [`ResponseParser::eof`].
#[derive(Debug)]
pub struct ResponseParser {
    state: ParseState,
    status: u16,
    close: bool,
}

/// A complete response seen by [`ResponseParser`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Complete {
    pub status: u16,
    /// The server will close the connection (or already did: close-delimited body).
    pub close: bool,
}

impl Default for ResponseParser {
    fn default() -> Self {
        ResponseParser { state: ParseState::Head, status: 0, close: false }
    }
}

impl ResponseParser {
    /// Consumes from `buf`, handing decoded body bytes to `on_body`; returns the bytes used and, when the
    /// response ended, its outcome (the parser is then ready for the next response).
    pub fn feed(&mut self, buf: &[u8], mut on_body: impl FnMut(&[u8])) -> Result<(usize, Option<Complete>), HttpError> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            match &mut self.state {
                ParseState::Head => {
                    let Some(head) = parse_head(rest)? else { return Ok((used, None)) };
                    used += head.len;
                    self.status = head.status;
                    self.close = head.close;
                    self.state = match head.framing {
                        Framing::Length(n) => ParseState::Length(n),
                        Framing::Chunked => ParseState::Chunked(ChunkedDecoder::default()),
                        Framing::UntilClose => ParseState::UntilClose,
                    };
                }
                ParseState::Length(left) => {
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(rest.len());
                    on_body(&rest[..take]);
                    used += take;
                    *left -= take as u64;
                    if *left > 0 {
                        return Ok((used, None));
                    }
                    return Ok((used, Some(self.finish())));
                }
                ParseState::Chunked(dec) => {
                    used += dec.feed(rest, &mut on_body)?;
                    if !dec.is_done() {
                        return Ok((used, None));
                    }
                    return Ok((used, Some(self.finish())));
                }
                ParseState::UntilClose => {
                    on_body(rest);
                    return Ok((buf.len(), None));
                }
            }
        }
    }

    /// The server closed the connection: completes a close-delimited body, else the response was cut.
    pub fn eof(&mut self) -> Result<Complete, HttpError> {
        match self.state {
            ParseState::UntilClose => {
                self.close = true;
                Ok(self.finish())
            }
            _ => Err(HttpError::Closed),
        }
    }

    fn finish(&mut self) -> Complete {
        self.state = ParseState::Head;
        Complete { status: self.status, close: self.close }
    }
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|part| part.trim_ascii().eq_ignore_ascii_case(token))
}

/// Why a chunked body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk size is not hexadecimal")]
    BadSize,
    #[error("chunk size too large")]
    SizeTooLarge,
    #[error("missing CRLF after chunk data")]
    MissingCrlf,
    #[error("chunk extension or trailer line too long")]
    LineTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    /// Reading hex digits of a chunk size.
    #[default]
    Size,
    /// Skipping an extension until LF.
    Extension,
    /// Inside chunk data, with this many bytes left.
    Data(u64),
    /// Expecting CR after data.
    DataCr,
    /// Expecting LF after data.
    DataLf,
    /// In the trailer section after the last chunk; the flag says whether the current line is empty so far.
    Trailer(bool),
    /// Body complete.
    Done,
}

/// Incremental decoder of `Transfer-Encoding: chunked` (RFC 9112 §7.1): feed any split of the bytes.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    size: u64,
    digits: u32,
    line_len: usize,
}

impl ChunkedDecoder {
    /// True once the terminating chunk and trailers were read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `input`, handing data to `out`; returns the bytes consumed (all of them unless the
    /// body ended inside `input`).
    pub fn feed(&mut self, input: &[u8], mut out: impl FnMut(&[u8])) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                ChunkState::Size => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            if self.digits >= MAX_CHUNK_SIZE_DIGITS {
                                return Err(ChunkError::SizeTooLarge);
                            }
                            let d = (b as char).to_digit(16).ok_or(ChunkError::BadSize)?;
                            self.size = (self.size << 4) | u64::from(d);
                            self.digits += 1;
                        }
                        b';' | b' ' | b'\t' | b'\r' if self.digits > 0 => {
                            self.state = ChunkState::Extension;
                            self.line_len = 0;
                        }
                        b'\n' if self.digits > 0 => self.end_size_line(),
                        _ => return Err(ChunkError::BadSize),
                    }
                }
                ChunkState::Extension => {
                    let b = input[i];
                    i += 1;
                    if b == b'\n' {
                        self.end_size_line();
                    } else {
                        self.line_len += 1;
                        if self.line_len > MAX_CHUNK_LINE {
                            return Err(ChunkError::LineTooLong);
                        }
                    }
                }
                ChunkState::Data(left) => {
                    let avail = input.len() - i;
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(avail);
                    out(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 { ChunkState::DataCr } else { ChunkState::Data(left) };
                }
                ChunkState::DataCr => {
                    let b = input[i];
                    i += 1;
                    self.state = match b {
                        b'\r' => ChunkState::DataLf,
                        b'\n' => ChunkState::Size,
                        _ => return Err(ChunkError::MissingCrlf),
                    };
                }
                ChunkState::DataLf => {
                    let b = input[i];
                    i += 1;
                    if b != b'\n' {
                        return Err(ChunkError::MissingCrlf);
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer(empty) => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\n' if empty => self.state = ChunkState::Done,
                        b'\n' => {
                            self.state = ChunkState::Trailer(true);
                            self.line_len = 0;
                        }
                        b'\r' => {}
                        _ => {
                            self.line_len += 1;
                            if self.line_len > MAX_CHUNK_LINE {
                                return Err(ChunkError::LineTooLong);
                            }
                            self.state = ChunkState::Trailer(false);
                        }
                    }
                }
                ChunkState::Done => return Ok(i),
            }
        }
        Ok(i)
    }

    fn end_size_line(&mut self) {
        self.state = if self.size == 0 { ChunkState::Trailer(true) } else { ChunkState::Data(self.size) };
        self.size = 0;
        self.digits = 0;
        self.line_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_split(input: &[u8], split: usize) -> Result<(Vec<u8>, bool), ChunkError> {
        let mut dec = ChunkedDecoder::default();
        let mut out = Vec::new();
        let (a, b) = input.split_at(split.min(input.len()));
        for part in [a, b] {
            if !dec.is_done() {
                dec.feed(part, |d| out.extend_from_slice(d))?;
            }
        }
        Ok((out, dec.is_done()))
    }

    fn encode_chunked(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    #[test]
    fn decodes_at_every_split() {
        let wire = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for split in 0..=wire.len() {
            let (body, done) = decode_split(wire, split).unwrap();
            assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz", "split at {split}");
            assert!(done, "split at {split}");
        }
    }

    #[test]
    fn stops_at_end_of_body() {
        let mut dec = ChunkedDecoder::default();
        let used = dec.feed(b"1\r\na\r\n0\r\n\r\nHTTP/1.1 200", |_| {}).unwrap();
        assert_eq!(used, 11);
        assert!(dec.is_done());
    }

    #[test]
    fn rejects_garbage() {
        let mut dec = ChunkedDecoder::default();
        assert_eq!(dec.feed(b"zz\r\n", |_| {}), Err(ChunkError::BadSize));
        let mut dec = ChunkedDecoder::default();
        assert_eq!(dec.feed(b"1\r\nab", |_| {}), Err(ChunkError::MissingCrlf));
        let mut dec = ChunkedDecoder::default();
        assert_eq!(dec.feed(b"11111111111111111\r\n", |_| {}), Err(ChunkError::SizeTooLarge));
    }

    #[test]
    fn response_parser_at_every_split() {
        let wire: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        for split in 0..=wire.len() {
            let mut p = ResponseParser::default();
            let mut done = Vec::new();
            let mut pending: Vec<u8> = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                pending.extend_from_slice(part);
                loop {
                    let (used, complete) = p.feed(&pending, |_| {}).unwrap();
                    pending.drain(..used);
                    match complete {
                        Some(c) => done.push(c),
                        None => break,
                    }
                }
            }
            assert_eq!(
                done,
                vec![Complete { status: 200, close: false }, Complete { status: 201, close: true }],
                "split at {split}"
            );
            assert!(pending.is_empty());
        }
    }

    #[test]
    fn response_parser_close_delimited_ends_at_eof() {
        let mut p = ResponseParser::default();
        let mut body = Vec::new();
        let (used, done) = p.feed(b"HTTP/1.1 200 OK\r\n\r\nbo", |b| body.extend_from_slice(b)).unwrap();
        assert_eq!((used, done), (21, None));
        let _ = p.feed(b"dy", |b| body.extend_from_slice(b)).unwrap();
        assert_eq!(body, b"body");
        assert_eq!(p.eof().unwrap(), Complete { status: 200, close: true });
        // A length-framed body cut short is an error, not a completion.
        let mut p = ResponseParser::default();
        let _ = p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", |_| {}).unwrap();
        assert!(matches!(p.eof(), Err(HttpError::Closed)));
    }

    #[test]
    fn response_parser_hands_decoded_body() {
        let mut p = ResponseParser::default();
        let mut body = Vec::new();
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ndata\r\n2\r\n: \r\n0\r\n\r\n";
        let (used, done) = p.feed(wire, |b| body.extend_from_slice(b)).unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(done, Some(Complete { status: 200, close: false }));
        assert_eq!(body, b"data: ");
    }

    #[test]
    fn request_bytes_carry_length_and_headers() {
        let t = Target {
            name: "x".into(),
            addr: "127.0.0.1:1".into(),
            path: "/v1/chat/completions".into(),
            headers: vec![("Authorization".into(), "Bearer t".into())],
        };
        let s = RequestSpec { body: "{}".into(), headers: vec![("x-mock-stamp".into(), "1".into())] };
        let req = String::from_utf8(encode_request(&t, &s)).unwrap();
        assert!(req.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"));
        assert!(req.contains("Content-Length: 2\r\n"));
        assert!(req.contains("Authorization: Bearer t\r\nx-mock-stamp: 1\r\n\r\n{}"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut dec = ChunkedDecoder::default();
            let _ = dec.feed(&bytes, |_| {});
        }

        #[test]
        fn roundtrips_any_chunks_any_split(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
            split in 0usize..2000,
        ) {
            let wire = encode_chunked(&chunks);
            let (body, done) = decode_split(&wire, split).unwrap();
            prop_assert_eq!(body, chunks.concat());
            prop_assert!(done);
        }
    }
}
