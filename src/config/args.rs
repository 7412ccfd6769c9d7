//! The raw command-line flags of the configuration (clap derive), exactly as typed. clap reads no
//! environment here: variables and YAML are merged in `config::load` so that precedence and every
//! validation rule can be tested with an explicit environment map. No parsing of values happens here.

use clap::Args;
use std::path::PathBuf;

/// Where the configuration file and the database are: needed by `server` and by every `tokens` command.
#[derive(Debug, Clone, Default, Args)]
pub struct DatabaseArgs {
    /// YAML configuration file [env: CODER_CONFIG_PATH]
    #[arg(long = "config", value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,

    /// Database URL, sqlite://PATH [env: CODER_AIBRIDGE_DATABASE_URL] [default: sqlite://aibridge.db]
    #[arg(long = "aibridge-database-url", value_name = "URL", global = true)]
    pub database_url: Option<String>,
}

/// Every flag of `aibridged server` (DESIGN §1). `None` means "not given on the command line".
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,

    /// Serve the bridge routes; when false they answer 404 [env: CODER_AIBRIDGE_ENABLED] [default: true]
    #[arg(long = "aibridge-enabled", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub enabled: Option<String>,

    /// Listen address [env: CODER_HTTP_ADDRESS] [default: 127.0.0.1:3000]
    #[arg(long = "http-address", value_name = "HOST:PORT")]
    pub http_address: Option<String>,

    /// Worker threads, one runtime each [env: CODER_AIBRIDGE_WORKERS] [default: number of CPUs]
    #[arg(long = "aibridge-workers", value_name = "N")]
    pub workers: Option<String>,

    /// Purge records older than this; 0 keeps them forever (90d, 36h, 30m, 1h30m)
    /// [env: CODER_AIBRIDGE_RETENTION] [default: 60d]
    #[arg(long = "aibridge-retention", value_name = "DURATION")]
    pub retention: Option<String>,

    /// Emit one "interception log" line per record [env: CODER_AIBRIDGE_STRUCTURED_LOGGING] [default: false]
    #[arg(long = "aibridge-structured-logging", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub structured_logging: Option<String>,

    /// Human-readable log destination; empty disables it [env: CODER_LOGGING_HUMAN] [default: /dev/stderr]
    #[arg(long = "log-human", value_name = "PATH")]
    pub log_human: Option<String>,

    /// JSON log destination (a path or /dev/stderr) [env: CODER_LOGGING_JSON] [default: unset]
    #[arg(long = "log-json", value_name = "PATH")]
    pub log_json: Option<String>,

    /// Largest accepted request body (bytes, or 512KiB, 32MiB, 10MB) [env: CODER_AIBRIDGE_MAX_BODY_SIZE]
    /// [default: 32MiB]
    #[arg(long = "aibridge-max-body-size", value_name = "SIZE")]
    pub max_body_size: Option<String>,

    /// How long in-flight requests may finish after SIGTERM/SIGINT [env: CODER_AIBRIDGE_SHUTDOWN_GRACE]
    /// [default: 30s]
    #[arg(long = "aibridge-shutdown-grace", value_name = "DURATION")]
    pub shutdown_grace: Option<String>,

    /// Key of the legacy provider "openai" [env: CODER_AIBRIDGE_OPENAI_KEY]
    #[arg(long = "aibridge-openai-key", value_name = "KEY")]
    pub openai_key: Option<String>,

    /// Base URL of the legacy provider "openai" [env: CODER_AIBRIDGE_OPENAI_BASE_URL]
    /// [default: https://api.openai.com/v1/]
    #[arg(long = "aibridge-openai-base-url", value_name = "URL")]
    pub openai_base_url: Option<String>,

    /// Key of the legacy provider "anthropic" [env: CODER_AIBRIDGE_ANTHROPIC_KEY]
    #[arg(long = "aibridge-anthropic-key", value_name = "KEY")]
    pub anthropic_key: Option<String>,

    /// Base URL of the legacy provider "anthropic" [env: CODER_AIBRIDGE_ANTHROPIC_BASE_URL]
    /// [default: https://api.anthropic.com/]
    #[arg(long = "aibridge-anthropic-base-url", value_name = "URL")]
    pub anthropic_base_url: Option<String>,

    /// AWS region of the legacy Bedrock provider "anthropic" [env: CODER_AIBRIDGE_BEDROCK_REGION]
    #[arg(long = "aibridge-bedrock-region", value_name = "REGION")]
    pub bedrock_region: Option<String>,

    /// Endpoint of the legacy Bedrock provider [env: CODER_AIBRIDGE_BEDROCK_BASE_URL]
    #[arg(long = "aibridge-bedrock-base-url", value_name = "URL")]
    pub bedrock_base_url: Option<String>,

    /// AWS access key id of the legacy Bedrock provider [env: CODER_AIBRIDGE_BEDROCK_ACCESS_KEY]
    #[arg(long = "aibridge-bedrock-access-key", value_name = "ID")]
    pub bedrock_access_key: Option<String>,

    /// AWS secret access key of the legacy Bedrock provider [env: CODER_AIBRIDGE_BEDROCK_ACCESS_KEY_SECRET]
    #[arg(long = "aibridge-bedrock-access-key-secret", value_name = "SECRET")]
    pub bedrock_access_key_secret: Option<String>,

    /// Bedrock model of the legacy Bedrock provider [env: CODER_AIBRIDGE_BEDROCK_MODEL]
    /// [default: global.anthropic.claude-sonnet-4-5-20250929-v1:0]
    #[arg(long = "aibridge-bedrock-model", value_name = "MODEL")]
    pub bedrock_model: Option<String>,

    /// Bedrock model for haiku requests [env: CODER_AIBRIDGE_BEDROCK_SMALL_FAST_MODEL]
    /// [default: global.anthropic.claude-haiku-4-5-20251001-v1:0]
    #[arg(long = "aibridge-bedrock-small-fast-model", value_name = "MODEL")]
    pub bedrock_small_fast_model: Option<String>,
}
