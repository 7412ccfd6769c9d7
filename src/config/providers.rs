//! Provider instances from their three spellings: indexed variables `CODER_AIBRIDGE_PROVIDER_<N>_<KEY>`,
//! YAML `aibridge.providers`, and the legacy `openai` / `anthropic` / Bedrock settings. Applies every
//! validation rule of README "Configuration". Never puts a secret in an error or a warning: keys are named by position.

use super::error::{ConfigError, KeyListProblem};
use super::sources::{self, Empty, Raw, Sources};
use super::{AwsCredential, BedrockConfig, ProviderConfig, ProviderType, Secret, UpstreamUrl};
use crate::config::args::ServerArgs;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, HashMap};

/// Prefix of the indexed provider variables.
const ENV_PREFIX: &str = "CODER_AIBRIDGE_PROVIDER_";
/// At most this many keys per list: a failover pool larger than this is a misconfiguration (README "Configuration").
pub const MAX_KEYS: usize = 5;
/// Longest provider name: it is one URL path segment and a record column, so keep it readable.
pub const MAX_NAME_LEN: usize = 63;
/// Longest AWS region name accepted (real ones are about 15 characters; a DNS label allows 63).
const MAX_REGION_LEN: usize = 63;
/// Bedrock model used when none is configured.
pub const DEFAULT_BEDROCK_MODEL: &str = "global.anthropic.claude-sonnet-4-5-20250929-v1:0";
/// Bedrock model for `haiku` requests when none is configured.
pub const DEFAULT_BEDROCK_SMALL_FAST_MODEL: &str = "global.anthropic.claude-haiku-4-5-20251001-v1:0";

/// One per-instance setting, spelled `<KEY>` in variables and `key` in YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Type,
    Name,
    Key,
    Keys,
    BaseUrl,
    BedrockBaseUrl,
    BedrockRegion,
    BedrockAccessKey,
    BedrockAccessKeys,
    BedrockAccessKeySecret,
    BedrockAccessKeySecrets,
    BedrockModel,
    BedrockSmallFastModel,
}

impl Field {
    const ALL: [Field; 13] = [
        Field::Type,
        Field::Name,
        Field::Key,
        Field::Keys,
        Field::BaseUrl,
        Field::BedrockBaseUrl,
        Field::BedrockRegion,
        Field::BedrockAccessKey,
        Field::BedrockAccessKeys,
        Field::BedrockAccessKeySecret,
        Field::BedrockAccessKeySecrets,
        Field::BedrockModel,
        Field::BedrockSmallFastModel,
    ];

    fn env_key(self) -> &'static str {
        match self {
            Field::Type => "TYPE",
            Field::Name => "NAME",
            Field::Key => "KEY",
            Field::Keys => "KEYS",
            Field::BaseUrl => "BASE_URL",
            Field::BedrockBaseUrl => "BEDROCK_BASE_URL",
            Field::BedrockRegion => "BEDROCK_REGION",
            Field::BedrockAccessKey => "BEDROCK_ACCESS_KEY",
            Field::BedrockAccessKeys => "BEDROCK_ACCESS_KEYS",
            Field::BedrockAccessKeySecret => "BEDROCK_ACCESS_KEY_SECRET",
            Field::BedrockAccessKeySecrets => "BEDROCK_ACCESS_KEY_SECRETS",
            Field::BedrockModel => "BEDROCK_MODEL",
            Field::BedrockSmallFastModel => "BEDROCK_SMALL_FAST_MODEL",
        }
    }

    fn from_env_key(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.env_key() == key)
    }

    fn from_yaml_key(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.env_key().eq_ignore_ascii_case(key))
    }

    fn is_bedrock(self) -> bool {
        self >= Field::BedrockBaseUrl
    }
}

/// Where a provider's settings were written, to name them in messages.
#[derive(Debug, Clone, Copy)]
enum Spelling {
    Env(u64),
    Yaml(usize),
    Legacy(ProviderType),
}

/// A provider's settings before validation.
#[derive(Debug)]
struct RawProvider {
    spelling: Spelling,
    fields: BTreeMap<Field, Raw>,
}

impl RawProvider {
    /// The provider as a whole, for messages about it rather than one of its settings.
    fn label(&self) -> String {
        match self.spelling {
            Spelling::Env(n) => format!("{ENV_PREFIX}{n}"),
            Spelling::Yaml(i) => format!("YAML aibridge.providers[{i}]"),
            Spelling::Legacy(kind) => format!("legacy {} provider", kind.as_str()),
        }
    }

