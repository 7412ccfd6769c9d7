//! The mock's HTTP/1.1 request decoding (head via `httparse`, Content-Length and chunked bodies) and the
//! few response-head writers it needs. Pure over byte slices: no socket is touched here.

use std::ops::Range;

/// Most header lines a request may carry; real clients send ~20, the gateway fewer.
pub(crate) const MAX_HEADERS: usize = 96;
/// Largest request head accepted: generous for cookies/long user agents, small enough to bound memory.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest request body accepted: larger than any realistic prompt payload in tests and benches.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Why a request could not be decoded; the connection answers 400 and closes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DecodeError {
    #[error("malformed request head: {0}")]
    Head(httparse::Error),
    #[error("request head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("request body larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("invalid Content-Length")]
    ContentLength,
    #[error("malformed chunked body")]
    Chunked,
}

/// A decoded request head, as offsets into the connection buffer so that no string is allocated.
#[derive(Debug, Default)]
pub(crate) struct Head {
    pub(crate) method: Range<usize>,
    pub(crate) target: Range<usize>,
    pub(crate) headers: Vec<(Range<usize>, Range<usize>)>,
    /// Bytes of the head including the blank line.
    pub(crate) len: usize,
    /// Minor HTTP version (0 or 1).
    pub(crate) minor: u8,
}

fn span(buf: &[u8], part: &[u8]) -> Range<usize> {
    // httparse hands out sub-slices of `buf`, so the offset is the pointer difference.
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    start..start + part.len()
}

/// Parses a head from the front of `buf` into `head` (its vectors are reused).
/// `Ok(false)`: not enough bytes yet.
pub(crate) fn parse_head(buf: &[u8], head: &mut Head) -> Result<bool, DecodeError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            head.method = span(buf, req.method.unwrap_or("").as_bytes());
            head.target = span(buf, req.path.unwrap_or("").as_bytes());
            head.minor = req.version.unwrap_or(1);
            head.headers.clear();
            for h in req.headers.iter() {
                head.headers.push((span(buf, h.name.as_bytes()), span(buf, h.value)));
            }
            head.len = n;
            Ok(true)
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => Err(DecodeError::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(false),
        Err(e) => Err(DecodeError::Head(e)),
    }
}

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    Length(usize),
    Chunked,
}

/// Where a complete body lies once decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyAt {
    /// `buf[range]` holds the body verbatim (Content-Length framing).
    InBuf(Range<usize>),
    /// The chunked body was decoded into the caller's body buffer.
    Decoded,
}

/// Reads the framing of the body from the headers (RFC 9112 §6.3: chunked wins over Content-Length).
pub(crate) fn body_kind(buf: &[u8], head: &Head) -> Result<BodyKind, DecodeError> {
    let mut kind = BodyKind::Length(0);
    for (n, v) in &head.headers {
        let name = &buf[n.clone()];
        let value = &buf[v.clone()];
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if trim(value).eq_ignore_ascii_case(b"chunked") {
                return Ok(BodyKind::Chunked);
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(trim(value))
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or(DecodeError::ContentLength)?;
            if n > MAX_BODY_BYTES {
                return Err(DecodeError::BodyTooLarge);
            }
            kind = BodyKind::Length(n);
        }
    }
    Ok(kind)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &v[start..end]
}

/// Tries to complete the body starting at `buf[from..]`. Returns where the body is and how many bytes of
/// `buf` the whole request consumed, or `Ok(None)` when more bytes are needed.
pub(crate) fn body(
    buf: &[u8],
    from: usize,
    kind: BodyKind,
    decoded: &mut Vec<u8>,
) -> Result<Option<(BodyAt, usize)>, DecodeError> {
    match kind {
        BodyKind::Length(n) => {
            let end = from.saturating_add(n);
            if buf.len() >= end {
                Ok(Some((BodyAt::InBuf(from..end), end)))
            } else {
                Ok(None)
            }
        }
        BodyKind::Chunked => {
            decoded.clear();
            let rest = buf.get(from..).unwrap_or(&[]);
            Ok(decode_chunked(rest, decoded)?.map(|used| (BodyAt::Decoded, from + used)))
        }
    }
}

