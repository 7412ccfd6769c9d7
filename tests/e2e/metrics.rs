//! `/metrics` scraped from a real gateway: the values equal what the test drove (interceptions per
//! status, tokens by type from the mock's known usage, prompts, tool selections, passthrough), in-flight
//! goes up while a stream is held open and back down after, the initiator label and the prefix follow
//! their settings, the listener is off by default, and every scrape parses as valid exposition text. The
//! circuit-breaker and overload-limit families follow the shared breakers and limits.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use aibridged::metrics::parse::{parse, Sample};
use aibridged::mock::MockUpstream;

use crate::support::*;

const CHAT: &str = "/api/v2/aibridge/openai/v1/chat/completions";
const MESSAGES: &str = "/api/v2/aibridge/anthropic/v1/messages";
const SCRAPE_WAIT: Duration = Duration::from_secs(20);

fn gateway(mock: &MockUpstream, extra: &[(&str, &str)]) -> Gateway {
    let mut env = vec![("CODER_PROMETHEUS_ENABLE", "true"), ("CODER_PROMETHEUS_ADDRESS", "127.0.0.1:0")];
    env.extend_from_slice(extra);
    Gateway::start_on(&mock.base_url(), ("sk-openai-metrics-0123456789", "sk-ant-metrics-0123456789"), &env)
}

/// One scrape, held to the format: a scrape that does not parse fails the test.
fn scrape(gw: &Gateway) -> Vec<Sample> {
    let addr = gw.metrics_addr().expect("metrics address in the start-up log");
    let r = request(addr, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    // E2E_DUMP=1 prints every scrape (with --nocapture).
    if std::env::var("E2E_DUMP").is_ok() {
        eprintln!("{}", r.text());
    }
    parse(&r.text()).unwrap_or_else(|e| panic!("invalid exposition text: {e}\n{}", r.text()))
}

/// The sum of the samples named `name` whose labels include `labels`.
fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
        .sum()
}

/// Scrapes until `cond` holds (the sink counts records once committed, within its batch delay).
fn scrape_until(gw: &Gateway, what: &str, mut cond: impl FnMut(&[Sample]) -> bool) -> Vec<Sample> {
    let mut last = Vec::new();
    wait_until(what, SCRAPE_WAIT, || {
        last = scrape(gw);
        cond(&last)
    });
    last
}

fn chat(gw: &Gateway, token: &str, model: &str, extra: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str()), ("User-Agent", "codex_cli_rs/0.50.0 (Linux; x86_64)")];
    headers.extend_from_slice(extra);
    let body = format!(r#"{{"model":"{model}","stream":true,"messages":[{{"role":"user","content":"hi"}}]}}"#);
    request(gw.addr, "POST", CHAT, &headers, body.as_bytes())
}