    /// How the operator would spell `field` for this provider (whether or not it is set).
    fn setting_name(&self, field: Field) -> String {
        match self.spelling {
            Spelling::Env(n) => format!("{ENV_PREFIX}{n}_{}", field.env_key()),
            Spelling::Yaml(i) => format!("YAML aibridge.providers[{i}].{}", field.env_key().to_ascii_lowercase()),
            Spelling::Legacy(kind) => {
                let setting = match field {
                    Field::Key | Field::Keys if kind == ProviderType::OpenAi => &sources::OPENAI_KEY,
                    Field::BaseUrl if kind == ProviderType::OpenAi => &sources::OPENAI_BASE_URL,
                    Field::Key | Field::Keys => &sources::ANTHROPIC_KEY,
                    Field::BaseUrl => &sources::ANTHROPIC_BASE_URL,
                    Field::BedrockBaseUrl => &sources::BEDROCK_BASE_URL,
                    Field::BedrockRegion => &sources::BEDROCK_REGION,
                    Field::BedrockAccessKey | Field::BedrockAccessKeys => &sources::BEDROCK_ACCESS_KEY,
                    Field::BedrockAccessKeySecret | Field::BedrockAccessKeySecrets => {
                        &sources::BEDROCK_ACCESS_KEY_SECRET
                    }
                    Field::BedrockModel => &sources::BEDROCK_MODEL,
                    Field::BedrockSmallFastModel => &sources::BEDROCK_SMALL_FAST_MODEL,
                    Field::Type | Field::Name => return self.label(),
                };
                setting.env.to_string()
            }
        }
    }

    /// A set, non-empty field.
    fn get(&self, field: Field) -> Option<&Raw> {
        self.fields.get(&field).filter(|r| !r.value.trim().is_empty())
    }

    /// The one set field of an alias pair; both set is an error.
    fn alias(&self, a: Field, b: Field) -> Result<Option<&Raw>, ConfigError> {
        match (self.get(a), self.get(b)) {
            (Some(x), Some(y)) => Err(ConfigError::AliasConflict { first: x.origin.clone(), second: y.origin.clone() }),
            (x, y) => Ok(x.or(y)),
        }
    }
}

