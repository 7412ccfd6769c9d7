//! Command-line interface (clap): `aibridged server`, `aibridged tokens create|list|revoke`,
//! `aibridged sessions list|show`, `aibridged usage`.
//! Only the shape of the command line lives here; values are validated by `config` (server settings
//! and the database location) so that flags, variables and YAML go through one set of rules.

use crate::config::units::parse_duration;
pub(crate) use crate::config::{DatabaseArgs, ServerArgs};
use clap::{Args, Parser, Subcommand};
use std::time::Duration;

/// The `aibridged` command line.
#[derive(Debug, Parser)]
#[command(name = "aibridged", version, about = "A thread-per-core AI gateway that records every LLM interception")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The indexed provider settings, which are variables or YAML only (no flags), explained in `--help`.
const PROVIDERS_HELP: &str = "\
Provider instances (variables or YAML aibridge.providers; no flags):
  CODER_AIBRIDGE_PROVIDER_<N>_<KEY>, N contiguous from 0, KEY one of
    TYPE (openai | anthropic | copilot, required), NAME (default: TYPE; ^[a-z0-9]+(-[a-z0-9]+)*$),
    KEY or KEYS (comma-separated, at most 5), BASE_URL,
    BEDROCK_REGION, BEDROCK_BASE_URL, BEDROCK_ACCESS_KEY(S), BEDROCK_ACCESS_KEY_SECRET(S),
    BEDROCK_MODEL, BEDROCK_SMALL_FAST_MODEL (anthropic only).
  The legacy openai/anthropic providers exist when nothing is indexed or when one of their flags is set.";

/// What to do.
// Built once per process at start-up, so the size of the `server` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the gateway (settings: flag > CODER_* variable > YAML --config file > default)
    #[command(after_long_help = PROVIDERS_HELP)]
    Server(ServerArgs),
    /// Manage gateway user tokens
    Tokens(TokensArgs),
    /// List recorded sessions or show one with its threads
    Sessions(SessionsArgs),
    /// Token use and approximate cost, grouped by user, model or day
    Usage(UsageArgs),
}

/// `aibridged sessions …`.
#[derive(Debug, Args)]
pub(crate) struct SessionsArgs {
    #[command(flatten)]
    pub(crate) db: DatabaseArgs,
    #[command(subcommand)]
    pub(crate) command: SessionsCommand,
}

/// The sessions views.
#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCommand {
    /// Sessions, newest first
    List {
        /// Only this user's sessions
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only interceptions of this model
        #[arg(long, value_name = "MODEL")]
        model: Option<String>,
        /// Only this client (claude-code, codex, …)
        #[arg(long, value_name = "CLIENT")]
        client: Option<String>,
        /// Only sessions active since then: a duration back (24h, 7d) or an RFC 3339 time
        #[arg(long, value_name = "WHEN", default_value = "24h")]
        since: String,
        /// Most sessions shown (1-1000)
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON (the API's shape) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// One session with its threads and every step
    Show {
        /// The session id from `sessions list`
        id: String,
        /// Print JSON (the API's shape) instead of text
        #[arg(long)]
        json: bool,
    },
}

/// `aibridged usage`.
#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    #[command(flatten)]
    pub(crate) db: DatabaseArgs,
    /// Group by user, model or day (comma-separated for several)
    #[arg(long, value_name = "user|model|day", default_value = "user")]
    pub(crate) by: String,
    /// Since then: a duration back (7d, 24h) or an RFC 3339 time
    #[arg(long, value_name = "WHEN", default_value = "7d")]
    pub(crate) since: String,
    /// Price table replacing the built-in one [env: CODER_AIBRIDGE_PRICE_FILE]
    #[arg(long = "aibridge-price-file", value_name = "PATH")]
    pub(crate) price_file: Option<std::path::PathBuf>,
    /// Print JSON (the API's shape) instead of a table
    #[arg(long)]
    pub(crate) json: bool,
}

/// `aibridged tokens …`: the database location (shared with `server`) and the action.
#[derive(Debug, Args)]
pub(crate) struct TokensArgs {
    #[command(flatten)]
    pub(crate) db: DatabaseArgs,
    #[command(subcommand)]
    pub(crate) command: TokensCommand,
}

/// The token actions.
#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
    /// Create a token for a user and print it once (only its hash is stored)
    Create {
        /// The user the token authenticates as (recorded as initiator_id)
        #[arg(long, value_name = "NAME", value_parser = parse_user)]
        user: String,
        /// Lifetime of the token, e.g. 30d, 12h, 1h30m [default: never expires]
        #[arg(long, value_name = "DURATION", value_parser = parse_expiry)]
        expires: Option<Duration>,
        /// What the token may read through the sessions API: its own user's records (user) or everyone's
        /// (admin)
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
    },
    /// List tokens (id, user, created, expires, revoked; never the token)
    List,
    /// Revoke a token by id
    Revoke {
        /// The token id shown by `tokens create` and `tokens list`
        id: String,
    },
}

/// `tokens create --role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RoleArg {
    User,
    Admin,
}

impl From<RoleArg> for crate::db::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::User => crate::db::Role::User,
            RoleArg::Admin => crate::db::Role::Admin,
        }
    }
}

