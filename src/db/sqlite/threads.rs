//! Thread linking at write time: an interception whose request answers a tool call continues the thread
//! of the interception that issued it. Runs inside the batch transaction after every row of the batch is
//! in place, so a tool call and its answer written in the same batch still link. Only requests that carry
//! a tool result cost a statement; the others keep `thread_root_id` NULL (they start their own thread).

use rusqlite::{params, Transaction};

use crate::records::Record;

// The issuing interception is the newest one of the same user that recorded this tool call id; its own
// root (or itself) becomes this row's root. No match (the call was never recorded, e.g. purged): the row
// starts a thread of its own.
const LINK: &str = "UPDATE aibridge_interceptions SET correlating_tool_call_id = ?2, thread_root_id = COALESCE(\
    (SELECT COALESCE(p.thread_root_id, p.id) FROM aibridge_tool_usages t \
     JOIN aibridge_interceptions p ON p.id = t.interception_id \
     WHERE t.tool_call_id = ?2 AND p.initiator_id = ?3 AND p.id <> ?1 ORDER BY t.id DESC LIMIT 1), ?1) \
    WHERE id = ?1";

/// Records, for every start in `records` that answers a tool call, the call id and its thread's root, in
/// record order (a chain of answers inside one batch resolves link by link).
pub(super) fn link(tx: &Transaction<'_>, records: &[&Record]) -> Result<(), rusqlite::Error> {
    let mut id_buf = uuid::Uuid::encode_buffer();
    for record in records {
        let Record::InterceptionStart(r) = record else { continue };
        let Some(call) = r.correlating_tool_call_id.as_deref() else { continue };
        let id = r.interception_id.hyphenated().encode_lower(&mut id_buf);
        tx.prepare_cached(LINK)?.execute(params![&*id, call, r.initiator_id])?;
    }
    Ok(())
}
