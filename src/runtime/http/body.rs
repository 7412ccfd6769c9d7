//! Body framing decoders (chunked, Content-Length, close-delimited): incremental state machines over byte
//! slices that survive a split at any byte. Pure: no I/O, no allocation, no panic on any input.
//!
//! Line endings in chunked framing must be CRLF. Bare LF is refused everywhere in the framing (size lines,
//! after data, trailers): parsers that disagree on bare LF are a known request-smuggling vector
//! ("chunk extension / LF" desync), and every client we relay for sends CRLF.

use thiserror::Error;

#[cfg(test)]
use super::head::BodyKind;
use super::head::ResponseBody;

/// Largest chunk size accepted (1 TiB, 2^40). Far above any real chunk, and low enough that the size can
/// never overflow while being accumulated from hex digits.
pub(crate) const MAX_CHUNK_SIZE: u64 = 1 << 40;

/// Longest chunk extension (the bytes after `;` on a size line) accepted. Extensions are ignored; the bound
/// stops a peer from making us scan an endless size line (hyper and others use a similar few-KiB cap).
pub(crate) const MAX_CHUNK_EXT_BYTES: usize = 4 * 1024;

/// Most trailer-section bytes accepted after the last chunk. Trailers are consumed and discarded; the bound
/// keeps the end of a body from becoming an unbounded head.
pub(crate) const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Progress of one `decode` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input used, framing included. Bytes after them belong to the next message.
    pub consumed: usize,
    /// The body is complete (for chunked: the last chunk and the trailer section were read).
    pub done: bool,
}

/// Why a chunked body was refused. The decoder stays failed: later calls return the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ChunkError {
    /// A size line without hex digits, or with a byte that is not hex, whitespace, `;` or CR.
    #[error("invalid chunk size")]
    InvalidSize,
    #[error("chunk size larger than {MAX_CHUNK_SIZE} bytes")]
    SizeTooLarge,
    #[error("chunk extension longer than {MAX_CHUNK_EXT_BYTES} bytes")]
    ExtensionTooLong,
    #[error("trailer section longer than {MAX_TRAILER_BYTES} bytes")]
    TrailersTooLarge,
    /// A CRLF was required (after a size line, after chunk data, ending a trailer) and something else came.
    #[error("expected CRLF in chunked framing")]
    ExpectedCrlf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first hex digit of a size line.
    SizeStart,
    /// Reading hex digits; holds the size so far.
    Size(u64),
    /// Whitespace after the digits (BWS before `;`, RFC 9112 §7.1.1).
    SizeWs(u64),
    /// Inside a chunk extension; holds the size and extension bytes seen.
    Ext(u64, usize),
    /// Saw CR ending a size line; LF must follow.
    SizeLf(u64),
    /// Reading chunk data; holds the bytes left in this chunk.
    Data(u64),
    /// Chunk data read; CR must follow.
    DataCr,
    /// CR after data read; LF must follow.
    DataLf,
    /// At the start of a trailer line (or the final empty line); holds trailer bytes seen so far.
    TrailerStart(usize),
    /// Inside a trailer line.
    Trailer(usize),
    /// CR ending a trailer line read; LF must follow.
    TrailerLf(usize),
    /// CR of the final empty line read; LF must follow.
    EndLf,
    Done,
    Failed(ChunkError),
}

