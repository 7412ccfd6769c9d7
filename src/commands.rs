//! What each CLI command does: `server` loads the configuration and runs the gateway; `tokens` manages
//! gateway user tokens in the database. Prints only what the operator asked for on stdout (a created
//! token), everything else on stderr, and turns every error into one line and a non-zero exit.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::TokenStore;
use crate::cli::{Cli, Command, TokensArgs, TokensCommand};
use crate::config;

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    match Cli::parse_args().command {
        Command::Server(args) => server(&args),
        Command::Tokens(args) => tokens(args),
    }
}

fn server(args: &config::ServerArgs) -> ExitCode {
    let loaded = match config::load_from_process(args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("aibridged: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = loaded.config;
    if let Err(e) = crate::logging::init(cfg.log_human.as_deref(), cfg.log_json.as_deref()) {
        eprintln!("aibridged: {e}");
        return ExitCode::from(2);
    }
    for w in &loaded.warnings {
        tracing::warn!("configuration: {w}");
    }
    match crate::server::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "aibridged failed");
            eprintln!("aibridged: {e}");
            ExitCode::FAILURE
        }
    }
}

fn tokens(args: TokensArgs) -> ExitCode {
    let url = match config::database_url(&args.db, &config::process_env()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("aibridged: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut store = match TokenStore::open(&url) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("aibridged: cannot open database {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.command {
        TokensCommand::Create { user, expires } => store.create(&user, expires).map(|t| {
            eprintln!(
                "created token {} for user {} (expires: {}); it is shown once, store it now",
                t.id,
                t.user,
                t.expires_at.map(rfc3339).unwrap_or_else(|| "never".into())
            );
            println!("{}", t.token);
        }),
        TokensCommand::List => store.list().map(|list| {
            println!("{:<14} {:<20} {:<24} {:<24} {:<24}", "ID", "USER", "CREATED", "EXPIRES", "REVOKED");
            for t in list {
                println!(
                    "{:<14} {:<20} {:<24} {:<24} {:<24}",
                    t.id,
                    t.user,
                    rfc3339(t.created_at),
                    t.expires_at.map(rfc3339).unwrap_or_else(|| "never".into()),
                    t.revoked_at.map(rfc3339).unwrap_or_else(|| "-".into())
                );
            }
        }),
        TokensCommand::Revoke { id } => match store.revoke(&id) {
            Ok(true) => {
                eprintln!("revoked token {id}; running gateways stop accepting it within a second");
                Ok(())
            }
            Ok(false) => {
                eprintln!("aibridged: no active token with id {id}");
                return ExitCode::FAILURE;
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aibridged: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "?".into())
}
