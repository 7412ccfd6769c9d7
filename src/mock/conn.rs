//! One connection of the mock: reads keep-alive requests with reused buffers, records them, routes them to
//! the API renderers and applies the fault scenarios (status, garbage, reset, hang-up, replay). Blocking I/O on its
//! own thread; knows no wire format beyond HTTP/1.1.

use super::content::{self, Plan};
use super::emit::{Buffers, EmitError, Emitter, Framing};
use super::http::{self, BodyAt, Head};
use super::route::{percent_decode, route, Family, Req, Route};
use super::scenario::{HangUp, Kind, Scenario};
use super::{anthropic, bedrock, openai, Ctx, SeenRequest, Shared};
use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// Bytes read from the socket at a time; also the initial capacity of the connection buffer.
const READ_CHUNK: usize = 16 * 1024;
/// Largest fixture `x-mock-body-file` may replay: far above any recorded stream.
const MAX_BODY_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// What `x-mock-garbage` answers: bytes no HTTP parser accepts as a status line.
const GARBAGE: &[u8] = b"\x00\x13\x37 this is not HTTP \xff\xfe\r\n\r\n";

/// What `x-mock-hang-up: mid-head` writes before resetting: a status line and half a header.
const PARTIAL_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Ty";

/// How a request left the connection.
enum Next {
    KeepAlive,
    Close,
    /// Close with SO_LINGER 0 so the peer sees a TCP reset.
    Reset,
}

