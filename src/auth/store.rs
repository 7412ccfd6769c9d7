//! Token management: create (making the id and secret, returning the token once), list, revoke, and the
//! snapshot read the cache is built from, over the database's [`Store`]. Used by the CLI and the refresher
//! thread; never on a worker.

use std::time::{Duration, SystemTime};

use ring::rand::{SecureRandom, SystemRandom};

use super::{hash_secret, hex, AuthError, ID_BYTES, SECRET_BYTES, TOKEN_PREFIX};
use crate::db::{self, DatabaseUrl, DbError, Role, Store, StoredToken, TokenInfo, Workload};

/// A freshly created token. `token` is the only copy of the secret: print it once, store it nowhere.
pub(crate) struct CreatedToken {
    pub(crate) id: String,
    pub(crate) token: String,
    pub(crate) user: String,
    pub(crate) role: Role,
    pub(crate) expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .field("user", &self.user)
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Token management over a [`Store`].
pub(crate) struct TokenStore {
    store: Box<dyn Store>,
    rng: SystemRandom,
}

impl TokenStore {
    /// Wraps an open store.
    pub(crate) fn new(store: Box<dyn Store>) -> Self {
        TokenStore { store, rng: SystemRandom::new() }
    }

    /// Opens the database at `url` (migrating it) and wraps it.
    pub(crate) fn open(url: impl Into<DatabaseUrl>) -> Result<Self, DbError> {
        Ok(Self::new(db::open(url.into(), Workload::General)?))
    }

    /// Makes a `user`-role token for `user`, valid for `expires` from now (forever when `None`).
    #[cfg(test)]
    pub(crate) fn create(&mut self, user: &str, expires: Option<Duration>) -> Result<CreatedToken, AuthError> {
        self.create_with_role(user, expires, Role::User)
    }

    /// Makes a token for `user` with `role`, valid for `expires` from now (forever when `None`).
    pub(crate) fn create_with_role(
        &mut self,
        user: &str,
        expires: Option<Duration>,
        role: Role,
    ) -> Result<CreatedToken, AuthError> {
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
        self.store.insert_token(&StoredToken {
            id: id.clone(),
            user: user.to_owned(),
            role,
            secret_hash: hash_secret(&secret),
            created_at: now,
            expires_at,
            revoked_at: None,
        })?;
        Ok(CreatedToken { token: format!("{TOKEN_PREFIX}{id}_{secret}"), id, user: user.to_owned(), role, expires_at })
    }

    /// Every token, newest first.
    pub(crate) fn list(&mut self) -> Result<Vec<TokenInfo>, AuthError> {
        Ok(self.store.list_tokens()?)
    }

    /// Revokes the token with this id. Returns false when no such unrevoked token exists.
    pub(crate) fn revoke(&mut self, id: &str) -> Result<bool, AuthError> {
        Ok(self.store.revoke_token(id, SystemTime::now())?)
    }

    /// Every token row with its hash, for the cache.
    pub(super) fn rows(&mut self) -> Result<Vec<StoredToken>, AuthError> {
        Ok(self.store.load_tokens()?)
    }
}
