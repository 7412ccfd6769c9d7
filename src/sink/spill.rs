//! The spill file: when the database still refuses writes at the end of the shutdown drain, the records
//! the sink holds are written, one JSON object a line, to `<database>.spill-<micros>-<pid>.jsonl` beside
//! the database (temp name, fsync, rename, directory fsync), so the process can exit without losing them.
//! On the next start, before the sink (and so before any worker) runs, every spill file beside the
//! database is imported through [`Store::write_batch`] and removed. The import is safe to repeat: an
//! interception row is an upsert by its UUID, and a child record already stored for its interception
//! (a previous import died before removing the file) is not written again. Knows the file system and
//! the record types; no SQL.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::logline::RecordLog;
use crate::db::{timefmt, InterceptionDetail, Store, StoreError};
use crate::records::{
    Api, CredentialKind, EndStatus, InterceptionEnd, InterceptionStart, ModelThought, PromptUsage, Record, TokenUsage,
    ToolUsage,
};

/// Records per `write_batch` of the import: one transaction each, so a huge spill never holds the write
/// lock for long.
const IMPORT_CHUNK: usize = 1000;

/// Tries of one import chunk while the database is locked, and the pause between them.
const IMPORT_ATTEMPTS: u32 = 10;
const IMPORT_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// One line of a spill file: a record with its `record_type`, times as RFC 3339 (the database's
/// microsecond precision), ids as hyphenated UUIDs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "record_type", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    InterceptionStart {
        #[serde(with = "uuid_text")]
        interception_id: Uuid,
        initiator_id: String,
        provider: String,
        provider_name: String,
        model: String,
        client: String,
        client_session_id: Option<String>,
        user_agent: Option<String>,
        /// Absent in lines written before sessions (issue 12) and for requests that start a thread.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correlating_tool_call_id: Option<String>,
        credential_kind: String,
        credential_hint: Option<String>,
        started_at: String,
        gateway_id: String,
        /// The wire API (metrics labels only); absent in spill files of earlier versions.
        #[serde(default)]
        api: Option<String>,
    },
    InterceptionEnd {
        #[serde(with = "uuid_text")]
        interception_id: Uuid,
        ended_at: String,
        status: String,
        upstream_status: Option<u16>,
    },
    TokenUsage {
        #[serde(with = "uuid_text")]
        interception_id: Uuid,
        msg_id: String,
        input_tokens: u64,
        output_tokens: u64,
        cache_read_input_tokens: u64,
        cache_write_input_tokens: u64,
        reasoning_tokens: u64,
        extra: String,
        created_at: String,
    },
    PromptUsage {
        #[serde(with = "uuid_text")]
        interception_id: Uuid,
        msg_id: String,
        prompt: String,
        created_at: String,
    },
    ToolUsage {
        #[serde(with = "uuid_text")]
        interception_id: Uuid,
        msg_id: String,
        tool: String,
        tool_call_id: String,
        input: String,
        server_url: Option<String>,
        injected: bool,
        created_at: String,
    },
    ModelThought {
        #[serde(with = "uuid_text")]
        interception_id: Uuid,
        msg_id: String,
        content: String,
        source: String,
        created_at: String,
    },
}

/// Interception ids as hyphenated text (the crate's `uuid` is built without serde).
mod uuid_text {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use uuid::Uuid;

    pub(super) fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Uuid::parse_str(&text).map_err(D::Error::custom)
    }
}

/// Why a spill line could not be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("not a spill record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bad {field}: {value:?}")]
    Field { field: &'static str, value: String },
}

fn time(t: SystemTime) -> String {
    timefmt::format(t).as_str().to_owned()
}

fn parse_time(field: &'static str, value: String) -> Result<SystemTime, DecodeError> {
    timefmt::parse(&value).ok_or(DecodeError::Field { field, value })
}

