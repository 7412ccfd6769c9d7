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

/// Every flag of `aibridged server` (README "Configuration"). `None` means "not given on the command line".
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

    /// Names this gateway in the records it starts; at start it settles the interceptions its previous run
    /// left open [env: CODER_AIBRIDGE_GATEWAY_ID] [default: HOSTNAME/HTTP_ADDRESS]
    #[arg(long = "aibridge-gateway-id", value_name = "ID")]
    pub gateway_id: Option<String>,

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

    #[command(flatten)]
    pub tuning: TuningArgs,

    #[command(flatten)]
    pub limits: LimitsArgs,

    #[command(flatten)]
    pub metrics: MetricsArgs,

    #[command(flatten)]
    pub admin: AdminArgs,
}

// --- Sessions API and web page (issue 12) ---
/// The control-plane listener serving the sessions API and the web page, off the workers.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Sessions API and web page")]
pub struct AdminArgs {
    /// Address of the sessions API and the web page (/ui/); empty disables them
    /// [env: CODER_AIBRIDGE_ADMIN_ADDRESS] [default: 127.0.0.1:3001]
    #[arg(long = "admin-address", value_name = "HOST:PORT")]
    pub admin_address: Option<String>,

    /// JSON price table replacing the built-in one for the usage cost estimate
    /// [env: CODER_AIBRIDGE_PRICE_FILE] [default: built in]
    #[arg(long = "aibridge-price-file", value_name = "PATH")]
    pub price_file: Option<String>,
}

/// The timeouts, refresh intervals and sink limits (`config::tuning`). Durations are written like
/// `--aibridge-retention` (`600s`, `10m`, `250ms`); every one has a default and a range.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Timeouts and tuning")]
pub struct TuningArgs {
    /// A keep-alive client connection may sit idle this long between requests
    /// [env: CODER_AIBRIDGE_KEEPALIVE_IDLE_TIMEOUT] [default: 75s]
    #[arg(long = "aibridge-keepalive-idle-timeout", value_name = "DURATION")]
    pub keepalive_idle_timeout: Option<String>,

    /// Once a request head started, all of it must arrive within this, else 408
    /// [env: CODER_AIBRIDGE_REQUEST_HEAD_TIMEOUT] [default: 10s]
    #[arg(long = "aibridge-request-head-timeout", value_name = "DURATION")]
    pub request_head_timeout: Option<String>,

    /// Each read of a request body must make progress within this, else 408
    /// [env: CODER_AIBRIDGE_REQUEST_BODY_READ_TIMEOUT] [default: 60s]
    #[arg(long = "aibridge-request-body-read-timeout", value_name = "DURATION")]
    pub request_body_read_timeout: Option<String>,

    /// The whole request body must arrive within this, else 408 [env: CODER_AIBRIDGE_REQUEST_BODY_TIMEOUT]
    /// [default: 300s]
    #[arg(long = "aibridge-request-body-timeout", value_name = "DURATION")]
    pub request_body_timeout: Option<String>,

    /// TCP connect to an upstream, per address [env: CODER_AIBRIDGE_UPSTREAM_CONNECT_TIMEOUT] [default: 10s]
    #[arg(long = "aibridge-upstream-connect-timeout", value_name = "DURATION")]
    pub upstream_connect_timeout: Option<String>,

    /// TLS handshake with an upstream [env: CODER_AIBRIDGE_UPSTREAM_TLS_HANDSHAKE_TIMEOUT] [default: 10s]
    #[arg(long = "aibridge-upstream-tls-handshake-timeout", value_name = "DURATION")]
    pub upstream_tls_handshake_timeout: Option<String>,

    /// Idle pooled upstream connections older than this are not reused
    /// [env: CODER_AIBRIDGE_UPSTREAM_POOL_IDLE_TIMEOUT] [default: 30s]
    #[arg(long = "aibridge-upstream-pool-idle-timeout", value_name = "DURATION")]
    pub upstream_pool_idle_timeout: Option<String>,

    /// How long an upstream may take to send its response head (time to first byte)
    /// [env: CODER_AIBRIDGE_UPSTREAM_FIRST_BYTE_TIMEOUT] [default: 600s]
    #[arg(long = "aibridge-upstream-first-byte-timeout", value_name = "DURATION")]
    pub upstream_first_byte_timeout: Option<String>,

