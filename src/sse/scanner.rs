//! The event-stream scanner: finds server-sent events in relayed chunks, whatever their split, following
//! the WHATWG "event stream interpretation" rules. Pure over bytes: no I/O, no JSON, never fails.
//!
//! Events that lie entirely inside one chunk are handed out as slices borrowed from that chunk; only the
//! raw bytes of an event that straddles a chunk boundary are copied, and that copy is bounded by
//! [`MAX_EVENT_BYTES`].

use memchr::memchr2;

/// Largest event (raw bytes, fields and line ends included) kept while waiting for its end. Provider
/// events are small (a delta is a few hundred bytes; a final `response.completed` carrying a whole answer
/// is rarely more than a few MiB), so 16 MiB never cuts a real event but stops a hostile or broken
/// upstream from growing a worker's memory without bound. A larger event is dropped and counted.
pub(crate) const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Buffer capacity kept after a large straddling (or multi-line) event was dispatched; above it the
/// buffer is released so one big event does not pin memory for the rest of a long stream.
const RETAINED_BUFFER_BYTES: usize = 64 * 1024;

/// The UTF-8 byte order mark, which WHATWG says to strip once at the start of the stream.
const BOM: &[u8; 3] = b"\xEF\xBB\xBF";

/// One dispatched event. Slices borrow either the chunk being scanned or the scanner's own buffer, so an
/// event lives only for the callback that receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field of this event, empty when absent (WHATWG then calls the event `message`).
    pub event: &'a [u8],
    /// The `data:` lines joined with `\n` (WHATWG removes the final line feed).
    pub data: &'a [u8],
    /// The `id:` field of this event, if it had one without a NUL. The stream's "last event id" carries
    /// over between events; callers that need it keep it themselves.
    pub id: Option<&'a [u8]>,
    /// The `retry:` field when it was all ASCII digits (and fits in a u64).
    pub retry: Option<u64>,
}

impl SseEvent<'_> {
    /// True for the OpenAI-style stream terminator `data: [DONE]`.
    pub(crate) fn is_done(&self) -> bool {
        self.data == b"[DONE]"
    }
}

/// Where the scanner stands between two chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between events (or only inside the current chunk): nothing buffered.
    Normal,
    /// An event started in an earlier chunk; its raw bytes so far are in `buf`.
    Buffering,
    /// An event outgrew [`MAX_EVENT_BYTES`]: skip bytes until its blank line.
    Discarding,
}

/// Incremental SSE scanner; feed it every chunk of a stream in order.
#[derive(Debug)]
pub struct SseScanner {
    mode: Mode,
    /// Raw bytes of the event straddling chunks (only in `Mode::Buffering`).
    buf: Vec<u8>,
    /// Multi-line `data` joined here; reused between events.
    scratch: Vec<u8>,
    /// The last chunk ended with CR: a LF opening the next chunk belongs to it (CRLF split in two).
    skip_lf: bool,
    /// In Buffering/Discarding: the last buffered line has no line end yet.
    line_open: bool,
    /// How many leading bytes of a possible BOM have been seen; `BOM.len()` once past the stream start.
    bom_seen: usize,
    dropped: u64,
}

impl Default for SseScanner {
    fn default() -> Self {
        SseScanner::new()
    }
}

/// Fields of the event being assembled, borrowed from the slice being parsed.
#[derive(Default)]
struct Pending<'a> {
    event: &'a [u8],
    data: Option<&'a [u8]>,
    /// More than one data line: the joined text is in `scratch`.
    multi: bool,
    id: Option<&'a [u8]>,
    retry: Option<u64>,
}

impl SseScanner {
    /// A scanner at the start of a stream.
    pub fn new() -> SseScanner {
        SseScanner {
            mode: Mode::Normal,
            buf: Vec::new(),
            scratch: Vec::new(),
            skip_lf: false,
            line_open: false,
            bom_seen: 0,
            dropped: 0,
        }
    }

    /// Events dropped because they outgrew [`MAX_EVENT_BYTES`].
    #[cfg(test)]
    pub(crate) fn dropped_events(&self) -> u64 {
        self.dropped
    }

