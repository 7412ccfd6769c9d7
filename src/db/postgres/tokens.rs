//! The `aibridge_api_tokens` table on PostgreSQL: insert, list, revoke, and the full read the token cache
//! is built from. `user` is a reserved word there, so the column is always quoted. Stores hashes only.

use std::time::SystemTime;

use postgres::Client;

use super::classify;
use super::queries::get;
use crate::db::{Role, StoreError, StoredToken, TokenInfo};

pub(super) fn insert(client: &mut Client, token: &StoredToken) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO aibridge_api_tokens (id, \"user\", secret_hash, created_at, expires_at, revoked_at, role) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &token.id,
                &token.user.replace('\0', "\u{FFFD}"),
                &&token.secret_hash[..],
                &token.created_at,
                &token.expires_at,
                &token.revoked_at,
                &token.role.as_str(),
            ],
        )
        .map_err(classify)?;
    Ok(())
}

pub(super) fn list(client: &mut Client) -> Result<Vec<TokenInfo>, StoreError> {
    let rows = client
        .query(
            "SELECT id, \"user\", created_at, expires_at, revoked_at, role FROM aibridge_api_tokens \
             ORDER BY created_at DESC, id",
            &[],
        )
        .map_err(classify)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = get(r, 0, "?", "id")?;
        out.push(TokenInfo {
            user: get(r, 1, &id, "user")?,
            created_at: get(r, 2, &id, "created_at")?,
            expires_at: get(r, 3, &id, "expires_at")?,
            revoked_at: get(r, 4, &id, "revoked_at")?,
            role: Role::from_stored(&get::<String>(r, 5, &id, "role")?),
            id,
        });
    }
    Ok(out)
}

pub(super) fn revoke(client: &mut Client, id: &str, at: SystemTime) -> Result<bool, StoreError> {
    let n = client
        .execute("UPDATE aibridge_api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", &[&id, &at])
        .map_err(classify)?;
    Ok(n > 0)
}

pub(super) fn load(client: &mut Client) -> Result<Vec<StoredToken>, StoreError> {
    let rows = client
        .query(
            "SELECT id, \"user\", secret_hash, created_at, expires_at, revoked_at, role FROM aibridge_api_tokens",
            &[],
        )
        .map_err(classify)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let Ok(id) = r.try_get::<_, String>(0) else { continue };
        let Ok(secret_hash) = r.try_get::<_, &[u8]>(2).map(<[u8; 32]>::try_from) else {
            tracing::error!(token_id = %id, "stored token has an unreadable hash; ignoring it");
            continue;
        };
        let Ok(secret_hash) = secret_hash else {
            // One bad row must not lock every user out: skip it loudly.
            tracing::error!(token_id = %id, "stored token has a malformed hash; ignoring it");
            continue;
        };
        let (Ok(user), Ok(expires_at)) = (r.try_get(1), r.try_get(4)) else {
            tracing::error!(token_id = %id, "stored token has an unreadable user or expiry; ignoring it");
            continue;
        };
        // The cache needs only whether a token is revoked, not when: an unreadable revocation time still
        // revokes, and an unreadable creation time does not matter.
        let revoked_at = match r.try_get::<_, Option<SystemTime>>(5) {
            Ok(t) => t,
            Err(_) => Some(SystemTime::UNIX_EPOCH),
        };
        let created_at = r.try_get(3).unwrap_or(SystemTime::UNIX_EPOCH);
        // An unreadable role is the least privileged one.
        let role = Role::from_stored(r.try_get::<_, &str>(6).unwrap_or_default());
        out.push(StoredToken { id, user, role, secret_hash, created_at, expires_at, revoked_at });
    }
    Ok(out)
}
