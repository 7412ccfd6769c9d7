//! Graceful shutdown: SIGTERM while streams are in flight lets them finish, refuses new connections,
//! drains the sink, commits, and exits 0 — with start, end and usage rows for every interception.

use std::sync::mpsc;
use std::time::Duration;

use aibridged::mock::MockUpstream;

use crate::support::*;

const STREAM: &str = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"count slowly"}]}"#;
/// How long a stream may take to deliver its first event to the client.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends a streaming request on its own thread; says on `started` once the first event reached the
/// client, then reads the whole response.
fn stream_in_background(
    addr: std::net::SocketAddr,
    headers: Vec<(&'static str, String)>,
    started: mpsc::Sender<()>,
) -> std::thread::JoinHandle<Response> {
    std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        c.send("POST", "/api/v2/aibridge/openai/v1/chat/completions", &headers, STREAM.as_bytes());
        assert!(c.read_until_seen(b"data: "), "the stream never started");
        let _ = started.send(());
        c.read_response()
    })
}

#[test]
fn sigterm_mid_stream_finishes_in_flight_and_loses_no_record() {
    let mock = MockUpstream::start().unwrap();
    let base = format!("{}/v1", mock.base_url());
    let mut gw = Gateway::start(&[
        ("CODER_AIBRIDGE_OPENAI_KEY", "sk-central-openai-0123456789"),
        ("CODER_AIBRIDGE_OPENAI_BASE_URL", &base),
        ("CODER_AIBRIDGE_SHUTDOWN_GRACE", "20s"),
    ]);
    let token = gw.token("alice");
    let addr = gw.addr;
    const STREAMS: usize = 8;
    let (started, started_rx) = mpsc::channel();
    let handles: Vec<_> = (0..STREAMS)
        .map(|_| {
            let headers = vec![
                ("Authorization", format!("Bearer {token}")),
                ("x-mock-delay-ms", "100".to_string()),
                ("x-mock-events", "12".to_string()),
            ];
            stream_in_background(addr, headers, started.clone())
        })
        .collect();
    for _ in 0..STREAMS {
        started_rx.recv_timeout(START_TIMEOUT).expect("every stream is under way before SIGTERM");
    }
    let db_path = gw.db.clone();
    let exited_cleanly = gw.terminate();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200);
        assert!(r.complete, "in-flight streams finish during the grace period");
        assert!(r.text().contains("[DONE]"));
    }
    assert!(exited_cleanly, "gateway exits 0 after SIGTERM");
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "no longer accepting");
    let c = db(&db_path);
    let count = |q: &str| -> i64 { c.query_row(q, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM aibridge_interceptions"), STREAMS as i64);
    assert_eq!(
        count("SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL AND status = 'completed'"),
        STREAMS as i64
    );
    assert_eq!(count("SELECT COUNT(DISTINCT interception_id) FROM aibridge_token_usages"), STREAMS as i64);
    assert_eq!(count("SELECT COUNT(*) FROM aibridge_user_prompts WHERE prompt = 'count slowly'"), STREAMS as i64);
}

#[test]
fn requests_outliving_the_grace_period_are_recorded_as_failed() {
    let mock = MockUpstream::start().unwrap();
    let base = format!("{}/v1", mock.base_url());
    let mut gw = Gateway::start(&[
        ("CODER_AIBRIDGE_OPENAI_KEY", "sk-central-openai-0123456789"),
        ("CODER_AIBRIDGE_OPENAI_BASE_URL", &base),
        ("CODER_AIBRIDGE_SHUTDOWN_GRACE", "1s"),
    ]);
    let token = gw.token("bob");
    let addr = gw.addr;
    let (started, started_rx) = mpsc::channel();
    let headers = vec![
        ("Authorization", format!("Bearer {token}")),
        ("x-mock-delay-ms", "200".to_string()),
        ("x-mock-events", "100".to_string()),
    ];
    let slow = stream_in_background(addr, headers, started);
    started_rx.recv_timeout(START_TIMEOUT).expect("the stream is under way before SIGTERM");
    let t0 = std::time::Instant::now();
    assert!(gw.terminate(), "exits 0 once the grace period is over");
    assert!(t0.elapsed() < Duration::from_secs(8), "took {:?}", t0.elapsed());
    let r = slow.join().unwrap();
    assert!(!r.complete, "the stream was cut at the end of the grace period");
    let c = db(&gw.db);
    let (status, ended): (String, bool) = c
        .query_row("SELECT status, ended_at IS NOT NULL FROM aibridge_interceptions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(status, "failed");
    assert!(ended);
}
