//! The authenticate phase: which gateway token a request presents (and, for BYOK callers, the hint of
//! their own provider credential), then the check against the token cache. The header reading is pure;
//! the check never touches the database.

use std::cell::RefCell;
use std::time::SystemTime;

use crate::auth::{bearer_token, TokenCache, VerifiedMemo};
use crate::config::Secret;
use crate::runtime::http::RequestHead;

use super::context::{Caller, ClientCredential};
use super::error::RelayError;

const MISSING: &str = "missing gateway token: send Authorization: Bearer <token> or X-Api-Key";
const INVALID: &str = "invalid, expired or revoked gateway token";

/// What a request presents: its gateway token and, for BYOK, its own provider credential.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Presented<'h> {
    pub(crate) token: &'h str,
    pub(crate) byok: Option<ClientCredential>,
}

/// Reads the gateway token: `X-Coder-AI-Governance-Token` (BYOK: the client's `Authorization` or
/// `X-Api-Key` is then its own provider credential), else `Authorization: Bearer`, else `X-Api-Key`.
pub(crate) fn presented(head: &RequestHead) -> Result<Presented<'_>, RelayError> {
    let (token, byok) = if let Some(t) = head.header_str("x-coder-ai-governance-token") {
        (t, Some(ClientCredential { hint: own_credential(head).map(|c| Secret::new(c).hint()) }))
    } else if let Some(auth) = head.header_str("authorization") {
        (bearer_token(auth).unwrap_or(""), None)
    } else if let Some(k) = head.header_str("x-api-key") {
        (k, None)
    } else {
        return Err(RelayError::Unauthorized(MISSING));
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(RelayError::Unauthorized(MISSING));
    }
    Ok(Presented { token, byok })
}

/// A BYOK caller's provider credential: a bearer token, any other `Authorization` value as is, else
/// `X-Api-Key`.
fn own_credential(head: &RequestHead) -> Option<&str> {
    head.header_str("authorization")
        .map(|a| bearer_token(a).unwrap_or(a))
        .or_else(|| head.header_str("x-api-key"))
        .map(str::trim)
}

/// Checks the presented token against the cache (and this worker's memo of tokens already verified).
pub(crate) fn authenticate(
    tokens: &TokenCache,
    memo: &RefCell<VerifiedMemo>,
    head: &RequestHead,
) -> Result<Caller, RelayError> {
    let Presented { token, byok } = presented(head)?;
    match tokens.verify_memo(token, SystemTime::now(), &mut memo.borrow_mut()) {
        Ok(principal) => Ok(Caller { principal, byok }),
        Err(_) => Err(RelayError::Unauthorized(INVALID)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::testing::head;

    fn token_of(headers: &[(&str, &str)]) -> Result<(String, Option<ClientCredential>), String> {
        let h = head("POST /api/v2/aibridge/claude/v1/messages", headers);
        presented(&h).map(|p| (p.token.to_string(), p.byok)).map_err(|e| e.to_string())
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_not_bearer() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER abc "), Some("abc"));
        assert_eq!(bearer_token("bearer   abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token(""), None);
    }

    #[test]
    fn the_gateway_token_comes_from_bearer_else_x_api_key() {
        assert_eq!(
            token_of(&[("Authorization", "Bearer aibr_a"), ("X-Api-Key", "aibr_b")]),
            Ok(("aibr_a".into(), None))
        );
        assert_eq!(token_of(&[("X-Api-Key", " aibr_b ")]), Ok(("aibr_b".into(), None)));
        // An Authorization header wins even when it is not a bearer token: the request is refused rather
        // than silently authenticated by another header.
        assert_eq!(token_of(&[("Authorization", "Basic eA=="), ("X-Api-Key", "aibr_b")]), Err(MISSING.into()));
    }

    #[test]
    fn missing_and_empty_tokens_are_refused_as_missing() {
        assert_eq!(token_of(&[]), Err(MISSING.into()));
        assert_eq!(token_of(&[("Authorization", "Bearer   ")]), Err(MISSING.into()));
        assert_eq!(token_of(&[("X-Api-Key", "")]), Err(MISSING.into()));
        assert_eq!(token_of(&[("X-Coder-AI-Governance-Token", " ")]), Err(MISSING.into()));
        let h = head("GET /x", &[]);
        assert_eq!(presented(&h).unwrap_err().status(), 401);
    }

    #[test]
    fn the_governance_token_makes_a_byok_caller_whose_own_key_is_only_hinted() {
        let (token, byok) = token_of(&[
            ("X-Coder-AI-Governance-Token", "aibr_gov"),
            ("Authorization", "Bearer sk-users-own-key-123456"),
        ])
        .unwrap();
        assert_eq!(token, "aibr_gov");
        assert_eq!(byok, Some(ClientCredential { hint: Some("sk-u…3456".into()) }));

        let (_, byok) =
            token_of(&[("X-Coder-AI-Governance-Token", "aibr_gov"), ("X-Api-Key", "sk-ant-own-key-abcdef")]).unwrap();
        assert_eq!(byok, Some(ClientCredential { hint: Some("sk-a…cdef".into()) }));

        let (_, byok) = token_of(&[("X-Coder-AI-Governance-Token", "aibr_gov")]).unwrap();
        assert_eq!(byok, Some(ClientCredential { hint: None }), "BYOK without a credential of its own");
    }
}
