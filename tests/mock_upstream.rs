//! End-to-end tests of the mock upstream over raw TCP: framing, the documented event names and fields of
//! every API and scenario, faults, recording, Bedrock event-stream frames and the SigV4 check.

use aibridged::mock::{decode_frame, monotonic_ns, Frame, MockOptions, MockUpstream};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ a small raw HTTP/1.1 client

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The chunks of a chunked body, in order (empty for Content-Length bodies).
    chunks: Vec<Vec<u8>>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("invalid JSON body ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    /// SSE events as (event name, parsed-or-raw data); asserts one chunk per event.
    fn sse(&self) -> Vec<(String, String)> {
        assert_eq!(self.header("content-type"), Some("text/event-stream"));
        let text = std::str::from_utf8(&self.body).unwrap();
        assert!(text.ends_with("\n\n"), "stream must end on an event boundary");
        let events: Vec<(String, String)> = text
            .split_terminator("\n\n")
            .map(|block| {
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = v.to_string();
                    } else {
                        panic!("unexpected SSE line {line:?}");
                    }
                }
                (name, data)
            })
            .collect();
        assert_eq!(events.len(), self.chunks.len(), "one HTTP chunk per event");
        events
    }
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(mock: &MockUpstream) -> Client {
        let stream = TcpStream::connect(mock.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { stream, buf: Vec::new() }
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut tmp = [0u8; 16384];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return Ok(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            if self.fill()? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).unwrap();
    }

    fn read_response(&mut self) -> std::io::Result<Response> {
        let status_line = self.line()?;
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let l = self.line()?;
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').unwrap();
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut r = Response { status, headers, body: Vec::new(), chunks: Vec::new() };
        if r.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = usize::from_str_radix(&self.line()?, 16).unwrap();
                if size == 0 {
                    assert_eq!(self.line()?, "");
                    break;
                }
                let chunk = self.take(size)?;
                assert_eq!(self.take(2)?, b"\r\n");
                r.body.extend_from_slice(&chunk);
                r.chunks.push(chunk);
            }
        } else {
            let len: usize = r.header("content-length").unwrap().parse().unwrap();
            r.body = self.take(len)?;
        }
        Ok(r)
    }

    fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        self.send(&raw_request(method, path, headers, body));
        self.read_response().unwrap()
    }
}

fn raw_request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: mock\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

fn post(mock: &MockUpstream, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    Client::connect(mock).request("POST", path, headers, body)
}

fn datas(events: &[(String, String)]) -> Vec<Value> {
    events.iter().filter(|(_, d)| d != "[DONE]").map(|(_, d)| serde_json::from_str(d).unwrap()).collect()
}

const CHAT: &str = "/v1/chat/completions";
const STREAM_USAGE: &str = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}"#;
const STREAM: &str = r#"{"model":"gpt-4o","stream":true}"#;

// ------------------------------------------------------------------ OpenAI Chat Completions

#[test]
fn chat_json_text() {
    let mock = MockUpstream::start().unwrap();
    let r = post(&mock, CHAT, &[], r#"{"model":"gpt-4o","messages":[]}"#);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from the mock upstream");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["total_tokens"], 17);
}

#[test]
fn chat_stream_usage_chunk_only_with_include_usage() {
    let mock = MockUpstream::start().unwrap();
    let off = post(&mock, CHAT, &[], STREAM).sse();
    assert_eq!(off.last().unwrap().1, "[DONE]");
    let chunks = datas(&off);
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c.get("usage").is_none()));
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello from the mock upstream");

    let on = post(&mock, CHAT, &[("x-mock-scenario", "cached")], STREAM_USAGE).sse();
    assert_eq!(on.last().unwrap().1, "[DONE]");
    let chunks = datas(&on);
    let usage_chunks: Vec<&Value> = chunks.iter().filter(|c| c["choices"].as_array().unwrap().is_empty()).collect();
    assert_eq!(usage_chunks.len(), 1);
    assert!(std::ptr::eq(usage_chunks[0], chunks.last().unwrap()), "usage chunk comes last");
    let u = &usage_chunks[0]["usage"];
    assert_eq!(u["prompt_tokens"], 120);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 100);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 16);
    assert_eq!(u["total_tokens"], u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap());
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["usage"].is_null()));
}

