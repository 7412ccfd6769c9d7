//! The circuit breaker across workers (`CODER_AIBRIDGE_CIRCUIT_BREAKER_*`): it opens after the threshold
//! of upstream 503/504/529 answers, answers 503 "circuit breaker is open" with `Retry-After` while open
//! (recorded as failed interceptions, nothing sent upstream), lets MAX_REQUESTS trials through when
//! half-open, closes when they succeed and reopens when one fails. Each request uses its own connection,
//! so both workers take part.

use std::time::{Duration, Instant};

use aibridged::mock::MockUpstream;

use crate::support::*;

const CHAT: &str = "/api/v2/aibridge/openai/v1/chat/completions";
const KEYS: (&str, &str) = ("sk-central-openai-0123456789", "sk-ant-central-0123456789");

fn chat(model: &str, stream: bool) -> String {
    format!(r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#)
}

fn upstream_chats(mock: &MockUpstream) -> usize {
    mock.requests().iter().filter(|q| q.path == "/v1/chat/completions").count()
}

fn is_breaker_answer(r: &Response) -> bool {
    r.status == 503 && r.json()["error"]["message"] == "circuit breaker is open"
}

/// Sends one chat request with `headers` on a fresh connection.
fn send(gw: &Gateway, auth: &str, model: &str, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("Authorization", auth)];
    all.extend_from_slice(headers);
    request(gw.addr, "POST", CHAT, &all, chat(model, false).as_bytes())
}

/// Trips the breaker of `gpt-4o` with three upstream failures, each relayed to the client as is, then
/// waits for its first refusal and returns it. (A request's outcome counts when its handler finishes,
/// just after the client got the last byte, so the probes are failures too: one that slips through
/// before the third outcome counted keeps the breaker on its way to open.)
fn trip(gw: &Gateway, auth: &str) -> Response {
    for status in ["503", "529", "504"] {
        let r = send(gw, auth, "gpt-4o", &[("x-mock-status", status)]);
        assert_eq!(r.status.to_string(), status, "the upstream's answer is relayed: {}", r.text());
    }
    refusal_of_a_failing_probe(gw, auth)
}

/// Sends failing requests until the breaker refuses one; returns the refusal.
fn refusal_of_a_failing_probe(gw: &Gateway, auth: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = send(gw, auth, "gpt-4o", &[("x-mock-status", "503")]);
        if is_breaker_answer(&r) {
            return r;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(Instant::now() < deadline, "the breaker never opened");
    }
}

