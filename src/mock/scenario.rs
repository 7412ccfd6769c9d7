//! Reads the `x-mock-*` request headers into a `Scenario`: what the mock should answer. Pure: no I/O,
//! no allocation on the success path (values borrow from the request).
//!
//! | header | meaning |
//! |---|---|
//! | `x-mock-scenario` | `text` (default), `tools`, `thinking`, `cached`, `error-midstream`, `truncated` |
//! | `x-mock-status: N` | answer status N with the provider's error JSON |
//! | `x-mock-retry-after: N` | add `Retry-After: N` to that error |
//! | `x-mock-status-for-key: k=N,…` | status by the credential received (Bearer or x-api-key) |
//! | `x-mock-reset-after: N` | write N events then reset the TCP connection (JSON: 0 = before, else mid-body) |
//! | `x-mock-delay-ms: N` | pace events N ms apart (JSON and errors: wait N ms first) |
//! | `x-mock-events: N` | number of text delta events (default 5) |
//! | `x-mock-garbage: 1` | answer bytes that are not HTTP, then close |
//! | `x-mock-hang-up: H` | after reading the whole request: `close` (FIN) or `reset` (RST) without answering, `mid-head` (part of a response head, then RST), `after-answer` (answer as keep-alive, then close the idle connection) |
//! | `x-mock-body-file: PATH` | replay a file verbatim (`.sse` streamed one chunk per event, `.json`) |
//! | `x-mock-stamp: 1` | add `"x_mock_sent_ns"` (CLOCK_MONOTONIC at write) to every event's JSON |
//! | `x-mock-gzip: 1` | answer with `Content-Encoding: gzip` (a stream: one gzip stream, sync-flushed per event; with `truncated`, a JSON body's gzip bytes are cut in half, also for `x-mock-body-file`) |
//! | `x-mock-exception: T` | Bedrock `:exception-type` for `error-midstream` (default `throttlingException`) |

/// Most text delta events one response may carry: enough for load tests, bounded so a typo can't hang a run.
pub(crate) const MAX_EVENTS: u32 = 1_000_000;
/// Longest pause between events: a minute covers every timeout test.
pub(crate) const MAX_DELAY_MS: u64 = 60_000;
/// Text delta events when `x-mock-events` is absent: small, but more than one so deltas are exercised.
pub(crate) const DEFAULT_EVENTS: u32 = 5;

/// The response shape chosen by `x-mock-scenario`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Plain text answer.
    Text,
    /// Text then two parallel tool calls.
    Tools,
    /// Thinking/reasoning then one tool call.
    Thinking,
    /// Text with cached input and reasoning tokens in the usage.
    Cached,
    /// A provider error event in the middle of the stream.
    ErrorMidstream,
    /// The stream stops half-way without its terminal event (HTTP framing still ends properly).
    Truncated,
}

/// How the mock drops a connection on purpose (`x-mock-hang-up`), to test what the gateway does when
/// an upstream connection dies at each point of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangUp {
    /// The request was read; the connection is closed (FIN) with no answer.
    Close,
    /// The request was read; the connection is reset (RST) with no answer.
    Reset,
    /// The first bytes of a response head are written, then the connection is reset.
    MidHead,
    /// A complete keep-alive answer is written, then the connection is closed while it idles, as an
    /// upstream's idle timeout would.
    AfterAnswer,
}

/// An `x-mock-*` header the mock could not understand; answered with 400 so test typos surface.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ScenarioError {
    #[error("unknown x-mock-scenario {0:?}")]
    UnknownScenario(String),
    #[error("invalid value for header {0}")]
    BadValue(&'static str),
}

/// Everything the request headers ask of the mock; borrows the header values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scenario<'a> {
    /// `x-mock-scenario`.
    pub(crate) kind: Kind,
    /// `x-mock-status`, or the matching `x-mock-status-for-key` entry.
    pub(crate) status: Option<u16>,
    /// `x-mock-retry-after` seconds.
    pub(crate) retry_after: Option<u64>,
    /// `x-mock-reset-after` events.
    pub(crate) reset_after: Option<u32>,
    /// `x-mock-delay-ms`, capped at MAX_DELAY_MS.
    pub(crate) delay_ms: u64,
    /// `x-mock-events`, capped at MAX_EVENTS.
    pub(crate) events: u32,
    /// `x-mock-garbage`.
    pub(crate) garbage: bool,
    /// `x-mock-hang-up`.
    pub(crate) hang_up: Option<HangUp>,
    /// `x-mock-body-file`.
    pub(crate) body_file: Option<&'a str>,
    /// `x-mock-stamp`.
    pub(crate) stamp: bool,
    /// `x-mock-gzip`.
    pub(crate) gzip: bool,
    /// Bedrock `:exception-type` to send mid-stream (with `error-midstream`).
    pub(crate) exception: &'a str,
}

impl Default for Scenario<'_> {
    fn default() -> Self {
        Scenario {
            kind: Kind::Text,
            status: None,
            retry_after: None,
            reset_after: None,
            delay_ms: 0,
            events: DEFAULT_EVENTS,
            garbage: false,
            hang_up: None,
            body_file: None,
            stamp: false,
            gzip: false,
            exception: "throttlingException",
        }
    }
}

