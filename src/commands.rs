//! What each CLI command does: `server` loads the configuration and runs the gateway; `tokens` manages
//! gateway user tokens in the database. Prints only what the operator asked for on stdout (a created
//! token), everything else on stderr, and turns every error into one line and a non-zero exit.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::TokenStore;
use crate::cli::{Cli, Command, SessionsArgs, SessionsCommand, TokensArgs, TokensCommand, UsageArgs};
use crate::config;

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    match Cli::parse_args().command {
        Command::Server(args) => server(&args),
        Command::Tokens(args) => tokens(args),
        Command::Sessions(args) => sessions(args),
        Command::Usage(args) => usage(args),
    }
}

/// Prints a view's output, or its error on stderr with a failing exit.
fn print(result: crate::control::cli::CliResult) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("aibridged: {e}");
            ExitCode::FAILURE
        }
    }
}

fn db_url(db: &config::DatabaseArgs) -> Result<crate::db::DatabaseUrl, ExitCode> {
    config::database_url(db, &config::process_env()).map_err(|e| {
        eprintln!("aibridged: configuration error: {e}");
        ExitCode::from(2)
    })
}

fn sessions(args: SessionsArgs) -> ExitCode {
    let path = match db_url(&args.db) {
        Ok(p) => p,
        Err(code) => return code,
    };
    print(match args.command {
        SessionsCommand::List { user, model, client, since, limit, json } => crate::control::cli::sessions_list(
            &path,
            crate::control::cli::ListArgs { user, model, client, since, limit, json },
        ),
        SessionsCommand::Show { id, json } => crate::control::cli::sessions_show(&path, &id, json),
    })
}

fn usage(args: UsageArgs) -> ExitCode {
    let path = match db_url(&args.db) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let env = config::process_env();
    let price_file = args.price_file.clone().or_else(|| env.get("CODER_AIBRIDGE_PRICE_FILE").map(Into::into));
    print(crate::control::cli::usage(&path, &args.by, &args.since, price_file.as_deref(), args.json))
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
        TokensCommand::Create { user, expires, role } => store.create_with_role(&user, expires, role.into()).map(|t| {
            eprintln!(
                "created {} token {} for user {} (expires: {}); it is shown once, store it now",
                t.role.as_str(),
                t.id,
                t.user,
                t.expires_at.map(rfc3339).unwrap_or_else(|| "never".into())
            );
            println!("{}", t.token);
        }),
        TokensCommand::List => store.list().map(|list| {
            println!("{:<14} {:<20} {:<6} {:<24} {:<24} {:<24}", "ID", "USER", "ROLE", "CREATED", "EXPIRES", "REVOKED");
            for t in list {
                println!(
                    "{:<14} {:<20} {:<6} {:<24} {:<24} {:<24}",
                    t.id,
                    t.user,
                    t.role.as_str(),
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
