//! Writing HTTP/1.1 heads and chunks into byte buffers, and the hop-by-hop rules the relay applies when it
//! forwards headers. Pure: appends to a `Vec<u8>`, no I/O.

use super::head::{split_list, Header};

/// The terminating zero-size chunk with an empty trailer section, ending a chunked body.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Header names that describe one connection rather than the message (RFC 9110 §7.6.1), plus the
/// obsolete `Proxy-Connection` and `Trailers` spellings seen in the wild. A proxy must not forward them.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` is always hop-by-hop (case-insensitive). Also drop the names a message's own
/// `Connection` header lists: see `is_connection_nominated` and `is_hop_by_hop_in`.
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Whether one `Connection` field value lists `token` (case-insensitive, comma-separated).
pub(crate) fn connection_has_token(connection_value: &[u8], token: &str) -> bool {
    split_list(connection_value).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether any `Connection` field among `headers` names `name`, making it hop-by-hop for this message.
pub(crate) fn is_connection_nominated(headers: &[Header], name: &str) -> bool {
    headers.iter().filter(|h| h.name.eq_ignore_ascii_case("connection")).any(|h| connection_has_token(&h.value, name))
}

/// The full forwarding test: `name` is hop-by-hop by definition or because this message's `Connection`
/// header lists it.
pub(crate) fn is_hop_by_hop_in(headers: &[Header], name: &str) -> bool {
    is_hop_by_hop(name) || is_connection_nominated(headers, name)
}

/// Appends `HTTP/1.1 <status> <reason>\r\n`.
pub(crate) fn write_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    write_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `name: value\r\n`. CR, LF and NUL in `value` are written as SP (RFC 9110 §5.5 allows this
/// replacement), so no value can inject a header or end the head early. `name` must be a valid token:
/// callers pass constants or names that came out of the parser.
pub(crate) fn write_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    if value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        out.extend(value.iter().map(|&b| if matches!(b, b'\r' | b'\n' | 0) { b' ' } else { b }));
    } else {
        out.extend_from_slice(value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk (`<hex size>\r\n<data>\r\n`). Empty `data` writes nothing: a zero-size chunk would end
/// the body, which only `LAST_CHUNK` may do.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    write_hex(out, data.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends a decimal number without going through `fmt` (no allocation).
pub(crate) fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn write_hex(out: &mut Vec<u8>, mut n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The standard reason phrase for a status (RFC 9110 §15), or "" for codes without one (a status line with
/// an empty reason is valid).
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        529 => "Site Overloaded",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> Header {
        Header { name: name.to_owned(), value: value.as_bytes().to_vec() }
    }

    #[test]
    fn hop_by_hop_names() {
        for n in ["Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "UPGRADE"] {
            assert!(is_hop_by_hop(n), "{n}");
        }
        for n in ["Content-Type", "Content-Length", "Authorization", "x-api-key", "Tee"] {
            assert!(!is_hop_by_hop(n), "{n}");
        }
    }

    #[test]
    fn connection_nominated_names() {
        let headers = vec![h("Connection", "keep-alive, X-Secret"), h("connection", " Foo ")];
        assert!(is_connection_nominated(&headers, "x-secret"));
        assert!(is_connection_nominated(&headers, "foo"));
        assert!(!is_connection_nominated(&headers, "x-sec"));
        assert!(is_hop_by_hop_in(&headers, "Foo"));
        assert!(is_hop_by_hop_in(&headers, "te"));
        assert!(!is_hop_by_hop_in(&headers, "content-type"));
        assert!(connection_has_token(b"Upgrade,close", "close"));
    }

    #[test]
    fn status_lines() {
        let mut out = Vec::new();
        write_status_line(&mut out, 200);
        write_status_line(&mut out, 431);
        write_status_line(&mut out, 599);
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nHTTP/1.1 431 Request Header Fields Too Large\r\nHTTP/1.1 599 \r\n");
    }

    #[test]
    fn headers_cannot_inject() {
        let mut out = Vec::new();
        write_header(&mut out, "Content-Type", b"text/event-stream");
        write_header(&mut out, "X-A", b"a\r\nSet-Cookie: x\0");
        assert_eq!(out, b"Content-Type: text/event-stream\r\nX-A: a  Set-Cookie: x \r\n");
    }

    #[test]
    fn chunks_are_hex_framed() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"");
        assert!(out.is_empty(), "an empty chunk would end the body");
        write_chunk(&mut out, &[b'x'; 26]);
        assert_eq!(&out[..4], b"1a\r\n");
        assert_eq!(&out[out.len() - 2..], b"\r\n");
        assert_eq!(out.len(), 4 + 26 + 2);
        let mut out = Vec::new();
        write_hex(&mut out, 0);
        write_hex(&mut out, u64::MAX);
        assert_eq!(out, b"0ffffffffffffffff");
    }

    #[test]
    fn decimals() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            out.clear();
            write_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn written_heads_parse_back() {
        let mut out = Vec::new();
        write_status_line(&mut out, 200);
        write_header(&mut out, "Content-Length", b"2");
        out.extend_from_slice(b"\r\nok");
        let head = super::super::parse_response_head(&out, false).ok().flatten().expect("parses");
        assert_eq!((head.status, head.reason.as_str()), (200, "OK"));
        assert_eq!(head.body, super::super::ResponseBody::Length(2));
    }
}
