//! Which paths each provider type intercepts, which it passes through (allow-list), and how a bridge
//! path maps onto the instance's upstream URL (README "Providers"). Pure: no I/O.

use crate::config::ProviderType;
use crate::records::Api;

/// The prefix of every bridge route; the provider instance NAME follows it.
pub(crate) const BRIDGE_PREFIX: &str = "/api/v2/aibridge/";
/// The same routes under Coder's new name (AI Bridge became AI Gateway): served exactly alike.
pub(crate) const GATEWAY_PREFIX: &str = "/api/v2/ai-gateway/";

/// What the gateway does with a request on a provider route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteKind {
    /// Relayed and recorded as an interception of this API.
    Intercept(Api),
    /// Relayed unrecorded (allow-listed).
    Passthrough,
}

/// Splits `/api/v2/aibridge/<name>/<rest>?query` (or `/api/v2/ai-gateway/…`) into (name, rest with
/// query). `None` when the path is not a bridge route at all.
pub(crate) fn split_bridge_path(target: &str) -> Option<(&str, &str)> {
    let after = target.strip_prefix(BRIDGE_PREFIX).or_else(|| target.strip_prefix(GATEWAY_PREFIX))?;
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (name, rest) = after.split_at(end);
    Some((name, rest))
}

/// Classifies a request on an instance of `kind`. `path` is the part after the NAME, without the query.
/// `None` means the route is unknown (404).
pub(crate) fn classify(kind: ProviderType, method: &str, path: &str) -> Option<RouteKind> {
    if escapes_its_prefix(path) {
        return None;
    }
    let is_post = method.eq_ignore_ascii_case("POST");
    match kind {
        ProviderType::OpenAi => {
            // Paths with and without `/v1` are both accepted: SDKs configured with `…/openai/v1` send
            // `/v1/…`, while Codex against a ChatGPT-style base URL sends `/responses` directly.
            let p = path.strip_prefix("/v1").filter(|p| p.is_empty() || p.starts_with('/')).unwrap_or(path);
            match p {
                "/chat/completions" if is_post => Some(RouteKind::Intercept(Api::ChatCompletions)),
                "/responses" if is_post => Some(RouteKind::Intercept(Api::Responses)),
                _ if under(p, "/models") || under_strict(p, "/responses") || under(p, "/conversations") => {
                    Some(RouteKind::Passthrough)
                }
                _ => None,
            }
        }
        ProviderType::Anthropic => match path {
            "/v1/messages" if is_post => Some(RouteKind::Intercept(Api::Messages)),
            "/v1/messages/count_tokens" if is_post => Some(RouteKind::Passthrough),
            _ if under(path, "/v1/models") => Some(RouteKind::Passthrough),
            _ => None,
        },
        ProviderType::Copilot => match path {
            "/chat/completions" if is_post => Some(RouteKind::Intercept(Api::ChatCompletions)),
            "/responses" if is_post => Some(RouteKind::Intercept(Api::Responses)),
            _ if under(path, "/models")
                || under_strict(path, "/agents")
                || under_strict(path, "/mcp")
                || under_strict(path, "/.well-known") =>
            {
                Some(RouteKind::Passthrough)
            }
            _ => None,
        },
    }
}

/// A path that an upstream (or a proxy in front of it) would normalise into a different one: a `.` or
/// `..` segment, literal or percent-encoded, or an encoded or backslash separator. Without this check
/// `/v1/models/../chat/completions` passes the allow-list as a models call and reaches the upstream's
/// chat completions unrecorded, and `..` can climb out of an instance's base path.
fn escapes_its_prefix(path: &str) -> bool {
    // The usual path holds no escape, backslash or parameter: only a literal dot segment can move it, and
    // the check needs no allocation. The rest take the general check.
    if memchr::memchr3(b'%', b'\\', b';', path.as_bytes()).is_none() {
        return path.split('/').any(|seg| seg == "." || seg == "..");
    }
    escapes_its_prefix_encoded(path)
}