    /// Bytes of an unfinished event currently held.
    #[cfg(test)]
    pub(crate) fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Scans one chunk, calling `on_event` for each event completed by it, in stream order.
    pub fn feed<F: FnMut(&SseEvent<'_>)>(&mut self, chunk: &[u8], mut on_event: F) {
        let mut chunk = chunk;
        if self.bom_seen < BOM.len() {
            chunk = match self.strip_bom(chunk) {
                Some(rest) => rest,
                None => return,
            };
        }
        if chunk.is_empty() {
            return;
        }
        let mut pos = 0;
        if self.skip_lf {
            self.skip_lf = false;
            if chunk[0] == b'\n' {
                pos = 1;
            }
        }
        if self.mode != Mode::Normal {
            match self.find_event_end(chunk, pos) {
                Some(end) => {
                    if self.mode == Mode::Buffering {
                        // The whole chunk prefix, a LF completing a split CRLF included, so the copy
                        // reads exactly as the original stream did.
                        self.buf.extend_from_slice(&chunk[..end]);
                        let buf = std::mem::take(&mut self.buf);
                        parse_lines(&buf, &mut self.scratch, &mut on_event);
                        self.buf = buf;
                        self.buf.clear();
                        if self.buf.capacity() > RETAINED_BUFFER_BYTES {
                            self.buf = Vec::new();
                        }
                    }
                    self.mode = Mode::Normal;
                    self.line_open = false;
                    pos = end;
                }
                None => {
                    if self.mode == Mode::Buffering {
                        self.buffer(chunk);
                    }
                    self.note_tail(chunk);
                    return;
                }
            }
        }
        let rest = &chunk[pos..];
        let consumed = parse_lines(rest, &mut self.scratch, &mut on_event);
        if consumed < rest.len() {
            self.mode = Mode::Buffering;
            self.buffer(&rest[consumed..]);
        }
        self.note_tail(chunk);
        if self.scratch.capacity() > RETAINED_BUFFER_BYTES {
            self.scratch = Vec::new();
        }
    }

