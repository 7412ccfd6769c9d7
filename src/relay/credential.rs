//! The credential phase: which upstream credential a request starts with (the caller's own, none, the
//! only key, or the first healthy key of a pool), which one the next attempt uses after the upstream
//! refused one, and how a credential is described in records. Pure over the instance's shared key pool
//! and a clock passed in.

use std::time::Instant;

use crate::providers::key_pool::{KeyPool, DEFAULT_REST};
use crate::providers::upstream::{Credential, Upstream};
use crate::records::CredentialKind;

use super::context::Caller;
use super::error::RelayError;

/// The credential of the first attempt. `pool` holds one entry per credential of the instance.
pub(crate) fn first(caller: &Caller, pool: &KeyPool, now: Instant) -> Result<Credential, RelayError> {
    Ok(match pool.len() {
        _ if caller.byok.is_some() => Credential::Byok,
        0 => Credential::None,
        // A single key has nothing to fail over to: the provider's own answer (429 with its Retry-After,
        // 401) is what the client should see, every time, not a gateway-made refusal.
        1 => Credential::Key(0),
        _ => match pool.pick(now) {
            Some(k) => Credential::Key(k),
            // Every key disabled: nothing wakes, so the client is told to wait one rate-limit window.
            None => return Err(RelayError::KeysResting { retry_after: pool.retry_after(now).unwrap_or(DEFAULT_REST) }),
        },
    })
}

/// What the upstream's answer `status` on `used` says: the credential to try next, or `None` to relay
/// this answer. Only pooled keys fail over.
pub(crate) fn after_answer(
    pool: &KeyPool,
    used: Credential,
    status: u16,
    retry_after: Option<&str>,
    now: Instant,
) -> Option<Credential> {
    let Credential::Key(k) = used else {
        return None;
    };
    if pool.len() < 2 || !pool.on_response(k, status, retry_after, now).fail_over() {
        return None;
    }
    pool.next_after(k, now).map(Credential::Key)
}

/// The record's `credential_kind` for a credential.
pub(crate) fn kind(c: Credential) -> CredentialKind {
    match c {
        Credential::Byok => CredentialKind::Byok,
        Credential::Key(_) => CredentialKind::Centralized,
        Credential::None => CredentialKind::None,
    }
}

/// A masked hint of the credential; never the secret.
pub(crate) fn hint(upstream: &Upstream, caller: &Caller, c: Credential) -> Option<String> {
    match c {
        Credential::Key(k) => upstream.key_hint(k),
        Credential::Byok => caller.byok.as_ref().and_then(|b| b.hint.clone()),
        Credential::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::context::ClientCredential;
    use crate::relay::testing::{caller, instances};

    #[test]
    fn byok_callers_bring_their_own_whatever_the_pool() {
        let now = Instant::now();
        let byok = caller(Some(ClientCredential { hint: Some("sk-u…3456".into()) }));
        assert_eq!(first(&byok, &KeyPool::new(3), now).unwrap(), Credential::Byok);
        assert_eq!(first(&byok, &KeyPool::new(0), now).unwrap(), Credential::Byok);
        assert_eq!(hint(&instances()[0].upstream, &byok, Credential::Byok).as_deref(), Some("sk-u…3456"));
        assert_eq!(kind(Credential::Byok), CredentialKind::Byok);
    }

    #[test]
    fn no_key_single_key_and_pools_pick_differently() {
        let now = Instant::now();
        let central = caller(None);
        assert_eq!(first(&central, &KeyPool::new(0), now).unwrap(), Credential::None);
        let single = KeyPool::new(1);
        single.on_response(0, 429, None, now);
        assert_eq!(first(&central, &single, now).unwrap(), Credential::Key(0), "a single key is always tried");
        let pool = KeyPool::new(2);
        pool.on_response(0, 429, Some("30"), now);
        assert_eq!(first(&central, &pool, now).unwrap(), Credential::Key(1), "a resting key is skipped");
        pool.on_response(1, 401, None, now);
        assert!(matches!(first(&central, &pool, now), Err(RelayError::KeysResting { .. })));
        assert_eq!(kind(Credential::None), CredentialKind::None);
        assert_eq!(kind(Credential::Key(1)), CredentialKind::Centralized);
    }

    #[test]
    fn pooled_keys_fail_over_on_rate_limits_and_refusals_only() {
        let now = Instant::now();
        let pool = KeyPool::new(3);
        assert_eq!(after_answer(&pool, Credential::Key(0), 200, None, now), None);
        assert_eq!(after_answer(&pool, Credential::Key(0), 500, None, now), None);
        assert_eq!(after_answer(&pool, Credential::Key(0), 429, Some("10"), now), Some(Credential::Key(1)));
        assert_eq!(after_answer(&pool, Credential::Key(1), 403, None, now), Some(Credential::Key(2)));
        assert_eq!(after_answer(&pool, Credential::Key(2), 401, None, now), None, "no key left: relay it");
        assert_eq!(after_answer(&KeyPool::new(1), Credential::Key(0), 429, None, now), None);
        assert_eq!(after_answer(&KeyPool::new(3), Credential::Byok, 429, None, now), None);
    }

    #[test]
    fn key_hints_are_masked_for_direct_keys_and_aws_access_key_ids() {
        let insts = instances();
        let central = caller(None);
        assert_eq!(hint(&insts[0].upstream, &central, Credential::Key(0)).as_deref(), Some("sk-t…0001"));
        assert_eq!(hint(&insts[2].upstream, &central, Credential::Key(0)).as_deref(), Some("AKIA…MPLE"));
        assert_eq!(hint(&insts[0].upstream, &central, Credential::Key(9)), None);
        assert_eq!(hint(&insts[0].upstream, &central, Credential::None), None);
    }
}
