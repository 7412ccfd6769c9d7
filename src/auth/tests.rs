//! Token tests: create, verify, revoke, expire, and the refresher picking up a revoke.

use std::time::{Duration, SystemTime};

use super::*;
use crate::db::test_dir;

fn store_and_path(name: &str) -> (TokenStore, std::path::PathBuf) {
    let path = test_dir(name).join("a.db");
    (TokenStore::open(&path).unwrap(), path)
}

#[test]
fn created_token_verifies_and_only_its_hash_is_stored() {
    let (mut store, path) = store_and_path("auth-create");
    let created = store.create("alice", None).unwrap();
    assert!(created.token.starts_with(&format!("aibr_{}_", created.id)));
    assert_eq!(created.token.len(), 5 + ID_BYTES * 2 + 1 + SECRET_BYTES * 2);
    assert!(!format!("{created:?}").contains(&created.token[18..]));
    let cache = load_token_cache(&path).unwrap();
    let p = cache.verify(&created.token, SystemTime::now()).unwrap();
    assert_eq!(&*p.user, "alice");
    assert_eq!(&*p.token_id, created.id);
    // The secret is nowhere in the database file.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let secret = created.token.rsplit('_').next().unwrap().to_owned();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM aibridge_api_tokens WHERE instr(hex(secret_hash), upper(?1)) > 0 \
             OR instr(id || user, ?1) > 0",
            [&secret],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn wrong_secret_unknown_id_and_garbage_are_refused() {
    let (mut store, path) = store_and_path("auth-wrong");
    let created = store.create("bob", None).unwrap();
    let cache = load_token_cache(&path).unwrap();
    let now = SystemTime::now();
    let mut wrong = created.token.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    assert!(matches!(cache.verify(&wrong, now), Err(AuthError::Unknown)));
    let other_id = format!("aibr_000000000000_{}", &created.token[18..]);
    assert!(matches!(cache.verify(&other_id, now), Err(AuthError::Unknown)));
    for bad in ["", "aibr_", "Bearer x", "aibr_zz_zz", &created.token[..created.token.len() - 1]] {
        assert!(matches!(cache.verify(bad, now), Err(AuthError::Malformed)), "{bad}");
    }
    // No error message ever holds the token.
    let e = cache.verify(&wrong, now).unwrap_err();
    assert!(!e.to_string().contains(&wrong[18..]));
}

#[test]
fn revoked_and_expired_tokens_are_refused() {
    let (mut store, path) = store_and_path("auth-revoke");
    let a = store.create("alice", None).unwrap();
    let b = store.create("bob", Some(Duration::from_secs(3600))).unwrap();
    assert!(store.revoke(&a.id).unwrap());
    assert!(!store.revoke(&a.id).unwrap(), "second revoke finds nothing to do");
    assert!(!store.revoke("nope").unwrap());
    let cache = load_token_cache(&path).unwrap();
    let now = SystemTime::now();
    assert!(matches!(cache.verify(&a.token, now), Err(AuthError::Revoked)));
    assert!(cache.verify(&b.token, now).is_ok());
    assert!(matches!(cache.verify(&b.token, now + Duration::from_secs(3601)), Err(AuthError::Expired)));
    let list = store.list().unwrap();
    assert_eq!(list.len(), 2);
    let la = list.iter().find(|t| t.id == a.id).unwrap();
    assert!(la.revoked_at.is_some());
    let lb = list.iter().find(|t| t.id == b.id).unwrap();
    assert_eq!(lb.user, "bob");
    assert!(lb.revoked_at.is_none());
    let exp = lb.expires_at.unwrap();
    let diff = exp.duration_since(b.expires_at.unwrap()).unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_millis(1));
}

#[test]
fn empty_user_is_refused() {
    let (mut store, _) = store_and_path("auth-empty");
    assert!(matches!(store.create("  ", None), Err(AuthError::EmptyUser)));
}

#[test]
fn refresher_picks_up_a_revoke_and_stops_with_the_cache() {
    let (mut store, path) = store_and_path("auth-refresh");
    let a = store.create("alice", None).unwrap();
    let cache = load_token_cache(&path).unwrap();
    let refresher = spawn_token_refresher(path.clone(), cache.clone(), Duration::from_millis(50));
    assert!(cache.verify(&a.token, SystemTime::now()).is_ok());
    let b = store.create("bob", None).unwrap();
    store.revoke(&a.id).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = SystemTime::now();
        if cache.verify(&a.token, now).is_err() && cache.verify(&b.token, now).is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "refresh did not happen");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(cache);
    refresher.join().unwrap();
}

#[test]
fn constant_time_eq_compares() {
    let a = [7u8; 32];
    let mut b = a;
    assert!(constant_time_eq(&a, &b));
    b[31] ^= 1;
    assert!(!constant_time_eq(&a, &b));
}

#[test]
fn the_worker_memo_agrees_with_verify_and_follows_revocations() {
    let (mut store, path) = store_and_path("auth-memo");
    let alice = store.create("alice", None).unwrap();
    let brief = store.create("bob", Some(Duration::from_secs(3600))).unwrap();
    let cache = load_token_cache(&path).unwrap();
    let mut memo = VerifiedMemo::default();
    let now = SystemTime::now();
    for _ in 0..3 {
        assert_eq!(cache.verify_memo(&alice.token, now, &mut memo).unwrap(), cache.verify(&alice.token, now).unwrap());
    }
    // Same id, another secret: refused even though the id is memoised.
    let mut forged = alice.token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert!(matches!(cache.verify_memo(&forged, now, &mut memo), Err(AuthError::Unknown)));
    // Expiry is checked on every hit.
    assert!(cache.verify_memo(&brief.token, now, &mut memo).is_ok());
    let later = now + Duration::from_secs(7200);
    assert!(matches!(cache.verify_memo(&brief.token, later, &mut memo), Err(AuthError::Expired)));
    // A revoke takes effect with the next snapshot, memo or not.
    assert!(store.revoke(&alice.id).unwrap());
    assert!(cache.verify_memo(&alice.token, now, &mut memo).is_ok(), "old snapshot still current");
    cache.reload(&mut store).unwrap();
    assert!(matches!(cache.verify_memo(&alice.token, now, &mut memo), Err(AuthError::Revoked)));
    assert!(matches!(cache.verify(&alice.token, now), Err(AuthError::Revoked)));
}
