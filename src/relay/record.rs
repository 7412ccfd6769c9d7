//! Turns one interception's life into records on the sink channel: start, what the response observer saw,
//! and exactly one end — also when the request is abandoned at shutdown or its task is dropped. The start
//! record is held until the upstream credential is final (key failover may change its hint), and is always
//! sent before anything else. Runs on a worker: sending never blocks except when the sink is saturated.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::SystemTime;

use uuid::Uuid;

use crate::records::{
    EndStatus, InterceptionEnd, InterceptionStart, ModelThought, Observation, PromptUsage, Record, TokenUsage,
    ToolUsage,
};
use crate::sink::SinkHandle;

/// What an interception and the worker's registry share.
struct State {
    /// The start record, until it is sent.
    pending_start: Option<InterceptionStart>,
    ended: bool,
    upstream_status: Option<u16>,
}

impl State {
    fn flush_start(&mut self, sink: &SinkHandle) {
        if let Some(start) = self.pending_start.take() {
            sink.send(Record::InterceptionStart(start));
        }
    }

    fn end(&mut self, sink: &SinkHandle, id: Uuid, status: EndStatus) -> bool {
        if self.ended {
            return false;
        }
        self.flush_start(sink);
        self.ended = true;
        sink.send(Record::InterceptionEnd(InterceptionEnd {
            interception_id: id,
            ended_at: SystemTime::now(),
            status,
            upstream_status: self.upstream_status,
        }));
        true
    }
}

/// The interceptions open on one worker, so that shutdown can settle those that outlive the grace period.
#[derive(Default)]
pub(crate) struct InFlight {
    open: RefCell<HashMap<Uuid, Rc<RefCell<State>>>>,
}

impl InFlight {
    /// Ends every open interception as failed (the grace period ran out).
    pub(crate) fn abandon_all(&self, sink: &SinkHandle) {
        let open: Vec<_> = self.open.borrow_mut().drain().collect();
        for (id, state) in open {
            state.borrow_mut().end(sink, id, EndStatus::Failed);
        }
    }
}

/// One recorded interception. Dropping it without [`Interception::end`] records a failed end.
pub(crate) struct Interception {
    id: Uuid,
    sink: SinkHandle,
    prompt: Option<String>,
    state: Rc<RefCell<State>>,
    inflight: Rc<InFlight>,
}

impl Interception {
    /// Registers the interception as open; the start record goes out with [`Interception::commit_start`]
    /// or, at the latest, before any other record of it.
    pub(crate) fn start(
        sink: &SinkHandle,
        inflight: &Rc<InFlight>,
        start: InterceptionStart,
        prompt: Option<String>,
    ) -> Interception {
        let id = start.interception_id;
        let state = Rc::new(RefCell::new(State { pending_start: Some(start), ended: false, upstream_status: None }));
        inflight.open.borrow_mut().insert(id, state.clone());
        Interception { id, sink: sink.clone(), prompt, state, inflight: inflight.clone() }
    }

    /// Replaces the credential hint of the not yet sent start record (key failover).
    pub(crate) fn set_credential_hint(&mut self, hint: Option<String>) {
        if let Some(start) = self.state.borrow_mut().pending_start.as_mut() {
            start.credential_hint = hint;
        }
    }

    /// Sends the start record now.
    pub(crate) fn commit_start(&mut self) {
        self.state.borrow_mut().flush_start(&self.sink);
    }

    /// Remembers the upstream status for the end record.
    pub(crate) fn set_upstream_status(&mut self, status: u16) {
        self.state.borrow_mut().upstream_status = Some(status);
    }

    /// Records what the response observer extracted: prompt, token usage, tool calls, thoughts.
    pub(crate) fn observed(&mut self, obs: Observation) {
        self.commit_start();
        let now = SystemTime::now();
        let msg_id = obs.msg_id.unwrap_or_default();
        if let Some(prompt) = self.prompt.take() {
            self.sink.send(Record::PromptUsage(PromptUsage {
                interception_id: self.id,
                msg_id: msg_id.clone(),
                prompt,
                created_at: now,
            }));
        }
        if let Some(u) = obs.usage {
            self.sink.send(Record::TokenUsage(TokenUsage {
                interception_id: self.id,
                msg_id: msg_id.clone(),
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cache_read_input_tokens: u.cache_read_input_tokens,
                cache_write_input_tokens: u.cache_write_input_tokens,
                reasoning_tokens: u.reasoning_tokens,
                extra: u.extra,
                created_at: now,
            }));
        }
        for t in obs.tools {
            self.sink.send(Record::ToolUsage(ToolUsage {
                interception_id: self.id,
                msg_id: msg_id.clone(),
                tool: t.name,
                tool_call_id: t.id,
                input: t.input,
                server_url: None,
                injected: false,
                created_at: now,
            }));
        }
        for th in obs.thoughts {
            self.sink.send(Record::ModelThought(ModelThought {
                interception_id: self.id,
                msg_id: msg_id.clone(),
                content: th.content,
                source: th.source,
                created_at: now,
            }));
        }
    }

    /// Records `interception_end` (once).
    pub(crate) fn end(mut self, status: EndStatus) {
        self.finish(status);
    }

    fn finish(&mut self, status: EndStatus) {
        self.inflight.open.borrow_mut().remove(&self.id);
        if self.state.borrow().ended {
            return;
        }
        self.commit_start();
        if let Some(prompt) = self.prompt.take() {
            // No response was observed: the prompt is still part of the audit trail.
            self.sink.send(Record::PromptUsage(PromptUsage {
                interception_id: self.id,
                msg_id: String::new(),
                prompt,
                created_at: SystemTime::now(),
            }));
        }
        self.state.borrow_mut().end(&self.sink, self.id, status);
    }
}

impl Drop for Interception {
    fn drop(&mut self) {
        self.finish(EndStatus::Failed);
    }
}