#[test]
fn scraped_values_equal_what_the_test_drove() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[]);
    let (alice, bob) = (gw.token("alice"), gw.token("bob"));

    for _ in 0..3 {
        assert_eq!(chat(&gw, &alice, "gpt-4o", &[]).status, 200);
    }
    assert_eq!(chat(&gw, &bob, "o3", &[("x-mock-scenario", "cached")]).status, 200);
    assert_eq!(chat(&gw, &alice, "gpt-4o-mini", &[("x-mock-scenario", "tools")]).status, 200);
    // The upstream resets the connection after reading the request: a failed interception.
    let auth = format!("Bearer {bob}");
    let failed = request(
        gw.addr,
        "POST",
        MESSAGES,
        &[("Authorization", &auth), ("x-mock-hang-up", "reset")],
        br#"{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"x"}]}"#,
    );
    assert_eq!(failed.status, 502, "{}", failed.text());
    for _ in 0..2 {
        let r = request(gw.addr, "GET", "/api/v2/aibridge/openai/v1/models", &[("Authorization", &auth)], b"");
        assert_eq!(r.status, 200);
    }
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/anthropic/v1/messages/count_tokens",
        &[("Authorization", &auth)],
        br#"{"model":"claude-sonnet-4-5","messages":[]}"#,
    );
    assert!(r.status < 500, "{}", r.text());

    let m =
        scrape_until(&gw, "six interceptions counted", |m| sum(m, "coder_aibridged_interceptions_total", &[]) == 6.0);
    let total = |labels: &[(&str, &str)]| sum(&m, "coder_aibridged_interceptions_total", labels);
    let alice_4o = [
        ("provider", "openai"),
        ("provider_name", "openai"),
        ("model", "gpt-4o"),
        ("route", "/v1/chat/completions"),
        ("method", "POST"),
        ("initiator_id", "alice"),
        ("client", "codex"),
    ];
    assert_eq!(total(&[&alice_4o[..], &[("status", "completed")]].concat()), 3.0);
    assert_eq!(total(&[("status", "completed")]), 5.0);
    assert_eq!(
        total(&[
            ("provider", "anthropic"),
            ("provider_name", "anthropic"),
            ("route", "/v1/messages"),
            ("status", "failed"),
            ("initiator_id", "bob")
        ]),
        1.0
    );

    // Tokens by type: the mock's text answer is 12 in / 5 out; each type also equals the stored rows.
    let tokens = |labels: &[(&str, &str)]| sum(&m, "coder_aibridged_tokens_total", labels);
    let alice_4o_tokens = [("model", "gpt-4o"), ("initiator_id", "alice")];
    assert_eq!(tokens(&[&alice_4o_tokens[..], &[("type", "input")]].concat()), 36.0);
    assert_eq!(tokens(&[&alice_4o_tokens[..], &[("type", "output")]].concat()), 15.0);
    assert_eq!(tokens(&[("model", "o3"), ("type", "cache_read_input_tokens"), ("initiator_id", "bob")]), 100.0);
    assert_eq!(tokens(&[("model", "o3"), ("type", "reasoning")]), 16.0);
    let c = db(&gw.db);
    for (ty, column) in [
        ("input", "input_tokens"),
        ("output", "output_tokens"),
        ("cache_read_input_tokens", "cache_read_input_tokens"),
        ("cache_write_input_tokens", "cache_write_input_tokens"),
        ("reasoning", "reasoning_tokens"),
    ] {
        let stored: i64 = c
            .query_row(&format!("SELECT COALESCE(SUM({column}), 0) FROM aibridge_token_usages"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(tokens(&[("type", ty)]), stored as f64, "tokens of type {ty}");
    }

    assert_eq!(sum(&m, "coder_aibridged_prompts_total", &[("initiator_id", "alice")]), 4.0);
    let tools = |name| {
        sum(&m, "coder_aibridged_non_injected_tool_selections_total", &[("model", "gpt-4o-mini"), ("name", name)])
    };
    assert_eq!((tools("get_weather"), tools("get_time")), (1.0, 1.0));
    let durations = sum(&m, "coder_aibridged_interceptions_duration_seconds_count", &[("model", "gpt-4o")]);
    assert_eq!(durations, 3.0);

    let passthrough = |labels: &[(&str, &str)]| sum(&m, "coder_aibridged_passthrough_total", labels);
    assert_eq!(passthrough(&[("provider_name", "openai"), ("method", "GET"), ("route", "/v1/models")]), 2.0);
    assert_eq!(
        passthrough(&[("provider", "anthropic"), ("method", "POST"), ("route", "/v1/messages/count_tokens")]),
        1.0
    );
    assert_eq!(passthrough(&[]), 3.0);

    assert_eq!(sum(&m, "coder_aibridged_interceptions_inflight", &[]), 0.0);
    assert!(sum(&m, "coder_aibridged_overhead_seconds_count", &[("phase", "request_read")]) >= 9.0);
    assert!(sum(&m, "coder_aibridged_overhead_seconds_count", &[("phase", "response_relay")]) >= 5.0);
    assert!(sum(&m, "coder_aibridged_upstream_ttfb_seconds_count", &[("provider_name", "openai")]) >= 5.0);
    let stored_rows: i64 = c
        .query_row(
            "SELECT (SELECT COUNT(*) FROM aibridge_interceptions) + (SELECT COUNT(*) FROM aibridge_token_usages)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sum(&m, "coder_aibridged_sink_records_written_total", &[]) >= stored_rows as f64);
    assert!(sum(&m, "coder_aibridged_sink_batch_commit_seconds_count", &[]) >= 1.0);
    let info: Vec<_> = m.iter().filter(|s| s.name == "coder_aibridged_info").collect();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].label("workers"), Some("2"));
    assert!(matches!(info[0].label("driver"), Some("io_uring" | "epoll")), "{info:?}");
}

