//! Gateway user tokens: creation, hashing, listing, revocation (through `db::Store`), and the read-mostly cache the
//! workers check tokens against without touching the database. Only a SHA-256 hash of each secret is
//! stored; no error, log or record ever carries a presented token.

// cache.rs is rewritten on another branch of issue 8; its dead items go with that rewrite.
mod cache;
mod store;

pub(crate) use cache::{load_token_cache, spawn_token_refresher, Principal, TokenCache, VerifiedMemo};
pub(crate) use store::TokenStore;

/// Every gateway token starts with this, so it is recognisable in a leaked-secret scan.
pub(crate) const TOKEN_PREFIX: &str = "aibr_";

/// Random bytes in a token id (shown in `tokens list`, used to find the token): 6 bytes = 12 hex chars,
/// ample to keep ids unique among the tokens of one gateway.
pub(crate) const ID_BYTES: usize = 6;

/// Random bytes in a token secret: 24 bytes = 48 hex chars, 192 bits of entropy.
pub(crate) const SECRET_BYTES: usize = 24;

/// Why a token could not be made, listed, revoked or accepted. Never holds the token text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("token is not in the aibr_<id>_<secret> form")]
    Malformed,
    #[error("unknown token")]
    Unknown,
    #[error("token has expired")]
    Expired,
    #[error("token has been revoked")]
    Revoked,
    #[error("user name must not be empty")]
    EmptyUser,
    #[error("expiry is too far in the future")]
    ExpiryOutOfRange,
    #[error("the system random generator failed")]
    Random,
    #[error("token database: {0}")]
    Database(#[from] crate::db::StoreError),
    #[error("token database: {0}")]
    Open(#[from] crate::db::DbError),
}

/// The credentials of an `Authorization: Bearer …` value; the scheme name is case-insensitive (RFC 9110
/// §11.1). `None` for other schemes. Lives here because both the gateway token and a BYOK caller's own
/// provider key arrive this way.
pub(crate) fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Splits a presented token into (id, secret hex) after checking its shape; no lookups.
fn split_token(presented: &str) -> Result<(&str, &str), AuthError> {
    let rest = presented.strip_prefix(TOKEN_PREFIX).ok_or(AuthError::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(AuthError::Malformed)?;
    let is_hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !is_hex(id, ID_BYTES * 2) || !is_hex(secret, SECRET_BYTES * 2) {
        return Err(AuthError::Malformed);
    }
    Ok((id, secret))
}

/// SHA-256 of the secret part; what the database stores and the cache compares.
fn hash_secret(secret: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Equality whose running time does not depend on where the inputs differ (`subtle` keeps the optimiser
/// from turning it into an early-exit comparison).
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    subtle::ConstantTimeEq::ct_eq(&a[..], &b[..]).into()
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests;
