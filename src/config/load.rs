//! Turns flags + environment + YAML into a validated [`Config`] (precedence flag > env > YAML > default).
//! Runs once at start-up: the only I/O is reading the YAML file and, for the process variant, the
//! environment. Never logs; warnings are returned for the caller to log.

use super::args::{DatabaseArgs, ServerArgs};
use super::error::ConfigError;
use super::sources::{self, Empty, Raw, Setting, Sources};
use super::units::{parse_duration, parse_size};
use super::{aliases, limits, metrics, providers, tuning, AdminSettings, Config};
use crate::db::{DatabaseUrl, UrlError};
use serde_yaml_ng::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default listen address.
pub const DEFAULT_HTTP_ADDRESS: &str = "127.0.0.1:3000";
/// Where the sessions API and web page listen unless told otherwise (issue 12).
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:3001";
/// Default database URL.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://aibridge.db";
/// Default retention (README "Configuration").
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(60 * 86_400);
/// Default human log destination.
pub const DEFAULT_LOG_HUMAN: &str = "/dev/stderr";
/// Default request body limit: large enough for long agent conversations with images, small enough
/// that a handful of concurrent uploads cannot exhaust memory.
pub const DEFAULT_MAX_BODY_SIZE: usize = 32 << 20;
/// Ceiling on the body limit: bodies are held in memory per request, so a typo must not allow 100 GB.
pub const MAX_BODY_SIZE_LIMIT: u64 = 1 << 30;
/// Default shutdown grace for in-flight requests.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Ceiling on worker threads: far above any core count, catches `CODER_AIBRIDGE_WORKERS=100000` typos.
pub const MAX_WORKERS: usize = 1024;
/// Longest gateway id: a name, not data; it is stored with every interception.
const MAX_GATEWAY_ID_LEN: usize = 200;
/// Largest YAML file read: configuration, not data.
const MAX_CONFIG_FILE_BYTES: u64 = 4 << 20;

/// A validated configuration and the non-fatal findings (unknown keys) the caller should log.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Loads the `server` configuration from `args`, the given environment and the YAML file named by
/// `--config` / `CODER_CONFIG_PATH` (read from disk). Tests pass their own `env`.
pub fn load(args: &ServerArgs, env: &HashMap<String, String>) -> Result<Loaded, ConfigError> {
    let yaml = read_yaml(&args.db, env)?;
    load_with_yaml(args, env, yaml.as_ref().map(|(p, v)| (p.as_path(), v)))
}

/// [`load`] with the real process environment (variables that are not UTF-8 are skipped).
pub fn load_from_process(args: &ServerArgs) -> Result<Loaded, ConfigError> {
    load(args, &process_env())
}

/// The process environment as a map, for [`load`] and [`database_url`].
pub fn process_env() -> HashMap<String, String> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

/// The command line with the `--ai-gateway-*` flags spelled `--aibridge-*` (see `config::aliases`), for
/// clap to parse; a flag given under both names with different values is an error naming both.
pub fn canonical_args(args: Vec<std::ffi::OsString>) -> Result<Vec<std::ffi::OsString>, ConfigError> {
    aliases::argv(args)
}

/// Parses YAML configuration text (as found in the `--config` file); `path` is for messages only.
pub fn parse_yaml(path: &Path, text: &str) -> Result<Value, ConfigError> {
    let doc: Value = serde_yaml_ng::from_str(text)
        .map_err(|e| ConfigError::Yaml { path: path.display().to_string(), reason: e.to_string() })?;
    match doc {
        Value::Mapping(_) | Value::Null => Ok(doc),
        _ => Err(ConfigError::Yaml {
            path: path.display().to_string(),
            reason: "the top level must be a mapping".to_string(),
        }),
    }
}

