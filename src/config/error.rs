//! Every way start-up configuration can be rejected. Each message is one line naming the flag, variable
//! or YAML key at fault; no variant carries a secret value (keys are referred to by position only).

use std::path::PathBuf;

/// What is wrong with a comma-separated key list (positions are 1-based; values are never shown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyListProblem {
    #[error("entry {position} is empty")]
    EmptyEntry { position: usize },
    #[error("entry {position} duplicates entry {first}")]
    Duplicate { position: usize, first: usize },
    #[error("{count} entries given, at most {max} allowed")]
    TooMany { count: usize, max: usize },
}

/// A configuration that cannot be started. `setting` fields hold the name of the source the operator
/// wrote: a flag (`--aibridge-retention`), a variable (`CODER_AIBRIDGE_RETENTION`) or a YAML key
/// (`YAML aibridge.retention`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {reason}")]
    Yaml { path: String, reason: String },
    #[error("{setting}: {reason}")]
    InvalidValue { setting: String, reason: String },
    #[error("{setting}: invalid base URL: {reason}")]
    BadUrl { setting: String, reason: String },
    #[error("{setting}: only sqlite:// and postgres:// are supported (got scheme {scheme:?})")]
    UnsupportedDatabase { setting: String, scheme: String },
    #[error("{setting}: expected CODER_AIBRIDGE_PROVIDER_<N>_<KEY> with N a decimal index without leading zeros")]
    BadIndex { setting: String },
    #[error("provider index {missing} is missing (found index {found}): indices must be contiguous from 0, so set CODER_AIBRIDGE_PROVIDER_{missing}_TYPE")]
    MissingIndex { missing: u64, found: u64 },
    #[error("{provider}: TYPE is required (openai, anthropic or copilot)")]
    MissingType { provider: String },
    #[error("{setting}: unknown provider type {value:?}; expected openai, anthropic or copilot")]
    UnknownType { setting: String, value: String },
    #[error("{second}: provider name {name:?} is already used by {first}; names must be unique")]
    DuplicateName { name: String, first: String, second: String },
    #[error("{setting}: invalid provider name {name:?}; names must match ^[a-z0-9]+(-[a-z0-9]+)*$ (at most {max} characters)")]
    InvalidName { setting: String, name: String, max: usize },
    #[error("{first} and {second} are aliases; set only one of them")]
    AliasConflict { first: String, second: String },
    #[error("{first} and {second} are the AI Bridge and AI Gateway names of one setting and have different values; set one of them (or both to the same value)")]
    SpellingConflict { first: String, second: String },
    #[error("{setting}: {problem}")]
    KeyList { setting: String, problem: KeyListProblem },
    #[error("{setting}: Bedrock settings apply only to anthropic providers, not {kind}")]
    BedrockOnNonAnthropic { setting: String, kind: &'static str },
    #[error("{keys_setting} has {keys} entries but {secrets_setting} has {secrets}; they must pair up")]
    AccessKeyCountMismatch { keys_setting: String, keys: usize, secrets_setting: String, secrets: usize },
    #[error("{present} is set without {missing}; set both or neither")]
    AccessKeyWithoutPair { present: String, missing: String },
    #[error("{provider}: Bedrock needs a region ({region_setting}) or a base URL ({base_url_setting})")]
    BedrockWithoutEndpoint { provider: String, region_setting: String, base_url_setting: String },
    #[error("{bedrock} and {key} are exclusive: the legacy anthropic provider goes either to Anthropic or to Bedrock")]
    BedrockWithAnthropicKey { bedrock: String, key: String },
    #[error("legacy {legacy} conflicts with indexed provider named {name:?}; remove one or the other")]
    LegacyConflict { legacy: String, name: String },
}
