//! Request and response heads: parsing (via `httparse`) and message-framing decisions. Pure over bytes:
//! no I/O, no allocation beyond the returned head, no panic on any input.
//!
//! Framing rules follow RFC 9112 §6 strictly because this is where request smuggling is stopped: a head
//! whose body length two parsers could disagree on is refused rather than guessed.

use thiserror::Error;

/// Largest head we buffer. Real clients send a few KiB; 64 KiB leaves room for big cookies or tokens while
/// bounding the memory an idle attacker can pin per connection. Past it the server answers 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Most header fields per head (the `httparse` slot array lives on the stack, so this is also its size).
/// LLM clients send ~20; 128 tolerates proxies that append their own without allowing a field flood.
pub(crate) const MAX_HEADERS: usize = 128;

/// One header field as received: the name keeps its case (forwarded byte for byte), the value is raw bytes
/// (field values may carry obs-text, so they are not forced into UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) name: String,
    pub(crate) value: Vec<u8>,
}

/// How a request body is framed, decided once from the head so that every later stage agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// Neither Content-Length nor Transfer-Encoding: no body (RFC 9112 §6.3 rule 7).
    Empty,
    /// `Content-Length: n`. `Length(0)` is kept distinct from `Empty` so the header can be forwarded as sent.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head. `head_len` is the number of buffer bytes the head occupied; the body starts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub(crate) method: String,
    pub(crate) target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) minor_version: u8,
    pub(crate) headers: Vec<Header>,
    pub(crate) body: BodyKind,
    /// Whether the connection may serve another request after this one (HTTP/1.1 unless `Connection: close`;
    /// HTTP/1.0 only with `Connection: keep-alive`).
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request: the client waits for `100 Continue` before the body.
    pub(crate) expect_continue: bool,
    pub head_len: usize,
}

/// How a response body is framed (RFC 9112 §6.3), including the cases where the request decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseBody {
    /// 1xx, 204, 304, or any answer to HEAD.
    Empty,
    Length(u64),
    Chunked,
    /// No framing header: the body runs until the upstream closes the connection.
    CloseDelimited,
}

/// A parsed response head. 1xx heads are returned too (with `ResponseBody::Empty`) so the caller can skip
/// `100 Continue` and read the next head from `head_len` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) minor_version: u8,
    pub(crate) headers: Vec<Header>,
    pub(crate) body: ResponseBody,
    /// Whether the upstream connection can be reused after this body (false for close-delimited bodies).
    pub(crate) keep_alive: bool,
    pub(crate) head_len: usize,
}

/// What exactly was wrong with a malformed head, for logs and tests (all of them answer 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Bad method token or other token where one is required.
    Token,
    /// Bad HTTP version (only HTTP/1.0 and HTTP/1.1 are spoken).
    Version,
    /// Invalid byte in a header name; this includes obs-fold continuation lines, which RFC 9112 §5.2
    /// lets a server reject and which we always reject.
    HeaderName,
    /// Invalid byte in a header value.
    HeaderValue,
    /// Bad line ending.
    NewLine,
    /// Bad status code in a response.
    Status,
    /// More than one Host field (RFC 9112 §3.2 requires 400).
    DuplicateHost,
    /// No Host field on an HTTP/1.1 request (RFC 9112 §3.2 requires 400 from a server; the parser
    /// accepts such heads, the server leg refuses them).
    MissingHost,
    /// Transfer-Encoding on an HTTP/1.0 message: its framing cannot be trusted (RFC 9112 §6.1).
    TransferEncodingOnHttp10,
    /// Transfer-Encoding whose final coding is not `chunked`, that repeats `chunked`, or that is empty.
    BadTransferEncoding,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Malformed::Token => "invalid token",
            Malformed::Version => "unsupported HTTP version",
            Malformed::HeaderName => "invalid header name (or obs-fold)",
            Malformed::HeaderValue => "invalid header value",
            Malformed::NewLine => "invalid line ending",
            Malformed::Status => "invalid status code",
            Malformed::DuplicateHost => "more than one Host header",
            Malformed::MissingHost => "HTTP/1.1 request without a Host header",
            Malformed::TransferEncodingOnHttp10 => "Transfer-Encoding on an HTTP/1.0 message",
            Malformed::BadTransferEncoding => "chunked is not the final transfer coding",
        };
        f.write_str(s)
    }
}