/// Decoder for a `Transfer-Encoding: chunked` body. Feed it bytes as they arrive; it hands out the data
/// slices (without framing) and says how much input it used.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        Self { state: State::SizeStart }
    }

    /// Whether the last chunk and trailer section have been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes as much of `input` as belongs to this body, calling `on_data` with each run of body data (a
    /// sub-slice of `input`, never empty). Stops at the end of the body: bytes after it are left unconsumed.
    pub fn decode<'a>(&mut self, input: &'a [u8], on_data: &mut dyn FnMut(&'a [u8])) -> Result<Decoded, ChunkError> {
        let mut pos = 0;
        while pos < input.len() {
            let b = input[pos];
            let next = match self.state {
                State::Done => break,
                State::Failed(e) => return Err(e),
                State::Data(left) => {
                    // Hand out as much of the chunk as this input holds, in one slice.
                    let avail = input.len() - pos;
                    // `left` may exceed usize on 32-bit targets; take the smaller without truncating.
                    let take = usize::try_from(left).map_or(avail, |l| l.min(avail));
                    on_data(&input[pos..pos + take]);
                    pos += take;
                    let left = left - take as u64;
                    self.state = if left == 0 { State::DataCr } else { State::Data(left) };
                    continue;
                }
                State::SizeStart => match hex_value(b) {
                    Some(v) => Ok(State::Size(v)),
                    None => Err(ChunkError::InvalidSize),
                },
                State::Size(n) => match (hex_value(b), b) {
                    (Some(v), _) => {
                        if n > MAX_CHUNK_SIZE >> 4 || (n << 4) + v > MAX_CHUNK_SIZE {
                            Err(ChunkError::SizeTooLarge)
                        } else {
                            Ok(State::Size((n << 4) + v))
                        }
                    }
                    (None, b' ' | b'\t') => Ok(State::SizeWs(n)),
                    (None, b';') => Ok(State::Ext(n, 0)),
                    (None, b'\r') => Ok(State::SizeLf(n)),
                    (None, b'\n') => Err(ChunkError::ExpectedCrlf),
                    (None, _) => Err(ChunkError::InvalidSize),
                },
                State::SizeWs(n) => match b {
                    b' ' | b'\t' => Ok(State::SizeWs(n)),
                    b';' => Ok(State::Ext(n, 0)),
                    b'\r' => Ok(State::SizeLf(n)),
                    b'\n' => Err(ChunkError::ExpectedCrlf),
                    _ => Err(ChunkError::InvalidSize),
                },
                State::Ext(n, len) => match b {
                    b'\r' => Ok(State::SizeLf(n)),
                    b'\n' => Err(ChunkError::ExpectedCrlf),
                    _ if len >= MAX_CHUNK_EXT_BYTES => Err(ChunkError::ExtensionTooLong),
                    _ => Ok(State::Ext(n, len + 1)),
                },
                State::SizeLf(n) => match b {
                    b'\n' if n == 0 => Ok(State::TrailerStart(0)),
                    b'\n' => Ok(State::Data(n)),
                    _ => Err(ChunkError::ExpectedCrlf),
                },
                State::DataCr => match b {
                    b'\r' => Ok(State::DataLf),
                    _ => Err(ChunkError::ExpectedCrlf),
                },
                State::DataLf => match b {
                    b'\n' => Ok(State::SizeStart),
                    _ => Err(ChunkError::ExpectedCrlf),
                },
                State::TrailerStart(seen) => match b {
                    b'\r' => Ok(State::EndLf),
                    b'\n' => Err(ChunkError::ExpectedCrlf),
                    _ => trailer_byte(seen),
                },
                State::Trailer(seen) => match b {
                    b'\r' => Ok(State::TrailerLf(seen + 1)),
                    b'\n' => Err(ChunkError::ExpectedCrlf),
                    _ => trailer_byte(seen),
                },
                State::TrailerLf(seen) => match b {
                    b'\n' => Ok(State::TrailerStart(seen + 1)),
                    _ => Err(ChunkError::ExpectedCrlf),
                },
                State::EndLf => match b {
                    b'\n' => Ok(State::Done),
                    _ => Err(ChunkError::ExpectedCrlf),
                },
            };
            match next {
                Ok(s) => {
                    self.state = s;
                    pos += 1;
                }
                Err(e) => {
                    self.state = State::Failed(e);
                    return Err(e);
                }
            }
        }
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        Ok(Decoded { consumed: pos, done: self.is_done() })
    }
}