/// [`escapes_its_prefix`] for a path with percent escapes, backslashes or segment parameters.
fn escapes_its_prefix_encoded(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains('\\') || lower.contains("%2f") || lower.contains("%5c") {
        return true;
    }
    // A segment's path parameters (`..;x`) are dropped by servlet-style normalisers: compare what precedes them.
    lower.split('/').any(|seg| {
        let seg = seg.replace("%2e", ".").replace("%3b", ";");
        matches!(seg.split(';').next(), Some("." | ".."))
    })
}

/// `path` is `prefix` itself or below it.
fn under(path: &str, prefix: &str) -> bool {
    path == prefix || under_strict(path, prefix)
}

/// `path` is strictly below `prefix` (`prefix/…`).
fn under_strict(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
}

/// Joins the instance's base path with the request path (and query). For openai instances whose base
/// path already ends in `/v1`, one leading `/v1` of the request path is removed so it is not doubled.
pub(crate) fn upstream_path(kind: ProviderType, base_path: &str, path_and_query: &str) -> String {
    let mut p = path_and_query;
    if kind == ProviderType::OpenAi && base_path.ends_with("/v1") {
        if let Some(rest) = p.strip_prefix("/v1") {
            if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') {
                p = rest;
            }
        }
    }
    let mut out = String::with_capacity(base_path.len() + p.len() + 1);
    out.push_str(base_path);
    if !p.starts_with('/') {
        out.push('/');
    }
    out.push_str(p);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The allocation-free check of the usual path answers as the general check does, on paths built
        /// from the bytes that matter (dots, separators, escapes of both cases, parameters).
        #[test]
        fn the_fast_dot_segment_check_agrees_with_the_general_one(path in "[./%2eEfF5cC3bB;\\\\a]{0,24}") {
            prop_assert_eq!(escapes_its_prefix(&path), escapes_its_prefix_encoded(&path));
        }
    }

    #[test]
    fn dot_segments_escape_in_every_spelling() {
        for path in ["/v1/..", "/v1/./x", "/v1/%2e%2e/x", "/v1/%2E./x", "/v1/..;a/x", "/v1\\x", "/v1%2fx", "/v1/.%2e"] {
            assert!(escapes_its_prefix(path), "{path}");
        }
        for path in ["/v1/chat/completions", "/v1/models/gpt-4o", "/v1/...", "/v1/.a", "/v1/a.b/c", ""] {
            assert!(!escapes_its_prefix(path), "{path}");
        }
    }

    #[test]
    fn splits_bridge_paths() {
        assert_eq!(
            split_bridge_path("/api/v2/aibridge/openai/v1/chat/completions"),
            Some(("openai", "/v1/chat/completions"))
        );
        assert_eq!(split_bridge_path("/api/v2/aibridge/x?y=1"), Some(("x", "?y=1")));
        assert_eq!(
            split_bridge_path("/api/v2/ai-gateway/openai/v1/chat/completions"),
            Some(("openai", "/v1/chat/completions"))
        );
        assert_eq!(split_bridge_path("/api/v2/ai-gatewayx/openai"), None);
        assert_eq!(split_bridge_path("/api/v2/other"), None);
    }

    #[test]
    fn classifies_openai() {
        use RouteKind::*;
        let k = ProviderType::OpenAi;
        assert_eq!(classify(k, "POST", "/v1/chat/completions"), Some(Intercept(Api::ChatCompletions)));
        assert_eq!(classify(k, "POST", "/v1/responses"), Some(Intercept(Api::Responses)));
        assert_eq!(classify(k, "POST", "/responses"), Some(Intercept(Api::Responses)));
        assert_eq!(classify(k, "GET", "/v1/models"), Some(Passthrough));
        assert_eq!(classify(k, "GET", "/v1/models/gpt-4o"), Some(Passthrough));
        assert_eq!(classify(k, "GET", "/v1/responses/resp_1"), Some(Passthrough));
        assert_eq!(classify(k, "POST", "/v1/responses/resp_1/cancel"), Some(Passthrough));
        assert_eq!(classify(k, "GET", "/v1/conversations/c1/items"), Some(Passthrough));
        assert_eq!(classify(k, "GET", "/v1/chat/completions"), None);
        assert_eq!(classify(k, "POST", "/v1/embeddings"), None);
        assert_eq!(classify(k, "GET", "/v1/modelsx"), None);
    }

    #[test]
    fn dot_segments_and_encoded_separators_never_match_a_route() {
        for (kind, path) in [
            (ProviderType::OpenAi, "/v1/models/../chat/completions"),
            (ProviderType::OpenAi, "/v1/conversations/%2e%2E/x"),
            (ProviderType::OpenAi, "/v1/models/./gpt-4o"),
            (ProviderType::OpenAi, "/v1/models/..%2f..%2fadmin"),
            (ProviderType::OpenAi, "/v1/models/a%5C..%5Cb"),
            (ProviderType::OpenAi, "/v1/models\\..\\x"),
            (ProviderType::OpenAi, "/v1/responses/r/.."),
            (ProviderType::Anthropic, "/v1/models/../../../admin"),
            (ProviderType::Copilot, "/mcp/%2e%2e/chat/completions"),
            (ProviderType::OpenAi, "/v1/models/..;/..;/admin"),
            (ProviderType::OpenAi, "/v1/models/.%2e%3bx/admin"),
        ] {
            assert_eq!(classify(kind, "GET", path), None, "{path}");
            assert_eq!(classify(kind, "POST", path), None, "{path}");
        }
        // Dots inside a segment are ordinary names.
        assert_eq!(classify(ProviderType::OpenAi, "GET", "/v1/models/gpt-4.1"), Some(RouteKind::Passthrough));
        assert_eq!(classify(ProviderType::OpenAi, "GET", "/v1/models/..x"), Some(RouteKind::Passthrough));
    }

    #[test]
    fn classifies_anthropic_and_copilot() {
        use RouteKind::*;
        assert_eq!(classify(ProviderType::Anthropic, "POST", "/v1/messages"), Some(Intercept(Api::Messages)));
        assert_eq!(classify(ProviderType::Anthropic, "POST", "/v1/messages/count_tokens"), Some(Passthrough));
        assert_eq!(classify(ProviderType::Anthropic, "GET", "/v1/models"), Some(Passthrough));
        assert_eq!(classify(ProviderType::Anthropic, "POST", "/v1/complete"), None);
        assert_eq!(classify(ProviderType::Copilot, "POST", "/chat/completions"), Some(Intercept(Api::ChatCompletions)));
        assert_eq!(classify(ProviderType::Copilot, "GET", "/.well-known/x"), Some(Passthrough));
        assert_eq!(classify(ProviderType::Copilot, "POST", "/mcp/readonly"), Some(Passthrough));
        assert_eq!(classify(ProviderType::Copilot, "POST", "/v1/chat/completions"), None);
    }

    #[test]
    fn joins_upstream_paths() {
        let k = ProviderType::OpenAi;
        assert_eq!(upstream_path(k, "/v1", "/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(upstream_path(k, "", "/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(upstream_path(k, "/backend-api/codex", "/responses"), "/backend-api/codex/responses");
        assert_eq!(upstream_path(k, "/v1", "/v1/models?limit=2"), "/v1/models?limit=2");
        assert_eq!(
            upstream_path(ProviderType::Anthropic, "/proxy/anthropic", "/v1/messages"),
            "/proxy/anthropic/v1/messages"
        );
        assert_eq!(upstream_path(ProviderType::Anthropic, "/v1", "/v1/messages"), "/v1/v1/messages");
    }
}
