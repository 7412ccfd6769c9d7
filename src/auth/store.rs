//! The `aibridge_api_tokens` table: create (returning the token once), list, revoke, and the snapshot read
//! the cache is built from. Used by the CLI and the refresher thread; never on a worker.

use std::path::Path;
use std::time::{Duration, SystemTime};

use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, Connection, OptionalExtension};

use super::{hash_secret, hex, AuthError, ID_BYTES, SECRET_BYTES, TOKEN_PREFIX};
use crate::sink::{open_database, timefmt};

/// A freshly created token. `token` is the only copy of the secret: print it once, store it nowhere.
pub struct CreatedToken {
    pub id: String,
    pub token: String,
    pub user: String,
    pub expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What `tokens list` shows about a token (no secret, no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub created_at: SystemTime,
    pub expires_at: Option<SystemTime>,
    pub revoked_at: Option<SystemTime>,
}

/// A row as the cache needs it.
pub(super) struct TokenRow {
    pub id: String,
    pub user: String,
    pub hash: [u8; 32],
    pub expires_at: Option<SystemTime>,
    pub revoked: bool,
}

/// Token management over a connection from `open_database`.
pub struct TokenStore {
    conn: Connection,
    rng: SystemRandom,
}

fn parse_time(id: &str, column: &'static str, text: Option<String>) -> Result<Option<SystemTime>, AuthError> {
    match text {
        None => Ok(None),
        Some(t) => timefmt::parse(&t).map(Some).ok_or_else(|| AuthError::CorruptRow { id: id.to_owned(), column }),
    }
}

impl TokenStore {
    /// Wraps a connection whose schema is migrated (from `open_database`).
    pub fn new(conn: Connection) -> Self {
        TokenStore { conn, rng: SystemRandom::new() }
    }

    /// Opens the database at `path` (migrating it) and wraps it.
    pub fn open(path: &Path) -> Result<Self, AuthError> {
        Ok(Self::new(open_database(path)?))
    }

    /// Makes a token for `user`, valid for `expires` from now (forever when `None`).
    pub fn create(&self, user: &str, expires: Option<Duration>) -> Result<CreatedToken, AuthError> {
        let user = user.trim();
        if user.is_empty() {
            return Err(AuthError::EmptyUser);
        }
        let now = SystemTime::now();
        let expires_at = match expires {
            Some(d) => Some(now.checked_add(d).ok_or(AuthError::ExpiryOutOfRange)?),
            None => None,
        };
        let mut id_bytes = [0u8; ID_BYTES];
        let mut secret_bytes = [0u8; SECRET_BYTES];
        self.rng.fill(&mut id_bytes).map_err(|_| AuthError::Random)?;
        self.rng.fill(&mut secret_bytes).map_err(|_| AuthError::Random)?;
        let id = hex(&id_bytes);
        let secret = hex(&secret_bytes);
        let hash = hash_secret(&secret);
        self.conn.execute(
            "INSERT INTO aibridge_api_tokens (id, user, secret_hash, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id,
                user,
                &hash[..],
                timefmt::format(now).as_str(),
                expires_at.map(|t| timefmt::format(t).as_str().to_owned()),
            ],
        )?;
        Ok(CreatedToken { token: format!("{TOKEN_PREFIX}{id}_{secret}"), id, user: user.to_owned(), expires_at })
    }

    /// Every token, newest first.
    pub fn list(&self) -> Result<Vec<TokenInfo>, AuthError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, user, created_at, expires_at, revoked_at FROM aibridge_api_tokens \
             ORDER BY created_at DESC, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, user, created, expires, revoked) = row?;
            let created_at = parse_time(&id, "created_at", Some(created))?.unwrap_or(SystemTime::UNIX_EPOCH);
            let expires_at = parse_time(&id, "expires_at", expires)?;
            let revoked_at = parse_time(&id, "revoked_at", revoked)?;
            out.push(TokenInfo { id, user, created_at, expires_at, revoked_at });
        }
        Ok(out)
    }

    /// Revokes the token with this id. Returns false when no such unrevoked token exists.
    pub fn revoke(&self, id: &str) -> Result<bool, AuthError> {
        let n = self.conn.execute(
            "UPDATE aibridge_api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, timefmt::format(SystemTime::now()).as_str()],
        )?;
        Ok(n > 0)
    }

    /// Whether a token with this id exists (revoked or not).
    pub fn exists(&self, id: &str) -> Result<bool, AuthError> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM aibridge_api_tokens WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Every token row with its hash, for the cache.
    pub(super) fn rows(&self) -> Result<Vec<TokenRow>, AuthError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, user, secret_hash, expires_at, revoked_at FROM aibridge_api_tokens")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, user, hash_bytes, expires, revoked) = row?;
            let hash: [u8; 32] = match hash_bytes.as_slice().try_into() {
                Ok(h) => h,
                Err(_) => {
                    // One bad row must not lock every user out: skip it loudly.
                    tracing::error!(token_id = %id, "stored token has a malformed hash; ignoring it");
                    continue;
                }
            };
            let expires_at = match parse_time(&id, "expires_at", expires) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(token_id = %id, error = %e, "ignoring token");
                    continue;
                }
            };
            out.push(TokenRow { id, user, hash, expires_at, revoked: revoked.is_some() });
        }
        Ok(out)
    }
}