/// The record as one spill line (no newline).
pub(crate) fn encode(record: &Record) -> String {
    let line = match record.clone() {
        Record::InterceptionStart(r) => Line::InterceptionStart {
            interception_id: r.interception_id,
            initiator_id: r.initiator_id,
            provider: r.provider.to_owned(),
            provider_name: r.provider_name,
            model: r.model,
            client: r.client,
            client_session_id: r.client_session_id,
            user_agent: r.user_agent,
            correlating_tool_call_id: r.correlating_tool_call_id,
            credential_kind: r.credential_kind.as_str().to_owned(),
            credential_hint: r.credential_hint,
            started_at: time(r.started_at),
            gateway_id: r.gateway_id.to_string(),
            api: Some(api_name(r.api).to_owned()),
        },
        Record::InterceptionEnd(r) => Line::InterceptionEnd {
            interception_id: r.interception_id,
            ended_at: time(r.ended_at),
            status: r.status.as_str().to_owned(),
            upstream_status: r.upstream_status,
        },
        Record::TokenUsage(r) => Line::TokenUsage {
            interception_id: r.interception_id,
            msg_id: r.msg_id,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cache_read_input_tokens: r.cache_read_input_tokens,
            cache_write_input_tokens: r.cache_write_input_tokens,
            reasoning_tokens: r.reasoning_tokens,
            extra: r.extra,
            created_at: time(r.created_at),
        },
        Record::PromptUsage(r) => Line::PromptUsage {
            interception_id: r.interception_id,
            msg_id: r.msg_id,
            prompt: r.prompt,
            created_at: time(r.created_at),
        },
        Record::ToolUsage(r) => Line::ToolUsage {
            interception_id: r.interception_id,
            msg_id: r.msg_id,
            tool: r.tool,
            tool_call_id: r.tool_call_id,
            input: r.input,
            server_url: r.server_url,
            injected: r.injected,
            created_at: time(r.created_at),
        },
        Record::ModelThought(r) => Line::ModelThought {
            interception_id: r.interception_id,
            msg_id: r.msg_id,
            content: r.content,
            source: r.source,
            created_at: time(r.created_at),
        },
    };
    // A derived Serialize of strings, numbers and options cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

/// The record a spill line holds.
pub(crate) fn decode(line: &str) -> Result<Record, DecodeError> {
    Ok(match serde_json::from_str::<Line>(line)? {
        Line::InterceptionStart {
            interception_id,
            initiator_id,
            provider,
            provider_name,
            model,
            client,
            client_session_id,
            user_agent,
            correlating_tool_call_id,
            credential_kind,
            credential_hint,
            started_at,
            gateway_id,
            api,
        } => Record::InterceptionStart(InterceptionStart {
            interception_id,
            initiator_id,
            provider: provider_type(provider)?,
            provider_name,
            model,
            client,
            client_session_id,
            user_agent,
            correlating_tool_call_id,
            credential_kind: match credential_kind.as_str() {
                "centralized" => CredentialKind::Centralized,
                "byok" => CredentialKind::Byok,
                "none" => CredentialKind::None,
                _ => return Err(DecodeError::Field { field: "credential_kind", value: credential_kind }),
            },
            credential_hint,
            started_at: parse_time("started_at", started_at)?,
            gateway_id: Arc::from(gateway_id),
            api: match api.as_deref() {
                None | Some("chat_completions") => Api::ChatCompletions,
                Some("responses") => Api::Responses,
                Some("messages") => Api::Messages,
                Some(_) => return Err(DecodeError::Field { field: "api", value: api.unwrap_or_default() }),
            },
        }),
        Line::InterceptionEnd { interception_id, ended_at, status, upstream_status } => {
            Record::InterceptionEnd(InterceptionEnd {
                interception_id,
                ended_at: parse_time("ended_at", ended_at)?,
                status: match status.as_str() {
                    "completed" => EndStatus::Completed,
                    "failed" => EndStatus::Failed,
                    "client_disconnected" => EndStatus::ClientDisconnected,
                    _ => return Err(DecodeError::Field { field: "status", value: status }),
                },
                upstream_status,
            })
        }
        Line::TokenUsage {
            interception_id,
            msg_id,
            input_tokens,
            output_tokens,
            cache_read_input_tokens,
            cache_write_input_tokens,
            reasoning_tokens,
            extra,
            created_at,
        } => Record::TokenUsage(TokenUsage {
            interception_id,
            msg_id,
            input_tokens,
            output_tokens,
            cache_read_input_tokens,
            cache_write_input_tokens,
            reasoning_tokens,
            extra,
            created_at: parse_time("created_at", created_at)?,
        }),
        Line::PromptUsage { interception_id, msg_id, prompt, created_at } => Record::PromptUsage(PromptUsage {
            interception_id,
            msg_id,
            prompt,
            created_at: parse_time("created_at", created_at)?,
        }),
        Line::ToolUsage { interception_id, msg_id, tool, tool_call_id, input, server_url, injected, created_at } => {
            Record::ToolUsage(ToolUsage {
                interception_id,
                msg_id,
                tool,
                tool_call_id,
                input,
                server_url,
                injected,
                created_at: parse_time("created_at", created_at)?,
            })
        }
        Line::ModelThought { interception_id, msg_id, content, source, created_at } => {
            Record::ModelThought(ModelThought {
                interception_id,
                msg_id,
                content,
                source,
                created_at: parse_time("created_at", created_at)?,
            })
        }
    })
}

/// The spill name of a wire API.
fn api_name(api: Api) -> &'static str {
    match api {
        Api::ChatCompletions => "chat_completions",
        Api::Responses => "responses",
        Api::Messages => "messages",
    }
}