/// Serves one accepted connection until it closes.
pub(crate) fn serve(stream: TcpStream, id: u64, shared: Arc<Shared>) {
    let next = run(&stream, id, &shared);
    if matches!(next, Next::Reset) {
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    }
    // Drop the registry's duplicate first so that closing `stream` really closes the socket.
    shared.forget(id);
    drop(stream);
    shared.closed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

fn read_more(mut stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let len = buf.len();
    buf.resize(len + READ_CHUNK, 0);
    let n = loop {
        match stream.read(&mut buf[len..]) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    buf.truncate(len + *n.as_ref().unwrap_or(&0));
    n
}

fn run(stream: &TcpStream, conn: u64, shared: &Shared) -> Next {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut head = Head::default();
    let mut decoded = Vec::new();
    let mut bufs = Buffers::default();
    loop {
        loop {
            match http::parse_head(&buf, &mut head) {
                Ok(true) => break,
                Ok(false) => match read_more(stream, &mut buf) {
                    Ok(0) | Err(_) => return Next::Close,
                    Ok(_) => {}
                },
                Err(e) => return bad_request(stream, &mut bufs, &e.to_string()),
            }
        }
        let kind = match http::body_kind(&buf, &head) {
            Ok(k) => k,
            Err(e) => return bad_request(stream, &mut bufs, &e.to_string()),
        };
        let mut continued = false;
        let (at, used) = loop {
            match http::body(&buf, head.len, kind, &mut decoded) {
                Ok(Some(done)) => break done,
                Ok(None) if !continued && expects_continue(&buf, &head) => {
                    // RFC 9110 §10.1.1: curl and others wait for this before sending larger bodies.
                    continued = true;
                    let mut w = stream;
                    if w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
                        return Next::Close;
                    }
                }
                Ok(None) => match read_more(stream, &mut buf) {
                    Ok(0) | Err(_) => return Next::Close,
                    Ok(_) => {}
                },
                Err(e) => return bad_request(stream, &mut bufs, &e.to_string()),
            }
        };
        let body = match at {
            BodyAt::InBuf(r) => &buf[r],
            BodyAt::Decoded => &decoded[..],
        };
        let req = Req { buf: &buf, head: &head, body };
        let next = handle(stream, conn, &req, shared, &mut bufs);
        buf.drain(..used);
        match next {
            Next::KeepAlive => {}
            other => return other,
        }
    }
}

fn expects_continue(buf: &[u8], head: &Head) -> bool {
    head.headers.iter().any(|(n, v)| {
        buf[n.clone()].eq_ignore_ascii_case(b"expect") && buf[v.clone()].eq_ignore_ascii_case(b"100-continue")
    })
}

fn bad_request(mut stream: &TcpStream, bufs: &mut Buffers, message: &str) -> Next {
    bufs.json.clear();
    openai::error_json(&mut bufs.json, 400, message);
    http::full_response(&mut bufs.out, 400, "application/json", &[], &bufs.json, true);
    let _ = stream.write_all(&bufs.out);
    Next::Close
}

fn bedrock_error_type(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

fn bedrock_error_json(out: &mut Vec<u8>, message: &str) {
    out.extend_from_slice(b"{\"message\":");
    content::push_str(out, message);
    out.push(b'}');
}

/// Bedrock's answer to a request whose SigV4 signature does not verify: a 403 typed as a signature
/// failure (the credential's fault), unlike the `AccessDeniedException` a model refusal carries.
fn send_bad_signature(mut stream: &TcpStream, bufs: &mut Buffers, close: bool) -> Next {
    bufs.json.clear();
    bedrock_error_json(
        &mut bufs.json,
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    );
    let extra = [("x-amzn-ErrorType", "InvalidSignatureException")];
    http::full_response(&mut bufs.out, 403, "application/json", &extra, &bufs.json, close);
    match stream.write_all(&bufs.out) {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    }
}

/// Writes an error response in the family's own shape.
fn send_error(
    mut stream: &TcpStream,
    bufs: &mut Buffers,
    family: Family,
    status: u16,
    message: &str,
    retry_after: Option<u64>,
    close: bool,
) -> Next {
    bufs.json.clear();
    let retry = retry_after.map(|n| n.to_string());
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if let Some(r) = retry.as_deref() {
        extra.push(("Retry-After", r));
    }
    match family {
        Family::OpenAi => openai::error_json(&mut bufs.json, status, message),
        Family::Anthropic => {
            anthropic::error_json(&mut bufs.json, status, message);
            extra.push(("request-id", "req_mock"));
        }
        Family::Bedrock => {
            bedrock_error_json(&mut bufs.json, message);
            extra.push(("x-amzn-ErrorType", bedrock_error_type(status)));
        }
    }
    http::full_response(&mut bufs.out, status, "application/json", &extra, &bufs.json, close);
    match stream.write_all(&bufs.out) {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    }
}

#[derive(serde::Deserialize, Default)]
struct Fields<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(serde::Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

fn handle(stream: &TcpStream, conn: u64, req: &Req, shared: &Shared, bufs: &mut Buffers) -> Next {
    let close = req.wants_close();
    match (req.method(), req.path()) {
        ("GET", "/__mock/requests") => {
            let all: Vec<serde_json::Value> = super::lock(&shared.seen).iter().map(SeenRequest::to_json).collect();
            let body = serde_json::Value::Array(all).to_string();
            return send_json(stream, bufs, 200, body.as_bytes(), close);
        }
        ("POST", "/__mock/reset") => {
            super::lock(&shared.seen).clear();
            return send_json(stream, bufs, 200, b"{\"ok\":true}", close);
        }
        _ => {}
    }
    let route = route(req);
    let family = route.family();
    let sigv4_valid = match (&route, &shared.opts.aws) {
        (Route::Bedrock { .. }, Some(creds)) => {
            let headers: Vec<(&str, &str)> = req.headers().collect();
            Some(bedrock::verify_sigv4(creds, req.method(), req.target(), &headers, req.body))
        }
        _ => None,
    };
    if shared.opts.record {
        shared.record(req.to_seen(conn, sigv4_valid));
    }
    if sigv4_valid == Some(false) {
        return send_bad_signature(stream, bufs, close);
    }
    let scenario = match Scenario::from_headers(req.headers(), req.credential()) {
        Ok(s) => s,
        Err(e) => return send_error(stream, bufs, family, 400, &e.to_string(), None, close),
    };
    match scenario.hang_up {
        Some(HangUp::Close) => return Next::Close,
        Some(HangUp::Reset) => return Next::Reset,
        Some(HangUp::MidHead) => {
            let mut w = stream;
            let _ = w.write_all(PARTIAL_HEAD);
            return Next::Reset;
        }
        Some(HangUp::AfterAnswer) => {
            // The answer is framed for keep-alive, so the peer pools the connection this then closes.
            let _ = answer(stream, req, shared, route, &scenario, bufs, close);
            return Next::Close;
        }
        None => {}
    }
    answer(stream, req, shared, route, &scenario, bufs, close)
}

/// Writes the answer `scenario` asks for.
fn answer(
    stream: &TcpStream,
    req: &Req,
    shared: &Shared,
    route: Route<'_>,
    scenario: &Scenario<'_>,
    bufs: &mut Buffers,
    close: bool,
) -> Next {
    let family = route.family();
    if scenario.garbage {
        let mut w = stream;
        let _ = w.write_all(GARBAGE);
        return Next::Close;
    }
    if scenario.delay_ms > 0 && scenario.status.is_some() {
        std::thread::sleep(Duration::from_millis(scenario.delay_ms));
    }
    if let Some(status) = scenario.status {
        return send_error(
            stream,
            bufs,
            family,
            status,
            "Mock error requested by x-mock-status",
            scenario.retry_after,
            close,
        );
    }
    if let Some(path) = scenario.body_file {
        return replay(stream, bufs, scenario, path, family, close);
    }
    let fields: Fields = if req.body.iter().all(u8::is_ascii_whitespace) {
        Fields::default()
    } else {
        match serde_json::from_slice(req.body) {
            Ok(f) => f,
            Err(e) => {
                let msg = format!("request body is not valid JSON: {e}");
                return send_error(stream, bufs, family, 400, &msg, None, close);
            }
        }
    };
    let bedrock_model;
    let (model, streaming, bedrock) = match route {
        Route::Bedrock { model, stream } => {
            bedrock_model = percent_decode(model);
            (&*bedrock_model, stream, true)
        }
        _ => (fields.model.as_deref().unwrap_or("mock-model"), fields.stream.unwrap_or(false), false),
    };
    let ctx = Ctx {
        model,
        id: shared.next_id(),
        created: content::unix_now(),
        scenario,
        plan: Plan::of(scenario),
        include_usage: fields.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
        bedrock,
    };
    let framing = if bedrock { Framing::EventStream } else { Framing::Sse };
    match route {
        Route::Chat | Route::Responses | Route::Messages | Route::Bedrock { .. } if streaming => {
            let result = Emitter::start(
                stream,
                bufs,
                framing,
                scenario.stamp,
                scenario.delay_ms,
                scenario.reset_after,
                scenario.gzip,
            )
            .and_then(|mut em| {
                match route {
                    Route::Chat => openai::chat_stream(&mut em, &ctx)?,
                    Route::Responses => openai::responses_stream(&mut em, &ctx)?,
                    _ => anthropic::stream(&mut em, &ctx)?,
                }
                em.finish()
            });
            finish(result, close)
        }
        Route::Chat | Route::Responses | Route::Messages | Route::Bedrock { .. } => {
            if scenario.kind == Kind::ErrorMidstream {
                let status = match family {
                    Family::Anthropic => 529,
                    Family::Bedrock => 424,
                    Family::OpenAi => 500,
                };
                return send_error(stream, bufs, family, status, "Overloaded", None, close);
            }
            if scenario.delay_ms > 0 {
                std::thread::sleep(Duration::from_millis(scenario.delay_ms));
            }
            bufs.json.clear();
            match route {
                Route::Chat => openai::chat_json(&mut bufs.json, &ctx),
                Route::Responses => openai::responses_json(&mut bufs.json, &ctx),
                _ => anthropic::message_json(&mut bufs.json, &ctx),
            }
            // Bedrock InvokeModel reports token counts in response headers too.
            let counts = bedrock.then(|| {
                let u = ctx.plan.usage;
                (u.input.to_string(), u.output.to_string())
            });
            let bedrock_headers;
            let extra: &[(&str, &str)] = match &counts {
                Some((input, output)) => {
                    bedrock_headers = [
                        ("X-Amzn-Bedrock-Input-Token-Count", input.as_str()),
                        ("X-Amzn-Bedrock-Output-Token-Count", output.as_str()),
                        ("X-Amzn-Bedrock-Invocation-Latency", "12"),
                    ];
                    &bedrock_headers
                }
                None => &[],
            };
            send_body(stream, bufs, scenario, extra, close)
        }
        Route::CountTokens => {
            bufs.json.clear();
            anthropic::count_tokens_json(&mut bufs.json);
            send_body(stream, bufs, scenario, &[], close)
        }
        Route::Models(f) => {
            bufs.json.clear();
            if f == Family::Anthropic {
                anthropic::models_json(&mut bufs.json);
            } else {
                openai::models_json(&mut bufs.json);
            }
            send_body(stream, bufs, scenario, &[], close)
        }
        Route::Unknown => {
            let msg = format!("mock upstream has no route for {} {}", req.method(), req.path());
            send_error(stream, bufs, family, 404, &msg, None, close)
        }
    }
}

fn finish(result: Result<(), EmitError>, close: bool) -> Next {
    match result {
        Ok(()) if close => Next::Close,
        Ok(()) => Next::KeepAlive,
        Err(EmitError::Reset) => Next::Reset,
        Err(EmitError::Io(_)) => Next::Close,
    }
}

fn send_json(mut stream: &TcpStream, bufs: &mut Buffers, status: u16, body: &[u8], close: bool) -> Next {
    http::full_response(&mut bufs.out, status, "application/json", &[], body, close);
    match stream.write_all(&bufs.out) {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    }
}

/// Sends the JSON in `bufs.json`, applying `truncated` (half the body, honestly framed) and `reset-after`
/// (0: reset before answering; N > 0: reset after half the response).
fn send_body(
    mut stream: &TcpStream,
    bufs: &mut Buffers,
    scenario: &Scenario<'_>,
    extra: &[(&str, &str)],
    close: bool,
) -> Next {
    if scenario.reset_after == Some(0) {
        return Next::Reset;
    }
    let body_len = if scenario.kind == Kind::Truncated { bufs.json.len() / 2 } else { bufs.json.len() };
    if scenario.gzip {
        // Truncated with gzip: the coded body is cut (honestly framed), so the gzip stream itself is cut.
        let mut body = http::gzip(&bufs.json);
        if scenario.kind == Kind::Truncated {
            body.truncate(body.len() / 2);
        }
        let mut extra = extra.to_vec();
        extra.push(("Content-Encoding", "gzip"));
        http::full_response(&mut bufs.out, 200, "application/json", &extra, &body, close);
    } else {
        http::full_response(&mut bufs.out, 200, "application/json", extra, &bufs.json[..body_len], close);
    }
    if scenario.reset_after.is_some() {
        let half = bufs.out.len() / 2;
        let _ = stream.write_all(&bufs.out[..half]);
        return Next::Reset;
    }
    match stream.write_all(&bufs.out) {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    }
}

/// Answers a fixture file verbatim: `.sse` as a chunked event stream (one chunk per event), else whole.
fn replay(
    stream: &TcpStream,
    bufs: &mut Buffers,
    scenario: &Scenario,
    path: &str,
    family: Family,
    close: bool,
) -> Next {
    let too_big = std::fs::metadata(path).map(|m| m.len() > MAX_BODY_FILE_BYTES).unwrap_or(false);
    let bytes = match std::fs::read(path) {
        Ok(b) if !too_big => b,
        _ => return send_error(stream, bufs, family, 500, "mock cannot read x-mock-body-file", None, close),
    };
    if path.ends_with(".sse") {
        let result =
            Emitter::start(stream, bufs, Framing::Sse, false, scenario.delay_ms, scenario.reset_after, scenario.gzip)
                .and_then(|mut em| {
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        let end = memchr::memmem::find(rest, b"\n\n").map_or(rest.len(), |i| i + 2);
                        em.raw_chunk(&rest[..end])?;
                        rest = &rest[end..];
                    }
                    em.finish()
                });
        return finish(result, close);
    }
    let content_type = if path.ends_with(".json") { "application/json" } else { "application/octet-stream" };
    if scenario.gzip {
        let mut body = http::gzip(&bytes);
        if scenario.kind == Kind::Truncated {
            body.truncate(body.len() / 2);
        }
        http::full_response(&mut bufs.out, 200, content_type, &[("Content-Encoding", "gzip")], &body, close);
    } else {
        http::full_response(&mut bufs.out, 200, content_type, &[], &bytes, close);
    }
    let mut w = stream;
    match w.write_all(&bufs.out) {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    }
}
