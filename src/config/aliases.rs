//! The AI Gateway spellings. Coder renamed AI Bridge to AI Gateway: its variables went from
//! `CODER_AIBRIDGE_*` to `CODER_AI_GATEWAY_*`, its flags from `--aibridge-*` to `--ai-gateway-*` and its
//! YAML section from `aibridge:` to `ai_gateway:`. Both spellings are accepted for **every** setting,
//! generically: the raw sources are rewritten to the `aibridge` spelling before any setting is looked up,
//! so a setting added anywhere gets its alias without naming it here. The same setting given under both
//! names is fine with one value and a start-up error naming both spellings with two.
//!
//! Pure: no I/O; works on the environment map, the parsed YAML document and the argument list.

use std::collections::HashMap;
use std::ffi::OsString;

use serde_yaml_ng::{Mapping, Value};

use super::error::ConfigError;

const ENV_OLD: &str = "CODER_AIBRIDGE_";
const ENV_NEW: &str = "CODER_AI_GATEWAY_";
const FLAG_OLD: &str = "--aibridge-";
const FLAG_NEW: &str = "--ai-gateway-";
const YAML_OLD: &str = "aibridge";
const YAML_NEW: &str = "ai_gateway";

fn conflict(first: String, second: String) -> ConfigError {
    ConfigError::SpellingConflict { first, second }
}

/// The environment with every `CODER_AI_GATEWAY_X` also present as `CODER_AIBRIDGE_X`.
pub(crate) fn env(env: &HashMap<String, String>) -> Result<HashMap<String, String>, ConfigError> {
    let mut out = env.clone();
    // Sorted, so that with several conflicts the first one reported is the same every run.
    let mut renamed: Vec<(&String, &String)> = env.iter().filter(|(k, _)| k.starts_with(ENV_NEW)).collect();
    renamed.sort();
    for (name, value) in renamed {
        let old = format!("{ENV_OLD}{}", &name[ENV_NEW.len()..]);
        match env.get(&old) {
            Some(v) if v.trim() != value.trim() => return Err(conflict(old, name.clone())),
            Some(_) => {}
            None => {
                out.insert(old, value.clone());
            }
        }
        out.remove(name);
    }
    Ok(out)
}