    /// After a failed request write, how long to look for an answer the upstream already sent
    /// [env: CODER_AIBRIDGE_UPSTREAM_EARLY_ANSWER_GRACE] [default: 2s]
    #[arg(long = "aibridge-upstream-early-answer-grace", value_name = "DURATION")]
    pub upstream_early_answer_grace: Option<String>,

    /// How long an upstream may stay silent between two reads of a response body
    /// [env: CODER_AIBRIDGE_STREAM_IDLE_TIMEOUT] [default: 600s]
    #[arg(long = "aibridge-stream-idle-timeout", value_name = "DURATION")]
    pub stream_idle_timeout: Option<String>,

    /// A client that accepts no response bytes for this long is given up
    /// [env: CODER_AIBRIDGE_CLIENT_WRITE_TIMEOUT] [default: 60s]
    #[arg(long = "aibridge-client-write-timeout", value_name = "DURATION")]
    pub client_write_timeout: Option<String>,

    /// Upstream thinking time before the gateway starts watching for the client leaving
    /// [env: CODER_AIBRIDGE_CLIENT_WATCH_AFTER] [default: 500ms]
    #[arg(long = "aibridge-client-watch-after", value_name = "DURATION")]
    pub client_watch_after: Option<String>,

    /// Upstream silence mid-body before the gateway starts watching for the client leaving
    /// [env: CODER_AIBRIDGE_CLIENT_WATCH_AFTER_IDLE] [default: 2s]
    #[arg(long = "aibridge-client-watch-after-idle", value_name = "DURATION")]
    pub client_watch_after_idle: Option<String>,

    /// How often the token cache is reloaded from the database (new and revoked tokens take effect)
    /// [env: CODER_AIBRIDGE_TOKEN_REFRESH_INTERVAL] [default: 250ms]
    #[arg(long = "aibridge-token-refresh-interval", value_name = "DURATION")]
    pub token_refresh_interval: Option<String>,

    /// How often upstream host names are resolved again [env: CODER_AIBRIDGE_DNS_REFRESH_INTERVAL]
    /// [default: 30s]
    #[arg(long = "aibridge-dns-refresh-interval", value_name = "DURATION")]
    pub dns_refresh_interval: Option<String>,

    /// Most records committed in one database transaction [env: CODER_AIBRIDGE_SINK_BATCH_MAX_RECORDS]
    /// [default: 1024]
    #[arg(long = "aibridge-sink-batch-max-records", value_name = "N")]
    pub sink_batch_max_records: Option<String>,

    /// Longest a record waits before its transaction commits [env: CODER_AIBRIDGE_SINK_BATCH_MAX_DELAY]
    /// [default: 50ms]
    #[arg(long = "aibridge-sink-batch-max-delay", value_name = "DURATION")]
    pub sink_batch_max_delay: Option<String>,

    /// Records the worker → sink channel holds before workers wait
    /// [env: CODER_AIBRIDGE_SINK_CHANNEL_CAPACITY] [default: 65536]
    #[arg(long = "aibridge-sink-channel-capacity", value_name = "N")]
    pub sink_channel_capacity: Option<String>,

    /// How often the sink reports that workers waited for a full channel
    /// [env: CODER_AIBRIDGE_SINK_REPORT_INTERVAL] [default: 60s]
    #[arg(long = "aibridge-sink-report-interval", value_name = "DURATION")]
    pub sink_report_interval: Option<String>,

    /// How often old records are purged (also once at start) [env: CODER_AIBRIDGE_RETENTION_INTERVAL]
    /// [default: 1h]
    #[arg(long = "aibridge-retention-interval", value_name = "DURATION")]
    pub retention_interval: Option<String>,

    // Bounded shutdown (issue 9 item 4).
    /// After the shutdown grace, how long the sink keeps trying to commit before it writes the rest to a
    /// spill file beside the database and exits non-zero [env: CODER_AIBRIDGE_SHUTDOWN_DRAIN] [default: 30s]
    #[arg(long = "aibridge-shutdown-drain", value_name = "DURATION")]
    pub shutdown_drain: Option<String>,
}