fn trailer_byte(seen: usize) -> Result<State, ChunkError> {
    if seen >= MAX_TRAILER_BYTES {
        Err(ChunkError::TrailersTooLarge)
    } else {
        Ok(State::Trailer(seen + 1))
    }
}

/// Decoder for a `Content-Length` body: hands out exactly that many bytes, then reports done.
#[derive(Debug, Clone)]
pub(crate) struct LengthDecoder {
    remaining: u64,
}

impl LengthDecoder {
    /// A decoder for a body of `len` bytes.
    pub(crate) fn new(len: u64) -> Self {
        Self { remaining: len }
    }

    /// Bytes of the body not yet seen.
    #[cfg(test)]
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether the whole body has been seen.
    pub(crate) fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Consumes up to the remaining body length from `input`, calling `on_data` with it (if non-empty).
    /// Never fails; the `Result` matches `ChunkedDecoder::decode` so callers can treat both alike.
    pub(crate) fn decode<'a>(
        &mut self,
        input: &'a [u8],
        on_data: &mut dyn FnMut(&'a [u8]),
    ) -> Result<Decoded, ChunkError> {
        let take = usize::try_from(self.remaining).map_or(input.len(), |r| r.min(input.len()));
        if take > 0 {
            on_data(&input[..take]);
            self.remaining -= take as u64;
        }
        Ok(Decoded { consumed: take, done: self.is_done() })
    }
}

/// Any body framing behind one `decode`, so the relay can drive a body without matching on its kind.
#[derive(Debug, Clone)]
pub(crate) enum BodyDecoder {
    Length(LengthDecoder),
    Chunked(ChunkedDecoder),
    /// Runs until the peer closes: every byte is data and `done` never becomes true (the caller ends the body
    /// at EOF).
    CloseDelimited,
}

