//! Fuzz target: the configuration loader, given a hostile environment (indexed providers, durations,
//! sizes, URLs, key lists), never panics; a configuration it accepts has unique, bounded provider names
//! and bounded key pools; and a rejection never quotes a secret (provider keys, AWS secrets).
//!
//! Input: `NAME=VALUE` records separated by newlines, decoded lossily as UTF-8. A name without the
//! `CODER_` prefix gets `CODER_AIBRIDGE_PROVIDER_` put in front, so the fuzzer reaches the indexed
//! provider variables (`0_TYPE=openai`) in few bytes. The environment is a map handed to the loader;
//! the process environment is never read or changed.
#![no_main]

use std::collections::HashMap;

use aibridged::fuzzing::load_config_from_env;
use libfuzzer_sys::fuzz_target;

/// Variables whose values are credentials: an error message must never contain them.
fn is_secret(name: &str) -> bool {
    name.ends_with("_KEY") || name.ends_with("_KEYS") || name.contains("SECRET") || name.contains("SESSION_TOKEN")
}

fn environment(data: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(data);
    let mut env = HashMap::new();
    for line in text.split('\n') {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = if name.starts_with("CODER_") { name.to_string() } else { format!("CODER_AIBRIDGE_PROVIDER_{name}") };
        env.insert(name, value.to_string());
    }
    env
}

fuzz_target!(|data: &[u8]| {
    let env = environment(data);
    match load_config_from_env(&env) {
        Ok(loaded) => {
            let mut names: Vec<&str> = loaded.providers.iter().map(|(n, _)| n.as_str()).collect();
            for (name, keys) in &loaded.providers {
                assert!(!name.is_empty() && name.len() <= loaded.max_name_len, "provider name {name:?}");
                assert!(*keys <= loaded.max_keys, "{keys} keys for {name}");
            }
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len(), "provider names are unique");
        }
        Err(message) => {
            let public: Vec<&str> =
                env.iter().filter(|(k, _)| !is_secret(k)).map(|(k, v)| v.as_str()).chain(env.keys().map(String::as_str)).collect();
            for (name, value) in env.iter().filter(|(k, _)| is_secret(k)) {
                for piece in value.split(',').map(str::trim).filter(|p| p.len() >= 8) {
                    // A piece that is also written in a non-secret variable (or a name) may be quoted there.
                    if public.iter().any(|v| v.contains(piece)) || message.matches(piece).count() == 0 {
                        continue;
                    }
                    panic!("the error for {name} quotes its secret: {message}");
                }
            }
        }
    }
});