/// The metrics settings (`config::metrics`, README "Operating").
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Metrics")]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at /metrics on --prometheus-address [env: CODER_PROMETHEUS_ENABLE]
    /// [default: false]
    #[arg(long = "prometheus-enable", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub prometheus_enable: Option<String>,

    /// Address of the metrics listener [env: CODER_PROMETHEUS_ADDRESS] [default: 127.0.0.1:2112]
    #[arg(long = "prometheus-address", value_name = "HOST:PORT")]
    pub prometheus_address: Option<String>,

    /// Prefix of every metric name [env: CODER_AIBRIDGE_METRICS_PREFIX] [default: coder_aibridged_]
    #[arg(long = "aibridge-metrics-prefix", value_name = "PREFIX")]
    pub metrics_prefix: Option<String>,

    /// Label interceptions, prompts and tokens by initiator_id (one series per user)
    /// [env: CODER_AIBRIDGE_METRICS_INITIATOR_LABEL] [default: true]
    #[arg(long = "aibridge-metrics-initiator-label", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub metrics_initiator_label: Option<String>,
}

/// Overload protection, the circuit breaker and readiness (`config::limits`; issue 10). `0` turns a
/// limit off.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Overload protection and readiness")]
pub struct LimitsArgs {
    /// Intercepted requests in flight across all workers; over it, 503 "AI Bridge is currently at
    /// capacity"; 0 is no limit [env: CODER_AIBRIDGE_MAX_CONCURRENCY] [default: 0]
    #[arg(long = "aibridge-max-concurrency", value_name = "N")]
    pub max_concurrency: Option<String>,

    /// Requests per second per gateway token, across all workers; over it, 429 with Retry-After; 0 is no
    /// limit [env: CODER_AIBRIDGE_RATE_LIMIT] [default: 0]
    #[arg(long = "aibridge-rate-limit", value_name = "N")]
    pub rate_limit: Option<String>,

    /// Client connections open across all workers; a connection beyond it is closed as soon as it is
    /// accepted, before any byte is read or written; 0 is no limit [env: CODER_AIBRIDGE_MAX_CONNECTIONS]
    /// [default: 0]
    #[arg(long = "aibridge-max-connections", visible_alias = "max-connections", value_name = "N")]
    pub max_connections: Option<String>,

    /// Circuit breaker per provider instance, endpoint and model: after repeated upstream 503/504/529
    /// answers, answer 503 "circuit breaker is open" without calling the upstream
    /// [env: CODER_AIBRIDGE_CIRCUIT_BREAKER_ENABLED] [default: false]
    #[arg(long = "aibridge-circuit-breaker-enabled", value_name = "BOOL")]
    pub breaker_enabled: Option<String>,

    /// Consecutive upstream failures (503, 504, 529) that open a breaker, 1-1000
    /// [env: CODER_AIBRIDGE_CIRCUIT_BREAKER_FAILURE_THRESHOLD] [default: 5]
    #[arg(long = "aibridge-circuit-breaker-failure-threshold", value_name = "N")]
    pub breaker_failure_threshold: Option<String>,

    /// How often a closed breaker forgets its failures, 0 (never) to 1h
    /// [env: CODER_AIBRIDGE_CIRCUIT_BREAKER_INTERVAL] [default: 10s]
    #[arg(long = "aibridge-circuit-breaker-interval", value_name = "DURATION")]
    pub breaker_interval: Option<String>,

    /// How long a breaker stays open before it lets trial requests through (half-open), 1ms to 1h
    /// [env: CODER_AIBRIDGE_CIRCUIT_BREAKER_TIMEOUT] [default: 30s]
    #[arg(long = "aibridge-circuit-breaker-timeout", value_name = "DURATION")]
    pub breaker_timeout: Option<String>,

    /// Trial requests a half-open breaker lets through; that many successes close it, 1-1000
    /// [env: CODER_AIBRIDGE_CIRCUIT_BREAKER_MAX_REQUESTS] [default: 3]
    #[arg(long = "aibridge-circuit-breaker-max-requests", value_name = "N")]
    pub breaker_max_requests: Option<String>,

    /// After SIGTERM/SIGINT, keep accepting this long while /readyz answers 503, so load balancers stop
    /// sending before the listeners close; then the shutdown grace starts [env: CODER_AIBRIDGE_SHUTDOWN_DELAY]
    /// [default: 0s]
    #[arg(long = "aibridge-shutdown-delay", value_name = "DURATION")]
    pub shutdown_delay: Option<String>,
}
