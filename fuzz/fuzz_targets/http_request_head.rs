//! Fuzz target: request-head parsing never panics, never reads past the head limit, and a head that
//! parses reports a length within the input.
#![no_main]

use aibridged::runtime::http::{parse_request_head, MAX_HEAD_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(head)) = parse_request_head(data) {
        assert!(head.head_len <= data.len() && head.head_len <= MAX_HEAD_BYTES);
    }
});