/// The provider types a start record can name (`InterceptionStart::provider` is a static name).
fn provider_type(name: String) -> Result<&'static str, DecodeError> {
    use crate::config::ProviderType;
    [ProviderType::OpenAi, ProviderType::Anthropic, ProviderType::Copilot]
        .into_iter()
        .map(ProviderType::as_str)
        .find(|known| *known == name)
        .ok_or(DecodeError::Field { field: "provider", value: name })
}

/// The directory and file-name prefix of the spill files of the database at `database`.
fn location(database: &Path) -> (PathBuf, String) {
    let dir = match database.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = database.file_name().map_or_else(|| "aibridged.db".into(), |n| n.to_string_lossy().into_owned());
    (dir, format!("{name}.spill-"))
}

/// Writes `records` to a new spill file beside `database` and returns its path. The file appears under
/// its final name only once its contents and the directory entry are on disk.
pub(crate) fn write<'a>(database: &Path, records: impl IntoIterator<Item = &'a Record>) -> io::Result<PathBuf> {
    let (dir, prefix) = location(database);
    let micros = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros();
    let name = format!("{prefix}{micros}-{}.jsonl", std::process::id());
    let path = dir.join(&name);
    let temp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let file = OpenOptions::new().write(true).create_new(true).open(&temp)?;
        let mut out = BufWriter::new(file);
        for record in records {
            out.write_all(encode(record).as_bytes())?;
            out.write_all(b"\n")?;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&temp, &path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map(|()| path)
}

/// The spill files beside `database`, oldest first (their names start with the time they were written).
pub(crate) fn files(database: &Path) -> Vec<PathBuf> {
    let (dir, prefix) = location(database);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix) && n.ends_with(".jsonl"))
        .map(|n| dir.join(n))
        .collect();
    found.sort();
    found
}

/// What reading one spill file gave: the records, and the lines that were not records (1-based number and
/// why), e.g. a last line cut short by a crash while the file was written by hand or copied.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) records: Vec<Record>,
    pub(crate) bad_lines: Vec<(usize, String)>,
}

/// Reads a spill file's text. Blank lines are skipped; a line that is not a record is reported, never fatal.
pub(crate) fn parse(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let decoded =
            std::str::from_utf8(line).map_err(|e| e.to_string()).and_then(|l| decode(l).map_err(|e| e.to_string()));
        match decoded {
            Ok(r) => parsed.records.push(r),
            Err(why) => parsed.bad_lines.push((i + 1, why)),
        }
    }
    parsed
}

/// Imports every spill file beside `database` into `store`, removing each one it imported whole. A file
/// whose import failed (the database is still refusing writes) stays for the next start. Never fails the
/// start: everything is logged. The records that were not stored yet also get their record-log lines
/// (the spill is what the log missed too). Returns the number of records imported.
pub(crate) fn import_all(database: &Path, store: &mut dyn Store, log: &mut RecordLog) -> usize {
    let mut imported = 0;
    for path in files(database) {
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read spill file; it is kept for the next start");
                continue;
            }
        };
        let parsed = parse(&bytes);
        for (line, why) in &parsed.bad_lines {
            tracing::error!(path = %path.display(), line, error = %why, "spill file line is not a record; skipped");
        }
        match import(store, &parsed.records, log) {
            Ok(n) => {
                imported += n;
                if let Err(e) = fs::remove_file(&path) {
                    tracing::error!(path = %path.display(), error = %e, "spill file imported but not removed; a later import skips what is stored");
                }
                tracing::warn!(
                    path = %path.display(),
                    records = parsed.records.len(),
                    written = n,
                    skipped_lines = parsed.bad_lines.len(),
                    "imported the records a previous shutdown spilled"
                );
            }
            Err(e) => tracing::error!(
                path = %path.display(),
                error = %e,
                "cannot import spill file; it is kept and imported at the next start"
            ),
        }
    }
    imported
}