/// Decodes a complete chunked body (RFC 9112 §7.1) from the front of `input` into `out`; chunk extensions
/// and trailers are skipped. Returns the bytes consumed, or `Ok(None)` if `input` ends early.
pub(crate) fn decode_chunked(input: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, DecodeError> {
    let mut pos = 0;
    loop {
        let Some(eol) = memchr::memmem::find(&input[pos..], b"\r\n") else {
            return if input.len() - pos > 1024 { Err(DecodeError::Chunked) } else { Ok(None) };
        };
        let line = &input[pos..pos + eol];
        let size_part = line.split(|b| *b == b';').next().unwrap_or(&[]);
        let size_str = std::str::from_utf8(trim(size_part)).map_err(|_| DecodeError::Chunked)?;
        let size = usize::from_str_radix(size_str, 16).map_err(|_| DecodeError::Chunked)?;
        pos += eol + 2;
        if size == 0 {
            // Trailer section: header lines until an empty line.
            loop {
                let Some(eol) = memchr::memmem::find(&input[pos..], b"\r\n") else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        if out.len().saturating_add(size) > MAX_BODY_BYTES {
            return Err(DecodeError::BodyTooLarge);
        }
        let end = pos.checked_add(size).ok_or(DecodeError::Chunked)?;
        if input.len() < end + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&input[pos..end]);
        if &input[end..end + 2] != b"\r\n" {
            return Err(DecodeError::Chunked);
        }
        pos = end + 2;
    }
}

/// The reason phrase for the statuses the mock answers; the gateway must not depend on it.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        424 => "Failed Dependency",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// Writes a complete response with a Content-Length body into `out` (cleared first).
pub(crate) fn full_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) {
    use std::io::Write;
    out.clear();
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    for (n, v) in extra_headers {
        let _ = write!(out, "{n}: {v}\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// `data` as one gzip member (`x-mock-gzip`).
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// Writes the head of a chunked streaming response into `out` (cleared first).
pub(crate) fn stream_head(out: &mut Vec<u8>, content_type: &str, extra_headers: &[(&str, &str)]) {
    use std::io::Write;
    out.clear();
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
    );
    for (n, v) in extra_headers {
        let _ = write!(out, "{n}: {v}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk (RFC 9112 §7.1) holding `payload` to `out`.
pub(crate) fn push_chunk(out: &mut Vec<u8>, payload: &[u8]) {
    use std::io::Write;
    let _ = write!(out, "{:x}\r\n", payload.len());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk that ends a chunked body.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn head_partial_then_complete() {
        let mut h = Head::default();
        let req = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(parse_head(&req[..20], &mut h), Ok(false));
        assert_eq!(parse_head(req, &mut h), Ok(true));
        assert_eq!(&req[h.method.clone()], b"POST");
        assert_eq!(&req[h.target.clone()], b"/v1/messages");
        assert_eq!(body_kind(req, &h), Ok(BodyKind::Length(2)));
        let mut d = Vec::new();
        let (at, used) = body(req, h.len, BodyKind::Length(2), &mut d).unwrap().unwrap();
        assert_eq!(at, BodyAt::InBuf(h.len..h.len + 2));
        assert_eq!(used, req.len());
    }

    #[test]
    fn chunked_every_split() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let full = wire.len() - 4;
        for cut in 0..wire.len() {
            let mut out = Vec::new();
            let r = decode_chunked(&wire[..cut], &mut out).unwrap();
            if cut < full {
                assert_eq!(r, None, "cut {cut}");
            } else {
                assert_eq!(r, Some(full));
                assert_eq!(out, b"hello world");
            }
        }
    }

    #[test]
    fn chunked_rejects_bad_size_and_missing_crlf() {
        assert_eq!(decode_chunked(b"zz\r\n", &mut Vec::new()), Err(DecodeError::Chunked));
        assert_eq!(decode_chunked(b"2\r\nabXY", &mut Vec::new()), Err(DecodeError::Chunked));
    }

    #[test]
    fn content_length_limits() {
        let req = b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n";
        let mut h = Head::default();
        assert_eq!(parse_head(req, &mut h), Ok(true));
        assert_eq!(body_kind(req, &h), Err(DecodeError::BodyTooLarge));
        let req = b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n";
        assert_eq!(parse_head(req, &mut h), Ok(true));
        assert_eq!(body_kind(req, &h), Err(DecodeError::ContentLength));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut h = Head::default();
            if let Ok(true) = parse_head(&bytes, &mut h) {
                let _ = body_kind(&bytes, &h);
            }
            let _ = decode_chunked(&bytes, &mut Vec::new());
        }
    }
}
