//! A gateway killed mid-stream (SIGKILL: no shutdown, no final record) settles, at its next start on the
//! same database, the interceptions it left open, and only its own.

use std::sync::mpsc;
use std::time::Duration;

use aibridged::mock::MockUpstream;

use crate::support::*;

const STREAM: &str = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"count slowly"}]}"#;
const OPEN: &str = "SELECT COUNT(*) FROM aibridge_interceptions WHERE started_at IS NOT NULL AND ended_at IS NULL";

#[test]
fn restart_after_sigkill_settles_its_own_open_interceptions_as_failed() {
    let mock = MockUpstream::start().unwrap();
    let base = format!("{}/v1", mock.base_url());
    let env =
        [("CODER_AIBRIDGE_OPENAI_KEY", "sk-central-openai-0123456789"), ("CODER_AIBRIDGE_OPENAI_BASE_URL", &base)];
    let mut gw = Gateway::start(&env);
    let token = gw.token("alice");
    let (addr, db_path) = (gw.addr, gw.db.clone());

    // A stream far longer than the test: the gateway dies while relaying it.
    let (started, started_rx) = mpsc::channel();
    let client = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        let auth = format!("Bearer {token}");
        let headers = [("Authorization", auth.as_str()), ("x-mock-delay-ms", "200"), ("x-mock-events", "1000")];
        c.send("POST", "/api/v2/aibridge/openai/v1/chat/completions", &headers, STREAM.as_bytes());
        assert!(c.read_until_seen(b"data: "), "the stream never started");
        let _ = started.send(());
        c.read_response()
    });
    started_rx.recv_timeout(Duration::from_secs(20)).expect("the stream is under way");
    assert_eq!(wait_count(&db_path, OPEN, 1), 1, "the start of the stream is committed");
    let (killed_id, gateway_id): (String, String) = db(&db_path)
        .query_row("SELECT id, gateway_id FROM aibridge_interceptions WHERE ended_at IS NULL", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(gateway_id.ends_with("/127.0.0.1:0"), "default id is HOSTNAME/HTTP_ADDRESS: {gateway_id}");

    // Another gateway on the same store has one in flight: it is not this gateway's to settle.
    let other_id = "0190f0c4-0000-7000-8000-000000000001";
    rusqlite::Connection::open(&db_path)
        .unwrap()
        .execute(
            "INSERT INTO aibridge_interceptions (id, initiator_id, started_at, gateway_id) \
             VALUES (?1, 'bob', '2026-12-02T18:00:00.000000Z', 'other-host/127.0.0.1:3000')",
            [other_id],
        )
        .unwrap();

    gw.child.kill().unwrap(); // SIGKILL
    gw.child.wait().unwrap();
    let r = client.join().unwrap();
    assert!(!r.complete, "the stream was cut by the kill");
    assert_eq!(wait_count(&db_path, OPEN, 2), 2, "a killed gateway leaves its interception open");

    let dir = std::mem::replace(&mut gw.dir, ScratchDir::new("spare"));
    drop(gw);
    let gw = Gateway::start_in(dir, db_path.clone(), &env);
    // The settle runs before the gateway listens: by now it is done.
    let c = db(&gw.db);
    let (status, reason, ended): (Option<String>, Option<String>, Option<String>) = c
        .query_row("SELECT status, end_reason, ended_at FROM aibridge_interceptions WHERE id = ?1", [&killed_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(status.as_deref(), Some("failed"));
    assert_eq!(reason.as_deref(), Some("gateway_restart"));
    assert!(ended.is_some(), "the settled interception has an end time");
    let other_open: i64 = c
        .query_row("SELECT COUNT(*) FROM aibridge_interceptions WHERE id = ?1 AND ended_at IS NULL", [other_id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(other_open, 1, "another gateway's open interception stays open");
}
