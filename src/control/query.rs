//! The text forms of the sessions API's and CLI's arguments: times (`2026-12-01T10:00:00Z`, or a
//! duration back from now such as `24h`, `7d`) and the sessions search string
//! (`initiator:alice model:claude-sonnet-4-5 client:claude-code started_after:24h`). Pure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::units::parse_duration;
use crate::db::SessionFilter;

/// An instant given as RFC 3339 text or as a duration before `now`.
pub(crate) fn parse_instant(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Ok(d) = parse_duration(text) {
        return Ok(now.checked_sub(d).unwrap_or(UNIX_EPOCH));
    }
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a duration such as 24h or 7d"))?;
    let nanos = t.unix_timestamp_nanos();
    if nanos < 0 {
        return Ok(UNIX_EPOCH);
    }
    Ok(UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)))
}

/// Parses the sessions search string into a filter. Terms are `key:value` separated by spaces; an
/// unknown key or a bad time is an error naming it.
pub(crate) fn parse_search(q: &str, now: SystemTime) -> Result<SessionFilter, String> {
    let mut f = SessionFilter::default();
    for term in q.split_whitespace() {
        let (key, value) = term.split_once(':').ok_or_else(|| format!("search term {term:?} is not key:value"))?;
        if value.is_empty() {
            return Err(format!("search term {term:?} has no value"));
        }
        let v = Some(value.to_owned());
        match key {
            "initiator" | "user" => f.initiator_id = v,
            "model" => f.model = v,
            "provider" => f.provider = v,
            "client" => f.client = v,
            "started_after" => f.started_after = Some(parse_instant(value, now)?),
            "started_before" => f.started_before = Some(parse_instant(value, now)?),
            other => {
                return Err(format!(
                "unknown search key {other:?}: use initiator, model, provider, client, started_after, started_before"
            ))
            }
        }
    }
    Ok(f)
}

/// A page size: 1 to [`crate::db::MAX_PAGE`].
pub(crate) fn parse_limit(text: Option<&str>, default: usize) -> Result<usize, String> {
    match text {
        None => Ok(default),
        Some(t) => match t.trim().parse::<usize>() {
            Ok(n) if (1..=crate::db::MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(format!("limit must be a number from 1 to {}, got {t:?}", crate::db::MAX_PAGE)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_parse_and_bad_ones_say_why() {
        let now = UNIX_EPOCH + Duration::from_secs(10 * 86_400);
        let f =
            parse_search("initiator:alice  model:claude-sonnet-4-5 client:claude-code started_after:24h", now).unwrap();
        assert_eq!(f.initiator_id.as_deref(), Some("alice"));
        assert_eq!(f.model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(f.client.as_deref(), Some("claude-code"));
        assert_eq!(f.started_after, Some(now - Duration::from_secs(86_400)));
        let f = parse_search("provider:anthropic started_before:1970-01-02T00:00:00Z", now).unwrap();
        assert_eq!(f.provider.as_deref(), Some("anthropic"));
        assert_eq!(f.started_before, Some(UNIX_EPOCH + Duration::from_secs(86_400)));
        assert_eq!(parse_search("", now).unwrap(), SessionFilter::default());
        assert!(parse_search("colour:red", now).unwrap_err().contains("colour"));
        assert!(parse_search("alice", now).is_err());
        assert!(parse_search("model:", now).is_err());
        assert!(parse_search("started_after:yesterday", now).unwrap_err().contains("yesterday"));
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(parse_limit(None, 25).unwrap(), 25);
        assert_eq!(parse_limit(Some("1000"), 25).unwrap(), 1000);
        assert!(parse_limit(Some("0"), 25).is_err());
        assert!(parse_limit(Some("1001"), 25).is_err());
        assert!(parse_limit(Some("ten"), 25).is_err());
    }
}