/// Why a head was refused. `status()` gives the answer a server sends; on the upstream side the caller maps
/// any of these to its own bad-gateway error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeadError {
    #[error("head larger than {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    #[error("malformed head: {0}")]
    Malformed(Malformed),
    /// Content-Length with Transfer-Encoding, or Content-Length values that differ: the classic smuggling
    /// shapes, refused rather than resolved.
    #[error("conflicting message framing (Content-Length with Transfer-Encoding, or differing Content-Length)")]
    ConflictingFraming,
    #[error("invalid Content-Length")]
    BadContentLength,
    /// A transfer coding other than `chunked` (e.g. `gzip, chunked`): valid HTTP we do not implement.
    #[error("unsupported transfer coding")]
    UnsupportedTransferEncoding,
}

impl HeadError {
    /// The status a server answers this error with: 431 for size limits, 501 for codings we do not
    /// implement, 400 for everything else.
    pub(crate) fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::UnsupportedTransferEncoding => 501,
            HeadError::Malformed(_) | HeadError::ConflictingFraming | HeadError::BadContentLength => 400,
        }
    }
}

fn map_httparse(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::HeaderName => HeadError::Malformed(Malformed::HeaderName),
        httparse::Error::HeaderValue => HeadError::Malformed(Malformed::HeaderValue),
        httparse::Error::NewLine => HeadError::Malformed(Malformed::NewLine),
        httparse::Error::Status => HeadError::Malformed(Malformed::Status),
        httparse::Error::Token => HeadError::Malformed(Malformed::Token),
        httparse::Error::Version => HeadError::Malformed(Malformed::Version),
    }
}

/// Only the first `MAX_HEAD_BYTES` are ever scanned, so a peer streaming an endless head costs bounded work
/// per call; a head still incomplete at that size is `TooLarge`.
fn capped(buf: &[u8]) -> &[u8] {
    &buf[..buf.len().min(MAX_HEAD_BYTES)]
}

/// Parses a request head from the start of `buf`. `Ok(None)` means "not enough bytes yet": read more and
/// call again with the whole buffer.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    let scan = capped(buf);
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let head_len = match req.parse(scan).map_err(map_httparse)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial if scan.len() >= MAX_HEAD_BYTES => return Err(HeadError::TooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    // httparse fills every field on Complete; the defaults are unreachable but keep this panic-free.
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default().to_owned();
    let minor_version = req.version.unwrap_or(1);
    let headers = own_headers(req.headers);

    let framing = Framing::scan(&headers, minor_version)?;
    if framing.host_count > 1 {
        return Err(HeadError::Malformed(Malformed::DuplicateHost));
    }
    let body = match (framing.chunked, framing.content_length) {
        (true, _) => BodyKind::Chunked,
        (false, Some(n)) => BodyKind::Length(n),
        (false, None) => BodyKind::Empty,
    };
    Ok(Some(RequestHead {
        method,
        target,
        minor_version,
        keep_alive: framing.keep_alive(minor_version),
        // RFC 9110 §10.1.1: a server MUST ignore 100-continue from an HTTP/1.0 client.
        expect_continue: minor_version >= 1 && framing.expect_continue,
        headers,
        body,
        head_len,
    }))
}

