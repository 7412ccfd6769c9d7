//! Structured "interception log" lines: one JSON object per record to the JSON destination and
//! one readable line to the human destination, through buffered writers flushed once per batch. Runs only
//! on the sink thread. A log write failure is counted and reported, never allowed to stop recording.

use std::io::{self, BufWriter, Write};
use std::time::SystemTime;

use crate::db::timefmt;
use crate::logging::Destination as Target;
use crate::records::Record;

/// Buffer per destination: a batch of 1024 records with short fields fits without intermediate syscalls.
const LOG_BUFFER_BYTES: usize = 256 * 1024;

/// The message every record line carries, the same as the gateway's JSON log uses for them.
pub(crate) const MESSAGE: &str = "interception log";

/// One log destination opened for appending.
struct Destination {
    path: String,
    /// Where `path` resolved to: the same place the gateway's own logs would write for it.
    #[cfg(test)]
    target: Target,
    out: BufWriter<Box<dyn Write + Send>>,
}

impl Destination {
    fn open(path: &str) -> io::Result<Self> {
        let target = Target::resolve(path);
        let inner = target.open()?;
        Ok(Destination {
            path: path.to_owned(),
            #[cfg(test)]
            target,
            out: BufWriter::with_capacity(LOG_BUFFER_BYTES, inner),
        })
    }
}

/// The structured-log side of the sink.
pub(crate) struct RecordLog {
    json: Option<Destination>,
    human: Option<Destination>,
    line: Vec<u8>,
    /// Set after the first failure so the error is reported once, not per line.
    failing: bool,
}

impl RecordLog {
    /// Opens the destinations that are set. With neither set this is a no-op logger.
    pub(crate) fn open(json: Option<&str>, human: Option<&str>) -> io::Result<Self> {
        Ok(RecordLog {
            json: json.map(Destination::open).transpose()?,
            human: human.map(Destination::open).transpose()?,
            line: Vec::with_capacity(1024),
            failing: false,
        })
    }

    /// Where the JSON and the human lines go, for tests comparing with the gateway's own log set-up.
    #[cfg(test)]
    pub(crate) fn targets(&self) -> (Option<&Target>, Option<&Target>) {
        (self.json.as_ref().map(|d| &d.target), self.human.as_ref().map(|d| &d.target))
    }

    /// True when at least one destination is open.
    pub(crate) fn is_active(&self) -> bool {
        self.json.is_some() || self.human.is_some()
    }

    /// Appends the lines for `record` to the buffers. Returns false if a write failed.
    pub(crate) fn write(&mut self, record: &Record, now: SystemTime) -> bool {
        let ts = timefmt::format(now);
        let mut ok = true;
        if let Some(dest) = self.json.as_mut() {
            self.line.clear();
            json_line(&mut self.line, record, ts.as_str());
            ok &= report(&mut self.failing, dest_write(dest, &self.line));
        }
        if let Some(dest) = self.human.as_mut() {
            self.line.clear();
            human_line(&mut self.line, record, ts.as_str());
            ok &= report(&mut self.failing, dest_write(dest, &self.line));
        }
        ok
    }

    /// Flushes both destinations (once per batch). Returns false if a flush failed.
    pub(crate) fn flush(&mut self) -> bool {
        let mut ok = true;
        if let Some(dest) = self.json.as_mut() {
            let r = dest.out.flush().map_err(|e| (dest.path.clone(), e));
            ok &= report(&mut self.failing, r);
        }
        if let Some(dest) = self.human.as_mut() {
            let r = dest.out.flush().map_err(|e| (dest.path.clone(), e));
            ok &= report(&mut self.failing, r);
        }
        ok
    }
}

/// Reports a write result, logging only the first failure of a run of failures.
fn report(failing: &mut bool, r: Result<(), (String, io::Error)>) -> bool {
    match r {
        Ok(()) => {
            *failing = false;
            true
        }
        Err((path, e)) => {
            if !*failing {
                tracing::error!(path = %path, error = %e, "cannot write interception log lines");
            }
            *failing = true;
            false
        }
    }
}

fn dest_write(dest: &mut Destination, line: &[u8]) -> Result<(), (String, io::Error)> {
    dest.out.write_all(line).map_err(|e| (dest.path.clone(), e))
}

/// Receives a record's fields in the order of the record's columns in the database.
trait Fields {
    fn str(&mut self, name: &str, v: &str);
    fn opt_str(&mut self, name: &str, v: Option<&str>);
    fn num(&mut self, name: &str, v: u64);
    fn opt_num(&mut self, name: &str, v: Option<u64>);
    fn bool(&mut self, name: &str, v: bool);
    /// A field holding JSON object text (token usage `extra`).
    fn json(&mut self, name: &str, v: &str);
}

