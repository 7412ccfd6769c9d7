//! The conformance suite every [`Store`] backend runs: tokens, the sessions queries, purge and the
//! start-up settle, written once against the interface so SQLite and PostgreSQL answer alike.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::db::{self, Cursor, InterceptionQuery, Store, StoredToken};
use crate::records::*;

pub(crate) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_759_144 + secs)
}

pub(crate) fn start(id: Uuid, user: &str, started_at: SystemTime) -> Record {
    Record::InterceptionStart(InterceptionStart {
        interception_id: id,
        initiator_id: user.into(),
        provider: "anthropic",
        provider_name: "anthropic-eu".into(),
        model: "claude-sonnet-4-5".into(),
        client: "claude-code".into(),
        client_session_id: Some("sess-1".into()),
        user_agent: None,
        correlating_tool_call_id: None,
        credential_kind: CredentialKind::Centralized,
        credential_hint: Some("sk-a…wxyz".into()),
        started_at,
        gateway_id: "test-gateway".into(),
        api: Api::ChatCompletions,
    })
}

pub(crate) fn end(id: Uuid, ended_at: SystemTime) -> Record {
    Record::InterceptionEnd(InterceptionEnd {
        interception_id: id,
        ended_at,
        status: EndStatus::Completed,
        upstream_status: Some(200),
    })
}

pub(crate) fn write(store: &mut dyn Store, records: &[Record]) {
    store.write_batch(&records.iter().collect::<Vec<_>>()).unwrap();
}

pub(crate) fn token(id: &str, user: &str, created_at: SystemTime) -> StoredToken {
    StoredToken {
        id: id.into(),
        user: user.into(),
        role: db::Role::User,
        secret_hash: [id.len() as u8; 32],
        created_at,
        expires_at: Some(created_at + Duration::from_secs(60)),
        revoked_at: None,
    }
}

/// Token usages with `extra` parsed, for backends that store it as JSON (PostgreSQL's `jsonb` re-spaces it).
fn json_normalised(usages: Vec<TokenUsage>) -> Vec<(TokenUsage, serde_json::Value)> {
    usages
        .into_iter()
        .map(|mut u| {
            let extra = serde_json::from_str(&std::mem::take(&mut u.extra)).expect("extra is JSON");
            (u, extra)
        })
        .collect()
}

pub(crate) fn tokens_insert_list_revoke_and_load(s: &mut dyn Store) {
    s.insert_token(&token("aaaa", "alice", at(0))).unwrap();
    s.insert_token(&token("bbbbbb", "bob", at(10))).unwrap();
    let ids: Vec<String> = s.list_tokens().unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["bbbbbb", "aaaa"], "newest first");
    assert!(s.revoke_token("aaaa", at(20)).unwrap());
    assert!(!s.revoke_token("aaaa", at(30)).unwrap(), "already revoked");
    assert!(!s.revoke_token("cccc", at(30)).unwrap());
    let listed = s.list_tokens().unwrap();
    assert_eq!(listed[1].revoked_at, Some(at(20)));
    assert_eq!(listed[0].expires_at, Some(at(70)));
    let mut loaded = s.load_tokens().unwrap();
    loaded.sort_by(|a, b| a.id.cmp(&b.id));
    let mut alice = token("aaaa", "alice", at(0));
    alice.revoked_at = Some(at(20));
    assert_eq!(loaded, [alice, token("bbbbbb", "bob", at(10))]);
}

