//! Fuzz target: the include_usage edit of any body the inspector accepts is a body it accepts again,
//! with `stream_options.include_usage == true`, that serde_json parses whenever it parsed the original
//! (the scanner also accepts lone `\uD800` escapes, as simd-json does); editing it again is a no-op; and
//! the in-place edit the relay makes (`set_include_usage`) gives the same bytes.
#![no_main]

use aibridged::providers::request::{inspect, set_include_usage, with_include_usage};
use aibridged::records::Api;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(inspection) = inspect(Api::ChatCompletions, data) else {
        return;
    };
    let mut in_place = data.to_vec();
    let changed = set_include_usage(&inspection, &mut in_place);
    let Some(out) = with_include_usage(&inspection, data) else {
        assert!(inspection.info.include_usage, "only a body already asking for usage is left alone");
        assert!(!changed && in_place == data, "the in-place edit leaves it alone too");
        return;
    };
    assert!(changed && in_place == out, "the in-place edit makes the same bytes");
    // Parsed into a Value, not IgnoredAny: serde_json skips a string's escapes unchecked when it ignores
    // it, so a lone `\uDADD` passes there and fails in the edited body (a false alarm fuzzing found).
    if serde_json::from_slice::<serde_json::Value>(data).is_ok() {
        let v: serde_json::Value = serde_json::from_slice(&out).expect("edit keeps JSON valid");
        assert_eq!(v["stream_options"]["include_usage"], serde_json::Value::Bool(true));
    }
    let again = inspect(Api::ChatCompletions, &out).expect("the edited body is inspected again");
    assert_eq!((&again.info.model, again.info.stream), (&inspection.info.model, inspection.info.stream));
    assert!(again.info.include_usage);
    assert!(with_include_usage(&again, &out).is_none());
});