/// Opens a slow stream as a trial, waiting (bounded) for the breaker to turn half-open; returns it
/// once the stream has started.
fn start_trial(gw: &Gateway, auth: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = Client::connect(gw.addr);
        let headers = [("Authorization", auth), ("x-mock-delay-ms", "100"), ("x-mock-events", "10")];
        c.send("POST", CHAT, &headers, chat("gpt-4o", true).as_bytes());
        assert!(c.read_until_seen(b"\r\n\r\n"), "no answer");
        if c.buffered().starts_with(b"HTTP/1.1 200") {
            assert!(c.read_until_seen(b"data: "), "the trial's stream never started");
            return c;
        }
        let refused = c.read_response();
        assert!(is_breaker_answer(&refused), "{} {}", refused.status, refused.text());
        assert!(Instant::now() < deadline, "the breaker never turned half-open");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn breaker_opens_after_threshold_refuses_while_open_and_half_open_closes_or_reopens() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start_on(
        &mock.base_url(),
        KEYS,
        &[
            ("CODER_AIBRIDGE_WORKERS", "2"),
            ("CODER_AIBRIDGE_CIRCUIT_BREAKER_ENABLED", "true"),
            ("CODER_AIBRIDGE_CIRCUIT_BREAKER_FAILURE_THRESHOLD", "3"),
            ("CODER_AIBRIDGE_CIRCUIT_BREAKER_INTERVAL", "5m"),
            ("CODER_AIBRIDGE_CIRCUIT_BREAKER_TIMEOUT", "4s"),
            ("CODER_AIBRIDGE_CIRCUIT_BREAKER_MAX_REQUESTS", "2"),
        ],
    );
    let auth = format!("Bearer {}", gw.token("pia"));
    mock.clear();

    // Below the threshold nothing changes; the third failure opens it.
    trip(&gw, &auth);
    let sent = upstream_chats(&mock);
    assert!((3..=4).contains(&sent), "{sent}");
    for _ in 0..4 {
        let r = send(&gw, &auth, "gpt-4o", &[]);
        assert!(is_breaker_answer(&r), "{} {}", r.status, r.text());
        let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!((1..=4).contains(&retry), "until the 4 s timeout has passed: {retry}");
    }
    assert_eq!(upstream_chats(&mock), sent, "an open breaker sends nothing upstream");
    // Another model has its own breaker.
    assert_eq!(send(&gw, &auth, "gpt-4o-mini", &[]).status, 200);
    // Refusals are recorded as failed interceptions without an upstream status.
    wait_until("the refusals are recorded as failed", Duration::from_secs(20), || {
        let n: i64 = db(&gw.db)
            .query_row(
                "SELECT COUNT(*) FROM aibridge_interceptions WHERE status = 'failed' AND upstream_status IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        n == 5
    });

    // Half-open: exactly two trials pass; a third request meanwhile is refused.
    let before = upstream_chats(&mock);
    let mut trials = vec![start_trial(&gw, &auth)];
    trials.push(start_trial(&gw, &auth));
    let r = send(&gw, &auth, "gpt-4o", &[]);
    assert!(is_breaker_answer(&r), "{} {}", r.status, r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(upstream_chats(&mock), before + 2, "only the trials went upstream");
    // Both succeed: closed again, requests pass.
    for mut t in trials {
        let resp = t.read_response();
        assert!(resp.complete && resp.status == 200, "{}", resp.text());
    }
    wait_until("the breaker closes after its trials succeed", Duration::from_secs(20), || {
        send(&gw, &auth, "gpt-4o", &[]).status == 200
    });
    for _ in 0..3 {
        assert_eq!(send(&gw, &auth, "gpt-4o", &[]).status, 200);
    }

    // Trip again; a failing trial reopens it at once.
    trip(&gw, &auth);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = send(&gw, &auth, "gpt-4o", &[("x-mock-status", "503")]);
        if !is_breaker_answer(&r) {
            assert_eq!(r.status, 503, "the trial got the upstream's failure: {}", r.text());
            break;
        }
        assert!(Instant::now() < deadline, "the breaker never turned half-open");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = refusal_of_a_failing_probe(&gw, &auth);
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((3..=4).contains(&retry), "a fresh 4 s timeout: {retry}");
}

#[test]
fn breaker_is_off_by_default() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start_on(&mock.base_url(), KEYS, &[]);
    let auth = format!("Bearer {}", gw.token("pia"));
    for _ in 0..8 {
        assert_eq!(send(&gw, &auth, "gpt-4o", &[("x-mock-status", "503")]).status, 503);
    }
    let r = send(&gw, &auth, "gpt-4o", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn an_anthropic_breaker_answers_in_anthropic_shape() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start_on(
        &mock.base_url(),
        KEYS,
        &[
            ("CODER_AIBRIDGE_CIRCUIT_BREAKER_ENABLED", "true"),
            ("CODER_AIBRIDGE_CIRCUIT_BREAKER_FAILURE_THRESHOLD", "1"),
        ],
    );
    let key = gw.token("pia");
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let messages = "/api/v2/aibridge/anthropic/v1/messages";
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let r = request(gw.addr, "POST", messages, &[("X-Api-Key", &key), ("x-mock-status", "529")], body.as_bytes());
        if r.json()["error"]["message"] == "circuit breaker is open" {
            break r;
        }
        assert_eq!(r.status, 529, "{}", r.text());
        assert!(Instant::now() < deadline, "the breaker never opened");
    };
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["type"], "error");
    assert_eq!(refused.json()["error"]["type"], "overloaded_error");
    let retry: u64 = refused.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=30).contains(&retry), "the default 30 s timeout: {retry}");
}
