//! Client detection for `interception_start.client` and `client_session_id`: which coding agent sent a
//! request, from its User-Agent and the headers each agent is known to send, and its session id from
//! where that agent puts it (a header, or for Claude Code the body's `metadata.user_id`, which the
//! request inspector hands over). Pure: no I/O; reads no request body itself.

/// The detected client and the session id it sent, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientInfo {
    /// `claude-code`, `codex`, `copilot`, `cursor`, `zed`, `kilo`, `roo`, `cline`, `opencode`, `mux`,
    /// `coder-agents`, `crush`, `junie` or `unknown`.
    pub(crate) name: &'static str,
    /// The client's own session/conversation id, when it sends one (trimmed, bounded).
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
    ("opencode-ai", "opencode"),
    // Charm Crush: `Charm-Crush/0.7.0`; JetBrains Junie: `Junie/…` (also inside JetBrains IDE agents).
    ("charm-crush", "crush"),
    ("crush/", "crush"),
    ("junie", "junie"),
];

/// Identifies the client and its session. `header` looks a request header up by name,
/// case-insensitively; `metadata_user_id` is the request body's Anthropic `metadata.user_id` (from the
/// inspection), where Claude Code names its session when it sends no session header.
pub(crate) fn detect_client(
    user_agent: Option<&str>,
    header: &dyn Fn(&str) -> Option<String>,
    metadata_user_id: Option<&str>,
) -> ClientInfo {
    let name = detect_name(user_agent, header);
    let session_id = session_sources(name).iter().chain(GENERIC_SESSION_SOURCES).find_map(|source| {
        let id = match source {
            Source::Header(h) => header(h),
            Source::MetadataUserId => metadata_user_id.and_then(user_id_session),
        }?;
        let id = id.trim();
        (!id.is_empty() && id.len() <= MAX_SESSION_ID_LEN && !id.chars().any(char::is_control)).then(|| id.to_owned())
    });
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
    if header("x-mux-workspace-id").is_some() {
        return "mux";
    }
    if header("x-coder-chat-id").is_some() {
        return "coder-agents";
    }
    if header("x-kilocode-taskid").is_some() {
        return "kilo";
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

/// Where a client puts its session id.
enum Source {
    /// A request header (looked up case-insensitively).
    Header(&'static str),
    /// Anthropic `metadata.user_id`: see [`user_id_session`].
    MetadataUserId,
}

/// Where a given client puts its session id, most specific first; the first one present and sane wins.
fn session_sources(name: &str) -> &'static [Source] {
    use Source::*;
    match name {
        "claude-code" => &[Header("x-claude-code-session-id"), MetadataUserId],
        // Codex sends `session_id`; 0.17x sends `session-id` and `thread-id` (hyphenated) instead. Some
        // versions send `conversation_id` with the same UUID.
        "codex" => &[Header("session_id"), Header("session-id"), Header("thread-id"), Header("conversation_id")],
        "copilot" => &[Header("x-interaction-id"), Header("x-client-session-id"), Header("vscode-sessionid")],
        "kilo" => &[Header("x-kilocode-taskid")],
        "mux" => &[Header("x-mux-workspace-id")],
        "coder-agents" => &[Header("x-coder-chat-id")],
        _ => &[],
    }
}

/// Session headers tried for every client after its own.
const GENERIC_SESSION_SOURCES: &[Source] =
    &[Source::Header("x-session-id"), Source::Header("session_id"), Source::Header("x-claude-code-session-id")];

/// The session id in Claude Code's `metadata.user_id`. Current versions send a JSON object as that string,
/// `{"device_id":…,"account_uuid":…,"session_id":…}`; older ones `user_<hash>_account_<uuid>_session_<uuid>`.
fn user_id_session(user_id: &str) -> Option<String> {
    /// The one member read; others are ignored, a non-string `session_id` reads as none.
    #[derive(serde::Deserialize)]
    struct Ids {
        session_id: Option<String>,
    }
    if user_id.trim_start().starts_with('{') {
        return serde_json::from_str::<Ids>(user_id).ok()?.session_id;
    }
    let (_, id) = user_id.rsplit_once("_session_")?;
    (id.len() == UUID_LEN && uuid::Uuid::try_parse(id).is_ok()).then(|| id.to_owned())
}

/// Length of a hyphenated UUID, the only form the legacy `_session_` suffix takes.
const UUID_LEN: usize = 36;

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(ua: Option<&str>, headers: &[(&str, &str)]) -> ClientInfo {
        detect_with(ua, headers, None)
    }

    fn detect_with(ua: Option<&str>, headers: &[(&str, &str)], user_id: Option<&str>) -> ClientInfo {
        let lookup =
            |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| (*v).to_owned());
        detect_client(ua, &lookup, user_id)
    }

    fn session(ua: &str, headers: &[(&str, &str)]) -> Option<String> {
        detect(Some(ua), headers).session_id
    }

    const CLAUDE: &str = "claude-cli/2.0.14 (external, cli)";
    const CODEX: &str = "codex_cli_rs/0.47.0 (Mac OS 15.6.1; arm64) ghostty/1.2.0";
    const JSON_USER_ID: &str =
        r#"{"device_id":"5f0c3b1e","account_uuid":"","session_id":"0199e3a4-7b2c-7d41-9f3e-5a6b7c8d9e0f"}"#;
    const LEGACY_USER_ID: &str = "user_5f0c3b1e_account__session_3a1f6c2e-8b4d-4e9a-b7c1-2d5e8f0a3b6c";

    /// Claude Code: its header, else the JSON `session_id` of `metadata.user_id`, else the legacy
    /// `_session_<uuid>` suffix.
    #[test]
    fn claude_code_session_sources_in_order() {
        let header = [("X-Claude-Code-Session-Id", "hdr-1")];
        assert_eq!(detect_with(Some(CLAUDE), &header, Some(JSON_USER_ID)).session_id.as_deref(), Some("hdr-1"));
        let from_json = detect_with(Some(CLAUDE), &[], Some(JSON_USER_ID));
        assert_eq!(from_json.session_id.as_deref(), Some("0199e3a4-7b2c-7d41-9f3e-5a6b7c8d9e0f"));
        let legacy = detect_with(Some(CLAUDE), &[], Some(LEGACY_USER_ID));
        assert_eq!(legacy.session_id.as_deref(), Some("3a1f6c2e-8b4d-4e9a-b7c1-2d5e8f0a3b6c"));
        // A header that is not a usable id does not hide the body's.
        let bad = [("X-Claude-Code-Session-Id", "  ")];
        assert!(detect_with(Some(CLAUDE), &bad, Some(LEGACY_USER_ID)).session_id.is_some());
        // What is not one of the two shapes names no session.
        for user_id in [
            "user_5f0c3b1e_account__session_not-a-uuid",
            "user_5f0c3b1e_account_3a1f6c2e-8b4d-4e9a-b7c1-2d5e8f0a3b6c",
            "3a1f6c2e-8b4d-4e9a-b7c1-2d5e8f0a3b6c",
            r#"{"device_id":"d","session_id":42}"#,
            r#"{"session_id":"a","session_id":"b"}"#,
            r#"{"device_id":"d"}"#,
            r#"{"session_id":"#,
            r#"{"session_id":"xy"}"#,
            "",
        ] {
            assert_eq!(detect_with(Some(CLAUDE), &[], Some(user_id)).session_id, None, "{user_id}");
        }
        // Only Claude Code puts its session in `metadata.user_id`; other clients' user ids are theirs.
        assert_eq!(detect_with(Some("curl/8.0"), &[], Some(JSON_USER_ID)).session_id, None);
    }

    /// Codex: `session_id`, then 0.17x's hyphenated `session-id` and `thread-id`, then `conversation_id`.
    #[test]
    fn codex_session_sources_in_order() {
        assert_eq!(session(CODEX, &[("session-id", "s-hy"), ("session_id", "s-us")]).as_deref(), Some("s-us"));
        assert_eq!(session(CODEX, &[("thread-id", "t-1"), ("session-id", "s-hy")]).as_deref(), Some("s-hy"));
        assert_eq!(session(CODEX, &[("conversation_id", "c-1"), ("thread-id", "t-1")]).as_deref(), Some("t-1"));
        assert_eq!(session(CODEX, &[("conversation_id", "c-1")]).as_deref(), Some("c-1"));
        // Behind a generic User-Agent, the `originator` header names Codex.
        let c = detect(Some("reqwest"), &[("originator", "codex_cli_rs"), ("Session-Id", "s-hy")]);
        assert_eq!(c, ClientInfo { name: "codex", session_id: Some("s-hy".into()) });
    }

    #[test]
    fn copilot_kilo_mux_and_coder_agents_sessions() {
        let copilot = "GitHubCopilotChat/0.31.2";
        let all = [("vscode-sessionid", "vs-1"), ("X-Client-Session-Id", "cs-1"), ("X-Interaction-Id", "ia-1")];
        assert_eq!(session(copilot, &all).as_deref(), Some("ia-1"));
        assert_eq!(session(copilot, &all[..2]).as_deref(), Some("cs-1"));
        assert_eq!(session(copilot, &all[..1]).as_deref(), Some("vs-1"));
        assert_eq!(session("Kilo-Code/4.90.0", &[("X-KILOCODE-TASKID", "task-7")]).as_deref(), Some("task-7"));
        // Mux, Coder Agents and Kilo are named by their headers behind an SDK's User-Agent.
        let c = detect(Some("ai-sdk/5.0.0"), &[("X-Mux-Workspace-Id", "ws-3")]);
        assert_eq!(c, ClientInfo { name: "mux", session_id: Some("ws-3".into()) });
        let c = detect(Some("Go-http-client/1.1"), &[("X-Coder-Chat-Id", "chat-9")]);
        assert_eq!(c, ClientInfo { name: "coder-agents", session_id: Some("chat-9".into()) });
        let c = detect(Some("OpenAI/JS 5.10.1"), &[("X-KiloCode-TaskId", "task-8")]);
        assert_eq!(c, ClientInfo { name: "kilo", session_id: Some("task-8".into()) });
        // Another client's header is not read as this client's session.
        assert_eq!(session("Cline/3.17.0", &[("X-Interaction-Id", "ia-1")]), None);
        // The generic headers still apply to every client.
        assert_eq!(session("Cline/3.17.0", &[("X-Session-Id", "g-1")]).as_deref(), Some("g-1"));
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
        assert_eq!(detect(Some("opencode/0.15.2 ai-sdk/5.0"), &[]).name, "opencode");
        assert_eq!(detect(Some("Charm-Crush/0.7.1"), &[]).name, "crush");
        assert_eq!(detect(Some("crush/0.10.0 (linux)"), &[]).name, "crush");
        assert_eq!(detect(Some("Junie/252.1 (JetBrains)"), &[]).name, "junie");
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