impl Cli {
    /// Parses `std::env::args`, exiting with clap's usage message on error (and for --help/--version).
    /// `--ai-gateway-*` flags are read as their `--aibridge-*` names (`config::aliases`).
    pub(crate) fn parse_args() -> Cli {
        match crate::config::canonical_args(std::env::args_os().collect()) {
            Ok(args) => Cli::parse_from(args),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        }
    }
}

/// A non-empty user name without surrounding whitespace.
fn parse_user(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("the user name must not be empty".to_string());
    }
    if t.chars().any(char::is_control) {
        return Err("the user name must not contain control characters".to_string());
    }
    Ok(t.to_string())
}

/// A positive duration (a token that expires immediately is a mistake).
fn parse_expiry(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be longer than 0; omit --expires for a token that never expires".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("aibridged").chain(args.iter().copied()))
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn server_flags_are_captured_raw() {
        let cli = parse(&[
            "server",
            "--aibridge-enabled=false",
            "--http-address",
            "0.0.0.0:8080",
            "--aibridge-retention",
            "90d",
            "--aibridge-structured-logging",
            "--config",
            "/etc/aibridge.yaml",
            "--aibridge-database-url",
            "sqlite:///tmp/x.db",
            "--aibridge-max-body-size",
            "10MB",
            "--aibridge-shutdown-grace",
            "5s",
            "--aibridge-bedrock-region",
            "us-east-1",
        ])
        .unwrap();
        let Command::Server(a) = cli.command else { panic!("expected server") };
        let short = parse(&["server", "--max-connections", "5"]).unwrap();
        let Command::Server(b) = short.command else { panic!("expected server") };
        assert_eq!(b.limits.max_connections.as_deref(), Some("5"), "--max-connections is --aibridge-max-connections");
        assert_eq!(a.enabled.as_deref(), Some("false"));
        assert_eq!(a.http_address.as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(a.retention.as_deref(), Some("90d"));
        assert_eq!(a.structured_logging.as_deref(), Some("true"));
        assert_eq!(a.db.config.as_deref(), Some(std::path::Path::new("/etc/aibridge.yaml")));
        assert_eq!(a.db.database_url.as_deref(), Some("sqlite:///tmp/x.db"));
        assert_eq!(a.max_body_size.as_deref(), Some("10MB"));
        assert_eq!(a.shutdown_grace.as_deref(), Some("5s"));
        assert_eq!(a.bedrock_region.as_deref(), Some("us-east-1"));
        assert_eq!(a.workers, None);
    }

    #[test]
    fn tokens_commands_take_the_database_location_anywhere() {
        let cli = parse(&[
            "tokens",
            "create",
            "--user",
            "alice",
            "--expires",
            "30d",
            "--aibridge-database-url",
            "sqlite://t.db",
        ])
        .unwrap();
        let Command::Tokens(t) = cli.command else { panic!("expected tokens") };
        assert_eq!(t.db.database_url.as_deref(), Some("sqlite://t.db"));
        match t.command {
            TokensCommand::Create { user, expires, role } => {
                assert_eq!(user, "alice");
                assert_eq!(expires, Some(Duration::from_secs(30 * 86_400)));
                assert_eq!(role, RoleArg::User);
            }
            other => panic!("unexpected {other:?}"),
        }

        let cli = parse(&["tokens", "create", "--user", "root", "--role", "admin"]).unwrap();
        let Command::Tokens(t) = cli.command else { panic!("expected tokens") };
        assert!(matches!(t.command, TokensCommand::Create { role: RoleArg::Admin, .. }));
        assert!(parse(&["tokens", "create", "--user", "root", "--role", "root"]).is_err());

        let cli = parse(&["tokens", "--config", "c.yaml", "list"]).unwrap();
        let Command::Tokens(t) = cli.command else { panic!("expected tokens") };
        assert_eq!(t.db.config.as_deref(), Some(std::path::Path::new("c.yaml")));
        assert!(matches!(t.command, TokensCommand::List));

        let cli = parse(&["tokens", "revoke", "abc-123"]).unwrap();
        let Command::Tokens(t) = cli.command else { panic!("expected tokens") };
        assert!(matches!(t.command, TokensCommand::Revoke { id } if id == "abc-123"));
    }

    #[test]
    fn bad_token_arguments_are_usage_errors() {
        assert!(parse(&["tokens", "create"]).is_err());
        assert!(parse(&["tokens", "create", "--user", " "]).is_err());
        assert!(parse(&["tokens", "create", "--user", "a", "--expires", "0"]).is_err());
        assert!(parse(&["tokens", "create", "--user", "a", "--expires", "30"]).is_err());
        assert!(parse(&["tokens", "revoke"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
    }

    #[test]
    fn help_and_version_are_served() {
        for args in
            [&["--help"][..], &["server", "--help"], &["tokens", "create", "--help"], &["tokens", "list", "--help"]]
        {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{args:?}");
        }
        let err = parse(&["--version"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayVersion);
        let help = Cli::command().find_subcommand_mut("server").unwrap().render_long_help().to_string();
        assert!(help.contains("CODER_AIBRIDGE_RETENTION"), "{help}");
        assert!(help.contains("CODER_AIBRIDGE_PROVIDER_<N>_<KEY>"), "{help}");
    }
}
