//! Server-sent events: a zero-copy scanner over relayed chunks and the per-API observers that pick usage,
//! tool calls and thoughts out of a response (stream or JSON body). Pure over bytes: no I/O, never fails a
//! relay — oddities become fields of the `Observation`, not errors.

pub mod chat;
mod json;
pub mod messages;
pub mod responses;
pub mod scanner;

#[cfg(test)]
mod fixture_tests;

pub use scanner::{SseEvent, SseScanner, MAX_EVENT_BYTES};

use crate::records::{Api, Observation};

/// The response observer of one intercepted stream, chosen by its API. An enum rather than a trait object
/// so the per-chunk call is a direct, inlinable dispatch.
#[derive(Debug)]
pub enum StreamObserver {
    /// `chat.completion.chunk` streams.
    Chat(chat::ChatObserver),
    /// Responses API `response.*` streams.
    Responses(responses::ResponsesObserver),
    /// Anthropic Messages streams.
    Messages(messages::MessagesObserver),
}

impl StreamObserver {
    /// A fresh observer for a stream of `api`.
    pub fn new(api: Api) -> StreamObserver {
        match api {
            Api::ChatCompletions => StreamObserver::Chat(chat::ChatObserver::new()),
            Api::Responses => StreamObserver::Responses(responses::ResponsesObserver::new()),
            Api::Messages => StreamObserver::Messages(messages::MessagesObserver::new()),
        }
    }

    /// Scans one relayed chunk; chunks may split events (and line ends) anywhere.
    pub fn on_chunk(&mut self, chunk: &[u8]) {
        match self {
            StreamObserver::Chat(o) => o.on_chunk(chunk),
            StreamObserver::Responses(o) => o.on_chunk(chunk),
            StreamObserver::Messages(o) => o.on_chunk(chunk),
        }
    }

    /// Events dropped because they outgrew [`MAX_EVENT_BYTES`] (a counter for logs and metrics).
    pub fn dropped_events(&self) -> u64 {
        match self {
            StreamObserver::Chat(o) => o.dropped_events(),
            StreamObserver::Responses(o) => o.dropped_events(),
            StreamObserver::Messages(o) => o.dropped_events(),
        }
    }

    /// Everything seen so far; also valid for a stream cut short (`complete` is then false).
    pub fn finish(self) -> Observation {
        match self {
            StreamObserver::Chat(o) => o.finish(),
            StreamObserver::Responses(o) => o.finish(),
            StreamObserver::Messages(o) => o.finish(),
        }
    }
}

/// Observes a non-streaming response body of `api` (a success object or a provider error body).
pub fn observe_json(api: Api, body: &[u8]) -> Observation {
    match api {
        Api::ChatCompletions => chat::observe_json(body),
        Api::Responses => responses::observe_json(body),
        Api::Messages => messages::observe_json(body),
    }
}
