//! Fuzz target: the AWS event-stream decoder and the Bedrock → SSE translator never panic on arbitrary
//! bytes, whole or split.
#![no_main]

use aibridged::providers::bedrock::eventstream::EventStreamDecoder;
use aibridged::providers::bedrock::to_sse::SseTranslator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = EventStreamDecoder::new();
    let _ = d.feed(data, &mut |_m| {});
    let mut t = SseTranslator::new();
    let mut out = Vec::new();
    let mid = data.len() / 2;
    let _ = t.on_bytes(&data[..mid], &mut out);
    let _ = t.on_bytes(&data[mid..], &mut out);
    t.finish(&mut out);
});
