//! `/readyz` answers 200 once the gateway is fully up and 503 from the moment shutdown begins, while
//! `/healthz` (liveness) stays 200; `HEAD` on either answers without a body.

use std::time::Duration;

use aibridged::mock::MockUpstream;

use crate::support::*;

const CHAT: &str = "/api/v2/aibridge/openai/v1/chat/completions";
const CHAT_JSON: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;

fn wait_ready(gw: &Gateway) {
    wait_until("/readyz answers 200", Duration::from_secs(20), || {
        request(gw.addr, "GET", "/readyz", &[], b"").status == 200
    });
}

#[test]
fn readyz_is_ready_once_up_and_head_has_no_body() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start_on(&mock.base_url(), ("sk-central-openai-0123456789", "sk-ant-central-0123456789"), &[]);
    wait_ready(&gw);
    let r = request(gw.addr, "GET", "/readyz?verbose=1", &[], b"");
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ready")));
    let mut c = Client::connect(gw.addr);
    let r = c.request("HEAD", "/readyz", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty(), "HEAD answers carry no body");
    assert_eq!(r.header("content-length"), Some("18"), "the length a GET would get");
    // The connection is still usable: nothing was written past the head.
    assert_eq!(c.request("GET", "/healthz", &[], b"").status, 200);
    assert!(mock.requests().is_empty(), "probes reach no upstream");
}

#[test]
fn readyz_answers_503_while_draining_and_requests_are_still_served() {
    let mock = MockUpstream::start().unwrap();
    // A long shutdown delay: the test observes the drain, then kills the process.
    let gw = Gateway::start_on(
        &mock.base_url(),
        ("sk-central-openai-0123456789", "sk-ant-central-0123456789"),
        &[("CODER_AI_GATEWAY_SHUTDOWN_DELAY", "60s")],
    );
    let token = gw.token("nia");
    wait_ready(&gw);
    unsafe {
        libc::kill(gw.child.id() as i32, libc::SIGTERM);
    }
    wait_until("/readyz answers 503 after SIGTERM", Duration::from_secs(20), || {
        request(gw.addr, "GET", "/readyz", &[], b"").status == 503
    });
    let r = request(gw.addr, "GET", "/readyz", &[], b"");
    assert_eq!((r.status, r.json()["status"].as_str()), (503, Some("draining")));
    let r = request(gw.addr, "HEAD", "/readyz", &[], b"");
    assert_eq!(r.status, 503);
    assert!(r.body.is_empty());
    assert_eq!(request(gw.addr, "GET", "/healthz", &[], b"").status, 200, "still alive");
    let r = request(gw.addr, "POST", CHAT, &[("Authorization", &format!("Bearer {token}"))], CHAT_JSON.as_bytes());
    assert_eq!(r.status, 200, "requests are still served during the delay: {}", r.text());
}

#[test]
fn readyz_drain_ends_in_a_clean_exit() {
    let mock = MockUpstream::start().unwrap();
    let mut gw = Gateway::start_on(
        &mock.base_url(),
        ("sk-central-openai-0123456789", "sk-ant-central-0123456789"),
        &[("CODER_AIBRIDGE_SHUTDOWN_DELAY", "200ms")],
    );
    wait_ready(&gw);
    assert!(gw.terminate(), "exits 0 after the delay and the grace");
}
