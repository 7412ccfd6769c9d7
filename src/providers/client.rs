//! Client detection for `interception_start.client` and `client_session_id`: which coding agent sent a
//! request, from its User-Agent and the headers each agent is known to send. Pure: no I/O.

/// The detected client and the session id it sent, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientInfo {
    /// `claude-code`, `codex`, `copilot`, `cursor`, `zed`, `kilo`, `roo`, `cline`, `opencode` or `unknown`.
    pub(crate) name: &'static str,
    /// The client's own session/conversation id header, when it sends one (trimmed, bounded).
    pub(crate) session_id: Option<String>,
}

/// Longest session id kept; a client-supplied header is untrusted and lands in every record.
const MAX_SESSION_ID_LEN: usize = 256;

/// User-Agent markers, lower-cased, checked in order. Forks come before what they forked (Kilo Code is
/// built on Roo Code, itself built on Cline), so the most specific marker wins.
const UA_MARKERS: &[(&str, &str)] = &[
    // Claude Code API calls: `claude-cli/2.0.0 (external, cli)`; some builds `claude-code/2.1.45`.
    ("claude-cli/", "claude-code"),
    ("claude-code/", "claude-code"),
    // Codex: `codex_cli_rs/0.38.0 (…)`, also `codex_exec/…`, `codex_vscode/…` originators.
    ("codex_", "codex"),
    ("codex-", "codex"),
    ("githubcopilotchat/", "copilot"),
    ("copilot", "copilot"),
    ("kilo-code", "kilo"),
    ("kilocode", "kilo"),
    ("roocode", "roo"),
    ("roo-code", "roo"),
    ("cline/", "cline"),
    ("cursor", "cursor"),
    ("zed/", "zed"),
    ("opencode/", "opencode"),
];

/// Identifies the client. `header` looks a request header up by name, case-insensitively.
pub(crate) fn detect_client(user_agent: Option<&str>, header: &dyn Fn(&str) -> Option<String>) -> ClientInfo {
    let name = detect_name(user_agent, header);
    let session_id = session_header(name)
        .iter()
        .chain(GENERIC_SESSION_HEADERS)
        .find_map(|h| header(h))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.len() <= MAX_SESSION_ID_LEN && !s.chars().any(char::is_control));
    ClientInfo { name, session_id }
}

fn detect_name(user_agent: Option<&str>, header: &dyn Fn(&str) -> Option<String>) -> &'static str {
    if let Some(ua) = user_agent {
        let ua = ua.to_ascii_lowercase();
        if let Some((_, name)) = UA_MARKERS.iter().find(|(m, _)| ua.contains(m)) {
            return name;
        }
    }
    // Headers that name the client even behind a generic SDK User-Agent.
    if header("x-claude-code-session-id").is_some() {
        return "claude-code";
    }
    if let Some(o) = header("originator") {
        if o.to_ascii_lowercase().starts_with("codex") {
            return "codex";
        }
    }
    if header("copilot-integration-id").is_some() {
        return "copilot";
    }
    // OpenRouter-style attribution headers sent by the VS Code agents.
    if let Some(title) = header("x-title") {
        let t = title.to_ascii_lowercase();
        for (marker, name) in [("kilo", "kilo"), ("roo", "roo"), ("cline", "cline")] {
            if t.contains(marker) {
                return name;
            }
        }
    }
    "unknown"
}

/// The session header a given client sends.
fn session_header(name: &str) -> &'static [&'static str] {
    match name {
        "claude-code" => &["x-claude-code-session-id"],
        // Codex sends `session_id` (and `conversation_id` with the same UUID in some versions).
        "codex" => &["session_id", "conversation_id"],
        "copilot" => &["vscode-sessionid"],
        _ => &[],
    }
}

/// Session headers tried for every client after its own.
const GENERIC_SESSION_HEADERS: &[&str] = &["x-session-id", "session_id", "x-claude-code-session-id"];

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(ua: Option<&str>, headers: &[(&str, &str)]) -> ClientInfo {
        let lookup =
            |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| (*v).to_owned());
        detect_client(ua, &lookup)
    }

    #[test]
    fn known_clients() {
        let c = detect(Some("claude-cli/2.0.0 (external, cli)"), &[("X-Claude-Code-Session-Id", "abc")]);
        assert_eq!(c, ClientInfo { name: "claude-code", session_id: Some("abc".into()) });
        let c = detect(
            Some("codex_cli_rs/0.38.0 (Ubuntu 24.04.2 LTS; x86_64) WindowsTerminal"),
            &[("session_id", "8f1f0b18"), ("originator", "codex_cli_rs")],
        );
        assert_eq!(c, ClientInfo { name: "codex", session_id: Some("8f1f0b18".into()) });
        assert_eq!(detect(Some("GitHubCopilotChat/0.26.7"), &[]).name, "copilot");
        assert_eq!(detect(Some("node"), &[("Copilot-Integration-Id", "vscode-chat")]).name, "copilot");
        assert_eq!(detect(Some("Kilo-Code/4.1.0"), &[]).name, "kilo");
        assert_eq!(detect(Some("RooCode/3.20"), &[]).name, "roo");
        assert_eq!(detect(Some("Cline/3.17.0"), &[]).name, "cline");
        assert_eq!(detect(Some("Zed/0.190.5 (macos; aarch64)"), &[]).name, "zed");
        assert_eq!(detect(Some("Cursor/1.0"), &[]).name, "cursor");
        assert_eq!(detect(Some("OpenAI/Python 1.2"), &[("X-Title", "Roo Code")]).name, "roo");
        assert_eq!(detect(Some("curl/8.0"), &[]), ClientInfo { name: "unknown", session_id: None });
        assert_eq!(detect(None, &[("x-claude-code-session-id", "s")]).name, "claude-code");
    }

    #[test]
    fn hostile_session_ids_are_dropped() {
        let long = "x".repeat(MAX_SESSION_ID_LEN + 1);
        assert_eq!(detect(Some("claude-cli/2"), &[("x-claude-code-session-id", &long)]).session_id, None);
        assert_eq!(detect(Some("claude-cli/2"), &[("x-claude-code-session-id", "a\u{7}b")]).session_id, None);
    }
}
