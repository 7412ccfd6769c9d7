//! Key health is shared by every worker: a key one worker saw rate limited (429) or refused (401) is
//! not used by any worker, and the gateway's own 429 (every key resting) says when to come back.
//!
//! Two workers, and many keep-alive connections opened before the failing answer: `SO_REUSEPORT` spreads
//! them over both workers (all on one worker has a chance of 2^-(CONNECTIONS-1)), so the later requests
//! are served by a worker that never saw the failure itself.

use aibridged::mock::MockUpstream;

use crate::support::*;

const CHAT: &str = "/api/v2/aibridge/openai/v1/chat/completions";
const CHAT_JSON: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
const KEYS: [&str; 3] = ["sk-shared-key-0000000a", "sk-shared-key-0000000b", "sk-shared-key-0000000c"];
const CONNECTIONS: usize = 16;

fn pooled_gateway(mock: &MockUpstream) -> Gateway {
    let keys = KEYS.join(",");
    Gateway::start(&[
        ("CODER_AIBRIDGE_WORKERS", "2"),
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_0_KEYS", &keys),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", &format!("{}/v1", mock.base_url())),
    ])
}

/// How many requests the mock saw with each of [`KEYS`].
fn per_key(mock: &MockUpstream) -> [usize; 3] {
    let mut counts = [0; 3];
    for q in mock.requests() {
        let auth = q.header("authorization").unwrap_or_default();
        if let Some(i) = KEYS.iter().position(|k| auth == format!("Bearer {k}")) {
            counts[i] += 1;
        }
    }
    counts
}

fn connections(gw: &Gateway) -> Vec<Client> {
    (0..CONNECTIONS).map(|_| Client::connect(gw.addr)).collect()
}

#[test]
fn a_key_rested_by_one_worker_is_rested_for_every_worker() {
    let mock = MockUpstream::start().unwrap();
    let gw = pooled_gateway(&mock);
    let auth = format!("Bearer {}", gw.token("kim"));
    let mut conns = connections(&gw);
    let rule = format!("{}=429", KEYS[0]);
    let r = conns[0].request(
        "POST",
        CHAT,
        &[("Authorization", &auth), ("x-mock-status-for-key", &rule), ("x-mock-retry-after", "60")],
        CHAT_JSON.as_bytes(),
    );
    assert_eq!(r.status, 200, "failed over: {}", r.text());
    assert_eq!(per_key(&mock), [1, 1, 0]);

    mock.clear();
    for c in &mut conns {
        let r = c.request("POST", CHAT, &[("Authorization", &auth)], CHAT_JSON.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(per_key(&mock), [0, CONNECTIONS, 0], "the resting key is used by no worker; the next one by all");
}

#[test]
fn a_key_refused_on_one_worker_is_disabled_on_every_worker() {
    let mock = MockUpstream::start().unwrap();
    let gw = pooled_gateway(&mock);
    let auth = format!("Bearer {}", gw.token("lou"));
    let mut conns = connections(&gw);
    let rule = format!("{}=401", KEYS[0]);
    let r = conns[0].request(
        "POST",
        CHAT,
        &[("Authorization", &auth), ("x-mock-status-for-key", &rule)],
        CHAT_JSON.as_bytes(),
    );
    assert_eq!(r.status, 200, "failed over: {}", r.text());

    mock.clear();
    for c in &mut conns {
        let r = c.request("POST", CHAT, &[("Authorization", &auth)], CHAT_JSON.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(per_key(&mock), [0, CONNECTIONS, 0]);
}

#[test]
fn when_every_key_rests_every_worker_answers_429_with_retry_after_without_calling_the_provider() {
    let mock = MockUpstream::start().unwrap();
    let gw = pooled_gateway(&mock);
    let auth = format!("Bearer {}", gw.token("max"));
    let mut conns = connections(&gw);
    let rule = format!("{}=429,{}=429,{}=401", KEYS[0], KEYS[1], KEYS[2]);
    let r = conns[0].request(
        "POST",
        CHAT,
        &[("Authorization", &auth), ("x-mock-status-for-key", &rule), ("x-mock-retry-after", "40")],
        CHAT_JSON.as_bytes(),
    );
    assert_eq!(r.status, 401, "the last key's own answer is relayed: {}", r.text());
    assert_eq!(per_key(&mock), [1, 1, 1]);

    mock.clear();
    for c in &mut conns {
        let r = c.request("POST", CHAT, &[("Authorization", &auth)], CHAT_JSON.as_bytes());
        assert_eq!(r.status, 429, "{}", r.text());
        let secs: u64 = r.header("retry-after").expect("Retry-After on the gateway's 429").parse().unwrap();
        assert!((1..=40).contains(&secs), "wait until the first key wakes, got {secs}");
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("resting"), "{}", r.text());
    }
    assert!(mock.requests().is_empty(), "no provider call while every key rests");
}