#[test]
fn inflight_rises_while_a_stream_is_open_and_falls_after() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[]);
    let token = gw.token("carol");
    let inflight = |m: &[Sample]| {
        sum(
            m,
            "coder_aibridged_interceptions_inflight",
            &[("provider_name", "openai"), ("route", "/v1/chat/completions")],
        )
    };
    // The token probe's request ends on its worker just after its answer reached the client.
    scrape_until(&gw, "in-flight zero before the stream", |m| inflight(m) == 0.0);

    let mut slow = Client::connect(gw.addr);
    let auth = format!("Bearer {token}");
    slow.send(
        "POST",
        CHAT,
        &[("Authorization", &auth), ("x-mock-events", "200"), ("x-mock-delay-ms", "100")],
        br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"slow"}]}"#,
    );
    assert!(slow.read_until_seen(b"data:"), "the stream started");
    let m = scrape(&gw);
    assert_eq!(inflight(&m), 1.0);
    assert_eq!(sum(&m, "coder_aibridged_interceptions_inflight", &[]), 1.0);

    drop(slow);
    let m = scrape_until(&gw, "in-flight back to zero", |m| inflight(m) == 0.0);
    assert_eq!(sum(&m, "coder_aibridged_interceptions_inflight", &[]), 0.0);
    scrape_until(&gw, "the cut stream counted as client_disconnected", |m| {
        sum(m, "coder_aibridged_interceptions_total", &[("status", "client_disconnected"), ("initiator_id", "carol")])
            == 1.0
    });
}

#[test]
fn prefix_and_initiator_label_follow_their_settings() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(
        &mock,
        &[("CODER_AIBRIDGE_METRICS_PREFIX", "gw_"), ("CODER_AIBRIDGE_METRICS_INITIATOR_LABEL", "false")],
    );
    let (dave, erin) = (gw.token("dave"), gw.token("erin"));
    assert_eq!(chat(&gw, &dave, "gpt-4o", &[]).status, 200);
    assert_eq!(chat(&gw, &erin, "gpt-4o", &[]).status, 200);
    let m = scrape_until(&gw, "two interceptions", |m| sum(m, "gw_interceptions_total", &[]) == 2.0);
    assert!(m.iter().all(|s| s.name.starts_with("gw_")), "every name carries the prefix");
    assert!(m.iter().all(|s| s.label("initiator_id").is_none()), "no series per user");
    // Without the label both users' requests are one series.
    let series: Vec<_> = m.iter().filter(|s| s.name == "gw_interceptions_total").collect();
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(sum(&m, "gw_tokens_total", &[("type", "input"), ("model", "gpt-4o")]), 24.0);
    assert_eq!(sum(&m, "gw_prompts_total", &[]), 2.0);
}

#[test]
fn the_listener_is_off_by_default_and_answers_only_metrics() {
    let free = || -> SocketAddr { TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap() };
    let mock = MockUpstream::start().unwrap();

    // Off unless enabled, even with an address configured: nothing listens there.
    let addr = free();
    let addr_text = addr.to_string();
    let off = Gateway::start_on(&mock.base_url(), ("sk-a", "sk-b"), &[("CODER_PROMETHEUS_ADDRESS", &addr_text)]);
    assert_eq!(off.metrics_addr(), None);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(), "nothing listens on {addr}");
    assert_eq!(request(off.addr, "GET", "/metrics", &[], b"").status, 404, "not served on the data plane");
    drop(off);

    // Enabled by flag-equivalent variable on that address.
    let on = Gateway::start_on(
        &mock.base_url(),
        ("sk-a", "sk-b"),
        &[("CODER_PROMETHEUS_ENABLE", "1"), ("CODER_PROMETHEUS_ADDRESS", &addr_text)],
    );
    assert_eq!(on.metrics_addr(), Some(addr));
    assert!(!scrape(&on).is_empty());
    let head = request(addr, "HEAD", "/metrics", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(request(addr, "GET", "/elsewhere", &[], b"").status, 404);
    assert_eq!(request(addr, "POST", "/metrics", &[], b"x").status, 405);
}

