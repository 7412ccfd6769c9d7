//! Where the database is: the parsed `CODER_AIBRIDGE_DATABASE_URL`, SQLite (`sqlite://PATH`) or PostgreSQL
//! (`postgres://`, `postgresql://` or the libpq keyword/value form). Owns parsing and the redacted
//! display: a PostgreSQL password never leaves this type, neither in `Display` nor in `Debug`.

use std::path::{Path, PathBuf};

pub use super::postgres::PgUrl;

/// The configured database, chosen by the URL's scheme.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// One embedded SQLite file: the default, for a single gateway.
    Sqlite(PathBuf),
    /// A PostgreSQL server shared by several gateways (boxed: its config is large, and a URL is cloned
    /// only at start).
    Postgres(Box<PgUrl>),
}

/// Why a database URL was refused. Never quotes the URL (it may hold a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("sqlite:// needs a path, e.g. sqlite://aibridge.db or sqlite:///var/lib/aibridge.db")]
    EmptySqlitePath,
    #[error("unsupported database scheme {0:?}: use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB")]
    UnsupportedScheme(String),
    #[error("invalid PostgreSQL connection string: {0}")]
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses a database URL. Text with no `scheme://` that reads as libpq `key=value` pairs is PostgreSQL.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(UrlError::EmptySqlitePath);
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        match text.split_once("://") {
            Some(("postgres" | "postgresql", _)) => Ok(DatabaseUrl::Postgres(Box::new(PgUrl::parse(text)?))),
            Some((scheme, _)) => Err(UrlError::UnsupportedScheme(scheme.to_owned())),
            None if looks_like_keyword_value(text) => Ok(DatabaseUrl::Postgres(Box::new(PgUrl::parse(text)?))),
            None => Err(UrlError::UnsupportedScheme("(none)".to_owned())),
        }
    }

    /// The path spill files are named after and put beside: the SQLite file, or for PostgreSQL a name in
    /// the working directory that includes the gateway id (each gateway imports only its own spill).
    pub(crate) fn spill_anchor(&self, gateway_id: Option<&str>) -> PathBuf {
        match self {
            DatabaseUrl::Sqlite(p) => p.clone(),
            DatabaseUrl::Postgres(_) => {
                let id: String = gateway_id
                    .unwrap_or("default")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
                    .collect();
                PathBuf::from(format!("aibridge-postgres-{id}"))
            }
        }
    }

    /// The SQLite file, when this is SQLite.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            DatabaseUrl::Sqlite(p) => Some(p),
            DatabaseUrl::Postgres(_) => None,
        }
    }
}

/// libpq's keyword/value form: `host=db port=5432 dbname=aibridge ...`.
fn looks_like_keyword_value(text: &str) -> bool {
    text.split_whitespace()
        .next()
        .and_then(|w| w.split_once('='))
        .is_some_and(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
}

impl From<&DatabaseUrl> for DatabaseUrl {
    fn from(u: &DatabaseUrl) -> Self {
        u.clone()
    }
}

impl From<PathBuf> for DatabaseUrl {
    fn from(p: PathBuf) -> Self {
        DatabaseUrl::Sqlite(p)
    }
}

impl From<&PathBuf> for DatabaseUrl {
    fn from(p: &PathBuf) -> Self {
        DatabaseUrl::Sqlite(p.clone())
    }
}

impl From<&Path> for DatabaseUrl {
    fn from(p: &Path) -> Self {
        DatabaseUrl::Sqlite(p.to_owned())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            DatabaseUrl::Postgres(pg) => std::fmt::Display::fmt(pg, f),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_the_backend_by_scheme() {
        assert_eq!(DatabaseUrl::parse("sqlite://a.db").unwrap(), DatabaseUrl::Sqlite("a.db".into()));
        assert_eq!(DatabaseUrl::parse("sqlite://").unwrap_err(), UrlError::EmptySqlitePath);
        for url in [
            "postgres://u:pw@db:5433/aibridge",
            "postgresql://u@db/aibridge?sslmode=require",
            "host=db port=5433 user=u password=pw dbname=aibridge",
        ] {
            assert!(matches!(DatabaseUrl::parse(url), Ok(DatabaseUrl::Postgres(_))), "{url}");
        }
        assert_eq!(DatabaseUrl::parse("mysql://x").unwrap_err(), UrlError::UnsupportedScheme("mysql".into()));
        assert_eq!(DatabaseUrl::parse("aibridge.db").unwrap_err(), UrlError::UnsupportedScheme("(none)".into()));
    }

    #[test]
    fn never_shows_the_password() {
        for url in [
            "postgres://alice:hunter2secret@db:5433/aibridge?sslmode=verify-full",
            "user=alice password=hunter2secret host=db dbname=aibridge",
            "user=alice password='hunter2secret' host=db",
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap();
            for shown in [parsed.to_string(), format!("{parsed:?}"), format!("{:?}", Some(&parsed))] {
                assert!(!shown.contains("hunter2secret"), "{shown}");
                assert!(shown.contains("alice"), "{shown}");
            }
        }
        // A parse error names the problem, never the text.
        let err = DatabaseUrl::parse("postgres://alice:hunter2secret@db:notaport/x").unwrap_err();
        assert!(!err.to_string().contains("hunter2secret"), "{err}");
    }
}
