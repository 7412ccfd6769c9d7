//! AWS Bedrock runtime specifics of the mock: the `application/vnd.amazon.eventstream` frame encoder (and a
//! decoder for tests), and SigV4 verification of received requests with `aws-sigv4`. No socket I/O here.

use std::time::SystemTime;

/// Bytes of the prelude (total length, headers length) plus its CRC.
const PRELUDE_LEN: usize = 12;
/// Bytes of the trailing message CRC.
const MESSAGE_CRC_LEN: usize = 4;
/// The event-stream header value type for a UTF-8 string.
const HEADER_TYPE_STRING: u8 = 7;
/// Largest frame the decoder accepts; the AWS event-stream spec caps messages at 16 MiB.
pub(crate) const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The SigV4 service name of the Bedrock runtime API.
pub(crate) const SIGNING_SERVICE: &str = "bedrock";

/// AWS credentials the mock checks SigV4 signatures against.
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id expected in the credential scope.
    pub access_key: String,
    /// The secret the signature is recomputed with.
    pub secret: String,
    /// The region expected in the credential scope.
    pub region: String,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("AwsCredentials").field("region", &self.region).finish_non_exhaustive()
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    // The wire format caps names at u8 and string values at u16 lengths; longer input (only possible
    // from a test's own x-mock-exception header) is cut rather than mis-framed.
    let name = &name.as_bytes()[..name.len().min(u8::MAX as usize)];
    let value = &value.as_bytes()[..value.len().min(u16::MAX as usize)];
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(HEADER_TYPE_STRING);
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// Appends one event-stream message with string `headers` and `payload` to `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, headers: &[(&str, &str)], payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0u8; PRELUDE_LEN]);
    for (n, v) in headers {
        push_header(out, n, v);
    }
    let headers_len = out.len() - start - PRELUDE_LEN;
    out.extend_from_slice(payload);
    let total = out.len() - start + MESSAGE_CRC_LEN;
    out[start..start + 4].copy_from_slice(&(total as u32).to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&(headers_len as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out[start..start + 8]);
    out[start + 8..start + 12].copy_from_slice(&prelude_crc.to_be_bytes());
    let message_crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&message_crc.to_be_bytes());
}

/// Appends a `chunk` event whose payload is `{"bytes":"<base64 of json>"}` (InvokeModelWithResponseStream).
pub(crate) fn encode_chunk(out: &mut Vec<u8>, scratch: &mut Vec<u8>, json: &[u8]) {
    scratch.clear();
    scratch.extend_from_slice(b"{\"bytes\":\"");
    push_base64(scratch, json);
    scratch.extend_from_slice(b"\"}");
    encode_frame(
        out,
        &[(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")],
        scratch,
    );
}

/// Appends the standard base64 of `input` to `out` without an intermediate String.
fn push_base64(out: &mut Vec<u8>, input: &[u8]) {
    use base64::Engine;
    let start = out.len();
    let len = base64::encoded_len(input.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    let written = base64::engine::general_purpose::STANDARD.encode_slice(input, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
}

/// Appends an exception message (`:message-type` = `exception`) with payload `{"message":...}`.
pub(crate) fn encode_exception(out: &mut Vec<u8>, exception_type: &str, message: &str) {
    let payload = serde_json::json!({ "message": message }).to_string();
    encode_frame(
        out,
        &[(":exception-type", exception_type), (":content-type", "application/json"), (":message-type", "exception")],
        payload.as_bytes(),
    );
}

/// A decoded event-stream message (used by tests and by anyone checking the mock's output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// String headers in wire order (`:event-type`, `:content-type`, `:message-type`, ...).
    pub(crate) headers: Vec<(String, String)>,
    /// The payload bytes between the headers and the message CRC.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The value of a string header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why event-stream bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame length {0} out of bounds")]
    Length(usize),
    #[error("prelude CRC mismatch")]
    PreludeCrc,
    #[error("message CRC mismatch")]
    MessageCrc,
    #[error("malformed header block")]
    Headers,
}

/// Decodes one message from the front of `buf`: `Ok(None)` if incomplete, else the frame and bytes used.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < PRELUDE_LEN {
        return Ok(None);
    }
    let be = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let total = be(0) as usize;
    let headers_len = be(4) as usize;
    if !(PRELUDE_LEN + MESSAGE_CRC_LEN..=MAX_FRAME_BYTES).contains(&total) {
        return Err(FrameError::Length(total));
    }
    if crc32fast::hash(&buf[..8]) != be(8) {
        return Err(FrameError::PreludeCrc);
    }
    if headers_len > total - PRELUDE_LEN - MESSAGE_CRC_LEN {
        return Err(FrameError::Length(headers_len));
    }
    if buf.len() < total {
        return Ok(None);
    }
    if crc32fast::hash(&buf[..total - 4]) != be(total - 4) {
        return Err(FrameError::MessageCrc);
    }
    let mut headers = Vec::new();
    let block = &buf[PRELUDE_LEN..PRELUDE_LEN + headers_len];
    let mut p = 0;
    while p < block.len() {
        let nlen = block[p] as usize;
        let name = block.get(p + 1..p + 1 + nlen).ok_or(FrameError::Headers)?;
        p += 1 + nlen;
        if block.get(p) != Some(&HEADER_TYPE_STRING) {
            return Err(FrameError::Headers);
        }
        let vlen = block.get(p + 1..p + 3).ok_or(FrameError::Headers)?;
        let vlen = u16::from_be_bytes([vlen[0], vlen[1]]) as usize;
        let value = block.get(p + 3..p + 3 + vlen).ok_or(FrameError::Headers)?;
        p += 3 + vlen;
        headers.push((String::from_utf8_lossy(name).into_owned(), String::from_utf8_lossy(value).into_owned()));
    }
    let payload = buf[PRELUDE_LEN + headers_len..total - 4].to_vec();
    Ok(Some((Frame { headers, payload }, total)))
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
struct AuthParts<'a> {
    access_key: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<AuthParts<'_>> {
    let rest = value.trim().strip_prefix("AWS4-HMAC-SHA256")?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let mut scope = credential?.split('/');
    let access_key = scope.next()?;
    let _date = scope.next()?;
    let region = scope.next()?;
    let service = scope.next()?;
    Some(AuthParts { access_key, region, service, signed_headers: signed_headers?, signature: signature? })
}

fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(value.trim(), format).ok()?;
    Some(t.assume_utc().into())
}