/// Parses a response head from the start of `buf`. `request_was_head` says whether the request was HEAD,
/// whose answer never has a body whatever its headers claim. `Ok(None)` means "not enough bytes yet".
pub(crate) fn parse_response_head(buf: &[u8], request_was_head: bool) -> Result<Option<ResponseHead>, HeadError> {
    let scan = capped(buf);
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let head_len = match resp.parse(scan).map_err(map_httparse)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial if scan.len() >= MAX_HEAD_BYTES => return Err(HeadError::TooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    let status = resp.code.unwrap_or_default();
    // httparse takes any three digits; RFC 9110 §15 defines 100–599, and relaying `0` or `999` would
    // hand the client a status line it cannot parse.
    if !(100..=599).contains(&status) {
        return Err(HeadError::Malformed(Malformed::Status));
    }
    let reason = resp.reason.unwrap_or_default().to_owned();
    let minor_version = resp.version.unwrap_or(1);
    let headers = own_headers(resp.headers);

    let framing = Framing::scan(&headers, minor_version)?;
    let no_body = request_was_head || (100..200).contains(&status) || status == 204 || status == 304;
    let body = if no_body {
        ResponseBody::Empty
    } else if framing.chunked {
        ResponseBody::Chunked
    } else if let Some(n) = framing.content_length {
        ResponseBody::Length(n)
    } else {
        ResponseBody::CloseDelimited
    };
    let keep_alive = body != ResponseBody::CloseDelimited && framing.keep_alive(minor_version);
    Ok(Some(ResponseHead { status, reason, minor_version, headers, body, keep_alive, head_len }))
}

fn own_headers(raw: &[httparse::Header<'_>]) -> Vec<Header> {
    raw.iter().map(|h| Header { name: h.name.to_owned(), value: h.value.to_vec() }).collect()
}

/// The framing-relevant facts of a head, gathered in one pass over its fields and validated together.
#[derive(Default)]
struct Framing {
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
    keep_alive_token: bool,
    expect_continue: bool,
    host_count: usize,
}

impl Framing {
    fn scan(headers: &[Header], minor_version: u8) -> Result<Self, HeadError> {
        let mut f = Framing::default();
        let mut saw_te = false;
        // Codings across all Transfer-Encoding fields, in order: only their count of `chunked` and whether the
        // last one is `chunked` matter.
        let mut chunked_count = 0usize;
        let mut last_is_chunked = false;
        let mut other_coding = false;
        for h in headers {
            let name = h.name.as_str();
            if name.eq_ignore_ascii_case("content-length") {
                for item in split_list(&h.value) {
                    let n = parse_content_length(item)?;
                    match f.content_length {
                        Some(prev) if prev != n => return Err(HeadError::ConflictingFraming),
                        _ => f.content_length = Some(n),
                    }
                }
                if split_list(&h.value).next().is_none() {
                    return Err(HeadError::BadContentLength);
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                saw_te = true;
                for coding in split_list(&h.value) {
                    // A coding may carry parameters (`gzip;q=1` is not valid here, but be exact about names).
                    let coding_name = trim_ows(coding.split(|&b| b == b';').next().unwrap_or_default());
                    if coding_name.eq_ignore_ascii_case(b"chunked") {
                        chunked_count += 1;
                        last_is_chunked = true;
                    } else {
                        other_coding = true;
                        last_is_chunked = false;
                    }
                }
            } else if name.eq_ignore_ascii_case("connection") {
                for token in split_list(&h.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        f.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        f.keep_alive_token = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("expect") {
                f.expect_continue |= trim_ows(&h.value).eq_ignore_ascii_case(b"100-continue");
            } else if name.eq_ignore_ascii_case("host") {
                f.host_count += 1;
            }
        }
        if saw_te {
            if minor_version == 0 {
                return Err(HeadError::Malformed(Malformed::TransferEncodingOnHttp10));
            }
            if f.content_length.is_some() {
                return Err(HeadError::ConflictingFraming);
            }
            if !last_is_chunked || chunked_count != 1 {
                return Err(HeadError::Malformed(Malformed::BadTransferEncoding));
            }
            if other_coding {
                return Err(HeadError::UnsupportedTransferEncoding);
            }
            f.chunked = true;
        }
        Ok(f)
    }

    fn keep_alive(&self, minor_version: u8) -> bool {
        if self.close {
            false
        } else {
            minor_version >= 1 || self.keep_alive_token
        }
    }
}

/// RFC 9110 §8.6: `Content-Length = 1*DIGIT`. No sign, no whitespace inside, no hex; overflow is an error.
fn parse_content_length(item: &[u8]) -> Result<u64, HeadError> {
    if item.is_empty() {
        return Err(HeadError::BadContentLength);
    }
    let mut n: u64 = 0;
    for &b in item {
        if !b.is_ascii_digit() {
            return Err(HeadError::BadContentLength);
        }
        n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(b - b'0'))).ok_or(HeadError::BadContentLength)?;
    }
    Ok(n)
}

/// Splits a comma-separated field value into its trimmed, non-empty elements (RFC 9110 §5.6.1).
pub(crate) fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows).filter(|s| !s.is_empty())
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_slice())
}