fn visit(record: &Record, f: &mut impl Fields) {
    let mut id_buf = uuid::Uuid::encode_buffer();
    f.str("record_type", record.record_type());
    match record {
        Record::InterceptionStart(r) => {
            f.str("interception_id", r.interception_id.hyphenated().encode_lower(&mut id_buf));
            f.str("initiator_id", &r.initiator_id);
            f.str("provider", r.provider);
            f.str("provider_name", &r.provider_name);
            f.str("model", &r.model);
            f.str("client", &r.client);
            f.opt_str("client_session_id", r.client_session_id.as_deref());
            f.opt_str("user_agent", r.user_agent.as_deref());
            f.str("credential_kind", r.credential_kind.as_str());
            f.opt_str("credential_hint", r.credential_hint.as_deref());
            f.str("started_at", timefmt::format(r.started_at).as_str());
            f.str("gateway_id", &r.gateway_id);
        }
        Record::InterceptionEnd(r) => {
            f.str("interception_id", r.interception_id.hyphenated().encode_lower(&mut id_buf));
            f.str("ended_at", timefmt::format(r.ended_at).as_str());
            f.str("status", r.status.as_str());
            f.opt_num("upstream_status", r.upstream_status.map(u64::from));
        }
        Record::TokenUsage(r) => {
            f.str("interception_id", r.interception_id.hyphenated().encode_lower(&mut id_buf));
            f.str("msg_id", &r.msg_id);
            f.num("input_tokens", r.input_tokens);
            f.num("output_tokens", r.output_tokens);
            f.num("cache_read_input_tokens", r.cache_read_input_tokens);
            f.num("cache_write_input_tokens", r.cache_write_input_tokens);
            f.num("reasoning_tokens", r.reasoning_tokens);
            f.json("extra", &r.extra);
            f.str("created_at", timefmt::format(r.created_at).as_str());
        }
        Record::PromptUsage(r) => {
            f.str("interception_id", r.interception_id.hyphenated().encode_lower(&mut id_buf));
            f.str("msg_id", &r.msg_id);
            f.str("prompt", &r.prompt);
            f.str("created_at", timefmt::format(r.created_at).as_str());
        }
        Record::ToolUsage(r) => {
            f.str("interception_id", r.interception_id.hyphenated().encode_lower(&mut id_buf));
            f.str("msg_id", &r.msg_id);
            f.str("tool", &r.tool);
            f.str("tool_call_id", &r.tool_call_id);
            f.str("input", &r.input);
            f.opt_str("server_url", r.server_url.as_deref());
            f.bool("injected", r.injected);
            f.str("created_at", timefmt::format(r.created_at).as_str());
        }
        Record::ModelThought(r) => {
            f.str("interception_id", r.interception_id.hyphenated().encode_lower(&mut id_buf));
            f.str("msg_id", &r.msg_id);
            f.str("content", &r.content);
            f.str("source", &r.source);
            f.str("created_at", timefmt::format(r.created_at).as_str());
        }
    }
}

/// Appends `s` as a JSON string literal (RFC 8259 §7: quote, backslash and control characters escaped).
pub(crate) fn json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most values (ids, models, timestamps, prompts) need no escape at all: find out with a branch-free
    // pass the compiler vectorises, and copy them whole.
    if !bytes.iter().fold(false, |any, &b| any | needs_escape(b)) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        if esc.is_empty() {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.extend_from_slice(esc);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// True for the bytes `json_string` escapes: quote, backslash, control characters and DEL.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f
}

/// True when `s` is a JSON object that can be embedded verbatim without breaking the line.
fn is_json_object(s: &str) -> bool {
    s.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok() && !s.contains('\n')
}

struct JsonFields<'a>(&'a mut Vec<u8>);

impl JsonFields<'_> {
    fn key(&mut self, name: &str) {
        self.0.push(b',');
        json_string(self.0, name);
        self.0.push(b':');
    }
}