/// The document with the entries of a top-level `ai_gateway:` mapping merged into `aibridge:`.
pub(crate) fn yaml(doc: &Value) -> Result<Value, ConfigError> {
    let Some(top) = doc.as_mapping() else {
        return Ok(doc.clone());
    };
    let Some(new) = top.get(YAML_NEW) else {
        return Ok(doc.clone());
    };
    let Some(new) = new.as_mapping() else {
        return Err(ConfigError::Yaml { path: YAML_NEW.to_string(), reason: "expected a mapping".to_string() });
    };
    let mut merged: Mapping = match top.get(YAML_OLD) {
        Some(Value::Mapping(m)) => m.clone(),
        Some(Value::Null) | None => Mapping::new(),
        Some(_) => {
            return Err(ConfigError::Yaml { path: YAML_OLD.to_string(), reason: "expected a mapping".to_string() })
        }
    };
    for (key, value) in new {
        match merged.get(key) {
            Some(existing) if existing != value => {
                let k = key.as_str().unwrap_or("?");
                return Err(conflict(format!("YAML {YAML_OLD}.{k}"), format!("YAML {YAML_NEW}.{k}")));
            }
            Some(_) => {}
            None => {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
    let mut out = top.clone();
    out.remove(YAML_NEW);
    out.insert(Value::String(YAML_OLD.to_string()), Value::Mapping(merged));
    Ok(Value::Mapping(out))
}

/// One `--aibridge-NAME` / `--ai-gateway-NAME` occurrence on the command line.
struct Occurrence {
    name: String,
    renamed: bool,
    /// Indices of the argument(s) it spans (the flag, and its value when given separately).
    span: Vec<usize>,
    /// Its value; a flag given without one (`--ai-gateway-enabled`) means `true`.
    value: String,
}

/// The command line with every `--ai-gateway-NAME` rewritten to `--aibridge-NAME` (both `--f=v` and
/// `--f v`). A flag given under both names is kept once when the values agree; with different values
/// the error names both flags. Arguments after `--` are left alone.
pub(crate) fn argv(args: Vec<OsString>) -> Result<Vec<OsString>, ConfigError> {
    let text: Vec<Option<&str>> = args.iter().map(|a| a.to_str()).collect();
    let end = text.iter().position(|a| *a == Some("--")).unwrap_or(args.len());
    let mut seen: Vec<Occurrence> = Vec::new();
    let mut i = 0;
    while i < end {
        let Some(arg) = text[i] else {
            i += 1;
            continue;
        };
        let (renamed, rest) = match (arg.strip_prefix(FLAG_NEW), arg.strip_prefix(FLAG_OLD)) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => {
                i += 1;
                continue;
            }
        };
        let (name, value, span) = match rest.split_once('=') {
            Some((name, value)) => (name, value.to_string(), vec![i]),
            None => match text.get(i + 1).copied().flatten().filter(|v| i + 1 < end && !v.starts_with('-')) {
                Some(value) => (rest, value.to_string(), vec![i, i + 1]),
                None => (rest, "true".to_string(), vec![i]),
            },
        };
        i += span.len();
        seen.push(Occurrence { name: name.to_string(), renamed, span, value });
    }
    let mut drop = vec![false; args.len()];
    for new in seen.iter().filter(|o| o.renamed) {
        if let Some(old) = seen.iter().find(|o| !o.renamed && o.name == new.name) {
            if old.value.trim() != new.value.trim() {
                return Err(conflict(format!("{FLAG_OLD}{}", old.name), format!("{FLAG_NEW}{}", new.name)));
            }
            new.span.iter().for_each(|&k| drop[k] = true);
        }
    }
    let renamed_at: Vec<usize> = seen.iter().filter(|o| o.renamed).map(|o| o.span[0]).collect();
    Ok(args
        .into_iter()
        .enumerate()
        .filter(|(k, _)| !drop[*k])
        .map(|(k, a)| match a.to_str().filter(|_| renamed_at.contains(&k)) {
            Some(s) => OsString::from(format!("{FLAG_OLD}{}", &s[FLAG_NEW.len()..])),
            None => a,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn gateway_variables_become_bridge_variables() {
        let e = env(&map(&[
            ("CODER_AI_GATEWAY_RETENTION", "3d"),
            ("CODER_AI_GATEWAY_PROVIDER_0_TYPE", "openai"),
            ("CODER_AIBRIDGE_WORKERS", "2"),
            ("CODER_AI_GATEWAY_WORKERS", " 2"),
        ]))
        .unwrap();
        assert_eq!(
            e,
            map(&[
                ("CODER_AIBRIDGE_RETENTION", "3d"),
                ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
                ("CODER_AIBRIDGE_WORKERS", "2"),
            ])
        );
        let err = env(&map(&[("CODER_AIBRIDGE_WORKERS", "2"), ("CODER_AI_GATEWAY_WORKERS", "3")])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("CODER_AIBRIDGE_WORKERS") && msg.contains("CODER_AI_GATEWAY_WORKERS"), "{msg}");
    }

    #[test]
    fn an_ai_gateway_section_merges_into_aibridge() {
        let doc: Value =
            serde_yaml_ng::from_str("ai_gateway:\n  retention: 3d\n  workers: 2\naibridge:\n  workers: 2\nother: 1\n")
                .unwrap();
        let out = yaml(&doc).unwrap();
        let want: Value = serde_yaml_ng::from_str("aibridge:\n  workers: 2\n  retention: 3d\nother: 1\n").unwrap();
        assert_eq!(out, want);
        let only_new: Value = serde_yaml_ng::from_str("ai_gateway:\n  enabled: false\n").unwrap();
        assert_eq!(
            yaml(&only_new).unwrap(),
            serde_yaml_ng::from_str::<Value>("aibridge:\n  enabled: false\n").unwrap()
        );
        let clash: Value = serde_yaml_ng::from_str("ai_gateway:\n  workers: 3\naibridge:\n  workers: 2\n").unwrap();
        let msg = yaml(&clash).unwrap_err().to_string();
        assert!(msg.contains("YAML aibridge.workers") && msg.contains("YAML ai_gateway.workers"), "{msg}");
        let bad: Value = serde_yaml_ng::from_str("ai_gateway: 5\n").unwrap();
        assert!(yaml(&bad).is_err());
    }

    #[test]
    fn gateway_flags_become_bridge_flags() {
        let out =
            argv(args(&["aibridged", "server", "--ai-gateway-retention=3d", "--ai-gateway-workers", "2"])).unwrap();
        assert_eq!(out, args(&["aibridged", "server", "--aibridge-retention=3d", "--aibridge-workers", "2"]));
        // A value-less boolean, then another flag.
        let out = argv(args(&["x", "--ai-gateway-enabled", "--http-address", "a:1"])).unwrap();
        assert_eq!(out, args(&["x", "--aibridge-enabled", "--http-address", "a:1"]));
        // Both spellings with one value: kept once.
        let out = argv(args(&["x", "--aibridge-workers", "2", "--ai-gateway-workers=2"])).unwrap();
        assert_eq!(out, args(&["x", "--aibridge-workers", "2"]));
        let out = argv(args(&["x", "--ai-gateway-enabled", "--aibridge-enabled=true"])).unwrap();
        assert_eq!(out, args(&["x", "--aibridge-enabled=true"]));
        // Two values: an error naming both.
        let msg = argv(args(&["x", "--aibridge-workers=2", "--ai-gateway-workers", "3"])).unwrap_err().to_string();
        assert!(msg.contains("--aibridge-workers") && msg.contains("--ai-gateway-workers"), "{msg}");
        // After `--`, nothing is touched.
        let out = argv(args(&["x", "--", "--ai-gateway-workers"])).unwrap();
        assert_eq!(out, args(&["x", "--", "--ai-gateway-workers"]));
    }
}