impl RequestHead {
    /// Every value of a header in order, name matched case-insensitively (for fields that may repeat).
    pub(crate) fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_slice())
    }

    /// The first value of a header, name matched case-insensitively.
    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }

    /// Like `header`, when the value is valid UTF-8.
    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

impl ResponseHead {
    /// The first value of a header, name matched case-insensitively.
    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }

    /// Like `header`, when the value is valid UTF-8.
    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether this is an interim (1xx) head to skip before the final one. 101 is excluded: it ends HTTP.
    #[cfg(test)]
    pub(crate) fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Result<Option<RequestHead>, HeadError> {
        parse_request_head(s.as_bytes())
    }

    fn req_ok(s: &str) -> RequestHead {
        match req(s) {
            Ok(Some(h)) => h,
            other => panic!("expected a head for {s:?}, got {other:?}"),
        }
    }

    fn req_err(s: &str) -> HeadError {
        match req(s) {
            Err(e) => e,
            other => panic!("expected an error for {s:?}, got {other:?}"),
        }
    }

    fn resp_ok(s: &str, head: bool) -> ResponseHead {
        match parse_response_head(s.as_bytes(), head) {
            Ok(Some(h)) => h,
            other => panic!("expected a head for {s:?}, got {other:?}"),
        }
    }

    /// Every fixture, fed as every prefix, must be "incomplete" until the full head is present and then parse
    /// to the same result (the shotgun test for a re-parsing head reader).
    fn shotgun_request(full: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        let whole = parse_request_head(full);
        for cut in 0..full.len() {
            match parse_request_head(&full[..cut]) {
                Ok(None) => {}
                // An error can be detected early; it must then be the same error.
                Err(e) => {
                    assert_eq!(Err(e), whole.clone().map(|_| ()), "cut {cut} of {full:?}");
                    return whole;
                }
                Ok(Some(h)) => {
                    assert_eq!(Ok(Some(h)), whole, "prefix of {cut} bytes parsed differently");
                    return whole;
                }
            }
        }
        whole
    }

    const REQUEST_FIXTURES: &[&str] = &[
        "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "POST /v1/messages HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
    ];

    #[test]
    fn shotgun_request_fixtures_agree_at_every_split() {
        for f in REQUEST_FIXTURES {
            let full = f.as_bytes();
            let whole = parse_request_head(full);
            assert_eq!(shotgun_request(full), whole);
            // The body bytes after the head never change the head.
            if let Ok(Some(h)) = &whole {
                assert_eq!(parse_request_head(&full[..h.head_len]), whole);
            }
        }
    }

    #[test]
    fn status_codes_outside_100_to_599_are_malformed() {
        for code in ["000", "099", "600", "999"] {
            let e = parse_response_head(format!("HTTP/1.1 {code} X\r\n\r\n").as_bytes(), false).unwrap_err();
            assert_eq!(e, HeadError::Malformed(Malformed::Status), "{code}");
        }
        assert_eq!(resp_ok("HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n", false).status, 599);
    }

    #[test]
    fn shotgun_response_heads() {
        let fixtures = [
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.0 200 OK\r\n\r\n",
        ];
        for f in fixtures {
            let full = f.as_bytes();
            let whole = parse_response_head(full, false);
            assert!(matches!(whole, Ok(Some(_))), "{f:?}");
            let len = whole.as_ref().ok().and_then(|h| h.as_ref()).map_or(0, |h| h.head_len);
            for cut in 0..len {
                assert_eq!(parse_response_head(&full[..cut], false), Ok(None), "cut {cut} of {f:?}");
            }
            assert_eq!(parse_response_head(&full[..len], false), whole);
        }
    }

    #[test]
    fn parses_a_post_with_length() {
        let h = req_ok("POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 12\r\nX-Y: z\r\n\r\n");
        assert_eq!(h.method, "POST");
        assert_eq!(h.target, "/v1/chat/completions?x=1");
        assert_eq!(h.minor_version, 1);
        assert_eq!(h.body, BodyKind::Length(12));
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
        assert_eq!(h.header("content-length"), Some(&b"12"[..]));
        assert_eq!(h.header_str("x-y"), Some("z"));
        assert_eq!(h.headers[2].name, "X-Y", "names keep their case");
        assert_eq!(h.header("missing"), None);
        let two = req_ok("GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n\r\n");
        assert_eq!(two.headers_named("X-a").collect::<Vec<_>>(), vec![&b"1"[..], &b"2"[..]]);
        assert_eq!(two.header("x-a"), Some(&b"1"[..]), "header() is the first value");
    }

    #[test]
    fn incomplete_head_is_none() {
        assert_eq!(req(""), Ok(None));
        assert_eq!(req("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    }

    #[test]
    fn head_len_points_at_the_body() {
        let s = "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        let h = req_ok(s);
        assert_eq!(&s[h.head_len..], "abc");
    }

    #[test]
    fn too_large_head_is_431() {
        let mut s = String::from("GET / HTTP/1.1\r\nX: ");
        s.push_str(&"a".repeat(MAX_HEAD_BYTES));
        let e = req_err(&s);
        assert_eq!(e, HeadError::TooLarge);
        assert_eq!(e.status(), 431);
        // Just under the limit still waits for more.
        assert_eq!(parse_request_head(&s.as_bytes()[..MAX_HEAD_BYTES - 1]), Ok(None));
        // A complete head that happens to be followed by a big body is fine.
        let big_body = format!("POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n{}", "x".repeat(MAX_HEAD_BYTES));
        assert!(matches!(req(&big_body), Ok(Some(_))));
    }

    #[test]
    fn too_many_headers_is_431() {
        let mut s = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s.push_str("\r\n");
        let e = req_err(&s);
        assert_eq!(e, HeadError::TooManyHeaders);
        assert_eq!(e.status(), 431);
    }

    #[test]
    fn obs_fold_is_rejected() {
        let e = req_err("GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n");
        assert_eq!(e, HeadError::Malformed(Malformed::HeaderName));
        assert_eq!(e.status(), 400);
        assert_eq!(req_err("GET / HTTP/1.1\r\nX-A: one\r\n\ttwo\r\n\r\n").status(), 400);
    }

    #[test]
    fn bad_header_names_are_rejected() {
        for s in [
            "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
            "GET / HTTP/1.1\r\nBad\"Name: a\r\n\r\n",
            "GET / HTTP/1.1\r\n: a\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length : 1\r\n\r\n",
        ] {
            assert_eq!(req_err(s).status(), 400, "{s:?}");
        }
    }

    #[test]
    fn content_length_values() {
        assert_eq!(req_ok("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").body, BodyKind::Length(0));
        assert_eq!(
            req_ok("POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n").body,
            BodyKind::Length(u64::MAX)
        );
        for bad in ["+5", "-5", "0x5", "5 5", "5a", "", "18446744073709551616", "99999999999999999999999"] {
            let s = format!("POST / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
            let e = req_err(&s);
            assert_eq!(e, HeadError::BadContentLength, "{bad:?}");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn identical_content_lengths_merge_and_differing_ones_conflict() {
        let same = "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(req_ok(same).body, BodyKind::Length(5));
        assert_eq!(req_ok("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n").body, BodyKind::Length(5));
        for s in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
        ] {
            let e = req_err(s);
            assert_eq!(e, HeadError::ConflictingFraming);
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        // CL.TE and TE.CL in every order and case.
        for s in [
            "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: CHUNKED\r\ncontent-length: 0\r\n\r\n",
        ] {
            let e = req_err(s);
            assert_eq!(e, HeadError::ConflictingFraming, "{s:?}");
            assert_eq!(e.status(), 400);
        }
        // Final coding not chunked, chunked twice, empty or obfuscated coding names.
        for s in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked-false\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
        ] {
            let e = req_err(s);
            assert_eq!(e, HeadError::Malformed(Malformed::BadTransferEncoding), "{s:?}");
            assert_eq!(e.status(), 400);
        }
        // A space before the colon (the `Transfer-Encoding : chunked` trick) is a bad header name.
        assert_eq!(req_err("POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n").status(), 400);
        // Transfer-Encoding on HTTP/1.0.
        let e = req_err("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(e, HeadError::Malformed(Malformed::TransferEncodingOnHttp10));
        // Two Host fields.
        assert_eq!(req_err("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n").status(), 400);
    }

    #[test]
    fn unsupported_codings_are_501() {
        let e = req_err("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(e, HeadError::UnsupportedTransferEncoding);
        assert_eq!(e.status(), 501);
    }

    #[test]
    fn chunked_is_recognised_in_any_case_and_split_fields() {
        assert_eq!(req_ok("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").body, BodyKind::Chunked);
        assert_eq!(req_ok("POST / HTTP/1.1\r\nTransfer-Encoding: chunked \r\n\r\n").body, BodyKind::Chunked);
    }

    #[test]
    fn keep_alive_semantics() {
        assert!(req_ok("GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!req_ok("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!req_ok("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n").keep_alive);
        assert!(!req_ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(req_ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!req_ok("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn expect_continue_flag() {
        assert!(req_ok("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").expect_continue);
        assert!(!req_ok("POST / HTTP/1.1\r\nExpect: something\r\n\r\n").expect_continue);
        assert!(!req_ok("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    }

    #[test]
    fn unsupported_versions_and_garbage_are_400() {
        for s in [
            "GET / HTTP/2.0\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1 x\r\n\r\n",
            "G\0T / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(req_err(s).status(), 400, "{s:?}");
        }
    }

    #[test]
    fn response_framing() {
        let h = resp_ok("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false);
        assert_eq!((h.status, h.reason.as_str(), h.body, h.keep_alive), (200, "OK", ResponseBody::Length(10), true));
        let h = resp_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false);
        assert_eq!(h.body, ResponseBody::Chunked);
        let h = resp_ok("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(h.body, ResponseBody::CloseDelimited);
        assert!(!h.keep_alive, "a close-delimited body ends the connection");
        let h = resp_ok("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true);
        assert_eq!(h.body, ResponseBody::Empty, "answer to HEAD");
        for s in ["HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"] {
            assert_eq!(resp_ok(s, false).body, ResponseBody::Empty, "{s:?}");
        }
        let h = resp_ok("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\nConnection: close\r\n\r\n", false);
        assert!(!h.keep_alive);
        assert_eq!(h.header_str("connection"), Some("close"));
        let h = resp_ok("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false);
        assert!(!h.keep_alive);
    }

    #[test]
    fn interim_responses_are_reported_then_skipped() {
        let buf = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let first = parse_response_head(buf, false).ok().flatten().expect("first head");
        assert_eq!(first.status, 100);
        assert!(first.is_interim());
        assert_eq!(first.body, ResponseBody::Empty);
        let second = parse_response_head(&buf[first.head_len..], false).ok().flatten().expect("final head");
        assert_eq!(second.status, 200);
        assert!(!second.is_interim());
        assert_eq!(&buf[first.head_len + second.head_len..], b"ok");
    }

    #[test]
    fn response_smuggling_shapes_are_refused() {
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", false),
            Err(HeadError::ConflictingFraming)
        );
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", false),
            Err(HeadError::ConflictingFraming)
        );
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false),
            Err(HeadError::UnsupportedTransferEncoding)
        );
    }

    #[test]
    fn split_list_trims_and_skips_empties() {
        let items: Vec<&[u8]> = split_list(b" a ,, b\t,").collect();
        assert_eq!(items, vec![&b"a"[..], &b"b"[..]]);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_request_head(&bytes);
            let _ = parse_response_head(&bytes, false);
            let _ = parse_response_head(&bytes, true);
        }

        #[test]
        fn arbitrary_header_values_never_panic(
            name in "[A-Za-z-]{1,20}",
            value in proptest::collection::vec(0x20u8..0x7f, 0..64),
        ) {
            let mut buf = format!("POST / HTTP/1.1\r\n{name}: ").into_bytes();
            buf.extend_from_slice(&value);
            buf.extend_from_slice(b"\r\n\r\n");
            let _ = parse_request_head(&buf);
            let mut resp = format!("HTTP/1.1 200 OK\r\n{name}: ").into_bytes();
            resp.extend_from_slice(&value);
            resp.extend_from_slice(b"\r\n\r\n");
            let _ = parse_response_head(&resp, false);
        }
    }
}
