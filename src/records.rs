//! The record types of the public contract (README "Reading the records") and the compact events that carry them from the
//! workers to the sink thread. A leaf module: it knows no I/O, no runtime and no provider.

use std::time::SystemTime;

/// Which wire API an intercepted request speaks; chooses the request inspector and the response observer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI `POST /chat/completions` (also Copilot).
    ChatCompletions,
    /// OpenAI `POST /responses` (also Copilot and ChatGPT/Codex).
    Responses,
    /// Anthropic `POST /v1/messages` (also through Bedrock, after the event-stream is turned into SSE).
    Messages,
}

impl Api {
    /// A stable name for logs and metric labels (the circuit breaker's endpoint).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Api::ChatCompletions => "chat_completions",
            Api::Responses => "responses",
            Api::Messages => "messages",
        }
    }
}

/// How the upstream credential of an interception was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// The instance's configured key (or Bedrock access key) was injected.
    Centralized,
    /// The client brought its own provider credential (`X-Coder-AI-Governance-Token` auth).
    Byok,
    /// No credential at all went upstream.
    None,
}

impl CredentialKind {
    /// The name stored in records and logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Centralized => "centralized",
            CredentialKind::Byok => "byok",
            CredentialKind::None => "none",
        }
    }
}

/// How an interception ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndStatus {
    /// The upstream response was relayed completely (whatever its HTTP status).
    Completed,
    /// The upstream failed (connect error, reset, garbage, timeout) before the response was complete.
    Failed,
    /// The client went away before the response was complete.
    ClientDisconnected,
}

impl EndStatus {
    /// The name stored in records and logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EndStatus::Completed => "completed",
            EndStatus::Failed => "failed",
            EndStatus::ClientDisconnected => "client_disconnected",
        }
    }
}

/// `interception_start`: written when a request is accepted for an intercepted route.
#[derive(Debug, Clone, PartialEq)]
pub struct InterceptionStart {
    pub interception_id: uuid::Uuid,
    /// The gateway user the token belongs to.
    pub initiator_id: String,
    /// Provider type: `openai`, `anthropic` or `copilot`.
    pub provider: &'static str,
    /// Provider instance name (the route's NAME).
    pub provider_name: String,
    pub model: String,
    /// Detected client: `claude-code`, `codex`, `copilot`, `cursor`, `zed`, … or `unknown`.
    pub client: String,
    pub client_session_id: Option<String>,
    pub user_agent: Option<String>,
    /// The last tool-result id in the request (Anthropic `tool_result.tool_use_id`, OpenAI `tool_call_id`,
    /// Responses `function_call_output.call_id`): this interception continues the thread of the one that
    /// issued that tool call. `None` for a request that starts a thread (a typed prompt).
    pub correlating_tool_call_id: Option<String>,
    pub credential_kind: CredentialKind,
    /// A masked hint of the credential used (`sk-a…wxyz`), never the secret.
    pub credential_hint: Option<String>,
    pub started_at: SystemTime,
    /// The gateway instance that relays it (`--aibridge-gateway-id`): after a crash, each gateway on a
    /// shared store settles only the interceptions it left open. Shared, so a start costs no copy of it.
    pub gateway_id: std::sync::Arc<str>,
    /// The wire API of the request (the `route` label of the metrics; not stored).
    pub api: Api,
}

/// `interception_end`: written once per interception, whatever happened.
#[derive(Debug, Clone, PartialEq)]
pub struct InterceptionEnd {
    pub interception_id: uuid::Uuid,
    pub ended_at: SystemTime,
    pub status: EndStatus,
    /// HTTP status the upstream answered, if it answered.
    pub upstream_status: Option<u16>,
}

/// `token_usage`: one per upstream response, with the arithmetic of README "Reading the records" already applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenUsage {
    pub interception_id: uuid::Uuid,
    pub msg_id: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    pub reasoning_tokens: u64,
    /// Other usage detail fields the provider reported, as a JSON object text.
    pub extra: String,
    pub created_at: SystemTime,
}

/// `prompt_usage`: the text of the last message of the request, when it is the user's.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptUsage {
    pub interception_id: uuid::Uuid,
    pub msg_id: String,
    pub prompt: String,
    pub created_at: SystemTime,
}

/// `tool_usage`: one tool call the model made.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolUsage {
    pub interception_id: uuid::Uuid,
    pub msg_id: String,
    pub tool: String,
    pub tool_call_id: String,
    /// The complete argument JSON, assembled from deltas when streamed.
    pub input: String,
    pub server_url: Option<String>,
    pub injected: bool,
    pub created_at: SystemTime,
}

/// `model_thought`: thinking text or a reasoning summary.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelThought {
    pub interception_id: uuid::Uuid,
    pub msg_id: String,
    pub content: String,
    /// Where the thought came from, e.g. `thinking` (Anthropic) or `reasoning_summary` (Responses).
    pub source: String,
    pub created_at: SystemTime,
}

/// One compact event on the worker → sink channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    InterceptionStart(InterceptionStart),
    InterceptionEnd(InterceptionEnd),
    TokenUsage(TokenUsage),
    PromptUsage(PromptUsage),
    ToolUsage(ToolUsage),
    ModelThought(ModelThought),
}

impl Record {
    /// The `record_type` name of the public contract (README "Structured logs").
    pub(crate) fn record_type(&self) -> &'static str {
        match self {
            Record::InterceptionStart(_) => "interception_start",
            Record::InterceptionEnd(_) => "interception_end",
            Record::TokenUsage(_) => "token_usage",
            Record::PromptUsage(_) => "prompt_usage",
            Record::ToolUsage(_) => "tool_usage",
            Record::ModelThought(_) => "model_thought",
        }
    }
}

/// Token counts as a response observer saw them, already converted to the arithmetic of README "Reading the records".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    pub reasoning_tokens: u64,
    /// Other detail fields, as a JSON object text (`{}` when none).
    pub extra: String,
}

/// A tool call seen in a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// Complete argument JSON text.
    pub input: String,
}

/// A thought seen in a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thought {
    pub content: String,
    pub source: String,
}

/// Everything a response observer extracted from one upstream response (stream or JSON body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The provider's message/response id.
    pub msg_id: Option<String>,
    /// The model the provider says answered, if it says.
    pub model: Option<String>,
    pub usage: Option<Usage>,
    pub tools: Vec<ToolCall>,
    pub thoughts: Vec<Thought>,
    /// An error event the provider sent mid-stream (its JSON text), if any.
    pub error: Option<String>,
    /// True when the stream ended with its terminal event (`[DONE]`, `message_stop`, `response.completed`).
    pub complete: bool,
}

/// What the request inspector learned from an intercepted request body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub model: String,
    pub stream: bool,
    /// Text of the last message, only when it is the user's.
    pub prompt: Option<String>,
    /// Responses API `"background": true` (answered 501).
    pub background: bool,
    /// Chat completions: `stream_options.include_usage` is already true.
    pub include_usage: bool,
}