#[test]
fn chat_stream_parallel_tool_calls() {
    let mock = MockUpstream::start().unwrap();
    let chunks =
        datas(&post(&mock, "/proxy/openai/v1/chat/completions", &[("x-mock-scenario", "tools")], STREAM).sse());
    let mut args = [String::new(), String::new()];
    let mut names = Vec::new();
    for c in &chunks {
        for tc in c["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let i = tc["index"].as_u64().unwrap() as usize;
            if let Some(n) = tc["function"]["name"].as_str() {
                names.push(n.to_string());
                assert!(tc["id"].as_str().unwrap().starts_with("call_"));
            }
            args[i].push_str(tc["function"]["arguments"].as_str().unwrap());
        }
    }
    assert_eq!(names, ["get_weather", "get_time"]);
    assert_eq!(serde_json::from_str::<Value>(&args[0]).unwrap()["city"], "Paris");
    assert_eq!(serde_json::from_str::<Value>(&args[1]).unwrap()["timezone"], "Europe/Paris");
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn chat_stream_error_midstream_and_truncated() {
    let mock = MockUpstream::start().unwrap();
    let ev = post(&mock, CHAT, &[("x-mock-scenario", "error-midstream")], STREAM_USAGE).sse();
    assert_ne!(ev.last().unwrap().1, "[DONE]");
    let last: Value = serde_json::from_str(&ev.last().unwrap().1).unwrap();
    assert_eq!(last["error"]["type"], "server_error");
    assert!(last["error"].get("code").is_some() && last["error"].get("param").is_some());

    let ev = post(&mock, CHAT, &[("x-mock-scenario", "truncated")], STREAM_USAGE).sse();
    assert!(ev.iter().all(|(_, d)| d != "[DONE]"));
    assert!(datas(&ev).iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
}

// ------------------------------------------------------------------ OpenAI Responses

#[test]
fn responses_stream_text_events_and_usage() {
    let mock = MockUpstream::start().unwrap();
    let ev = post(&mock, "/v1/responses", &[("x-mock-scenario", "cached"), ("x-mock-events", "3")], STREAM).sse();
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    for (i, (name, data)) in ev.iter().enumerate() {
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], name.as_str());
        assert_eq!(v["sequence_number"], i as u64);
    }
    let done: Value = serde_json::from_str(&ev[7].1).unwrap();
    assert_eq!(done["text"], "Hello from the");
    let completed: Value = serde_json::from_str(&ev[10].1).unwrap();
    let u = &completed["response"]["usage"];
    assert_eq!(completed["response"]["status"], "completed");
    assert_eq!(u["input_tokens_details"]["cached_tokens"], 100);
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 16);
    assert_eq!(completed["response"]["output"][0]["content"][0]["text"], "Hello from the");
}

#[test]
fn responses_stream_thinking_and_tools() {
    let mock = MockUpstream::start().unwrap();
    let ev = post(&mock, "/v1/responses", &[("x-mock-scenario", "thinking")], STREAM).sse();
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"response.reasoning_summary_text.delta"));
    assert!(names.contains(&"response.function_call_arguments.done"));
    let completed: Value = serde_json::from_str(&ev.last().unwrap().1).unwrap();
    let out = completed["response"]["output"].as_array().unwrap();
    assert_eq!(out[0]["type"], "reasoning");
    assert_eq!(out[1]["type"], "function_call");
    assert_eq!(out[1]["name"], "get_weather");

    let ev = post(&mock, "/v1/responses", &[("x-mock-scenario", "tools")], STREAM).sse();
    let completed: Value = serde_json::from_str(&ev.last().unwrap().1).unwrap();
    let out = completed["response"]["output"].as_array().unwrap();
    assert_eq!(out.iter().filter(|i| i["type"] == "function_call").count(), 2);
}

