//! Sessions and threads through the `Store` interface, for every backend (each store's tests call these
//! on a fresh database): thread links made at write time (in one batch
//! and across batches, only to the same user's tool calls), sessions grouped and paged while records
//! arrive, one session's interceptions, usage rows and the token role.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::db::{self, Role, SessionFilter, SessionQuery, Store, StoredToken};
use crate::records::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_759_144 + secs)
}

/// A start of `user` at `secs` in `session`, answering tool call `answers`.
fn start(id: Uuid, user: &str, secs: u64, session: Option<&str>, answers: Option<&str>) -> Record {
    Record::InterceptionStart(InterceptionStart {
        interception_id: id,
        initiator_id: user.into(),
        provider: "anthropic",
        provider_name: "anthropic".into(),
        model: if secs.is_multiple_of(2) { "claude-sonnet-4-5".into() } else { "claude-haiku-4-5".into() },
        client: "claude-code".into(),
        client_session_id: session.map(str::to_owned),
        user_agent: None,
        correlating_tool_call_id: answers.map(str::to_owned),
        credential_kind: CredentialKind::Centralized,
        credential_hint: None,
        started_at: at(secs),
        gateway_id: "gw".into(),
        api: Api::Messages,
    })
}

fn tool(id: Uuid, call: &str) -> Record {
    Record::ToolUsage(ToolUsage {
        interception_id: id,
        msg_id: "m".into(),
        tool: "get_weather".into(),
        tool_call_id: call.into(),
        input: "{}".into(),
        server_url: None,
        injected: false,
        created_at: UNIX_EPOCH,
    })
}

fn usage(id: Uuid, input: u64, output: u64) -> Record {
    Record::TokenUsage(TokenUsage {
        interception_id: id,
        msg_id: "m".into(),
        input_tokens: input,
        output_tokens: output,
        cache_read_input_tokens: 0,
        cache_write_input_tokens: 0,
        reasoning_tokens: 0,
        extra: String::new(),
        created_at: UNIX_EPOCH,
    })
}

fn prompt(id: Uuid, text: &str) -> Record {
    Record::PromptUsage(PromptUsage {
        interception_id: id,
        msg_id: "m".into(),
        prompt: text.into(),
        created_at: UNIX_EPOCH,
    })
}

fn end(id: Uuid, secs: u64) -> Record {
    Record::InterceptionEnd(InterceptionEnd {
        interception_id: id,
        ended_at: at(secs),
        status: EndStatus::Completed,
        upstream_status: Some(200),
    })
}

fn write(s: &mut dyn Store, records: &[Record]) {
    s.write_batch(&records.iter().collect::<Vec<_>>()).unwrap();
}

fn ids(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| db::new_interception_id()).collect()
}

/// The root of each interception as stored.
fn roots(s: &mut dyn Store, session: &str) -> Vec<(Uuid, Uuid)> {
    s.session_interceptions(session, None)
        .unwrap()
        .iter()
        .map(|d| (d.interception.id, d.interception.thread_root()))
        .collect()
}

pub(crate) fn tool_results_link_to_the_thread_that_made_the_call_in_one_batch_or_across_batches(s: &mut dyn Store) {
    let [a, b, c, d, e] = ids(5)[..] else { unreachable!() };
    // a calls t1; b answers it and calls t2; c answers t2: one batch. d is a new prompt.
    write(
        s,
        &[
            start(a, "alice", 0, Some("S"), None),
            tool(a, "t1"),
            end(a, 1),
            start(b, "alice", 2, Some("S"), Some("t1")),
            tool(b, "t2"),
            end(b, 3),
            start(c, "alice", 4, Some("S"), Some("t2")),
        ],
    );
    // Across batches, and an end before its start.
    write(s, &[end(c, 5), start(d, "alice", 6, Some("S"), None), tool(d, "t3")]);
    write(s, &[start(e, "alice", 8, Some("S"), Some("t3"))]);
    assert_eq!(roots(s, "S"), vec![(a, a), (b, a), (c, a), (d, d), (e, d)]);
    let rows = s.session_interceptions("S", None).unwrap();
    assert_eq!(rows[1].interception.correlating_tool_call_id.as_deref(), Some("t1"));
    assert_eq!(rows[0].interception.correlating_tool_call_id, None);
    assert_eq!(rows[2].interception.ended_at, Some(at(5)));

    // Another user's answer to the same call id does not join alice's thread; an unknown call starts one.
    let [f, g] = ids(2)[..] else { unreachable!() };
    write(s, &[start(f, "bob", 10, None, Some("t1")), start(g, "alice", 11, None, Some("never-made"))]);
    assert_eq!(roots(s, &f.to_string()), vec![(f, f)]);
    assert_eq!(roots(s, &g.to_string()), vec![(g, g)]);
}

