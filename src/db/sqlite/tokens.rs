//! The `aibridge_api_tokens` table: insert, list, revoke, exists, and the full read the token cache is
//! built from. Stores hashes only; token ids and secrets are made by `auth`, not here.

use std::time::SystemTime;

use rusqlite::{params, Connection};

use super::{classify, parse_time};
use crate::db::{timefmt, Role, StoreError, StoredToken, TokenInfo};

pub(super) fn insert(conn: &Connection, token: &StoredToken) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO aibridge_api_tokens (id, user, secret_hash, created_at, expires_at, revoked_at, role) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            token.id,
            token.user,
            &token.secret_hash[..],
            timefmt::format(token.created_at).as_str(),
            token.expires_at.map(|t| timefmt::format(t).as_str().to_owned()),
            token.revoked_at.map(|t| timefmt::format(t).as_str().to_owned()),
            token.role.as_str(),
        ],
    )
    .map_err(classify)?;
    Ok(())
}

pub(super) fn list(conn: &Connection) -> Result<Vec<TokenInfo>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT id, user, created_at, expires_at, revoked_at, role FROM aibridge_api_tokens \
             ORDER BY created_at DESC, id",
        )
        .map_err(classify)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .map_err(classify)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, user, created, expires, revoked, role) = row.map_err(classify)?;
        let created_at = parse_time(&id, "created_at", Some(created))?.unwrap_or(SystemTime::UNIX_EPOCH);
        let expires_at = parse_time(&id, "expires_at", expires)?;
        let revoked_at = parse_time(&id, "revoked_at", revoked)?;
        out.push(TokenInfo { id, user, role: Role::from_stored(&role), created_at, expires_at, revoked_at });
    }
    Ok(out)
}

pub(super) fn revoke(conn: &Connection, id: &str, at: SystemTime) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            "UPDATE aibridge_api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, timefmt::format(at).as_str()],
        )
        .map_err(classify)?;
    Ok(n > 0)
}

pub(super) fn load(conn: &Connection) -> Result<Vec<StoredToken>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, user, secret_hash, created_at, expires_at, revoked_at, role FROM aibridge_api_tokens",
        )
        .map_err(classify)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
            ))
        })
        .map_err(classify)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, user, hash_bytes, created, expires, revoked, role) = row.map_err(classify)?;
        let Ok(secret_hash) = <[u8; 32]>::try_from(hash_bytes.as_slice()) else {
            // One bad row must not lock every user out: skip it loudly.
            tracing::error!(token_id = %id, "stored token has a malformed hash; ignoring it");
            continue;
        };
        let expires_at = match parse_time(&id, "expires_at", expires) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(token_id = %id, error = %e, "ignoring token");
                continue;
            }
        };
        // The cache needs only whether a token is revoked, not when: an unreadable revocation time still
        // revokes, and an unreadable creation time does not matter.
        let revoked_at = revoked.map(|t| timefmt::parse(&t).unwrap_or(SystemTime::UNIX_EPOCH));
        let created_at = created.and_then(|t| timefmt::parse(&t)).unwrap_or(SystemTime::UNIX_EPOCH);
        out.push(StoredToken {
            id,
            user,
            role: Role::from_stored(&role),
            secret_hash,
            created_at,
            expires_at,
            revoked_at,
        });
    }
    Ok(out)
}