impl Fields for JsonFields<'_> {
    fn str(&mut self, name: &str, v: &str) {
        self.key(name);
        json_string(self.0, v);
    }
    fn opt_str(&mut self, name: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(name, v),
            None => {
                self.key(name);
                self.0.extend_from_slice(b"null");
            }
        }
    }
    fn num(&mut self, name: &str, v: u64) {
        self.key(name);
        let _ = write!(self.0, "{v}");
    }
    fn opt_num(&mut self, name: &str, v: Option<u64>) {
        match v {
            Some(v) => self.num(name, v),
            None => {
                self.key(name);
                self.0.extend_from_slice(b"null");
            }
        }
    }
    fn bool(&mut self, name: &str, v: bool) {
        self.key(name);
        self.0.extend_from_slice(if v { b"true" } else { b"false" });
    }
    fn json(&mut self, name: &str, v: &str) {
        if v.is_empty() {
            self.key(name);
            self.0.extend_from_slice(b"{}");
        } else if is_json_object(v) {
            self.key(name);
            self.0.extend_from_slice(v.as_bytes());
        } else {
            // Not an object: keep it, as a string, rather than emit an unparseable line.
            self.str(name, v);
        }
    }
}

/// Appends one JSON log line: `{"ts":…,"level":"INFO","msg":"interception log", fields…}\n`.
pub(crate) fn json_line(out: &mut Vec<u8>, record: &Record, ts: &str) {
    out.extend_from_slice(b"{\"ts\":");
    json_string(out, ts);
    out.extend_from_slice(b",\"level\":\"INFO\",\"msg\":");
    json_string(out, MESSAGE);
    visit(record, &mut JsonFields(out));
    out.extend_from_slice(b"}\n");
}

struct HumanFields<'a>(&'a mut Vec<u8>);

/// Values made only of these print bare; anything else is quoted so the line splits unambiguously.
fn is_bare(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:/@+-".contains(&b))
}

impl HumanFields<'_> {
    fn key(&mut self, name: &str) {
        self.0.push(b' ');
        self.0.extend_from_slice(name.as_bytes());
        self.0.push(b'=');
    }
}

impl Fields for HumanFields<'_> {
    fn str(&mut self, name: &str, v: &str) {
        self.key(name);
        if is_bare(v) {
            self.0.extend_from_slice(v.as_bytes());
        } else {
            json_string(self.0, v);
        }
    }
    fn opt_str(&mut self, name: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(name, v);
        }
    }
    fn num(&mut self, name: &str, v: u64) {
        self.key(name);
        let _ = write!(self.0, "{v}");
    }
    fn opt_num(&mut self, name: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.num(name, v);
        }
    }
    fn bool(&mut self, name: &str, v: bool) {
        self.key(name);
        self.0.extend_from_slice(if v { b"true" } else { b"false" });
    }
    fn json(&mut self, name: &str, v: &str) {
        self.str(name, if v.is_empty() { "{}" } else { v });
    }
}

/// Appends one readable line: `2026-11-27 05:59:04.123456 [info] interception log: record_type=… k=v…\n`.
pub(crate) fn human_line(out: &mut Vec<u8>, record: &Record, ts: &str) {
    let (date, time) = ts.split_at(10.min(ts.len()));
    out.extend_from_slice(date.as_bytes());
    out.push(b' ');
    out.extend_from_slice(time.trim_start_matches('T').trim_end_matches('Z').as_bytes());
    out.extend_from_slice(b" [info] ");
    out.extend_from_slice(MESSAGE.as_bytes());
    out.push(b':');
    visit(record, &mut HumanFields(out));
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn json_string_round_trips(s in any::<String>()) {
            let mut out = Vec::new();
            json_string(&mut out, &s);
            let back: String = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(back, s);
            prop_assert!(!out.contains(&b'\n'));
        }
    }

    #[test]
    fn json_string_copies_plain_text_whole_and_escapes_the_rest() {
        let enc = |s: &str| {
            let mut out = Vec::new();
            json_string(&mut out, s);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(enc(""), r#""""#);
        assert_eq!(enc("claude-sonnet-4-5 — ok"), r#""claude-sonnet-4-5 — ok""#);
        assert_eq!(enc("a\u{7f}b\"c\\\u{1}\n"), r#""a\u007fb\"c\\\u0001\n""#);
    }

    #[test]
    fn human_line_quotes_what_needs_it() {
        let r = Record::PromptUsage(crate::records::PromptUsage {
            interception_id: uuid::Uuid::nil(),
            msg_id: "msg_1".into(),
            prompt: "hello \"world\"\nbye".into(),
            created_at: std::time::UNIX_EPOCH,
        });
        let mut out = Vec::new();
        human_line(&mut out, &r, "2026-11-27T05:59:04.123456Z");
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            "2026-11-27 05:59:04.123456 [info] interception log: record_type=prompt_usage \
             interception_id=00000000-0000-0000-0000-000000000000 msg_id=msg_1 \
             prompt=\"hello \\\"world\\\"\\nbye\" created_at=1970-01-01T00:00:00.000000Z\n"
        );
    }
}
