//! Every input a fuzz target once failed on (fuzz/regressions/<target>/), checked here against the same
//! invariant the target asserts, so `cargo test` keeps them fixed without libFuzzer.

use std::collections::HashMap;

use super::*;
use crate::providers::request::{inspect, set_include_usage, with_include_usage};
use crate::records::Api;
use crate::sse::StreamObserver;

/// The `observer_messages` target: the first byte is the read size, the rest the stream.
#[test]
fn a_stream_repeating_keys_in_a_large_object_is_observed_the_same_however_it_is_split() {
    let data = include_bytes!("../fuzz/regressions/observer_messages/repeated-keys-in-a-large-object");
    let (&size, stream) = data.split_first().unwrap();
    // The hash seed changed per parse; which copy of a key won did too. Many tries make a regression show.
    for _ in 0..200 {
        let mut whole = StreamObserver::new(Api::Messages);
        whole.on_chunk(stream);
        let mut split = StreamObserver::new(Api::Messages);
        for c in stream.chunks(usize::from(size).max(1)) {
            split.on_chunk(c);
        }
        assert_eq!(split.finish(), whole.finish());
    }
}

/// The `include_usage_edit` target's lone `\uDADD`: the edit leaves the string as it was, the edited body
/// inspects again, and serde_json judges both bodies alike (the target compared a lenient check of the
/// original with a strict one of the edit).
#[test]
fn a_body_with_a_lone_surrogate_escape_is_edited_around_it() {
    let data = include_bytes!("../fuzz/regressions/include_usage_edit/lone-surrogate-escape");
    let inspection = inspect(Api::ChatCompletions, data).expect("the inspector accepts it, as simd-json does");
    let out = with_include_usage(&inspection, data).expect("no stream_options: one is added");
    let mut in_place = data.to_vec();
    assert!(set_include_usage(&inspection, &mut in_place));
    assert_eq!(in_place, out);
    let key = &data[1..data.len() - 5];
    assert!(out.windows(key.len()).any(|w| w == key), "the member with the escape is kept byte for byte");
    let strict = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).is_ok();
    assert_eq!(strict(data), strict(&out));
    let again = inspect(Api::ChatCompletions, &out).unwrap();
    assert!(again.info.include_usage);
}

/// The `config_env` target's input format: `NAME=VALUE` lines; a name without `CODER_` is an indexed
/// provider variable.
fn environment(data: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(data)
        .split('\n')
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let name =
                if name.starts_with("CODER_") { name.to_string() } else { format!("CODER_AIBRIDGE_PROVIDER_{name}") };
            (name, value.to_string())
        })
        .collect()
}

/// Both inputs set a key list to `anthropic`, a word the loader's fixed message ("TYPE is required (openai,
/// anthropic or copilot)") contains: the target took it for a leak. The real secrets are not quoted, and
/// the message is the same whatever the key is.
#[test]
fn a_key_that_is_also_a_provider_type_is_not_taken_for_a_leak() {
    for (input, secrets) in [
        (
            &include_bytes!("../fuzz/regressions/config_env/secret-equals-fixed-message-text-1")[..],
            &["sk-ant-cccccccccccc", "sk-aaaaaaa"][..],
        ),
        (
            &include_bytes!("../fuzz/regressions/config_env/secret-equals-fixed-message-text-2")[..],
            &["secretsecret1", "secretret2", "AKIABBBBBBBB", "secretsecrBBBBB"][..],
        ),
    ] {
        let mut env = environment(input);
        let message = load_config_from_env(&env).expect_err("these configurations are invalid");
        assert!(message.contains("anthropic"), "{message}");
        for s in secrets {
            assert!(!message.contains(s), "{s} quoted: {message}");
        }
        for value in env.values_mut().filter(|v| v.as_str() == "anthropic") {
            *value = "bouispqjd".into();
        }
        assert_eq!(load_config_from_env(&env).expect_err("still invalid"), message);
    }
}