/// The key pools' families read the health every worker shares: a 429'd key counts as `temporary`, a
/// 401'd one as `permanent`, each move to the next key as a failover attempt and each time no key is
/// left as an exhaustion (one when a failover finds none, one for every new request refused with 429).
#[test]
fn key_pool_families_follow_the_shared_key_health() {
    const KEYS: [&str; 3] = ["sk-metrics-pool-0000000a", "sk-metrics-pool-0000000b", "sk-metrics-pool-0000000c"];
    let mock = MockUpstream::start().unwrap();
    let keys = KEYS.join(",");
    let base = format!("{}/v1", mock.base_url());
    let gw = Gateway::start(&[
        ("CODER_PROMETHEUS_ENABLE", "true"),
        ("CODER_PROMETHEUS_ADDRESS", "127.0.0.1:0"),
        ("CODER_AIBRIDGE_WORKERS", "2"),
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_0_KEYS", &keys),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", &base),
    ]);
    let token = gw.token("pia");
    let state = |s: &[Sample], which: &str| {
        sum(
            s,
            "coder_aibridged_key_pool_state",
            &[("provider", "openai"), ("provider_name", "openai"), ("state", which)],
        )
    };
    let failovers = |s: &[Sample]| sum(s, "coder_aibridged_key_pool_failover_attempts", &[("provider_name", "openai")]);
    let exhaustions =
        |s: &[Sample]| sum(s, "coder_aibridged_key_pool_exhaustions_total", &[("provider_name", "openai")]);

    let s = scrape(&gw);
    assert_eq!([state(&s, "valid"), state(&s, "temporary"), state(&s, "permanent")], [3.0, 0.0, 0.0]);
    assert_eq!((failovers(&s), exhaustions(&s)), (0.0, 0.0));

    // Key 0 answers 429: the request fails over to key 1, which serves it.
    let rule = format!("{}=429", KEYS[0]);
    let r = chat(&gw, &token, "gpt-4o", &[("x-mock-status-for-key", &rule), ("x-mock-retry-after", "60")]);
    assert_eq!(r.status, 200, "failed over: {}", r.text());
    let s = scrape(&gw);
    assert_eq!([state(&s, "valid"), state(&s, "temporary"), state(&s, "permanent")], [2.0, 1.0, 0.0]);
    assert_eq!((failovers(&s), exhaustions(&s)), (1.0, 0.0));

    // Key 1 answers 429 and key 2 401: one more failover, then no key is left (the 401 is relayed).
    let rule = format!("{}=429,{}=401", KEYS[1], KEYS[2]);
    let r = chat(&gw, &token, "gpt-4o", &[("x-mock-status-for-key", &rule), ("x-mock-retry-after", "60")]);
    assert_eq!(r.status, 401, "the last key's answer is relayed: {}", r.text());
    let s = scrape(&gw);
    assert_eq!([state(&s, "valid"), state(&s, "temporary"), state(&s, "permanent")], [0.0, 2.0, 1.0]);
    assert_eq!((failovers(&s), exhaustions(&s)), (2.0, 1.0));

    // Every key rests or is disabled: new requests get the gateway's 429, each one an exhaustion.
    mock.clear();
    for _ in 0..2 {
        let r = chat(&gw, &token, "gpt-4o", &[]);
        assert_eq!(r.status, 429, "{}", r.text());
    }
    assert!(mock.requests().is_empty(), "no provider call while every key rests");
    let s = scrape(&gw);
    assert_eq!((failovers(&s), exhaustions(&s)), (2.0, 3.0));
}

/// The circuit-breaker families read the breakers every worker shares: a tripped breaker reads 1 with
/// one trip, each refusal adds a reject, and after its timeout it reads 0.5 (half-open).
#[test]
fn breaker_families_follow_the_shared_breaker() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(
        &mock,
        &[
            ("CODER_AIBRIDGE_CIRCUIT_BREAKER_ENABLED", "true"),
            ("CODER_AIBRIDGE_CIRCUIT_BREAKER_FAILURE_THRESHOLD", "1"),
            ("CODER_AIBRIDGE_CIRCUIT_BREAKER_INTERVAL", "5m"),
            ("CODER_AIBRIDGE_CIRCUIT_BREAKER_TIMEOUT", "3s"),
        ],
    );
    let token = gw.token("pia");
    let labels =
        [("provider", "openai"), ("provider_name", "openai"), ("endpoint", "chat_completions"), ("model", "gpt-4o")];
    let state = |m: &[Sample]| {
        m.iter()
            .find(|s| {
                s.name == "coder_aibridged_circuit_breaker_state" && labels.iter().all(|(k, v)| s.label(k) == Some(v))
            })
            .map(|s| s.value)
    };
    let trips = |m: &[Sample]| sum(m, "coder_aibridged_circuit_breaker_trips_total", &labels);
    let rejects = |m: &[Sample]| sum(m, "coder_aibridged_circuit_breaker_rejects_total", &labels);

    // The mock's 503 opens it (the outcome counts when the request's handler finishes).
    let r = chat(&gw, &token, "gpt-4o", &[("x-mock-status", "503")]);
    assert_eq!(r.status, 503, "{}", r.text());
    let m = scrape_until(&gw, "the breaker reads open", |m| state(m) == Some(1.0));
    assert_eq!((trips(&m), rejects(&m)), (1.0, 0.0));

    // A refused request is one reject (counted before its answer is written).
    let r = chat(&gw, &token, "gpt-4o", &[]);
    assert_eq!(r.json()["error"]["message"], "circuit breaker is open", "{}", r.text());
    let m = scrape(&gw);
    assert_eq!(state(&m), Some(1.0));
    assert_eq!((trips(&m), rejects(&m)), (1.0, 1.0));

    // After the timeout the next request would be a trial: half-open.
    let m = scrape_until(&gw, "the breaker reads half-open", |m| state(m) == Some(0.5));
    assert_eq!((trips(&m), rejects(&m)), (1.0, 1.0));
    // Another model never used has no breaker series.
    assert!(!m.iter().any(|s| s.label("model") == Some("gpt-4o-mini")));
}