    /// Consumes a BOM split over the first chunks; returns the bytes left to scan, or None when the
    /// whole chunk was (so far) a BOM prefix.
    fn strip_bom<'c>(&mut self, chunk: &'c [u8]) -> Option<&'c [u8]> {
        let mut i = 0;
        while self.bom_seen < BOM.len() && i < chunk.len() {
            if chunk[i] != BOM[self.bom_seen] {
                break;
            }
            self.bom_seen += 1;
            i += 1;
        }
        if self.bom_seen == BOM.len() {
            return Some(&chunk[i..]);
        }
        if i == chunk.len() {
            return None;
        }
        // Not a BOM after all. A partial match can only be bytes 0xEF 0xBB, which start a field name;
        // treat them as the start of a buffered line. Nothing else can have been seen yet.
        let seen = self.bom_seen;
        self.bom_seen = BOM.len();
        if seen > 0 {
            self.mode = Mode::Buffering;
            self.buffer(&BOM[..seen]);
            self.line_open = true;
        }
        Some(&chunk[i..])
    }

    /// Appends raw event bytes, switching to discarding when the event grows past the limit.
    fn buffer(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > MAX_EVENT_BYTES {
            self.buf = Vec::new();
            self.mode = Mode::Discarding;
            self.dropped += 1;
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Records how the chunk ended: a trailing CR may be half of a CRLF; a trailing non-line-end byte
    /// leaves the buffered line open.
    fn note_tail(&mut self, chunk: &[u8]) {
        match chunk.last() {
            Some(b'\r') => {
                self.skip_lf = true;
                self.line_open = false;
            }
            Some(b'\n') => self.line_open = false,
            Some(_) => self.line_open = self.mode != Mode::Normal,
            None => {}
        }
    }

    /// In Buffering/Discarding mode, finds the end (just past the blank line) of the event in progress.
    fn find_event_end(&mut self, chunk: &[u8], mut pos: usize) -> Option<usize> {
        let mut line_open = self.line_open;
        while pos < chunk.len() {
            let i = memchr2(b'\n', b'\r', &chunk[pos..])?;
            let blank = i == 0 && !line_open;
            let mut next = pos + i + 1;
            if chunk[pos + i] == b'\r' && next < chunk.len() && chunk[next] == b'\n' {
                next += 1;
            }
            if blank {
                return Some(next);
            }
            line_open = false;
            pos = next;
            // A CR ending the chunk is settled by `note_tail` (skip_lf) when no blank line follows.
        }
        None
    }
}

/// Parses complete lines of `bytes` as event-stream lines, dispatching each completed event. Returns how
/// many bytes belong to completed events; the rest is the start of an event still in progress.
fn parse_lines<F: FnMut(&SseEvent<'_>)>(bytes: &[u8], scratch: &mut Vec<u8>, on_event: &mut F) -> usize {
    let mut pos = 0;
    let mut event_start = 0;
    let mut pending = Pending::default();
    while pos < bytes.len() {
        let Some(i) = memchr2(b'\n', b'\r', &bytes[pos..]) else {
            break;
        };
        let line = &bytes[pos..pos + i];
        let mut next = pos + i + 1;
        if bytes[pos + i] == b'\r' && next < bytes.len() && bytes[next] == b'\n' {
            next += 1;
        }
        pos = next;
        if line.is_empty() {
            dispatch(&mut pending, scratch, on_event);
            event_start = pos;
        } else {
            field(line, &mut pending, scratch);
        }
    }
    event_start
}

/// WHATWG "dispatch the event": nothing happens when no data line was seen.
fn dispatch<F: FnMut(&SseEvent<'_>)>(pending: &mut Pending<'_>, scratch: &mut Vec<u8>, on_event: &mut F) {
    let p = std::mem::take(pending);
    if let Some(first) = p.data {
        let data: &[u8] = if p.multi { scratch } else { first };
        on_event(&SseEvent { event: p.event, data, id: p.id, retry: p.retry });
    }
    scratch.clear();
}

/// WHATWG "process the field" for one non-empty line.
fn field<'a>(line: &'a [u8], pending: &mut Pending<'a>, scratch: &mut Vec<u8>) {
    if line[0] == b':' {
        return; // comment
    }
    let (name, value) = match memchr::memchr(b':', line) {
        Some(c) => {
            let v = &line[c + 1..];
            (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
        }
        None => (line, &line[line.len()..]),
    };
    match name {
        b"data" => match pending.data {
            None => pending.data = Some(value),
            Some(first) => {
                if !pending.multi {
                    scratch.clear();
                    scratch.extend_from_slice(first);
                    pending.multi = true;
                }
                scratch.push(b'\n');
                scratch.extend_from_slice(value);
            }
        },
        b"event" => pending.event = value,
        // WHATWG: an id containing NUL is ignored; retry only when all ASCII digits.
        b"id" if memchr::memchr(0, value).is_none() => pending.id = Some(value),
        b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
            pending.retry = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An owned copy of an event, for comparing runs.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Owned {
        event: Vec<u8>,
        data: Vec<u8>,
        id: Option<Vec<u8>>,
        retry: Option<u64>,
    }

    fn scan(chunks: &[&[u8]]) -> Vec<Owned> {
        let mut s = SseScanner::new();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |e| {
                out.push(Owned {
                    event: e.event.to_vec(),
                    data: e.data.to_vec(),
                    id: e.id.map(<[u8]>::to_vec),
                    retry: e.retry,
                })
            });
        }
        out
    }

    fn ev(event: &str, data: &str) -> Owned {
        Owned { event: event.into(), data: data.into(), id: None, retry: None }
    }

    #[test]
    fn basic_fields_and_line_ends() {
        let got = scan(&[b"event: a\ndata: 1\n\nevent:b\r\ndata:2\r\n\r\ndata:  3\r\rdata\n\n"]);
        assert_eq!(got, vec![ev("a", "1"), ev("b", "2"), ev("", " 3"), ev("", "")]);
    }

    #[test]
    fn multi_line_data_comments_id_retry() {
        let got = scan(&[b": hello\nid: 7\nretry: 1500\ndata: a\n: mid\ndata: b\ndata\n\nretry: x1\ndata: c\n\n"]);
        assert_eq!(
            got,
            vec![
                Owned { event: vec![], data: b"a\nb\n".to_vec(), id: Some(b"7".to_vec()), retry: Some(1500) },
                ev("", "c"),
            ]
        );
    }

    #[test]
    fn no_data_no_dispatch_and_unterminated_event_dropped() {
        let got = scan(&[b"event: x\n\n: only a comment\n\ndata: tail-without-blank-line\n"]);
        assert!(got.is_empty());
    }

    #[test]
    fn crlf_split_across_chunks() {
        let got = scan(&[b"data: a\r", b"\n", b"\r", b"\ndata: b\r\n\r", b"\n"]);
        assert_eq!(got, vec![ev("", "a"), ev("", "b")]);
        // A CR then a LF in the next chunk is one line end, not a blank line.
        let got = scan(&[b"data: a\r", b"\ndata: b\n\n"]);
        assert_eq!(got, vec![ev("", "a\nb")]);
    }

    #[test]
    fn bom_is_stripped_once_even_split() {
        assert_eq!(scan(&[b"\xEF", b"\xBB\xBFdata: x\n\n"]), vec![ev("", "x")]);
        assert_eq!(scan(&[b"\xEF\xBB\xBFdata: x\n\n\xEF\xBB\xBFdata: y\n\n"]).len(), 1);
    }

    #[test]
    fn events_inside_one_chunk_are_borrowed() {
        let chunk = b"data: a\n\ndata: b\n\ndata: c".to_vec();
        let mut s = SseScanner::new();
        let range = chunk.as_ptr_range();
        let mut n = 0;
        s.feed(&chunk, |e| {
            assert!(range.contains(&e.data.as_ptr()));
            n += 1;
        });
        assert_eq!(n, 2);
        assert_eq!(s.buffered_len(), 7);
    }

    #[test]
    fn oversized_event_is_dropped_and_counted() {
        let mut s = SseScanner::new();
        let mut got = Vec::new();
        s.feed(b"data: ", |_| {});
        let big = vec![b'x'; 1024 * 1024];
        for _ in 0..17 {
            s.feed(&big, |_| {});
        }
        assert!(s.buffered_len() <= MAX_EVENT_BYTES);
        s.feed(b"\n\ndata: after\n\n", |e| got.push(e.data.to_vec()));
        assert_eq!(s.dropped_events(), 1);
        assert_eq!(got, vec![b"after".to_vec()]);
    }

    const SAMPLE: &[u8] = b"\xEF\xBB\xBF: comment\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\n\
event: ping\ndata: {}\n\nid: 1\ndata: x\rdata: y\r\rretry: 10\ndata:\n\n\
data: [DONE]\n\n";

    #[test]
    fn shotgun_every_split_of_two_and_three() {
        let whole = scan(&[SAMPLE]);
        assert_eq!(whole.len(), 5);
        for i in 0..=SAMPLE.len() {
            assert_eq!(scan(&[&SAMPLE[..i], &SAMPLE[i..]]), whole, "split at {i}");
            for j in i..=SAMPLE.len() {
                assert_eq!(scan(&[&SAMPLE[..i], &SAMPLE[i..j], &SAMPLE[j..]]), whole, "split at {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = SAMPLE.chunks(1).collect();
        assert_eq!(scan(&bytes), whole);
    }

    fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            Just(b"data: x".to_vec()),
            Just(b"data:".to_vec()),
            Just(b"data".to_vec()),
            Just(b"event: e".to_vec()),
            Just(b": c".to_vec()),
            Just(b"id: 3".to_vec()),
            Just(b"retry: 42".to_vec()),
            Just(Vec::new()),
            proptest::collection::vec(any::<u8>(), 0..6),
        ];
        let end = prop_oneof![Just(b"\n".to_vec()), Just(b"\r".to_vec()), Just(b"\r\n".to_vec())];
        proptest::collection::vec((line, end), 0..24)
            .prop_map(|v| v.into_iter().flat_map(|(l, e)| l.into_iter().chain(e)).collect())
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_events(
            stream in stream_strategy(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let whole = scan(&[&stream]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&stream[last..p]);
                last = p;
            }
            chunks.push(&stream[last..]);
            prop_assert_eq!(scan(&chunks), whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), cut in 0usize..512) {
            let cut = cut.min(bytes.len());
            let _ = scan(&[&bytes[..cut], &bytes[cut..]]);
        }
    }
}
