//! The one edit of a chat completions request: forcing `stream_options.include_usage = true` on streams
//! (so the final chunk carries the usage the records need), splicing bytes at the places the layout pass
//! found, never re-serialising. Pure over bytes: no I/O, no second walk over the body.

use std::ops::Range;

use super::{Inspection, StreamOptions};

/// Returns the body with `stream_options.include_usage` set to true, touching only the bytes needed:
/// the member is inserted (or its value replaced) and everything else is kept byte for byte. `body` must
/// be the body `inspection` was made from. None when it is already true (nothing to do), or when `body`
/// cannot be that body (then it is forwarded as received).
pub fn with_include_usage(inspection: &Inspection, body: &[u8]) -> Option<Vec<u8>> {
    let (at, with) = edit(inspection, body)?;
    let mut out = Vec::with_capacity(body.len() + with.len());
    out.extend_from_slice(&body[..at.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&body[at.end..]);
    Some(out)
}

/// The same edit as [`with_include_usage`], made in place so a large body is never held twice: the
/// buffer grows by the few inserted bytes only. Returns whether the body changed.
pub fn set_include_usage(inspection: &Inspection, body: &mut Vec<u8>) -> bool {
    let Some((at, with)) = edit(inspection, body) else {
        return false;
    };
    // Exactly the room needed: an amortised reserve would double a large body's buffer.
    body.reserve_exact(with.len().saturating_sub(at.len()));
    body.splice(at, with.iter().copied());
    true
}

/// Which bytes of `body` to replace with what.
fn edit(inspection: &Inspection, body: &[u8]) -> Option<(Range<usize>, &'static [u8])> {
    let layout = &inspection.layout;
    if !layout.fits(body) {
        return None;
    }
    match layout.stream_options() {
        None => {
            let at = layout.open() + 1;
            let with: &[u8] = if layout.members().is_empty() {
                br#""stream_options":{"include_usage":true}"#
            } else {
                br#""stream_options":{"include_usage":true},"#
            };
            Some((at..at, with))
        }
        Some(StreamOptions::Other(value)) => Some((value.clone(), br#"{"include_usage":true}"#)),
        Some(StreamOptions::Object { include_usage: Some(v), .. }) if &body[v.clone()] == b"true" => None,
        Some(StreamOptions::Object { include_usage: Some(v), .. }) => Some((v.clone(), b"true")),
        Some(StreamOptions::Object { open, empty, include_usage: None, .. }) => {
            let at = open + 1;
            let with: &[u8] = if *empty { br#""include_usage":true"# } else { br#""include_usage":true,"# };
            Some((at..at, with))
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::inspect;
    use super::super::strategies::{escaped_key, json_value, raw_object, same_except};
    use super::*;
    use crate::records::Api;

    fn edit(s: &str) -> Option<String> {
        let ins = inspect(Api::ChatCompletions, s.as_bytes()).unwrap();
        with_include_usage(&ins, s.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn include_usage_insert_replace_and_noop() {
        assert_eq!(
            edit(r#"{"model":"m", "stream":true}"#).unwrap(),
            r#"{"stream_options":{"include_usage":true},"model":"m", "stream":true}"#
        );
        assert_eq!(edit("{ }").unwrap(), r#"{"stream_options":{"include_usage":true} }"#);
        assert_eq!(
            edit(r#"{"stream_options": {"include_usage" : false}, "x":"}"}"#).unwrap(),
            r#"{"stream_options": {"include_usage" : true}, "x":"}"}"#
        );
        assert_eq!(edit(r#"{"stream_options":null}"#).unwrap(), r#"{"stream_options":{"include_usage":true}}"#);
        assert_eq!(
            edit(r#"{"stream_options":{"a":[1,{"b":"\"}"}]}}"#).unwrap(),
            r#"{"stream_options":{"include_usage":true,"a":[1,{"b":"\"}"}]}}"#
        );
        assert_eq!(edit(r#"{"stream_options":{}}"#).unwrap(), r#"{"stream_options":{"include_usage":true}}"#);
        assert_eq!(edit(r#"{"stream_options":{"include_usage":true},"m":1}"#), None);
    }

    /// Escaped keys are the keys they decode to, for the edit as for the inspector: no second
    /// `stream_options` is added next to an escaped one, and an escaped `include_usage` is the one replaced.
    #[test]
    fn escaped_keys_are_edited_as_decoded() {
        assert_eq!(
            edit(r#"{"stre\u0061m":true,"stream_opti\u006fns":{"x":1}}"#).unwrap(),
            r#"{"stre\u0061m":true,"stream_opti\u006fns":{"include_usage":true,"x":1}}"#
        );
        assert_eq!(
            edit(r#"{"stream_options":{"include\u005fusage":false}}"#).unwrap(),
            r#"{"stream_options":{"include\u005fusage":true}}"#
        );
        let done = r#"{"stream":true,"\u0073tream_options":{"include_usag\u0065":true}}"#;
        assert!(inspect(Api::ChatCompletions, done.as_bytes()).unwrap().info.include_usage);
        assert_eq!(edit(done), None);
    }

    #[test]
    fn another_body_than_the_inspected_one_is_left_alone() {
        let ins = inspect(Api::ChatCompletions, br#"{"stream":true}"#).unwrap();
        assert_eq!(with_include_usage(&ins, br#"{"stream":true} "#), None);
        assert_eq!(with_include_usage(&ins, b""), None);
    }

    /// A `stream_options` value: absent, not an object, or an object with or without `include_usage`
    /// (its key maybe escaped) among other members.
    fn stream_options() -> impl Strategy<Value = Option<String>> {
        let include_usage =
            (escaped_key("include_usage"), prop::sample::select(vec!["true", "false", "null", "1", "\"yes\""]))
                .prop_map(|(k, v)| Some(format!("{k}:{v}")));
        let inner = (
            proptest::option::of(include_usage.prop_map(Option::unwrap)),
            raw_object(&["include_usage"]),
            any::<bool>(),
        );
        prop_oneof![
            Just(None),
            json_value().prop_filter("not an object", |v| !v.starts_with('{')).prop_map(Some),
            inner.prop_map(|(iu, others, first)| {
                let mut members: Vec<String> = others.into_iter().map(|(_, raw)| raw).collect();
                if let Some(iu) = iu {
                    members.insert(if first { 0 } else { members.len() }, iu);
                }
                Some(format!("{{{}}}", members.join(",")))
            }),
        ]
    }

    proptest! {
        /// For any object (escaped keys included), the edited body is valid JSON, equal to the original
        /// with `stream_options.include_usage` set to true, and every byte outside the edited member is kept.
        #[test]
        fn edit_sets_include_usage_and_keeps_every_other_byte(
            members in raw_object(&["stream_options", "model", "stream"]),
            opts in stream_options(),
            opts_key in escaped_key("stream_options"),
            at in any::<prop::sample::Index>(),
            ws in prop::sample::select(vec!["", " ", "\n  "]),
        ) {
            let mut raw: Vec<String> = members.into_iter().map(|(_, raw)| raw).collect();
            let opts_at = at.index(raw.len() + 1);
            if let Some(o) = &opts {
                raw.insert(opts_at, format!("{opts_key}{ws}:{ws}{o}"));
            }
            let body = format!("{ws}{{{ws}{}{ws}}}{ws}", raw.join(&format!(",{ws}")));
            let ins = inspect(Api::ChatCompletions, body.as_bytes()).unwrap();
            let out = with_include_usage(&ins, body.as_bytes());

            let mut want: serde_json::Value = serde_json::from_str(&body).unwrap();
            let already = want["stream_options"]["include_usage"] == serde_json::Value::Bool(true);
            prop_assert_eq!(already, ins.info.include_usage);
            let Some(out) = out else {
                prop_assert!(already, "no edit on {}", body);
                return Ok(());
            };
            prop_assert!(!already);
            let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let obj = want.as_object_mut().unwrap();
            match obj.get_mut("stream_options") {
                Some(serde_json::Value::Object(o)) => { o.insert("include_usage".into(), true.into()); }
                _ => { obj.insert("stream_options".into(), serde_json::json!({"include_usage": true})); }
            }
            prop_assert_eq!(&got, &want);
            // Byte for byte: the bytes that differ lie inside the stream_options value, or nothing of
            // the original differs (an insertion after the top-level `{`).
            let edited = match &opts {
                Some(_) => ins.layout.last(super::super::Field::StreamOptions).unwrap().value.clone(),
                None => ins.layout.open() + 1..ins.layout.open() + 1,
            };
            prop_assert!(same_except(body.as_bytes(), &out, edited), "{} -> {}", body, String::from_utf8_lossy(&out));
            let again = inspect(Api::ChatCompletions, &out).unwrap();
            prop_assert!(again.info.include_usage);
            prop_assert!(with_include_usage(&again, &out).is_none());

            // The in-place edit makes the same bytes.
            let mut in_place = body.clone().into_bytes();
            prop_assert!(set_include_usage(&ins, &mut in_place));
            prop_assert_eq!(&in_place, &out);
            prop_assert!(!set_include_usage(&again, &mut in_place), "a second edit changes nothing");
            prop_assert_eq!(&in_place, &out);
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            for api in [Api::ChatCompletions, Api::Responses, Api::Messages] {
                if let Ok(ins) = inspect(api, &body) {
                    if let Some(out) = with_include_usage(&ins, &body) {
                        prop_assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
                    }
                }
            }
        }
    }
}
