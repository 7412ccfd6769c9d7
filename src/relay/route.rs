//! The route phase: which instance a request names, whether the gateway serves that path for it, and
//! which error shape a refusal is answered in. Pure over the request head and the instances.

use crate::config::ProviderType;
use crate::providers::errors::ErrorShape;
use crate::providers::routes::{classify, split_bridge_path};
use crate::runtime::http::{RequestHead, MAX_HEAD_BYTES};

use super::context::Route;
use super::error::RelayError;
use super::instance::{index_of, Instance};

/// The error shape of requests that reached no instance.
pub(crate) fn default_shape() -> ErrorShape {
    ErrorShape::of(ProviderType::OpenAi)
}

/// A route refusal and the shape to answer it in.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) shape: ErrorShape,
    pub(crate) error: RelayError,
}

/// Finds the instance and route kind of `head`. `enabled` is the gateway's on/off switch.
pub(crate) fn route(instances: &[Instance], enabled: bool, head: &RequestHead) -> Result<Route, Refusal> {
    let target = head.target.as_str();
    let not_found = || RelayError::NotFound {
        method: head.method.clone(),
        path: target.split('?').next().unwrap_or("").to_string(),
    };
    let refuse = |shape, error| Err(Refusal { shape, error });
    let Some((name, rest)) = split_bridge_path(target) else {
        return refuse(default_shape(), not_found());
    };
    if !enabled {
        return refuse(default_shape(), RelayError::Disabled);
    }
    let Some(instance) = index_of(instances, name) else {
        return refuse(default_shape(), not_found());
    };
    let inst = &instances[instance];
    let path_only = rest.split('?').next().unwrap_or("");
    match classify(inst.kind, &head.method, path_only) {
        Some(kind) => Ok(Route { instance, rest: rest.to_string(), kind }),
        None => refuse(inst.shape, not_found()),
    }
}

/// Whether `head` is a client's preconnect probe: `HEAD` on a known instance's base path
/// (`/api/v2/aibridge/<NAME>`, with or without a trailing slash). Claude Code sends one before its
/// first request to warm the connection; it is answered 200 without a body, before authentication
/// (it carries no credential and reaches no upstream), and is not logged as an unknown route.
pub fn is_preconnect(instances: &[Instance], enabled: bool, head: &RequestHead) -> bool {
    if !enabled || !head.method.eq_ignore_ascii_case("HEAD") {
        return false;
    }
    let Some((name, rest)) = split_bridge_path(&head.target) else {
        return false;
    };
    matches!(rest.split('?').next(), Some("" | "/")) && index_of(instances, name).is_some()
}

/// The error shape for a head that could not be parsed (too large, malformed, too slow): the shape of
/// the instance its request line names, when it names one, so an Anthropic client still gets an
/// Anthropic error.
pub(crate) fn shape_of_partial_head(instances: &[Instance], buf: &[u8]) -> ErrorShape {
    let line_end = memchr::memchr(b'\n', buf).unwrap_or(buf.len()).min(MAX_HEAD_BYTES);
    let target = buf[..line_end].split(|&b| b == b' ').nth(1).and_then(|t| std::str::from_utf8(t).ok());
    target
        .and_then(split_bridge_path)
        .and_then(|(name, _)| index_of(instances, name))
        .map_or_else(default_shape, |i| instances[i].shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::routes::RouteKind;
    use crate::records::Api;
    use crate::relay::testing::{head, instances};

    #[test]
    fn a_known_route_names_its_instance_and_api() {
        let insts = instances();
        let r = route(&insts, true, &head("POST /api/v2/aibridge/claude/v1/messages?beta=true", &[])).unwrap();
        assert_eq!(
            r,
            Route { instance: 1, rest: "/v1/messages?beta=true".into(), kind: RouteKind::Intercept(Api::Messages) }
        );
        let r = route(&insts, true, &head("GET /api/v2/aibridge/openai/v1/models", &[])).unwrap();
        assert_eq!((r.instance, r.kind), (0, RouteKind::Passthrough));
    }

    #[test]
    fn refusals_use_the_named_instances_shape_when_there_is_one() {
        let insts = instances();
        let unknown_path = route(&insts, true, &head("POST /api/v2/aibridge/claude/v1/nope?x=1", &[])).unwrap_err();
        assert_eq!(unknown_path.shape, ErrorShape::Anthropic);
        assert_eq!(unknown_path.error.to_string(), "no route for POST /api/v2/aibridge/claude/v1/nope");
        assert_eq!(unknown_path.error.status(), 404);

        let unknown_instance = route(&insts, true, &head("POST /api/v2/aibridge/nobody/v1/messages", &[])).unwrap_err();
        assert_eq!(unknown_instance.shape, ErrorShape::OpenAi);
        let outside = route(&insts, true, &head("GET /v1/models", &[])).unwrap_err();
        assert!(matches!(outside.error, RelayError::NotFound { .. }));
    }

    #[test]
    fn a_disabled_gateway_refuses_bridge_routes_only() {
        let insts = instances();
        let off = route(&insts, false, &head("POST /api/v2/aibridge/claude/v1/messages", &[])).unwrap_err();
        assert!(matches!(off.error, RelayError::Disabled));
        assert_eq!(off.shape, ErrorShape::OpenAi);
        let elsewhere = route(&insts, false, &head("GET /metrics", &[])).unwrap_err();
        assert!(matches!(elsewhere.error, RelayError::NotFound { .. }));
    }

    #[test]
    fn a_head_on_a_known_instances_base_path_is_a_preconnect_probe() {
        let insts = instances();
        for target in ["/api/v2/aibridge/claude", "/api/v2/aibridge/claude/", "/api/v2/aibridge/openai?x=1"] {
            assert!(is_preconnect(&insts, true, &head(&format!("HEAD {target}"), &[])), "{target}");
        }
        for line in [
            "HEAD /api/v2/aibridge/nobody",
            "HEAD /api/v2/aibridge/claude/v1/messages",
            "HEAD /api/v2/aibridge/",
            "GET /api/v2/aibridge/claude",
            "HEAD /healthz",
        ] {
            assert!(!is_preconnect(&insts, true, &head(line, &[])), "{line}");
        }
        assert!(!is_preconnect(&insts, false, &head("HEAD /api/v2/aibridge/claude", &[])), "disabled");
    }

    #[test]
    fn a_partial_head_is_answered_in_the_shape_of_the_instance_it_names() {
        let insts = instances();
        assert_eq!(
            shape_of_partial_head(&insts, b"POST /api/v2/aibridge/claude/v1/messages HTTP/1.1\r\nX-"),
            ErrorShape::Anthropic
        );
        assert_eq!(shape_of_partial_head(&insts, b"POST /api/v2/aibridge/openai/v1/chat"), ErrorShape::OpenAi);
        assert_eq!(shape_of_partial_head(&insts, b"\xff\xfe garbage"), ErrorShape::OpenAi);
        assert_eq!(shape_of_partial_head(&insts, b""), ErrorShape::OpenAi);
    }
}