fn num<T: std::str::FromStr>(v: &str, name: &'static str) -> Result<T, ScenarioError> {
    v.trim().parse().map_err(|_| ScenarioError::BadValue(name))
}

fn flag(v: &str) -> bool {
    v == "1" || v.eq_ignore_ascii_case("true")
}

fn status_code(v: &str, name: &'static str) -> Result<u16, ScenarioError> {
    let s: u16 = num(v, name)?;
    if (100..=999).contains(&s) {
        Ok(s)
    } else {
        Err(ScenarioError::BadValue(name))
    }
}

impl<'a> Scenario<'a> {
    /// Builds the scenario from request headers; `credential` is the Bearer token or x-api-key received.
    pub(crate) fn from_headers(
        headers: impl Iterator<Item = (&'a str, &'a str)>,
        credential: Option<&str>,
    ) -> Result<Scenario<'a>, ScenarioError> {
        let mut s = Scenario::default();
        let mut by_key = None;
        for (name, value) in headers {
            let Some(key) = name.get(..7).filter(|p| p.eq_ignore_ascii_case("x-mock-")).and_then(|_| name.get(7..))
            else {
                continue;
            };
            let value = value.trim();
            let is = |k: &str| key.eq_ignore_ascii_case(k);
            if is("scenario") {
                s.kind = match value {
                    "text" => Kind::Text,
                    "tools" => Kind::Tools,
                    "thinking" => Kind::Thinking,
                    "cached" => Kind::Cached,
                    "error-midstream" => Kind::ErrorMidstream,
                    "truncated" => Kind::Truncated,
                    other => return Err(ScenarioError::UnknownScenario(other.to_string())),
                };
            } else if is("status") {
                s.status = Some(status_code(value, "x-mock-status")?);
            } else if is("status-for-key") {
                by_key = Some(value);
            } else if is("retry-after") {
                s.retry_after = Some(num(value, "x-mock-retry-after")?);
            } else if is("reset-after") {
                s.reset_after = Some(num(value, "x-mock-reset-after")?);
            } else if is("delay-ms") {
                s.delay_ms = num::<u64>(value, "x-mock-delay-ms")?.min(MAX_DELAY_MS);
            } else if is("events") {
                s.events = num::<u32>(value, "x-mock-events")?.min(MAX_EVENTS);
            } else if is("garbage") {
                s.garbage = flag(value);
            } else if is("hang-up") {
                s.hang_up = Some(match value {
                    "close" => HangUp::Close,
                    "reset" => HangUp::Reset,
                    "mid-head" => HangUp::MidHead,
                    "after-answer" => HangUp::AfterAnswer,
                    _ => return Err(ScenarioError::BadValue("x-mock-hang-up")),
                });
            } else if is("stamp") {
                s.stamp = flag(value);
            } else if is("gzip") {
                s.gzip = flag(value);
            } else if is("body-file") {
                s.body_file = Some(value);
            } else if is("exception") {
                s.exception = value;
            }
        }
        if let Some(list) = by_key {
            for entry in list.split(',') {
                let Some((key, status)) = entry.trim().rsplit_once('=') else {
                    return Err(ScenarioError::BadValue("x-mock-status-for-key"));
                };
                let status = status_code(status, "x-mock-status-for-key")?;
                if credential == Some(key.trim()) {
                    s.status = Some(status);
                }
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(name in "x-mock-[a-z-]{0,16}|X-MOCK-.{0,8}|.{0,10}", value in ".{0,40}", cred in ".{0,8}") {
            let _ = Scenario::from_headers([(name.as_str(), value.as_str())].into_iter(), Some(&cred));
        }
    }

    fn parse(h: &[(&'static str, &'static str)], cred: Option<&str>) -> Result<Scenario<'static>, ScenarioError> {
        Scenario::from_headers(h.iter().copied(), cred)
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(parse(&[], None).unwrap(), Scenario::default());
        let s = parse(
            &[
                ("X-Mock-Scenario", "tools"),
                ("x-mock-events", "7"),
                ("x-mock-status", "429"),
                ("x-mock-retry-after", "3"),
            ],
            None,
        )
        .unwrap();
        assert_eq!((s.kind, s.events, s.status, s.retry_after), (Kind::Tools, 7, Some(429), Some(3)));
    }

    #[test]
    fn status_by_key_picks_the_received_credential() {
        let h = [("x-mock-status-for-key", "sk-a=401, sk-b=429")];
        assert_eq!(parse(&h, Some("sk-b")).unwrap().status, Some(429));
        assert_eq!(parse(&h, Some("sk-c")).unwrap().status, None);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(matches!(parse(&[("x-mock-scenario", "nope")], None), Err(ScenarioError::UnknownScenario(_))));
        assert!(parse(&[("x-mock-status", "abc")], None).is_err());
        assert!(parse(&[("x-mock-status", "42")], None).is_err());
        assert_eq!(parse(&[("x-mock-hang-up", "mid-head")], None).unwrap().hang_up, Some(HangUp::MidHead));
        assert_eq!(parse(&[("x-mock-hang-up", "later")], None), Err(ScenarioError::BadValue("x-mock-hang-up")));
        assert_eq!(parse(&[("x-mock-events", "999999999")], None).unwrap().events, MAX_EVENTS);
    }
}