/// Writes `records` in chunks, leaving out child records their interception already has, and writes
/// the record-log lines of those the store did not hold. Returns how many records were written.
fn import(store: &mut dyn Store, records: &[Record], log: &mut RecordLog) -> Result<usize, StoreError> {
    let mut written = 0;
    for chunk in records.chunks(IMPORT_CHUNK) {
        let fresh = with_retry(|| missing(store, chunk))?;
        let refs: Vec<&Record> = fresh.iter().map(|f| &f.record).collect();
        with_retry(|| store.write_batch(&refs))?;
        written += fresh.len();
        if log.is_active() {
            let now = SystemTime::now();
            let mut ok = true;
            for f in fresh.iter().filter(|f| f.unlogged) {
                ok &= log.write(&f.record, now);
            }
            if !(log.flush() && ok) {
                tracing::error!("cannot write the record log lines of imported spilled records");
            }
        }
    }
    Ok(written)
}

/// A spilled record to write, and whether the store lacked it (so its log line was never written).
/// Interception rows are always written again (upserts); only new ones count as unlogged.
struct Fresh {
    record: Record,
    unlogged: bool,
}

fn with_retry<T>(mut attempt: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let mut tries = 1;
    loop {
        match attempt() {
            Err(StoreError::Transient(_)) if tries < IMPORT_ATTEMPTS => {
                std::thread::sleep(IMPORT_RETRY);
                tries += 1;
            }
            other => return other,
        }
    }
}

/// The records of `chunk` the store does not hold yet. Interception rows are upserts and always kept;
/// they are unlogged when the store has no start (or no end) for them yet.
fn missing(store: &mut dyn Store, chunk: &[Record]) -> Result<Vec<Fresh>, StoreError> {
    let mut stored: std::collections::HashMap<Uuid, Option<InterceptionDetail>> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(chunk.len());
    for record in chunk {
        let id = match record {
            Record::InterceptionStart(r) => r.interception_id,
            Record::InterceptionEnd(r) => r.interception_id,
            Record::TokenUsage(r) => r.interception_id,
            Record::PromptUsage(r) => r.interception_id,
            Record::ToolUsage(r) => r.interception_id,
            Record::ModelThought(r) => r.interception_id,
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = stored.entry(id) {
            slot.insert(store.interception(id)?);
        }
        // Compared on what identifies the record, not every column: a store may normalise a value (a
        // count past i64::MAX, say) and the record must still be recognised.
        let present = stored.get(&id).and_then(Option::as_ref).is_some_and(|d| match record {
            Record::TokenUsage(r) => {
                d.token_usages.iter().any(|s| s.msg_id == r.msg_id && s.created_at == r.created_at)
            }
            Record::PromptUsage(r) => {
                d.prompts.iter().any(|s| s.msg_id == r.msg_id && s.created_at == r.created_at && s.prompt == r.prompt)
            }
            Record::ToolUsage(r) => d
                .tool_usages
                .iter()
                .any(|s| s.msg_id == r.msg_id && s.created_at == r.created_at && s.tool_call_id == r.tool_call_id),
            Record::ModelThought(r) => d
                .thoughts
                .iter()
                .any(|s| s.msg_id == r.msg_id && s.created_at == r.created_at && s.content == r.content),
            Record::InterceptionStart(_) => d.interception.started_at.is_some(),
            Record::InterceptionEnd(_) => d.interception.ended_at.is_some(),
        });
        match record {
            Record::InterceptionStart(_) | Record::InterceptionEnd(_) => {
                out.push(Fresh { record: record.clone(), unlogged: !present })
            }
            _ if !present => out.push(Fresh { record: record.clone(), unlogged: true }),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "spill_tests.rs"]
mod tests;
