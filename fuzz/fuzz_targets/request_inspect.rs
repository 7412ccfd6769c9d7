//! Fuzz target: request inspection and the include_usage edit never panic; an edited body is valid JSON
//! with `stream_options.include_usage == true`, and editing it again is a no-op.
#![no_main]

use aibridged::providers::request::{inspect, with_include_usage};
use aibridged::records::Api;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for api in [Api::ChatCompletions, Api::Responses, Api::Messages] {
        let _ = inspect(api, data);
    }
    if let Some(out) = with_include_usage(data) {
        let v: serde_json::Value = serde_json::from_slice(&out).expect("edit keeps JSON valid");
        assert_eq!(
            v["stream_options"]["include_usage"],
            serde_json::Value::Bool(true)
        );
        assert!(with_include_usage(&out).is_none());
    }
});