pub(crate) fn interceptions_page_by_user_and_time_with_a_cursor(s: &mut dyn Store) {
    let mut alice = Vec::new();
    let mut records = Vec::new();
    for i in 0..10u64 {
        let id = db::new_interception_id();
        let user = if i % 3 == 0 { "bob" } else { "alice" };
        records.push(start(id, user, at(i)));
        records.push(end(id, at(i) + Duration::from_secs(1)));
        if user == "alice" {
            alice.push(id);
        }
    }
    // Two starts in the same instant: the id breaks the tie, so paging neither skips nor repeats one.
    let (x, y) = (db::new_interception_id(), db::new_interception_id());
    records.push(start(x, "alice", at(4)));
    records.push(start(y, "alice", at(4)));
    // An end whose start never arrived has no place in a list ordered by start.
    records.push(end(db::new_interception_id(), at(5)));
    write(s, &records);

    let mut query = InterceptionQuery { initiator_id: Some("alice".into()), limit: 3, ..Default::default() };
    let mut seen = Vec::new();
    loop {
        let page = s.list_interceptions(&query).unwrap();
        assert!(page.interceptions.len() <= 3);
        for row in &page.interceptions {
            assert_eq!(row.initiator_id.as_deref(), Some("alice"));
            seen.push((row.started_at.unwrap(), row.id));
        }
        match page.next {
            Some(cursor) => query.after = Some(cursor),
            None => break,
        }
    }
    let mut expected: Vec<(SystemTime, Uuid)> = records
        .iter()
        .filter_map(|r| match r {
            Record::InterceptionStart(s) if s.initiator_id == "alice" => Some((s.started_at, s.interception_id)),
            _ => None,
        })
        .collect();
    expected.sort_by_key(|row| std::cmp::Reverse((row.0, row.1.to_string())));
    assert_eq!(seen, expected, "newest first, each once");
    assert_eq!(seen.len(), alice.len() + 2);

    // A time window, every user.
    let window =
        InterceptionQuery { started_after: Some(at(3)), started_before: Some(at(6)), limit: 100, ..Default::default() };
    let page = s.list_interceptions(&window).unwrap();
    let times: Vec<SystemTime> = page.interceptions.iter().map(|r| r.started_at.unwrap()).collect();
    assert_eq!(times, [at(5), at(4), at(4), at(4), at(3)]);
    assert_eq!(page.next, None);

    // A page that ends exactly at the last row says there is no next one.
    let all = InterceptionQuery { limit: 12, ..Default::default() };
    assert_eq!(s.list_interceptions(&all).unwrap().next, None);
    let fewer = InterceptionQuery { limit: 11, ..Default::default() };
    let page = s.list_interceptions(&fewer).unwrap();
    let last = page.interceptions.last().unwrap();
    assert_eq!(page.next, Some(Cursor { started_at: last.started_at.unwrap(), id: last.id }));
}

pub(crate) fn one_interception_comes_back_with_its_child_rows_in_order(s: &mut dyn Store) {
    let id = db::new_interception_id();
    let usage = |n: u64| TokenUsage {
        interception_id: id,
        msg_id: format!("msg_{n}"),
        input_tokens: n,
        output_tokens: 2 * n,
        cache_read_input_tokens: 3 * n,
        cache_write_input_tokens: 4 * n,
        reasoning_tokens: 5 * n,
        extra: format!("{{\"n\":{n}}}"),
        created_at: at(n),
    };
    let prompt =
        PromptUsage { interception_id: id, msg_id: "msg_1".into(), prompt: "hi \"there\"".into(), created_at: at(1) };
    let tool = ToolUsage {
        interception_id: id,
        msg_id: "msg_1".into(),
        tool: "Read".into(),
        tool_call_id: "toolu_1".into(),
        input: "{}".into(),
        server_url: Some("https://mcp".into()),
        injected: true,
        created_at: at(2),
    };
    let thought = ModelThought {
        interception_id: id,
        msg_id: "msg_1".into(),
        content: "hmm".into(),
        source: "thinking".into(),
        created_at: at(3),
    };
    let other = db::new_interception_id();
    write(
        s,
        &[
            start(id, "alice", at(0)),
            Record::TokenUsage(usage(1)),
            Record::PromptUsage(prompt.clone()),
            start(other, "bob", at(0)),
            Record::TokenUsage(TokenUsage { interception_id: other, ..usage(9) }),
            Record::ToolUsage(tool.clone()),
            Record::TokenUsage(usage(2)),
            Record::ModelThought(thought.clone()),
            end(id, at(4)),
        ],
    );
    let detail = s.interception(id).unwrap().expect("stored");
    let row = &detail.interception;
    assert_eq!(row.id, id);
    assert_eq!(row.initiator_id.as_deref(), Some("alice"));
    assert_eq!(row.provider.as_deref(), Some("anthropic"));
    assert_eq!(row.credential_kind.as_deref(), Some("centralized"));
    assert_eq!(row.user_agent, None);
    assert_eq!((row.started_at, row.ended_at), (Some(at(0)), Some(at(4))));
    assert_eq!((row.status.as_deref(), row.upstream_status), (Some("completed"), Some(200)));
    assert_eq!(json_normalised(detail.token_usages), json_normalised(vec![usage(1), usage(2)]));
    assert_eq!(detail.prompts, [prompt]);
    assert_eq!(detail.tool_usages, [tool]);
    assert_eq!(detail.thoughts, [thought]);

    assert!(s.interception(db::new_interception_id()).unwrap().is_none());
    // An end alone: the row exists with its start columns empty.
    let lone = db::new_interception_id();
    write(s, &[end(lone, at(9))]);
    let detail = s.interception(lone).unwrap().unwrap();
    assert_eq!((detail.interception.started_at, detail.interception.initiator_id), (None, None));
    assert!(detail.token_usages.is_empty());
}