/// [`load`] over an already-parsed YAML document (`None`: no file). No I/O but reading the host name for
/// the default gateway id.
pub fn load_with_yaml(
    args: &ServerArgs,
    env: &HashMap<String, String>,
    yaml: Option<(&Path, &Value)>,
) -> Result<Loaded, ConfigError> {
    // The AI Gateway spellings (`CODER_AI_GATEWAY_*`, `ai_gateway:`) become the AI Bridge ones first.
    let env = &aliases::env(env)?;
    let doc = yaml.map(|(_, v)| aliases::yaml(v)).transpose()?;
    let src = Sources { env, yaml: doc.as_ref() };
    let mut warnings = Vec::new();
    if let (Some((path, _)), Some(doc)) = (yaml, doc.as_ref()) {
        warn_unknown_yaml_keys(path, doc, &mut warnings);
    }
    let get = |s: &Setting, flag: &Option<String>| src.get(s, flag.as_deref(), Empty::IsUnset);

    let enabled = match get(&sources::ENABLED, &args.enabled)? {
        Some(raw) => parse_bool(&raw)?,
        None => true,
    };
    let http_address = match get(&sources::HTTP_ADDRESS, &args.http_address)? {
        Some(raw) => parse_address(&raw)?,
        None => DEFAULT_HTTP_ADDRESS.to_string(),
    };
    let database = database_url_from(&args.db, &src)?;
    let workers = match get(&sources::WORKERS, &args.workers)? {
        Some(raw) => parse_workers(&raw)?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let retention = match get(&sources::RETENTION, &args.retention)? {
        Some(raw) => Some(parse_duration(&raw.value).map_err(|e| invalid(&raw, e))?).filter(|d| !d.is_zero()),
        None => Some(DEFAULT_RETENTION),
    };
    let structured_logging = match get(&sources::STRUCTURED_LOGGING, &args.structured_logging)? {
        Some(raw) => parse_bool(&raw)?,
        None => false,
    };
    let log_human = match src.get(&sources::LOG_HUMAN, args.log_human.as_deref(), Empty::IsValue)? {
        Some(raw) => Some(raw.value).filter(|v| !v.trim().is_empty()),
        None => Some(DEFAULT_LOG_HUMAN.to_string()),
    };
    let log_json = src
        .get(&sources::LOG_JSON, args.log_json.as_deref(), Empty::IsValue)?
        .map(|raw| raw.value)
        .filter(|v| !v.trim().is_empty());
    let max_body_size = match get(&sources::MAX_BODY_SIZE, &args.max_body_size)? {
        Some(raw) => parse_body_size(&raw)?,
        None => DEFAULT_MAX_BODY_SIZE,
    };
    let shutdown_grace = match get(&sources::SHUTDOWN_GRACE, &args.shutdown_grace)? {
        Some(raw) => parse_duration(&raw.value).map_err(|e| invalid(&raw, e))?,
        None => DEFAULT_SHUTDOWN_GRACE,
    };
    let gateway_id = match get(&sources::GATEWAY_ID, &args.gateway_id)? {
        Some(raw) => parse_gateway_id(&raw)?,
        None => default_gateway_id(&host_name(), &http_address),
    };
    // Sessions API and web page (issue 12): an explicitly empty address turns the listener off.
    let admin = AdminSettings {
        address: match src.get(&sources::ADMIN_ADDRESS, args.admin.admin_address.as_deref(), Empty::IsValue)? {
            Some(raw) if raw.value.trim().is_empty() => None,
            Some(raw) => Some(parse_address(&raw)?),
            None => Some(DEFAULT_ADMIN_ADDRESS.to_string()),
        },
        price_file: get(&sources::PRICE_FILE, &args.admin.price_file)?.map(|raw| PathBuf::from(raw.value.trim())),
    };
    let providers = providers::resolve(args, &src, &mut warnings)?;
    let tuning = tuning::resolve(&args.tuning, &src)?;
    let metrics = metrics::resolve(&args.metrics, &src)?;
    let limits = limits::resolve(&args.limits, &src)?;

    let config = Config {
        enabled,
        http_address,
        database,
        workers,
        retention,
        structured_logging,
        log_human,
        log_json,
        max_body_size,
        shutdown_grace,
        gateway_id: gateway_id.into(),
        providers,
        timeouts: tuning.timeouts,
        sink: tuning.sink,
        token_refresh: tuning.token_refresh,
        dns_refresh: tuning.dns_refresh,
        limits,
        metrics,
        admin,
    };
    Ok(Loaded { config, warnings })
}

/// The database for the `tokens` commands, with the same precedence as `server`
/// (flag > `CODER_AIBRIDGE_DATABASE_URL` > YAML `aibridge.database_url` > `sqlite://aibridge.db`).
pub fn database_url(args: &DatabaseArgs, env: &HashMap<String, String>) -> Result<DatabaseUrl, ConfigError> {
    let yaml = read_yaml(args, env)?;
    let env = &aliases::env(env)?;
    let doc = yaml.as_ref().map(|(_, v)| aliases::yaml(v)).transpose()?;
    let src = Sources { env, yaml: doc.as_ref() };
    database_url_from(args, &src)
}

fn database_url_from(args: &DatabaseArgs, src: &Sources<'_>) -> Result<DatabaseUrl, ConfigError> {
    match src.get(&sources::DATABASE_URL, args.database_url.as_deref(), Empty::IsUnset)? {
        Some(raw) => parse_database_url(&raw),
        None => Ok(DatabaseUrl::Sqlite(PathBuf::from(&DEFAULT_DATABASE_URL["sqlite://".len()..]))),
    }
}

/// The YAML file named by `--config`, else `CODER_CONFIG_PATH`, parsed; `None` when neither is set.
fn read_yaml(args: &DatabaseArgs, env: &HashMap<String, String>) -> Result<Option<(PathBuf, Value)>, ConfigError> {
    let path = match (&args.config, env.get(sources::CONFIG_PATH_ENV)) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) if !p.trim().is_empty() => PathBuf::from(p),
        _ => return Ok(None),
    };
    let read_err = |source| ConfigError::ReadFile { path: path.clone(), source };
    let len = std::fs::metadata(&path).map_err(read_err)?.len();
    if len > MAX_CONFIG_FILE_BYTES {
        return Err(ConfigError::Yaml {
            path: path.display().to_string(),
            reason: format!("file is larger than {MAX_CONFIG_FILE_BYTES} bytes"),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(read_err)?;
    let doc = parse_yaml(&path, &text)?;
    Ok(Some((path, doc)))
}

fn warn_unknown_yaml_keys(path: &Path, doc: &Value, warnings: &mut Vec<String>) {
    let Some(map) = sources::yaml_lookup(doc, "aibridge").and_then(Value::as_mapping) else {
        return;
    };
    for key in map.keys() {
        let Some(key) = key.as_str() else { continue };
        let known = key == "providers"
            || sources::AIBRIDGE_YAML_KEYS
                .iter()
                .any(|s| s.yaml.iter().any(|p| p.strip_prefix("aibridge.") == Some(key)));
        if !known {
            warnings.push(format!("{}: unknown key aibridge.{key} is ignored", path.display()));
        }
    }
}

fn invalid(raw: &Raw, reason: impl ToString) -> ConfigError {
    ConfigError::InvalidValue { setting: raw.origin.clone(), reason: reason.to_string() }
}

/// Booleans as Go's `strconv.ParseBool` spells them (1, t, true, 0, f, false; any case), plus yes/no.
pub(super) fn parse_bool(raw: &Raw) -> Result<bool, ConfigError> {
    match raw.value.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" | "y" | "on" => Ok(true),
        "0" | "f" | "false" | "no" | "n" | "off" => Ok(false),
        _ => Err(invalid(raw, format!("expected true or false, got {:?}", raw.value))),
    }
}

/// `HOST:PORT` with a numeric port (host may be a name, an IPv4 address or a bracketed IPv6 address).
pub(super) fn parse_address(raw: &Raw) -> Result<String, ConfigError> {
    let text = raw.value.trim();
    let ok = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok() && !host.contains(['/', ' ']));
    if ok {
        Ok(text.to_string())
    } else {
        Err(invalid(raw, format!("expected HOST:PORT such as 127.0.0.1:3000, got {text:?}")))
    }
}

