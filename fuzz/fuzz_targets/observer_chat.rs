//! Fuzz target: the chat observer never panics, gives the same observation however the stream is split,
//! and observe_json never panics on the same bytes.
#![no_main]

use aibridged::records::Api;
use aibridged::sse::{observe_json, StreamObserver};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&size, stream)) = data.split_first() else {
        return;
    };
    let mut whole = StreamObserver::new(Api::ChatCompletions);
    whole.on_chunk(stream);
    let mut split = StreamObserver::new(Api::ChatCompletions);
    for c in stream.chunks(usize::from(size).max(1)) {
        split.on_chunk(c);
    }
    assert_eq!(split.finish(), whole.finish());
    let _ = observe_json(Api::ChatCompletions, stream);
});