pub(crate) fn sessions_group_by_client_session_else_thread_and_page_stably_while_records_arrive(s: &mut dyn Store) {
    let [a, b, c, x, y] = ids(5)[..] else { unreachable!() };
    write(
        s,
        &[
            // Session S: two threads (a; c) with b continuing a.
            start(a, "alice", 0, Some("S"), None),
            prompt(a, "first"),
            tool(a, "t1"),
            usage(a, 10, 5),
            end(a, 1),
            start(b, "alice", 2, Some("S"), Some("t1")),
            usage(b, 20, 7),
            end(b, 3),
            start(c, "alice", 4, Some("S"), None),
            prompt(c, "second"),
            // No client session: x and its continuation y are one session keyed by x.
            start(x, "alice", 10, None, None),
            prompt(x, "loose"),
            tool(x, "t9"),
            start(y, "alice", 11, None, Some("t9")),
        ],
    );
    let page = s.list_sessions(&SessionQuery { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(page.count, 2);
    let keys: Vec<&str> = page.sessions.iter().map(|s| s.id.as_str()).collect();
    let xs = x.to_string();
    assert_eq!(keys, [xs.as_str(), "S"], "newest first");
    let sess = &page.sessions[1];
    assert_eq!((sess.threads, sess.interceptions), (2, 3));
    assert_eq!(sess.last_prompt.as_deref(), Some("second"));
    assert_eq!((sess.tokens.input, sess.tokens.output), (30, 12));
    assert_eq!(sess.models, ["claude-sonnet-4-5"]);
    assert_eq!(sess.started_at, at(0));
    assert_eq!(sess.ended_at, Some(at(3)));
    assert_eq!(sess.last_active_at, at(4));
    let loose = &page.sessions[0];
    assert_eq!((loose.threads, loose.interceptions), (1, 2));
    assert_eq!(loose.models, ["claude-haiku-4-5", "claude-sonnet-4-5"]);

    // Page one at a time; between pages a new session starts and an old one gets a new interception.
    let first = s.list_sessions(&SessionQuery { limit: 1, ..Default::default() }).unwrap();
    assert_eq!(first.sessions[0].id, xs);
    let [n, m] = ids(2)[..] else { unreachable!() };
    write(s, &[start(n, "alice", 20, Some("NEW"), None), start(m, "alice", 21, Some("S"), None)]);
    let second = s
        .list_sessions(&SessionQuery { limit: 1, after_session_id: first.next.clone(), ..Default::default() })
        .unwrap();
    assert_eq!(second.sessions.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["S"]);
    assert_eq!(second.next, None);
    assert_eq!(second.count, 3);

    // Filters: by user, by model (a session counts the interceptions that match).
    let bob = SessionFilter { initiator_id: Some("bob".into()), ..Default::default() };
    assert_eq!(s.list_sessions(&SessionQuery { filter: bob, limit: 5, ..Default::default() }).unwrap().count, 0);
    let haiku = SessionFilter { model: Some("claude-haiku-4-5".into()), ..Default::default() };
    let page = s.list_sessions(&SessionQuery { filter: haiku, limit: 5, ..Default::default() }).unwrap();
    assert_eq!(page.sessions.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["S", xs.as_str()]);
    let window = SessionFilter { started_after: Some(at(10)), started_before: Some(at(20)), ..Default::default() };
    let page = s.list_sessions(&SessionQuery { filter: window, limit: 5, ..Default::default() }).unwrap();
    assert_eq!(page.count, 1);

    // One session's rows, only the caller's.
    assert_eq!(s.session_interceptions("S", Some("alice")).unwrap().len(), 4);
    assert!(s.session_interceptions("S", Some("bob")).unwrap().is_empty());
    assert!(s.session_interceptions("nope", None).unwrap().is_empty());
    let rows = s.session_interceptions("S", None).unwrap();
    assert_eq!(rows[0].tool_usages.len(), 1);
    assert_eq!(rows[0].prompts[0].prompt, "first");
}

pub(crate) fn usage_rows_sum_per_user_model_and_day(s: &mut dyn Store) {
    let [a, b, c] = ids(3)[..] else { unreachable!() };
    let day = 86_400;
    write(
        s,
        &[
            start(a, "alice", 0, None, None),
            usage(a, 10, 1),
            usage(a, 5, 1),
            start(b, "alice", 2, None, None),
            usage(b, 1, 1),
            start(c, "bob", 2 * day, None, None),
        ],
    );
    let rows = s.usage(at(0), None).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].user.as_str(), rows[0].requests, rows[0].tokens.input), ("alice", 2, 16));
    assert_eq!(rows[0].day.len(), 10);
    assert_eq!((rows[1].user.as_str(), rows[1].requests, rows[1].tokens.input), ("bob", 1, 0));
    let later = s.usage(at(1), Some("alice")).unwrap();
    assert_eq!((later.len(), later[0].requests, later[0].tokens.input), (1, 1, 1), "only b started since");
    assert!(s.usage(at(0), Some("carol")).unwrap().is_empty());
}

pub(crate) fn tokens_keep_their_role_and_old_rows_are_users(s: &mut dyn Store) {
    let t = |id: &str, role| StoredToken {
        id: id.into(),
        user: "u".into(),
        role,
        secret_hash: [1; 32],
        created_at: at(0),
        expires_at: None,
        revoked_at: None,
    };
    s.insert_token(&t("a", Role::Admin)).unwrap();
    s.insert_token(&t("b", Role::User)).unwrap();
    let mut roles: Vec<(String, Role)> = s.load_tokens().unwrap().into_iter().map(|t| (t.id, t.role)).collect();
    roles.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(roles, [("a".to_string(), Role::Admin), ("b".to_string(), Role::User)]);
    assert!(s.list_tokens().unwrap().iter().any(|t| t.role == Role::Admin));
}
