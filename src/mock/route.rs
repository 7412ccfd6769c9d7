//! What a received request is: a borrowed view of the connection buffer (method, target, headers,
//! credential) and which mock route and provider family it addresses. Pure: no I/O.

use super::http::Head;
use super::SeenRequest;
use std::borrow::Cow;

/// A received request, borrowing the connection buffer.
pub(crate) struct Req<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) head: &'a Head,
    pub(crate) body: &'a [u8],
}

impl<'a> Req<'a> {
    pub(crate) fn text(&self, r: &std::ops::Range<usize>) -> &'a str {
        std::str::from_utf8(&self.buf[r.clone()]).unwrap_or("")
    }
    pub(crate) fn method(&self) -> &'a str {
        self.text(&self.head.method)
    }
    pub(crate) fn target(&self) -> &'a str {
        self.text(&self.head.target)
    }
    pub(crate) fn path(&self) -> &'a str {
        let t = self.target();
        t.split_once('?').map_or(t, |(p, _)| p)
    }
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.head.headers.iter().map(|(n, v)| (self.text(n), self.text(v)))
    }
    pub(crate) fn header(&self, name: &str) -> Option<&'a str> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }
    /// The credential the client sent: a Bearer token, else x-api-key.
    pub(crate) fn credential(&self) -> Option<&'a str> {
        self.header("authorization")
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .or_else(|| self.header("x-api-key").map(str::trim))
    }
    pub(crate) fn wants_close(&self) -> bool {
        match self.header("connection") {
            Some(v) if v.eq_ignore_ascii_case("close") => true,
            Some(v) if v.eq_ignore_ascii_case("keep-alive") => false,
            _ => self.head.minor == 0,
        }
    }
    pub(crate) fn to_seen(&self, connection: u64, sigv4_valid: Option<bool>) -> SeenRequest {
        SeenRequest {
            connection,
            method: self.method().to_string(),
            path: self.target().to_string(),
            headers: self.headers().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: self.body.to_vec(),
            sigv4_valid,
        }
    }
}

/// Whose error shape a route answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    OpenAi,
    Anthropic,
    Bedrock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Chat,
    Responses,
    Messages,
    CountTokens,
    Models(Family),
    Bedrock { model: &'a str, stream: bool },
    Unknown,
}

impl Route<'_> {
    pub(crate) fn family(&self) -> Family {
        match self {
            Route::Messages | Route::CountTokens => Family::Anthropic,
            Route::Models(f) => *f,
            Route::Bedrock { .. } => Family::Bedrock,
            Route::Chat | Route::Responses | Route::Unknown => Family::OpenAi,
        }
    }
}

pub(crate) fn route<'a>(req: &Req<'a>) -> Route<'a> {
    // Matched on the path alone (any method, any base prefix) so that a status scenario answers in the
    // right family's shape even for an odd method.
    let path = req.path();
    if let Some(i) = path.find("/model/") {
        let rest = &path[i + "/model/".len()..];
        if let Some((model, action)) = rest.rsplit_once('/') {
            match action {
                "invoke" => return Route::Bedrock { model, stream: false },
                "invoke-with-response-stream" => return Route::Bedrock { model, stream: true },
                _ => {}
            }
        }
    }
    if path.ends_with("/messages/count_tokens") {
        Route::CountTokens
    } else if path.ends_with("/messages") {
        Route::Messages
    } else if path.ends_with("/chat/completions") {
        Route::Chat
    } else if path.ends_with("/responses") {
        Route::Responses
    } else if path.ends_with("/models") {
        let anthropic = req.header("anthropic-version").is_some() || req.header("x-api-key").is_some();
        Route::Models(if anthropic { Family::Anthropic } else { Family::OpenAi })
    } else {
        Route::Unknown
    }
}

/// Decodes `%XX` escapes (Bedrock model ids arrive with `:` as `%3A`).
pub(crate) fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex =
            b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_of(method: &str, target: &str, extra: &str) -> String {
        let raw = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        let mut head = Head::default();
        assert_eq!(crate::mock::http::parse_head(raw.as_bytes(), &mut head), Ok(true));
        let req = Req { buf: raw.as_bytes(), head: &head, body: &[] };
        format!("{:?}", route(&req))
    }

    #[test]
    fn routes_match_on_path_suffix_under_any_prefix() {
        assert_eq!(route_of("POST", "/v1/chat/completions", ""), "Chat");
        assert_eq!(route_of("POST", "/proxy/openai/v1/chat/completions?x=1", ""), "Chat");
        assert_eq!(route_of("POST", "/chat/completions", ""), "Chat");
        assert_eq!(route_of("POST", "/v1/responses", ""), "Responses");
        assert_eq!(route_of("POST", "/a/v1/messages", ""), "Messages");
        assert_eq!(route_of("POST", "/v1/messages/count_tokens", ""), "CountTokens");
        assert_eq!(route_of("GET", "/v1/models", "anthropic-version: 1\r\n"), "Models(Anthropic)");
        assert_eq!(route_of("GET", "/v1/models", ""), "Models(OpenAi)");
        assert_eq!(
            route_of("POST", "/model/m%3A0/invoke-with-response-stream", ""),
            "Bedrock { model: \"m%3A0\", stream: true }"
        );
        assert_eq!(route_of("POST", "/model/m/invoke", ""), "Bedrock { model: \"m\", stream: false }");
        assert_eq!(route_of("POST", "/v1/other", ""), "Unknown");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("anthropic.claude-v1%3A0"), "anthropic.claude-v1:0");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
    }
}
