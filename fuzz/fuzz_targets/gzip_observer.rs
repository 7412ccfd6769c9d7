//! Fuzz target: the gzip decoder the relay observes `Content-Encoding: gzip` bodies with never panics,
//! never hands on more decoded bytes than its cap, and — when a body decodes whole — gives the same
//! decoded bytes however the coded body is split.
//!
//! Input: the first byte picks the cap (0: the relay's real cap; otherwise a small one, so the cap path
//! is reached) and the split point; the rest is the coded body.
#![no_main]

use aibridged::fuzzing::{gunzip_observe, GUNZIP_CAP};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let cap = if pick == 0 { GUNZIP_CAP } else { usize::from(pick) * 64 };
    let whole = gunzip_observe(&[body], cap);
    assert!(whole.decoded <= cap, "{} decoded bytes past the cap {cap}", whole.decoded);
    let cut = (usize::from(pick) * body.len()) / 255;
    let split = gunzip_observe(&[&body[..cut], &body[cut..]], cap);
    assert!(split.decoded <= cap);
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    let bytewise = gunzip_observe(&bytes, cap);
    assert!(bytewise.decoded <= cap);
    if whole.stopped.is_none() {
        assert_eq!(split, whole);
        assert_eq!(bytewise, whole);
    }
});
