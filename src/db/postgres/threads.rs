//! Thread linking at write time on PostgreSQL: an interception whose request answers a tool call
//! continues the thread of the interception that issued it, with the SQLite store's rule (the newest
//! interception of the same user that recorded that tool call id; its root, else itself; no match: the
//! row is its own root). A batch is one statement whose parts all see the database as it was before it,
//! so what the batch itself holds is resolved here, in record order (a chain of answers inside one batch
//! links link by link), and what only the stored rows can tell is left to lookups inside the statement.

use std::collections::HashMap;

use uuid::Uuid;

use crate::records::Record;

/// How the batch statement finds one new interception's `thread_root_id`: the first of these that gives
/// an answer. All `None` (a request that answers no tool call): NULL, the row starts its own thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RootSpec {
    /// Resolved from the batch itself.
    pub(super) known: Option<Uuid>,
    /// The issuing interception, found in this batch's tool calls but started earlier: its stored root,
    /// when it belongs to `user`.
    pub(super) parent: Option<Uuid>,
    /// The newest stored tool call with this id of an interception of `user` other than `own`: its root.
    pub(super) call: Option<String>,
    pub(super) user: Option<String>,
    /// Last resort: this interception (the row itself, or the in-batch ancestor whose lookups these are).
    pub(super) own: Option<Uuid>,
}

/// The root spec of every interception start in `records` that answers a tool call.
pub(super) fn resolve(records: &[&Record]) -> HashMap<Uuid, RootSpec> {
    let mut user_of: HashMap<Uuid, &str> = HashMap::new();
    // Interceptions that recorded each tool call id in this batch, in record order.
    let mut callers: HashMap<&str, Vec<Uuid>> = HashMap::new();
    for record in records {
        match record {
            Record::InterceptionStart(r) => {
                user_of.insert(r.interception_id, &r.initiator_id);
            }
            Record::ToolUsage(r) => callers.entry(&r.tool_call_id).or_default().push(r.interception_id),
            _ => {}
        }
    }
    let mut specs: HashMap<Uuid, RootSpec> = HashMap::new();
    for record in records {
        let Record::InterceptionStart(r) = record else { continue };
        let Some(call) = r.correlating_tool_call_id.as_deref() else { continue };
        let me = r.interception_id;
        let lookup = RootSpec {
            known: None,
            parent: None,
            call: Some(call.to_owned()),
            user: Some(r.initiator_id.clone()),
            own: Some(me),
        };
        let mut spec = lookup.clone();
        for &parent in callers.get(call).into_iter().flatten().rev().filter(|&&p| p != me) {
            match user_of.get(&parent) {
                // Another user's call with the same id: not this thread (the stored rows may still have one).
                Some(&user) if user != r.initiator_id => continue,
                // Started in this batch: its root as linked so far (itself when it answers no call, or is
                // not linked yet).
                Some(_) => {
                    spec =
                        specs.get(&parent).cloned().unwrap_or(RootSpec { known: Some(parent), ..RootSpec::default() })
                }
                // Started in an earlier batch: the statement reads its stored root.
                None => spec = RootSpec { parent: Some(parent), ..lookup.clone() },
            }
            break;
        }
        specs.insert(me, spec);
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{CredentialKind, InterceptionStart, ToolUsage};
    use std::time::SystemTime;

    fn start(id: u128, user: &str, call: Option<&str>) -> Record {
        Record::InterceptionStart(InterceptionStart {
            interception_id: Uuid::from_u128(id),
            initiator_id: user.into(),
            provider: "anthropic",
            provider_name: "anthropic".into(),
            model: "m".into(),
            client: "claude-code".into(),
            client_session_id: None,
            user_agent: None,
            correlating_tool_call_id: call.map(str::to_owned),
            credential_kind: CredentialKind::Centralized,
            credential_hint: None,
            started_at: SystemTime::UNIX_EPOCH,
            gateway_id: "gw".into(),
            api: crate::records::Api::Messages,
        })
    }

    fn tool(id: u128, call: &str) -> Record {
        Record::ToolUsage(ToolUsage {
            interception_id: Uuid::from_u128(id),
            msg_id: "msg".into(),
            tool: "Read".into(),
            tool_call_id: call.into(),
            input: "{}".into(),
            server_url: None,
            injected: false,
            created_at: SystemTime::UNIX_EPOCH,
        })
    }

    fn resolved(records: &[Record]) -> HashMap<Uuid, RootSpec> {
        resolve(&records.iter().collect::<Vec<_>>())
    }

    fn known(id: u128) -> RootSpec {
        RootSpec { known: Some(Uuid::from_u128(id)), ..RootSpec::default() }
    }

    fn lookup(call: &str, user: &str, own: u128) -> RootSpec {
        RootSpec {
            call: Some(call.into()),
            user: Some(user.into()),
            own: Some(Uuid::from_u128(own)),
            ..RootSpec::default()
        }
    }

    #[test]
    fn a_prompt_starts_its_own_thread() {
        let specs = resolved(&[start(1, "u", None), tool(1, "c1")]);
        assert!(specs.is_empty());
    }

    #[test]
    fn an_answer_to_a_call_in_the_same_batch_links_to_it_and_chains_follow() {
        let specs = resolved(&[
            start(1, "u", None),
            tool(1, "c1"),
            start(2, "u", Some("c1")),
            tool(2, "c2"),
            start(3, "u", Some("c2")),
        ]);
        assert_eq!(specs[&Uuid::from_u128(2)], known(1));
        assert_eq!(specs[&Uuid::from_u128(3)], known(1));
    }

    #[test]
    fn a_chain_whose_first_call_is_stored_inherits_the_stored_lookup() {
        let specs = resolved(&[start(2, "u", Some("old")), tool(2, "c2"), start(3, "u", Some("c2"))]);
        assert_eq!(specs[&Uuid::from_u128(2)], lookup("old", "u", 2));
        assert_eq!(specs[&Uuid::from_u128(3)], lookup("old", "u", 2));
    }

    #[test]
    fn a_call_recorded_now_by_an_interception_started_earlier_reads_its_stored_root() {
        let specs = resolved(&[tool(1, "c1"), start(2, "u", Some("c1"))]);
        assert_eq!(specs[&Uuid::from_u128(2)], RootSpec { parent: Some(Uuid::from_u128(1)), ..lookup("c1", "u", 2) });
    }

    #[test]
    fn another_users_call_and_its_own_call_are_passed_over() {
        let specs = resolved(&[
            start(1, "u", None),
            tool(1, "c1"),
            start(9, "other", None),
            tool(9, "c1"),
            start(2, "u", Some("c1")),
            tool(2, "c1"),
        ]);
        assert_eq!(specs[&Uuid::from_u128(2)], known(1));
        let specs = resolved(&[start(9, "other", None), tool(9, "c1"), start(2, "u", Some("c1"))]);
        assert_eq!(specs[&Uuid::from_u128(2)], lookup("c1", "u", 2));
    }

    #[test]
    fn an_answer_written_before_its_callers_link_sees_the_caller_unlinked() {
        // 3 answers 2's call, but 3's start comes first: 2 is not linked yet, so 3's root is 2 (as in SQLite).
        let specs = resolved(&[
            start(1, "u", None),
            tool(1, "c1"),
            start(3, "u", Some("c2")),
            start(2, "u", Some("c1")),
            tool(2, "c2"),
        ]);
        assert_eq!(specs[&Uuid::from_u128(3)], known(2));
        assert_eq!(specs[&Uuid::from_u128(2)], known(1));
    }
}
