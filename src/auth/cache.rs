//! The token cache workers verify against: an immutable snapshot behind an `ArcSwap`, so a check is a
//! lock-free load, a hash lookup and a constant-time compare. A refresher thread rebuilds the snapshot
//! from the database; workers never touch it.

use crate::db::DatabaseUrl;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::store::TokenStore;
use super::{constant_time_eq, hash_secret, split_token, AuthError};

/// Who a verified token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name, recorded as `initiator_id`.
    pub user: Arc<str>,
    pub token_id: Arc<str>,
    /// What the token may read through the sessions API.
    pub role: crate::db::Role,
}

struct Entry {
    principal: Principal,
    hash: [u8; 32],
    expires_at: Option<SystemTime>,
    revoked: bool,
}

type Snapshot = HashMap<Box<str>, Entry>;

/// A cheap-to-clone view of every token, shared by all workers.
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<ArcSwap<Snapshot>>,
}

impl TokenCache {
    /// An empty cache: every token is unknown until the first load.
    pub fn empty() -> Self {
        TokenCache { inner: Arc::new(ArcSwap::from_pointee(HashMap::new())) }
    }

    /// Checks a presented token at `now` without the per-worker memo: the control plane's check (tests also
    /// compare it with the memo path).
    pub fn verify(&self, presented: &str, now: SystemTime) -> Result<Principal, AuthError> {
        let (id, secret) = split_token(presented)?;
        check(&self.inner.load(), id, secret, now).map(|e| e.principal.clone())
    }

    /// [`TokenCache::verify`] through a worker's memo of tokens it already verified against the current
    /// snapshot: a repeat caller costs a map lookup by token id and a constant-time compare of the secret
    /// instead of a SHA-256. The memo is emptied whenever the snapshot is replaced, so revocation and
    /// expiry take effect exactly as without it.
    pub fn verify_memo(
        &self,
        presented: &str,
        now: SystemTime,
        memo: &mut VerifiedMemo,
    ) -> Result<Principal, AuthError> {
        let (id, secret) = split_token(presented)?;
        let snapshot = self.inner.load();
        if memo.snapshot.as_ref().is_some_and(|s| Arc::ptr_eq(s, &snapshot)) {
            if let Some(m) = memo.entries.get(id) {
                if constant_time_eq_bytes(&m.secret, secret.as_bytes()) {
                    if m.expires_at.is_some_and(|t| now >= t) {
                        return Err(AuthError::Expired);
                    }
                    return Ok(m.principal.clone());
                }
            }
        } else {
            // Holding the snapshot keeps its address from being reused by a later one.
            memo.entries.clear();
            memo.snapshot = Some(Arc::clone(&snapshot));
        }
        let entry = check(&snapshot, id, secret, now)?;
        if memo.entries.len() >= MEMO_MAX_ENTRIES {
            memo.entries.clear();
        }
        memo.entries.insert(
            id.into(),
            Memo { secret: secret.as_bytes().into(), principal: entry.principal.clone(), expires_at: entry.expires_at },
        );
        Ok(entry.principal.clone())
    }

    /// Rebuilds the snapshot from the database and publishes it.
    pub fn reload(&self, store: &mut TokenStore) -> Result<(), AuthError> {
        let rows = store.rows()?;
        let mut snapshot = Snapshot::with_capacity(rows.len());
        for row in rows {
            let entry = Entry {
                principal: Principal {
                    user: Arc::from(row.user),
                    token_id: Arc::from(row.id.as_str()),
                    role: row.role,
                },
                hash: row.secret_hash,
                expires_at: row.expires_at,
                revoked: row.revoked_at.is_some(),
            };
            snapshot.insert(row.id.into_boxed_str(), entry);
        }
        self.inner.store(Arc::new(snapshot));
        Ok(())
    }
}

/// The full check of a token against one snapshot.
fn check<'a>(snapshot: &'a Snapshot, id: &str, secret: &str, now: SystemTime) -> Result<&'a Entry, AuthError> {
    let hash = hash_secret(secret);
    let entry = snapshot.get(id).ok_or(AuthError::Unknown)?;
    if !constant_time_eq(&entry.hash, &hash) {
        return Err(AuthError::Unknown);
    }
    if entry.revoked {
        return Err(AuthError::Revoked);
    }
    if entry.expires_at.is_some_and(|t| now >= t) {
        return Err(AuthError::Expired);
    }
    Ok(entry)
}

/// A memo never holds more tokens than this; when full it starts over (it is only a shortcut).
const MEMO_MAX_ENTRIES: usize = 4096;

/// One worker's memo for [`TokenCache::verify_memo`]. Worker-local: no locks.
#[derive(Default)]
pub struct VerifiedMemo {
    snapshot: Option<Arc<Snapshot>>,
    entries: HashMap<Box<str>, Memo>,
}

struct Memo {
    secret: Box<[u8]>,
    principal: Principal,
    expires_at: Option<SystemTime>,
}

/// Equality of byte strings whose running time depends only on their lengths.
fn constant_time_eq_bytes(a: &[u8], b: &[u8]) -> bool {
    // `subtle` answers false at once for different lengths and compares equal lengths in constant time.
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Opens the database and loads the first snapshot (before the workers start).
pub fn load_token_cache(db: impl Into<DatabaseUrl>) -> Result<TokenCache, AuthError> {
    let mut store = TokenStore::open(db.into())?;
    let cache = TokenCache::empty();
    cache.reload(&mut store)?;
    Ok(cache)
}

/// Reloads `cache` every `interval` on its own thread. The thread ends by itself once every other clone of
/// the cache is dropped (it holds only a weak reference between reloads). A failed reload keeps the last
/// good snapshot and is logged.
pub fn spawn_token_refresher(
    db: impl Into<DatabaseUrl>,
    cache: TokenCache,
    interval: Duration,
) -> std::thread::JoinHandle<()> {
    let db = db.into();
    let weak: Weak<ArcSwap<Snapshot>> = Arc::downgrade(&cache.inner);
    drop(cache);
    std::thread::Builder::new()
        .name("aibridge-tokens".into())
        .spawn(move || refresh_loop(db, weak, interval))
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot spawn the token refresher; revokes need a restart");
            std::thread::spawn(|| {})
        })
}

fn refresh_loop(db: DatabaseUrl, weak: Weak<ArcSwap<Snapshot>>, interval: Duration) {
    let mut store: Option<TokenStore> = None;
    loop {
        std::thread::sleep(interval);
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let cache = TokenCache { inner };
        if store.is_none() {
            match TokenStore::open(&db) {
                Ok(s) => store = Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "token refresher cannot open the database");
                    continue;
                }
            }
        }
        if let Some(s) = store.as_mut() {
            if let Err(e) = cache.reload(s) {
                tracing::error!(error = %e, "token refresh failed; keeping the previous snapshot");
                store = None;
            }
        }
    }
}
