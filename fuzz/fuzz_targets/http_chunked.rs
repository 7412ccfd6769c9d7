//! Fuzz target: the chunked decoder never panics, consumes no more than it is given, and splitting the
//! input anywhere yields the same payload and verdict.
#![no_main]

use aibridged::runtime::http::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

fn decode(parts: &[&[u8]]) -> (Vec<u8>, bool, bool) {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    for p in parts {
        match d.decode(p, &mut |b: &[u8]| out.extend_from_slice(b)) {
            Ok(r) => {
                assert!(r.consumed <= p.len());
                if r.done {
                    return (out, true, false);
                }
            }
            Err(_) => return (out, false, true),
        }
    }
    (out, false, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize * body.len()) / 255;
    let whole = decode(&[body]);
    let split = decode(&[&body[..cut], &body[cut..]]);
    if whole.1 {
        assert_eq!(whole, split);
    }
});
