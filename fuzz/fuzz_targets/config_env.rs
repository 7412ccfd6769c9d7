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

/// A value of the same shape as `piece` (same length and character classes) that shares none of its
/// characters' positions: letters rotate, digits rotate, everything else is kept.
fn stand_in(piece: &str) -> String {
    piece
        .chars()
        .map(|c| match c {
            'a'..='y' | 'A'..='Y' => char::from(c as u8 + 1),
            'z' => 'a',
            'Z' => 'A',
            '0'..='8' => char::from(c as u8 + 1),
            '9' => '0',
            other => other,
        })
        .collect()
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
            for (name, value) in env.iter().filter(|(k, _)| is_secret(k)) {
                for piece in value.split(',').map(str::trim).filter(|p| p.len() >= 8) {
                    if !message.contains(piece) {
                        continue;
                    }
                    // The piece may be fixed text of the message ("openai, anthropic or copilot") or written
                    // in another variable too: load again with this secret replaced by a value of the same
                    // shape. If the piece is still in the message, it did not come from the secret.
                    let mut other = env.clone();
                    other.insert(name.clone(), value.replace(piece, &stand_in(piece)));
                    let Err(control) = load_config_from_env(&other) else {
                        continue;
                    };
                    if control.contains(piece) {
                        continue;
                    }
                    panic!("the error for {name} quotes its secret {piece:?}: {message}");
                }
            }
        }
    }
});