impl BodyDecoder {
    /// The decoder for a request body.
    #[cfg(test)]
    pub(crate) fn for_request(kind: BodyKind) -> Self {
        match kind {
            BodyKind::Empty => BodyDecoder::Length(LengthDecoder::new(0)),
            BodyKind::Length(n) => BodyDecoder::Length(LengthDecoder::new(n)),
            BodyKind::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new()),
        }
    }

    /// The decoder for a response body.
    pub(crate) fn for_response(kind: ResponseBody) -> Self {
        match kind {
            ResponseBody::Empty => BodyDecoder::Length(LengthDecoder::new(0)),
            ResponseBody::Length(n) => BodyDecoder::Length(LengthDecoder::new(n)),
            ResponseBody::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new()),
            ResponseBody::CloseDelimited => BodyDecoder::CloseDelimited,
        }
    }

    /// Whether the body is complete (never true for close-delimited bodies).
    #[cfg(test)]
    pub(crate) fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Length(d) => d.is_done(),
            BodyDecoder::Chunked(d) => d.is_done(),
            BodyDecoder::CloseDelimited => false,
        }
    }

    /// See `ChunkedDecoder::decode`.
    pub(crate) fn decode<'a>(
        &mut self,
        input: &'a [u8],
        on_data: &mut dyn FnMut(&'a [u8]),
    ) -> Result<Decoded, ChunkError> {
        match self {
            BodyDecoder::Length(d) => d.decode(input, on_data),
            BodyDecoder::Chunked(d) => d.decode(input, on_data),
            BodyDecoder::CloseDelimited => {
                if !input.is_empty() {
                    on_data(input);
                }
                Ok(Decoded { consumed: input.len(), done: false })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::encode::{write_chunk, LAST_CHUNK};
    use super::*;
    use proptest::prelude::*;

    /// Decodes `input` in one call: (data, consumed, done) or the error.
    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut data = Vec::new();
        let r = d.decode(input, &mut |s| data.extend_from_slice(s))?;
        Ok((data, r.consumed, r.done))
    }

    /// Decodes `input` fed in the given pieces, re-offering unconsumed bytes like a real reader would.
    fn decode_pieces(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut data = Vec::new();
        let mut used = 0;
        let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c <= input.len()).collect();
        bounds.sort_unstable();
        bounds.push(input.len());
        for end in bounds {
            if end < used {
                continue;
            }
            let r = d.decode(&input[used..end], &mut |s| {
                assert!(!s.is_empty(), "empty data slice");
                data.extend_from_slice(s)
            })?;
            used += r.consumed;
            if r.done {
                break;
            }
        }
        Ok((data, used, d.is_done()))
    }

    const BODY_FIXTURES: &[&[u8]] = &[
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"A;name=value\r\n0123456789\r\n0\r\n\r\nNEXT",
        b"a \t;ext\r\n0123456789\r\n0;last\r\nTrailer: x\r\nOther: y\r\n\r\n",
        b"000005\r\nhello\r\n0000\r\n\r\n",
        b"0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"zz\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"0\r\n\n",
        b"0\r\nTrailer: a\n\r\n",
        b"10000000000\r\n",
        b"ffffffffffffffffffff\r\n",
    ];

    #[test]
    fn shotgun_every_fixture_split_at_every_byte_and_pair_of_bytes() {
        for f in BODY_FIXTURES {
            let whole = decode_all(f);
            for i in 0..=f.len() {
                assert_eq!(decode_pieces(f, &[i]), whole, "split at {i} of {:?}", String::from_utf8_lossy(f));
                for j in i..=f.len() {
                    assert_eq!(decode_pieces(f, &[i, j]), whole, "split at {i},{j}");
                }
            }
            // Byte at a time.
            let every: Vec<usize> = (0..f.len()).collect();
            assert_eq!(decode_pieces(f, &every), whole);
        }
    }

    #[test]
    fn decodes_and_stops_at_the_end_of_the_body() {
        let (data, consumed, done) = decode_all(b"A;name=value\r\n0123456789\r\n0\r\n\r\nNEXT").expect("valid");
        assert_eq!(data, b"0123456789");
        assert!(done);
        assert_eq!(consumed, b"A;name=value\r\n0123456789\r\n0\r\n\r\n".len());
    }

    #[test]
    fn trailers_are_consumed_and_discarded() {
        let input = b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n";
        assert_eq!(decode_all(input), Ok((b"abc".to_vec(), input.len(), true)));
    }

    #[test]
    fn incomplete_input_is_not_an_error() {
        assert_eq!(decode_all(b"5\r\nhel"), Ok((b"hel".to_vec(), 6, false)));
        assert_eq!(decode_all(b""), Ok((Vec::new(), 0, false)));
        assert_eq!(decode_all(b"0\r\n\r"), Ok((Vec::new(), 4, false)));
    }

    #[test]
    fn bare_lf_is_refused_everywhere() {
        for input in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5;ext\nhello\r\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\nX: y\n\r\n",
            b"0\n\r\n",
        ] {
            assert_eq!(decode_all(input), Err(ChunkError::ExpectedCrlf), "{input:?}");
        }
    }

    #[test]
    fn bad_sizes_are_refused() {
        for input in [&b"\r\n"[..], b"x\r\n", b"-5\r\n", b"+5\r\n", b" 5\r\n", b"5 5\r\n", b"0x5\r\n", b";\r\n"] {
            assert_eq!(decode_all(input), Err(ChunkError::InvalidSize), "{input:?}");
        }
        assert_eq!(decode_all(b"10000000000\r\n").map(|r| r.2), Ok(false), "2^40 itself is allowed");
        for input in [&b"10000000001\r\n"[..], b"ffffffffffffffffffffffff\r\n"] {
            assert_eq!(decode_all(input), Err(ChunkError::SizeTooLarge), "{input:?}");
        }
    }

    #[test]
    fn data_must_be_followed_by_crlf() {
        assert_eq!(decode_all(b"3\r\nabcd\r\n"), Err(ChunkError::ExpectedCrlf));
        assert_eq!(decode_all(b"3\r\nabc\rX"), Err(ChunkError::ExpectedCrlf));
    }

    #[test]
    fn limits_on_extensions_and_trailers() {
        let mut ext = b"1;".to_vec();
        ext.extend(std::iter::repeat_n(b'a', MAX_CHUNK_EXT_BYTES));
        assert_eq!(decode_all(&ext).map(|r| r.2), Ok(false), "exactly at the limit");
        ext.push(b'a');
        assert_eq!(decode_all(&ext), Err(ChunkError::ExtensionTooLong));

        let mut trailer = b"0\r\n".to_vec();
        while trailer.len() < MAX_TRAILER_BYTES + 16 {
            trailer.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(decode_all(&trailer), Err(ChunkError::TrailersTooLarge));
    }

    #[test]
    fn a_failed_decoder_stays_failed() {
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.decode(b"zz", &mut |_| {}), Err(ChunkError::InvalidSize));
        assert_eq!(d.decode(b"0\r\n\r\n", &mut |_| {}), Err(ChunkError::InvalidSize));
        assert!(!d.is_done());
    }

    #[test]
    fn done_decoder_consumes_nothing_more() {
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.decode(b"0\r\n\r\n", &mut |_| {}), Ok(Decoded { consumed: 5, done: true }));
        assert_eq!(d.decode(b"GET /", &mut |_| {}), Ok(Decoded { consumed: 0, done: true }));
    }

    #[test]
    fn length_decoder_takes_exactly_its_length() {
        let mut d = LengthDecoder::new(5);
        let mut data = Vec::new();
        assert_eq!(d.decode(b"hel", &mut |s| data.extend_from_slice(s)), Ok(Decoded { consumed: 3, done: false }));
        assert_eq!(d.remaining(), 2);
        assert_eq!(d.decode(b"loNEXT", &mut |s| data.extend_from_slice(s)), Ok(Decoded { consumed: 2, done: true }));
        assert_eq!(data, b"hello");
        assert_eq!(
            d.decode(b"more", &mut |_| panic!("no data after the end")),
            Ok(Decoded { consumed: 0, done: true })
        );
        assert!(LengthDecoder::new(0).is_done());
    }

    #[test]
    fn body_decoder_dispatches_by_kind() {
        assert!(BodyDecoder::for_request(BodyKind::Empty).is_done());
        assert!(!BodyDecoder::for_request(BodyKind::Chunked).is_done());
        assert!(BodyDecoder::for_response(ResponseBody::Empty).is_done());
        let mut d = BodyDecoder::for_response(ResponseBody::CloseDelimited);
        let mut n = 0;
        assert_eq!(d.decode(b"abc", &mut |s| n += s.len()), Ok(Decoded { consumed: 3, done: false }));
        assert_eq!(n, 3);
        let mut d = BodyDecoder::for_request(BodyKind::Chunked);
        assert_eq!(d.decode(b"1\r\na\r\n0\r\n\r\n", &mut |_| {}).map(|r| r.done), Ok(true));
        assert!(d.is_done());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024), cut in 0usize..1024) {
            let whole = decode_all(&bytes);
            prop_assert_eq!(decode_pieces(&bytes, &[cut]), whole);
        }

        #[test]
        fn random_chunkings_round_trip(
            payload in proptest::collection::vec(any::<u8>(), 0..2048),
            sizes in proptest::collection::vec(1usize..300, 1..20),
            cuts in proptest::collection::vec(0usize..4096, 0..8),
        ) {
            // Encode the payload with the given chunk sizes (cycled), then decode it fed in random pieces.
            let mut wire = Vec::new();
            let mut rest = &payload[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                write_chunk(&mut wire, &rest[..n]);
                rest = &rest[n..];
                i += 1;
            }
            wire.extend_from_slice(LAST_CHUNK);
            let body_len = wire.len();
            wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
            let got = decode_pieces(&wire, &cuts);
            prop_assert_eq!(got, Ok((payload, body_len, true)));
        }
    }
}