/// The validated providers (legacy first, then indexed in index order) and any warnings.
pub(crate) fn resolve(
    args: &ServerArgs,
    src: &Sources<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<ProviderConfig>, ConfigError> {
    let mut raws = collect_env(src.env, warnings)?;
    let yaml_list = src.yaml.and_then(|doc| sources::yaml_lookup(doc, "aibridge.providers"));
    match yaml_list {
        Some(list) if raws.is_empty() => raws = collect_yaml(list, warnings)?,
        Some(_) => {
            warnings.push(format!("YAML aibridge.providers is ignored: {ENV_PREFIX}<N>_* variables take precedence"))
        }
        None => {}
    }

    let mut indexed = Vec::with_capacity(raws.len());
    for raw in &raws {
        indexed.push((build(raw)?, raw));
    }

    let openai = legacy_openai(args, src)?;
    let anthropic = legacy_anthropic(args, src)?;
    let nothing_indexed = indexed.is_empty();
    let mut out = Vec::with_capacity(indexed.len() + 2);
    let mut names: HashMap<String, String> = HashMap::new();
    for (kind, legacy) in [(ProviderType::OpenAi, openai), (ProviderType::Anthropic, anthropic)] {
        let raw = match legacy {
            Some(raw) => raw,
            None if nothing_indexed => default_legacy(kind),
            None => continue,
        };
        if let Some(set) = raw.fields.values().find(|r| r.origin != raw.label()) {
            if indexed.iter().any(|(p, _)| p.name == kind.as_str()) {
                return Err(ConfigError::LegacyConflict {
                    legacy: set.origin.clone(),
                    name: kind.as_str().to_string(),
                });
            }
        }
        names.insert(kind.as_str().to_string(), raw.label());
        out.push(build(&raw)?);
    }
    for (provider, raw) in indexed {
        let origin =
            raw.get(Field::Name).or(raw.get(Field::Type)).map(|r| r.origin.clone()).unwrap_or_else(|| raw.label());
        if let Some(first) = names.get(&provider.name) {
            return Err(ConfigError::DuplicateName {
                name: provider.name.clone(),
                first: first.clone(),
                second: origin,
            });
        }
        names.insert(provider.name.clone(), origin);
        out.push(provider);
    }
    Ok(out)
}

/// Reads every `CODER_AIBRIDGE_PROVIDER_<N>_<KEY>` variable, checks the indices are contiguous from 0
/// (compared as numbers, so 10 follows 9), and returns the providers in index order.
fn collect_env(env: &HashMap<String, String>, warnings: &mut Vec<String>) -> Result<Vec<RawProvider>, ConfigError> {
    // Sorted so that, with several mistakes, the same one is reported on every run.
    let vars: BTreeMap<&str, &str> =
        env.iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut by_index: BTreeMap<u64, RawProvider> = BTreeMap::new();
    for (name, value) in vars {
        let rest = &name[ENV_PREFIX.len()..];
        let bad = || ConfigError::BadIndex { setting: name.to_string() };
        let (index, key) = rest.split_once('_').ok_or_else(bad)?;
        let well_formed = !index.is_empty()
            && index.bytes().all(|b| b.is_ascii_digit())
            && (index == "0" || !index.starts_with('0'))
            && !key.is_empty();
        if !well_formed {
            return Err(bad());
        }
        let index: u64 = index.parse().map_err(|_| bad())?;
        let entry = by_index
            .entry(index)
            .or_insert_with(|| RawProvider { spelling: Spelling::Env(index), fields: BTreeMap::new() });
        match Field::from_env_key(key) {
            Some(field) => {
                entry.fields.insert(field, Raw { value: value.to_string(), origin: name.to_string() });
            }
            None => warnings.push(format!("{name}: unknown provider setting {key} is ignored")),
        }
    }
    for (expected, &found) in (0u64..).zip(by_index.keys()) {
        if expected != found {
            return Err(ConfigError::MissingIndex { missing: expected, found });
        }
    }
    Ok(by_index.into_values().collect())
}

/// Reads the YAML `aibridge.providers` list: one mapping per instance, keys as in the variables, lowercase.
fn collect_yaml(list: &Value, warnings: &mut Vec<String>) -> Result<Vec<RawProvider>, ConfigError> {
    let items = match list {
        Value::Null => return Ok(Vec::new()),
        Value::Sequence(items) => items,
        _ => {
            return Err(ConfigError::Yaml {
                path: "aibridge.providers".to_string(),
                reason: "expected a list of providers".to_string(),
            })
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("aibridge.providers[{i}]");
        let map = item.as_mapping().ok_or_else(|| ConfigError::Yaml {
            path: path.clone(),
            reason: "expected a mapping such as {type: openai, name: openai-eu}".to_string(),
        })?;
        let mut fields = BTreeMap::new();
        for (k, v) in map {
            let Some(k) = k.as_str() else {
                return Err(ConfigError::Yaml { path: path.clone(), reason: "keys must be strings".to_string() });
            };
            let key_path = format!("{path}.{k}");
            match Field::from_yaml_key(k) {
                Some(field) => {
                    if let Some(value) = sources::yaml_scalar(v, &key_path)? {
                        fields.insert(field, Raw { value, origin: format!("YAML {key_path}") });
                    }
                }
                None => warnings.push(format!("YAML {key_path}: unknown provider setting {k} is ignored")),
            }
        }
        out.push(RawProvider { spelling: Spelling::Yaml(i), fields });
    }
    Ok(out)
}

/// The legacy `openai` provider, if one of its settings is given.
fn legacy_openai(args: &ServerArgs, src: &Sources<'_>) -> Result<Option<RawProvider>, ConfigError> {
    let pairs = [
        (Field::Key, src.get(&sources::OPENAI_KEY, args.openai_key.as_deref(), Empty::IsUnset)?),
        (Field::BaseUrl, src.get(&sources::OPENAI_BASE_URL, args.openai_base_url.as_deref(), Empty::IsUnset)?),
    ];
    Ok(legacy_raw(ProviderType::OpenAi, pairs))
}

/// The legacy `anthropic` provider (direct or through Bedrock), if one of its settings is given.
fn legacy_anthropic(args: &ServerArgs, src: &Sources<'_>) -> Result<Option<RawProvider>, ConfigError> {
    let get = |s, flag: &Option<String>| src.get(s, flag.as_deref(), Empty::IsUnset);
    let key = get(&sources::ANTHROPIC_KEY, &args.anthropic_key)?;
    let bedrock = [
        (Field::BedrockRegion, get(&sources::BEDROCK_REGION, &args.bedrock_region)?),
        (Field::BedrockBaseUrl, get(&sources::BEDROCK_BASE_URL, &args.bedrock_base_url)?),
        (Field::BedrockAccessKey, get(&sources::BEDROCK_ACCESS_KEY, &args.bedrock_access_key)?),
        (Field::BedrockAccessKeySecret, get(&sources::BEDROCK_ACCESS_KEY_SECRET, &args.bedrock_access_key_secret)?),
        (Field::BedrockModel, get(&sources::BEDROCK_MODEL, &args.bedrock_model)?),
        (Field::BedrockSmallFastModel, get(&sources::BEDROCK_SMALL_FAST_MODEL, &args.bedrock_small_fast_model)?),
    ];
    if let (Some(key), Some((_, Some(b)))) = (&key, bedrock.iter().find(|(_, r)| r.is_some())) {
        return Err(ConfigError::BedrockWithAnthropicKey { bedrock: b.origin.clone(), key: key.origin.clone() });
    }
    let base_url = get(&sources::ANTHROPIC_BASE_URL, &args.anthropic_base_url)?;
    let all = [(Field::Key, key), (Field::BaseUrl, base_url)].into_iter().chain(bedrock);
    Ok(legacy_raw(ProviderType::Anthropic, all))
}

/// A legacy provider from the settings that are set; `None` when none is.
fn legacy_raw(kind: ProviderType, pairs: impl IntoIterator<Item = (Field, Option<Raw>)>) -> Option<RawProvider> {
    let mut raw = default_legacy(kind);
    for (field, value) in pairs {
        if let Some(value) = value {
            raw.fields.insert(field, value);
        }
    }
    (raw.fields.len() > 2).then_some(raw)
}

/// A legacy provider with only its type and name: default base URL, no key (BYOK).
fn default_legacy(kind: ProviderType) -> RawProvider {
    let mut raw = RawProvider { spelling: Spelling::Legacy(kind), fields: BTreeMap::new() };
    let label = raw.label();
    for field in [Field::Type, Field::Name] {
        raw.fields.insert(field, Raw { value: kind.as_str().to_string(), origin: label.clone() });
    }
    raw
}

/// Validates one provider's settings into a [`ProviderConfig`].
fn build(raw: &RawProvider) -> Result<ProviderConfig, ConfigError> {
    let type_raw = raw.get(Field::Type).ok_or_else(|| ConfigError::MissingType { provider: raw.label() })?;
    let kind = match type_raw.value.trim().to_ascii_lowercase().as_str() {
        "openai" => ProviderType::OpenAi,
        "anthropic" => ProviderType::Anthropic,
        "copilot" => ProviderType::Copilot,
        _ => return Err(ConfigError::UnknownType { setting: type_raw.origin.clone(), value: type_raw.value.clone() }),
    };
    let (name, name_origin) = match raw.get(Field::Name) {
        Some(r) => (r.value.trim().to_string(), &r.origin),
        None => (kind.as_str().to_string(), &type_raw.origin),
    };
    if !valid_name(&name) {
        return Err(ConfigError::InvalidName { setting: name_origin.clone(), name, max: MAX_NAME_LEN });
    }
    let keys = match raw.alias(Field::Key, Field::Keys)? {
        Some(r) => parse_list(r, true)?.into_iter().map(Secret::new).collect(),
        None => Vec::new(),
    };
    let base_url = match raw.get(Field::BaseUrl) {
        Some(r) => parse_url(r)?,
        None => UpstreamUrl::parse(kind.default_base_url())
            .map_err(|reason| ConfigError::BadUrl { setting: raw.label(), reason })?,
    };
    let bedrock = build_bedrock(raw, kind)?;
    Ok(ProviderConfig { name, kind, base_url, keys, bedrock })
}

/// The Bedrock part of a provider, when any `BEDROCK_*` setting is given.
fn build_bedrock(raw: &RawProvider, kind: ProviderType) -> Result<Option<BedrockConfig>, ConfigError> {
    let Some(first) = Field::ALL.into_iter().filter(|f| f.is_bedrock()).find_map(|f| raw.get(f)) else {
        return Ok(None);
    };
    if kind != ProviderType::Anthropic {
        return Err(ConfigError::BedrockOnNonAnthropic { setting: first.origin.clone(), kind: kind.as_str() });
    }
    let ids_raw = raw.alias(Field::BedrockAccessKey, Field::BedrockAccessKeys)?;
    let secrets_raw = raw.alias(Field::BedrockAccessKeySecret, Field::BedrockAccessKeySecrets)?;
    let credentials = match (ids_raw, secrets_raw) {
        (None, None) => Vec::new(),
        (Some(ids), None) => {
            return Err(ConfigError::AccessKeyWithoutPair {
                present: ids.origin.clone(),
                missing: raw.setting_name(Field::BedrockAccessKeySecret),
            })
        }
        (None, Some(secrets)) => {
            return Err(ConfigError::AccessKeyWithoutPair {
                present: secrets.origin.clone(),
                missing: raw.setting_name(Field::BedrockAccessKey),
            })
        }
        (Some(ids_raw), Some(secrets_raw)) => {
            let ids = parse_list(ids_raw, true)?;
            let secrets = parse_list(secrets_raw, false)?;
            if ids.len() != secrets.len() {
                return Err(ConfigError::AccessKeyCountMismatch {
                    keys_setting: ids_raw.origin.clone(),
                    keys: ids.len(),
                    secrets_setting: secrets_raw.origin.clone(),
                    secrets: secrets.len(),
                });
            }
            ids.into_iter()
                .zip(secrets)
                .map(|(id, secret)| AwsCredential {
                    access_key_id: Secret::new(id),
                    secret_access_key: Secret::new(secret),
                    session_token: None,
                })
                .collect()
        }
    };
    let region = match raw.get(Field::BedrockRegion) {
        Some(r) => Some(parse_region(r)?),
        None => None,
    };
    let base_url = raw.get(Field::BedrockBaseUrl).map(parse_url).transpose()?;
    if region.is_none() && base_url.is_none() {
        return Err(ConfigError::BedrockWithoutEndpoint {
            provider: raw.label(),
            region_setting: raw.setting_name(Field::BedrockRegion),
            base_url_setting: raw.setting_name(Field::BedrockBaseUrl),
        });
    }
    let model = |f: Field, default: &str| raw.get(f).map_or(default.to_string(), |r| r.value.trim().to_string());
    Ok(Some(BedrockConfig {
        region,
        base_url,
        credentials,
        model: model(Field::BedrockModel, DEFAULT_BEDROCK_MODEL),
        small_fast_model: model(Field::BedrockSmallFastModel, DEFAULT_BEDROCK_SMALL_FAST_MODEL),
    }))
}

/// An AWS region such as `us-east-1`: it becomes part of the host `bedrock-runtime.{region}.amazonaws.com`,
/// so only lowercase letters, digits and dashes are allowed.
fn parse_region(raw: &Raw) -> Result<String, ConfigError> {
    let region = raw.value.trim();
    if region.len() <= MAX_REGION_LEN && valid_name(region) {
        Ok(region.to_string())
    } else {
        Err(ConfigError::InvalidValue {
            setting: raw.origin.clone(),
            reason: format!("{region:?} is not an AWS region such as us-east-1"),
        })
    }
}

/// `^[a-z0-9]+(-[a-z0-9]+)*$`, at most [`MAX_NAME_LEN`] characters.
fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && name
            .split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// Splits a comma-separated credential list; entries are trimmed and must be non-empty, at most
/// [`MAX_KEYS`], and (when `unique`) distinct. Errors name positions, never values.
fn parse_list(raw: &Raw, unique: bool) -> Result<Vec<String>, ConfigError> {
    let entries: Vec<&str> = raw.value.split(',').map(str::trim).collect();
    let fail = |problem| ConfigError::KeyList { setting: raw.origin.clone(), problem };
    if entries.len() > MAX_KEYS {
        return Err(fail(KeyListProblem::TooMany { count: entries.len(), max: MAX_KEYS }));
    }
    for (i, entry) in entries.iter().enumerate() {
        if entry.is_empty() {
            return Err(fail(KeyListProblem::EmptyEntry { position: i + 1 }));
        }
        if unique {
            if let Some(first) = entries[..i].iter().position(|e| e == entry) {
                return Err(fail(KeyListProblem::Duplicate { position: i + 1, first: first + 1 }));
            }
        }
    }
    Ok(entries.into_iter().map(str::to_string).collect())
}

/// Parses a base URL; the message names the setting and, since URLs can carry credentials in a query
/// or user-info, never repeats the URL itself.
pub(crate) fn parse_url(raw: &Raw) -> Result<UpstreamUrl, ConfigError> {
    let text = raw.value.trim();
    UpstreamUrl::parse(text).map_err(|reason| ConfigError::BadUrl {
        setting: raw.origin.clone(),
        reason: reason.replace(&format!("{text:?}"), "").replace("URL  ", "URL "),
    })
}
