//! Fuzz target: the SSE scanner never panics, and splitting the input anywhere yields the same events.
#![no_main]

use aibridged::sse::SseScanner;
use libfuzzer_sys::fuzz_target;

type Owned = (Vec<u8>, Vec<u8>, Option<Vec<u8>>, Option<u64>);

fn scan(chunks: &[&[u8]]) -> Vec<Owned> {
    let mut s = SseScanner::new();
    let mut out = Vec::new();
    for c in chunks {
        s.feed(c, |e| {
            out.push((
                e.event.to_vec(),
                e.data.to_vec(),
                e.id.map(<[u8]>::to_vec),
                e.retry,
            ))
        });
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize * stream.len()) / 255;
    let whole = scan(&[stream]);
    assert_eq!(scan(&[&stream[..cut], &stream[cut..]]), whole);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(scan(&bytes), whole);
});