/// Recomputes the SigV4 signature of a received request and compares it with its `Authorization` header.
/// `target` is the request target as received (path and query); `headers` as received.
pub(crate) fn verify_sigv4(
    creds: &AwsCredentials,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> bool {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let find = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
    let Some(auth) = find("authorization").and_then(parse_authorization) else {
        return false;
    };
    // Bedrock runtime requests are signed for service `bedrock` (not `bedrock-runtime`).
    if auth.access_key != creds.access_key || auth.region != creds.region || auth.service != SIGNING_SERVICE {
        return false;
    }
    let Some(time) = find("x-amz-date").and_then(parse_amz_date) else {
        return false;
    };
    let Some(host) = find("host") else {
        return false;
    };
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    let to_sign: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| signed.iter().any(|s| s.eq_ignore_ascii_case(n)))
        .map(|(n, v)| (*n, *v))
        .collect();
    let uri = format!("http://{host}{target}");
    let identity = aws_credential_types::Credentials::new(
        creds.access_key.clone(),
        creds.secret.clone(),
        None,
        None,
        "mock-upstream",
    )
    .into();
    let Ok(params) = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(auth.service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
    else {
        return false;
    };
    let Ok(request) = SignableRequest::new(method, uri.as_str(), to_sign.into_iter(), SignableBody::Bytes(body)) else {
        return false;
    };
    match sign(request, &params.into()) {
        Ok(output) => output.signature() == auth.signature,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frame_roundtrip_and_crc() {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        encode_chunk(&mut out, &mut scratch, br#"{"type":"ping"}"#);
        let (f, used) = decode_frame(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(f.header(":event-type"), Some("chunk"));
        assert_eq!(f.header(":message-type"), Some("event"));
        let v: serde_json::Value = serde_json::from_slice(&f.payload).unwrap();
        assert_eq!(v["bytes"], "eyJ0eXBlIjoicGluZyJ9");
        for cut in 0..out.len() {
            assert_eq!(decode_frame(&out[..cut]), Ok(None));
        }
        let last = out.len() - 1;
        out[last] ^= 1;
        assert_eq!(decode_frame(&out), Err(FrameError::MessageCrc));
    }

    #[test]
    fn authorization_header_parts() {
        let a = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(
            (a.access_key, a.region, a.service, a.signed_headers, a.signature),
            ("AKID", "us-east-1", "bedrock", "host;x-amz-date", "abc")
        );
        assert!(parse_authorization("Bearer x").is_none());
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame(&bytes);
        }
    }
}