/// The overload limits' counters read the limits every worker shares: each MAX_CONCURRENCY 503 and each
/// RATE_LIMIT 429 adds exactly one to its counter; `connections_open` is served only with
/// `--max-connections` on.
#[test]
fn limit_refusals_are_counted_exactly() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[("CODER_AIBRIDGE_MAX_CONCURRENCY", "1"), ("CODER_AI_GATEWAY_RATE_LIMIT", "2")]);
    let (holder, other) = (gw.token("holder"), gw.token("other"));
    let concurrency = |m: &[Sample]| sum(m, "coder_aibridged_concurrency_rejections_total", &[]);
    let rate = |m: &[Sample]| sum(m, "coder_aibridged_rate_limit_rejections_total", &[]);
    let before = scrape(&gw);
    assert!(!before.iter().any(|s| s.name == "coder_aibridged_connections_open"), "--max-connections is off");
    assert_eq!(sum(&before, "coder_aibridged_connections_rejected_total", &[]), 0.0);

    // One slow stream holds the only place.
    let mut held = Client::connect(gw.addr);
    let auth = format!("Bearer {holder}");
    held.send(
        "POST",
        CHAT,
        &[("Authorization", &auth), ("x-mock-events", "200"), ("x-mock-delay-ms", "100")],
        br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"slow"}]}"#,
    );
    assert!(held.read_until_seen(b"data:"), "the stream started");

    // Another token: within its rate it gets the capacity 503, above it the 429.
    let (mut at_capacity, mut limited) = (0.0, 0.0);
    for _ in 0..6 {
        let r = chat(&gw, &other, "gpt-4o", &[]);
        match r.status {
            503 => at_capacity += 1.0,
            429 => limited += 1.0,
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert!(at_capacity > 0.0 && limited > 0.0, "{at_capacity} at capacity, {limited} limited");
    let m = scrape(&gw);
    assert_eq!(concurrency(&m) - concurrency(&before), at_capacity);
    assert_eq!(rate(&m) - rate(&before), limited);
    drop(held);
}

/// `connections_open` and `connections_rejected_total` with `--max-connections` on.
#[test]
fn connection_refusals_are_counted() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[("CODER_AIBRIDGE_MAX_CONNECTIONS", "2")]);
    let open = |m: &[Sample]| {
        m.iter().find(|s| s.name == "coder_aibridged_connections_open").map(|s| s.value).expect("connections_open")
    };
    // The harness's start-up probes' places are released when a worker reads their close.
    scrape_until(&gw, "no connection open", |m| open(m) == 0.0);
    let mut held = Vec::new();
    while held.len() < 2 {
        wait_until("a connection under the limit is served", SCRAPE_WAIT, || {
            let mut c = Client::connect(gw.addr);
            c.send("GET", "/healthz", &[], b"");
            let served = c.read_until_seen(b"HTTP/1.1 200");
            if served {
                assert_eq!(c.read_response().status, 200);
                held.push(c);
            }
            served
        });
    }
    let m = scrape(&gw);
    assert_eq!(open(&m), 2.0);
    let before = sum(&m, "coder_aibridged_connections_rejected_total", &[]);
    for _ in 0..3 {
        assert!(closed_at_accept(gw.addr), "a third connection is closed without an answer");
    }
    let m = scrape_until(&gw, "three refusals counted", |m| {
        sum(m, "coder_aibridged_connections_rejected_total", &[]) - before == 3.0
    });
    assert_eq!(open(&m), 2.0);
}

/// Whether a new connection ends (EOF or reset) without a byte of an answer.
fn closed_at_accept(addr: SocketAddr) -> bool {
    use std::io::{ErrorKind, Read, Write};
    let mut s = TcpStream::connect(addr).expect("the kernel still completes the handshake");
    s.set_read_timeout(Some(SCRAPE_WAIT)).unwrap();
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => got.is_empty(),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => got.is_empty(),
        Err(e) => panic!("neither served nor refused: {e}"),
    }
}