/// An interception's halves in any order and batches, and a start written again (a spill imported out of
/// order, an import repeated), make one row with both halves; the other rows of such a batch are stored.
pub(crate) fn halves_in_any_order_make_one_row(s: &mut dyn Store) {
    let early_end = db::new_interception_id();
    let fresh = db::new_interception_id();
    write(s, &[end(early_end, at(5))]);
    write(s, &[start(early_end, "alice", at(1)), start(fresh, "bob", at(2)), end(fresh, at(3))]);
    let again = db::new_interception_id();
    write(s, &[start(again, "carol", at(1))]);
    write(s, &[end(again, at(6))]);
    // The same start once more, in a batch with a new interception and an end.
    let later = db::new_interception_id();
    write(s, &[start(again, "carol", at(1)), start(later, "dave", at(7)), end(later, at(8))]);
    for (id, user, started, ended) in
        [(early_end, "alice", 1, 5), (fresh, "bob", 2, 3), (again, "carol", 1, 6), (later, "dave", 7, 8)]
    {
        let row = s.interception(id).unwrap().expect("stored").interception;
        assert_eq!(row.initiator_id.as_deref(), Some(user));
        assert_eq!((row.started_at, row.ended_at), (Some(at(started)), Some(at(ended))), "{user}");
        assert_eq!(row.status.as_deref(), Some("completed"), "{user}");
    }
}

pub(crate) fn purge_removes_old_interceptions_with_their_children_in_chunks(s: &mut dyn Store) {
    let mut records = Vec::new();
    for i in 0..5 {
        let id = db::new_interception_id();
        records.push(start(id, "alice", at(i)));
        records.push(Record::PromptUsage(PromptUsage {
            interception_id: id,
            msg_id: "m".into(),
            prompt: "p".into(),
            created_at: at(i),
        }));
    }
    let kept = db::new_interception_id();
    records.push(start(kept, "alice", at(100)));
    write(s, &records);
    assert_eq!(s.purge_before(at(50), 3).unwrap(), 3);
    assert_eq!(s.purge_before(at(50), 3).unwrap(), 2, "fewer than the limit: nothing left");
    assert_eq!(s.purge_before(at(50), 3).unwrap(), 0);
    let page = s.list_interceptions(&InterceptionQuery { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(page.interceptions.iter().map(|r| r.id).collect::<Vec<_>>(), [kept]);
    assert!(s.interception(kept).unwrap().is_some());
}

/// The settle after a crash ends only what this gateway left open, and a real end arriving later (the
/// previous run was not dead after all) replaces it. `end_reason` reads that column of one row.
pub(crate) fn settle_open_ends_only_this_gateways_open_interceptions(
    s: &mut dyn Store,
    end_reason: &dyn Fn(Uuid) -> Option<String>,
) {
    let (open_own, done_own, open_other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut other = start(open_other, "bob", at(2));
    if let Record::InterceptionStart(r) = &mut other {
        r.gateway_id = "other-gateway".into();
    }
    write(s, &[start(open_own, "alice", at(0)), start(done_own, "alice", at(1)), end(done_own, at(3)), other]);

    assert_eq!(s.settle_open("test-gateway", at(10), "gateway_restart").unwrap(), 1);
    let row = |s: &mut dyn Store, id: Uuid| -> (Option<SystemTime>, Option<String>, Option<String>) {
        let detail = s.interception(id).unwrap().expect("stored");
        (detail.interception.ended_at, detail.interception.status, end_reason(id))
    };
    let stamp = Some;
    assert_eq!(row(s, open_own), (stamp(at(10)), Some("failed".into()), Some("gateway_restart".into())));
    assert_eq!(row(s, done_own), (stamp(at(3)), Some("completed".into()), None));
    assert_eq!(row(s, open_other), (None, None, None), "another gateway's interception is its own to settle");
    assert_eq!(s.settle_open("test-gateway", at(11), "gateway_restart").unwrap(), 0, "nothing left open");

    write(s, &[end(open_own, at(12))]);
    assert_eq!(row(s, open_own), (stamp(at(12)), Some("completed".into()), None));
}