/// An explicit gateway id: printable text of bounded length, as it is stored with every interception.
fn parse_gateway_id(raw: &Raw) -> Result<String, ConfigError> {
    let text = raw.value.trim();
    if text.is_empty() || text.len() > MAX_GATEWAY_ID_LEN || text.chars().any(char::is_control) {
        return Err(invalid(raw, format!("expected 1 to {MAX_GATEWAY_ID_LEN} printable characters")));
    }
    Ok(text.to_string())
}

/// The default gateway id. Gateways sharing one SQLite store run on one host (SQLite is not safe over a
/// network file system), so the host name alone would not tell them apart, and an id file beside the
/// database would be shared by all of them; two gateways on one host cannot listen on the same configured
/// address, and the configured text (not the bound port) stays the same across restarts.
pub(crate) fn default_gateway_id(host: &str, http_address: &str) -> String {
    format!("{host}/{http_address}")
}

/// The kernel's host name (Linux), or `localhost` when it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn parse_workers(raw: &Raw) -> Result<usize, ConfigError> {
    match raw.value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        _ => Err(invalid(raw, format!("expected a whole number from 1 to {MAX_WORKERS}, got {:?}", raw.value))),
    }
}

fn parse_body_size(raw: &Raw) -> Result<usize, ConfigError> {
    let n = parse_size(&raw.value).map_err(|e| invalid(raw, e))?;
    if n == 0 || n > MAX_BODY_SIZE_LIMIT {
        return Err(invalid(raw, format!("must be between 1 byte and {MAX_BODY_SIZE_LIMIT} bytes (1GiB)")));
    }
    usize::try_from(n).map_err(|_| invalid(raw, "too large for this platform"))
}

/// `sqlite://PATH` → PATH. Other schemes are refused naming only the scheme (URLs of other engines
/// carry passwords).
/// Parses the database URL. The error names the setting and the problem, never the value: a PostgreSQL
/// URL may carry a password.
fn parse_database_url(raw: &Raw) -> Result<DatabaseUrl, ConfigError> {
    match DatabaseUrl::parse(&raw.value) {
        Ok(url) => Ok(url),
        Err(UrlError::UnsupportedScheme(scheme)) => {
            Err(ConfigError::UnsupportedDatabase { setting: raw.origin.clone(), scheme })
        }
        Err(e) => Err(invalid(raw, e)),
    }
}
