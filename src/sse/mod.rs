//! Server-sent events: a zero-copy scanner over relayed chunks and the per-API observers that pick usage,
//! tool calls and thoughts out of a response (stream or JSON body). Pure over bytes: no I/O, never fails a
//! relay — oddities become fields of the `Observation`, not errors.

pub(crate) mod chat;
mod json;
pub(crate) mod json_scan;
pub(crate) mod messages;
pub(crate) mod responses;
pub(crate) mod scanner;
mod usage_scan;

#[cfg(test)]
mod fixture_tests;

pub(crate) use json::{nesting_within, MAX_JSON_DEPTH};
pub use scanner::SseScanner;

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const APIS: [Api; 3] = [Api::ChatCompletions, Api::Responses, Api::Messages];

    proptest! {
        /// Arbitrary bytes (and SSE-shaped garbage) never panic an observer, however they are chunked.
        #[test]
        fn observers_survive_garbage(
            body in proptest::collection::vec(any::<u8>(), 0..400),
            json_ish in "(event: [a-z_.]{0,20}\n)?data: \\{\"type\":\"[a-z_.]{0,24}\",\"[a-z_]{1,8}\":[\\[\\]{}\"a-z0-9:,]{0,40}\n\n",
            size in 1usize..64,
        ) {
            for api in APIS {
                let mut whole = StreamObserver::new(api);
                whole.on_chunk(&body);
                whole.on_chunk(json_ish.as_bytes());
                let mut split = StreamObserver::new(api);
                let joined: Vec<u8> = body.iter().chain(json_ish.as_bytes()).copied().collect();
                for c in joined.chunks(size) {
                    split.on_chunk(c);
                }
                prop_assert_eq!(split.finish(), whole.finish());
                let _ = observe_json(api, &body);
                let _ = observe_json(api, json_ish.as_bytes());
            }
        }
    }
}