#[test]
fn responses_json_and_error_event() {
    let mock = MockUpstream::start().unwrap();
    let v = post(&mock, "/v1/responses", &[], r#"{"model":"gpt-4.1","input":"hi"}"#).json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 0);
    let ev = post(&mock, "/v1/responses", &[("x-mock-scenario", "error-midstream")], STREAM).sse();
    assert_eq!(ev.last().unwrap().0, "error");
    assert!(ev.iter().all(|(n, _)| n != "response.completed"));
}

// ------------------------------------------------------------------ Anthropic Messages

const MSG_STREAM: &str = r#"{"model":"claude-sonnet-4-5","stream":true,"max_tokens":10,"messages":[]}"#;

#[test]
fn messages_stream_text_event_order() {
    let mock = MockUpstream::start().unwrap();
    let ev = post(&mock, "/v1/messages", &[("x-mock-events", "2")], MSG_STREAM).sse();
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let v = datas(&ev);
    for ((name, _), json) in ev.iter().zip(&v) {
        assert_eq!(json["type"], name.as_str());
    }
    let u = &v[0]["message"]["usage"];
    assert!(
        u["input_tokens"].is_u64()
            && u["cache_read_input_tokens"].is_u64()
            && u["cache_creation_input_tokens"].is_u64()
    );
    assert_eq!(v[0]["message"]["model"], "claude-sonnet-4-5");
    assert_eq!(v[3]["delta"]["type"], "text_delta");
    assert_eq!(v[6]["delta"]["stop_reason"], "end_turn");
    assert_eq!(v[6]["usage"]["output_tokens"], 2);
}

#[test]
fn messages_stream_thinking_then_tool_use() {
    let mock = MockUpstream::start().unwrap();
    let v = datas(&post(&mock, "/v1/messages", &[("x-mock-scenario", "thinking")], MSG_STREAM).sse());
    let delta_types: Vec<&str> = v.iter().filter_map(|e| e["delta"]["type"].as_str()).collect();
    assert!(delta_types.contains(&"thinking_delta") && delta_types.contains(&"signature_delta"));
    let starts: Vec<&str> = v.iter().filter_map(|e| e["content_block"]["type"].as_str()).collect();
    assert_eq!(starts, ["thinking", "tool_use"]);
    let json: String = v
        .iter()
        .filter(|e| e["delta"]["type"] == "input_json_delta")
        .map(|e| e["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap()["city"], "Paris");
    let md = v.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(md["delta"]["stop_reason"], "tool_use");
}

#[test]
fn messages_tools_json_and_errors() {
    let mock = MockUpstream::start().unwrap();
    let v = post(&mock, "/v1/messages", &[("x-mock-scenario", "tools")], r#"{"model":"claude"}"#).json();
    assert_eq!(v["type"], "message");
    let kinds: Vec<&str> = v["content"].as_array().unwrap().iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["text", "tool_use", "tool_use"]);
    assert_eq!(v["content"][2]["input"]["timezone"], "Europe/Paris");

    let ev = post(&mock, "/v1/messages", &[("x-mock-scenario", "error-midstream")], MSG_STREAM).sse();
    let (name, data) = ev.last().unwrap();
    assert_eq!(name, "error");
    let e: Value = serde_json::from_str(data).unwrap();
    assert_eq!(e["error"]["type"], "overloaded_error");
    assert!(ev.iter().all(|(n, _)| n != "message_stop"));

    let ev = post(&mock, "/v1/messages", &[("x-mock-scenario", "truncated")], MSG_STREAM).sse();
    assert!(ev.iter().all(|(n, _)| n != "message_stop" && n != "message_delta"));
}

#[test]
fn count_tokens_and_models() {
    let mock = MockUpstream::start().unwrap();
    assert_eq!(post(&mock, "/v1/messages/count_tokens", &[], "{}").json()["input_tokens"], 12);
    let mut c = Client::connect(&mock);
    let a = c.request("GET", "/v1/models", &[("anthropic-version", "2023-06-01")], "").json();
    assert_eq!(a["data"][0]["type"], "model");
    assert_eq!(a["has_more"], false);
    let o = c.request("GET", "/v1/models", &[("authorization", "Bearer sk")], "").json();
    assert_eq!(o["object"], "list");
    assert_eq!(o["data"][0]["object"], "model");
}

// ------------------------------------------------------------------ faults

#[test]
fn status_in_each_providers_shape_with_retry_after() {
    let mock = MockUpstream::start().unwrap();
    let r = post(&mock, CHAT, &[("x-mock-status", "429"), ("x-mock-retry-after", "7")], STREAM);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    let e = &r.json()["error"];
    assert!(e["message"].is_string() && e["type"].is_string() && e.get("param").is_some() && e.get("code").is_some());

    let r = post(&mock, "/v1/messages", &[("x-mock-status", "529")], MSG_STREAM);
    assert_eq!(r.status, 529);
    assert_eq!(r.header("retry-after"), None);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error");
}

#[test]
fn status_by_key_for_failover() {
    let mock = MockUpstream::start().unwrap();
    let rule = ("x-mock-status-for-key", "sk-bad=401,sk-slow=429");
    assert_eq!(post(&mock, CHAT, &[rule, ("authorization", "Bearer sk-bad")], "{}").status, 401);
    assert_eq!(post(&mock, CHAT, &[rule, ("authorization", "Bearer sk-good")], "{}").status, 200);
    assert_eq!(post(&mock, "/v1/messages", &[rule, ("x-api-key", "sk-slow")], "{}").status, 429);
}

#[test]
fn reset_after_n_events_resets_the_connection() {
    let mock = MockUpstream::start().unwrap();
    let mut c = Client::connect(&mock);
    c.send(&raw_request("POST", CHAT, &[("x-mock-reset-after", "3")], STREAM));
    let err = c.read_response().err().expect("reading must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    let text = String::from_utf8_lossy(&c.buf);
    assert!(!text.contains("[DONE]"));
}

#[test]
fn garbage_is_not_http() {
    let mock = MockUpstream::start().unwrap();
    let mut c = Client::connect(&mock);
    c.send(&raw_request("POST", CHAT, &[("x-mock-garbage", "1")], STREAM));
    let mut all = Vec::new();
    c.stream.read_to_end(&mut all).unwrap();
    assert!(!all.is_empty() && !all.starts_with(b"HTTP/"));
}

#[test]
fn body_file_replays_fixture() {
    let mock = MockUpstream::start().unwrap();
    let dir = std::env::temp_dir().join(format!("mock-upstream-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sse = dir.join("case.sse");
    std::fs::write(&sse, "event: a\ndata: {\"x\":1}\n\nevent: b\ndata: {\"x\":2}\n\n").unwrap();
    let r = post(&mock, "/v1/messages", &[("x-mock-body-file", sse.to_str().unwrap())], "{}");
    assert_eq!(r.chunks, [b"event: a\ndata: {\"x\":1}\n\n".to_vec(), b"event: b\ndata: {\"x\":2}\n\n".to_vec()]);
    let json = dir.join("case.json");
    std::fs::write(&json, "{\"fixture\":true}").unwrap();
    let r = post(&mock, CHAT, &[("x-mock-body-file", json.to_str().unwrap())], "{}");
    assert_eq!((r.header("content-type"), r.body.as_slice()), (Some("application/json"), &b"{\"fixture\":true}"[..]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stamps_and_delay() {
    let mock = MockUpstream::start().unwrap();
    let started = Instant::now();
    let before = monotonic_ns();
    let ev = post(
        &mock,
        "/v1/messages",
        &[("x-mock-stamp", "1"), ("x-mock-delay-ms", "20"), ("x-mock-events", "3")],
        MSG_STREAM,
    )
    .sse();
    let after = monotonic_ns();
    let stamps: Vec<u64> = datas(&ev).iter().map(|v| v["x_mock_sent_ns"].as_u64().unwrap()).collect();
    assert_eq!(stamps.len(), ev.len());
    assert!(stamps.windows(2).all(|w| w[1] >= w[0] + 15_000_000), "paced ~20ms apart: {stamps:?}");
    assert!(stamps[0] >= before && *stamps.last().unwrap() <= after);
    assert!(started.elapsed() >= Duration::from_millis(20 * (ev.len() as u64 - 1)));
}

// ------------------------------------------------------------------ recording and HTTP behaviour

#[test]
fn records_requests_with_chunked_bodies_and_keep_alive() {
    let mock = MockUpstream::start().unwrap();
    let mut c = Client::connect(&mock);
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\nX-Custom: A\r\n\r\n5\r\n{\"mod\r\n10\r\nel\":\"gpt-chunk\"}\r\n0\r\n\r\n");
    let r = c.read_response().unwrap();
    assert_eq!(r.json()["model"], "gpt-chunk");
    let r2 = c.request("POST", "/v1/messages", &[], r#"{"model":"claude"}"#);
    assert_eq!(r2.json()["model"], "claude");
    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].header("x-custom"), Some("A"));
    assert_eq!(seen[0].body, br#"{"model":"gpt-chunk"}"#);
    assert_eq!(seen[0].sigv4_valid, None);

    let dump = c.request("GET", "/__mock/requests", &[], "").json();
    assert_eq!(dump.as_array().unwrap().len(), 2);
    assert_eq!(dump[1]["body"], r#"{"model":"claude"}"#);
    assert_eq!(c.request("POST", "/__mock/reset", &[], "").status, 200);
    assert!(mock.requests().is_empty());
    post(&mock, CHAT, &[], "{}");
    assert_eq!(mock.requests().len(), 1);
    mock.clear();
    assert!(mock.requests().is_empty());
}

#[test]
fn no_record_mode_and_drop_stops_the_server() {
    let mock = MockUpstream::start_with("127.0.0.1:0", MockOptions { record: false, aws: None }).unwrap();
    assert_eq!(post(&mock, CHAT, &[], "{}").status, 200);
    assert!(mock.requests().is_empty());
    let addr = mock.addr();
    let mut idle = Client::connect(&mock);
    drop(mock);
    let mut b = [0u8; 1];
    assert_eq!(idle.stream.read(&mut b).unwrap_or(0), 0, "open connections are shut down");
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn bad_requests_answer_400() {
    let mock = MockUpstream::start().unwrap();
    assert_eq!(post(&mock, CHAT, &[], "{not json").status, 400);
    assert_eq!(post(&mock, CHAT, &[("x-mock-scenario", "bogus")], "{}").status, 400);
    assert_eq!(post(&mock, "/v1/unknown", &[], "{}").status, 404);
}

// ------------------------------------------------------------------ Bedrock

fn frames(body: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (f, used) = decode_frame(rest).expect("valid CRCs").expect("complete frame");
        out.push(f);
        rest = &rest[used..];
    }
    out
}

fn chunk_json(f: &Frame) -> Value {
    use base64::Engine;
    assert_eq!(f.header(":event-type"), Some("chunk"));
    assert_eq!(f.header(":content-type"), Some("application/json"));
    assert_eq!(f.header(":message-type"), Some("event"));
    let outer: Value = serde_json::from_slice(&f.payload).unwrap();
    let raw = base64::engine::general_purpose::STANDARD.decode(outer["bytes"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

const BEDROCK_BODY: &str = r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[]}"#;

#[test]
fn bedrock_invoke_and_stream_frames() {
    let mock = MockUpstream::start().unwrap();
    let model = "/model/global.anthropic.claude-sonnet-4-5-20250929-v1%3A0";
    let r = post(&mock, &format!("{model}/invoke"), &[], BEDROCK_BODY);
    assert_eq!(r.header("x-amzn-bedrock-input-token-count"), Some("12"));
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "global.anthropic.claude-sonnet-4-5-20250929-v1:0");

    let r = post(&mock, &format!("{model}/invoke-with-response-stream"), &[("x-mock-scenario", "tools")], BEDROCK_BODY);
    assert_eq!(r.header("content-type"), Some("application/vnd.amazon.eventstream"));
    let fs = frames(&r.body);
    assert_eq!(fs.len(), r.chunks.len(), "one HTTP chunk per frame");
    let events: Vec<Value> = fs.iter().map(chunk_json).collect();
    assert_eq!(events[0]["type"], "message_start");
    assert_eq!(events.iter().filter(|e| e["content_block"]["type"] == "tool_use").count(), 2);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "message_stop");
    assert!(last["amazon-bedrock-invocationMetrics"]["outputTokenCount"].is_u64());
}

#[test]
fn bedrock_exception_frame_and_status() {
    let mock = MockUpstream::start().unwrap();
    let path = "/model/m/invoke-with-response-stream";
    let r = post(&mock, path, &[("x-mock-scenario", "error-midstream")], BEDROCK_BODY);
    let fs = frames(&r.body);
    let last = fs.last().unwrap();
    assert_eq!(last.header(":message-type"), Some("exception"));
    assert_eq!(last.header(":exception-type"), Some("throttlingException"));
    assert!(serde_json::from_slice::<Value>(&last.payload).unwrap()["message"].is_string());

    let r = post(&mock, path, &[("x-mock-status", "429")], BEDROCK_BODY);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-amzn-errortype"), Some("ThrottlingException"));
    assert!(r.json()["message"].is_string());
}

fn signed_request(port: u16, path: &str, body: &str, secret: &str, service: &str) -> Vec<u8> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let identity = aws_credential_types::Credentials::new("AKIDMOCK", secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let host = format!("127.0.0.1:{port}");
    let url = format!("http://{host}{path}");
    let headers = [("content-type", "application/json"), ("host", host.as_str())];
    let req = SignableRequest::new("POST", &url, headers.into_iter(), SignableBody::Bytes(body.as_bytes())).unwrap();
    let (instructions, _) = sign(req, &params).unwrap().into_parts();
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in instructions.headers() {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw.into_bytes()
}

#[test]
fn sigv4_accepts_correct_and_rejects_tampered_requests() {
    let mock = MockUpstream::with_aws("AKIDMOCK", "mock-secret", "us-east-1").unwrap();
    let port = mock.addr().port();
    let path = "/model/anthropic.claude-v1%3A0/invoke";
    let mut c = Client::connect(&mock);
    c.send(&signed_request(port, path, BEDROCK_BODY, "mock-secret", "bedrock"));
    let ok = c.read_response().unwrap();
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));

    let mut tampered = signed_request(port, path, BEDROCK_BODY, "mock-secret", "bedrock");
    let n = tampered.len();
    tampered[n - 3] = b'9'; // alter one body byte after signing
    c.send(&tampered);
    let bad = c.read_response().unwrap();
    assert_eq!(bad.status, 403);
    assert!(bad.json()["message"].as_str().unwrap().starts_with("The request signature we calculated does not match"));
    // Typed as AWS types a signature failure: the credential's fault, not a model refusal.
    assert_eq!(bad.header("x-amzn-errortype"), Some("InvalidSignatureException"));

    c.send(&signed_request(port, path, BEDROCK_BODY, "wrong-secret", "bedrock"));
    assert_eq!(c.read_response().unwrap().status, 403);
    c.send(&signed_request(port, path, BEDROCK_BODY, "mock-secret", "bedrock-runtime"));
    assert_eq!(c.read_response().unwrap().status, 403, "signed for the wrong service");

    let verdicts: Vec<Option<bool>> = mock.requests().iter().map(|r| r.sigv4_valid).collect();
    assert_eq!(verdicts, [Some(true), Some(false), Some(false), Some(false)]);
}

// ------------------------------------------------------------------ more HTTP behaviour

#[test]
fn json_truncated_and_reset_variants() {
    let mock = MockUpstream::start().unwrap();
    let r = post(&mock, "/v1/messages", &[("x-mock-scenario", "truncated")], r#"{"model":"c"}"#);
    assert_eq!(r.status, 200);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err(), "half a JSON body");

    let mut c = Client::connect(&mock);
    c.send(&raw_request("POST", CHAT, &[("x-mock-reset-after", "0")], "{}"));
    let err = c.read_response().err().expect("reset before any byte");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(c.buf.is_empty());

    let mut c = Client::connect(&mock);
    c.send(&raw_request("POST", CHAT, &[("x-mock-reset-after", "1")], "{}"));
    let err = c.read_response().err().expect("reset mid-body");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

#[test]
fn expect_100_continue_is_answered() {
    let mock = MockUpstream::start().unwrap();
    let mut c = Client::connect(&mock);
    let body = r#"{"model":"gpt-continue"}"#;
    c.send(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: m\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.line().unwrap(), "HTTP/1.1 100 Continue");
    assert_eq!(c.line().unwrap(), "");
    c.send(body.as_bytes());
    assert_eq!(c.read_response().unwrap().json()["model"], "gpt-continue");
}

#[test]
fn binary_prints_port_and_serves_control_routes() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-upstream"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").expect("port line").to_string();
    let run = || -> Result<(), String> {
        let stream = TcpStream::connect(&addr).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        let mut c = Client { stream, buf: Vec::new() };
        let r = c.request("POST", "/v1/messages", &[("x-api-key", "k")], r#"{"model":"bin"}"#);
        if r.json()["model"] != "bin" {
            return Err("wrong body".into());
        }
        let seen = c.request("GET", "/__mock/requests", &[], "").json();
        if seen[0]["path"] != "/v1/messages" || seen[0]["headers"].as_array().map(Vec::len).unwrap_or(0) < 3 {
            return Err(format!("unexpected dump {seen}"));
        }
        c.request("POST", "/__mock/reset", &[], "");
        let seen = c.request("GET", "/__mock/requests", &[], "").json();
        if seen.as_array().map(Vec::len) != Some(0) {
            return Err("reset did not clear".into());
        }
        Ok(())
    };
    let result = run();
    let _ = child.kill();
    let _ = child.wait();
    result.unwrap();
}
