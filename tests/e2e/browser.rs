//! The web page in a real headless Chromium driven over WebDriver (chromedriver): sign in, see the session
//! recorded moments earlier through the gateway, open it, see the tool call and the reasoning, see the
//! usage chart drawn, and a user who cannot see another user's session. Screenshots go to
//! `target/test-artifacts/`. Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them);
//! without them this test fails and says so.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aibridged::mock::MockUpstream;
use base64::Engine;
use serde_json::{json, Value};

use crate::sessions::claude_code_conversation;
use crate::support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The machine is loaded: page loads and renders get generous bounds.
const WAIT: Duration = Duration::from_secs(30);
const ALICE_SESSION: &str = "6f1c2a9e-3b4d-4c5e-8f70-1a2b3c4d5e6f";
const BOB_SESSION: &str = "7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    addr: SocketAddr,
    _profile: ScratchDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver call: `method path` with a JSON body, answered with the `value` member.
fn wd(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(addr).expect("connect to chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    // Read the head, then exactly the body its length names (chromedriver may keep the connection open).
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let body = loop {
        let n = s.read(&mut buf).expect("read chromedriver answer");
        assert!(n > 0, "{method} {path}: chromedriver closed the connection early");
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = find(&raw, b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        if head.contains("transfer-encoding: chunked") {
            if find(&raw[end..], b"\r\n0\r\n\r\n").is_some() {
                break dechunk(&String::from_utf8_lossy(&raw[end + 4..]));
            }
            continue;
        }
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if raw.len() >= end + 4 + len {
            break String::from_utf8_lossy(&raw[end + 4..end + 4 + len]).into_owned();
        }
    };
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"));
    if let Some(err) = v["value"].get("error") {
        panic!("{method} {path}: WebDriver error {err}: {}", v["value"]["message"]);
    }
    v["value"].clone()
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts chromedriver, or fails saying what to install.
fn start_driver() -> Driver {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: the browser tests need Debian's chromium and chromium-driver \
             (apt-get install -y chromium chromium-driver; .ci/run does this){}",
            if std::env::var_os("CI").is_some() { " [CI]" } else { "" }
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let driver = Driver { child, addr, _profile: ScratchDir::new("chromium-profile") };
    wait_until("chromedriver answers", WAIT, || {
        TcpStream::connect(addr).is_ok() && wd(addr, "GET", "/status", None)["ready"] == true
    });
    driver
}

/// A browser session of one chromedriver.
struct Browser<'a> {
    driver: &'a Driver,
    id: String,
}

impl<'a> Browser<'a> {
    fn open(driver: &'a Driver) -> Browser<'a> {
        let profile = driver._profile.0.join(format!("p{}", free_port()));
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,800",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let v = wd(driver.addr, "POST", "/session", Some(caps));
        Browser { driver, id: v["sessionId"].as_str().expect("a WebDriver session").to_string() }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        wd(self.driver.addr, method, &format!("/session/{}{path}", self.id), body)
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    fn js(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    /// Waits (bounded) until `script` returns true; the page's text is in the failure message.
    fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + WAIT;
        while self.js(script) != json!(true) {
            if Instant::now() > deadline {
                let text = self.js("return document.body.innerText");
                self.screenshot(&format!("failed-{}", what.replace(' ', "-")));
                panic!("the page did not show {what} within {WAIT:?}; it shows:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn element(&self, css: &str) -> String {
        let v = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("an element").to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.call("POST", &format!("/element/{e}/value"), Some(json!({"text": text})));
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &bytes).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        path
    }

    fn sign_in(&self, base: &str, token: &str) {
        self.go(&format!("{base}/ui/#/login"));
        self.wait_for("the sign-in form", "return !!document.getElementById('token-input')");
        self.type_into("#token-input", token);
        self.click("#sign-in");
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.call("DELETE", "", None));
    }
}

#[test]
fn the_page_shows_sessions_threads_tool_calls_and_usage_to_their_owner_only() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start_on(&mock.base_url(), ("sk-openai-0123456789", "sk-ant-0123456789"), &[]);
    let base = format!("http://{}", gw.admin_addr.expect("the sessions API listens"));
    let alice = gw.token("alice");
    let bob = gw.token("bob");
    let call = claude_code_conversation(&gw, &alice, ALICE_SESSION);
    claude_code_conversation(&gw, &bob, BOB_SESSION);

    let driver = start_driver();
    let browser = Browser::open(&driver);

    // A wrong token is refused on the page.
    browser.sign_in(&base, "aibr_000000000000_000000000000000000000000000000000000000000000000");
    browser.wait_for("the refusal", "return document.getElementById('login-status').textContent.includes('not valid')");

    browser.sign_in(&base, &alice);
    browser.wait_for("the sessions table", "return document.querySelectorAll('#sessions-table tbody tr').length > 0");
    let rows =
        browser.js("return [...document.querySelectorAll('#sessions-table tbody tr')].map(r => r.dataset.sessionId)");
    assert_eq!(rows, json!([ALICE_SESSION]), "alice sees her session only");
    let row_text = browser.js("return document.querySelector('#sessions-table tbody tr').innerText");
    assert!(row_text.as_str().unwrap().contains("And what time is it there?"), "{row_text}");
    browser.screenshot("sessions-list");

    browser.click("a.session-link");
    browser.wait_for("the session's threads", "return document.querySelectorAll('.thread').length === 2");
    let tool = browser.js("return document.querySelector('.tool-call').innerText");
    let tool = tool.as_str().unwrap();
    assert!(tool.contains("get_weather") && tool.contains(&call) && tool.contains("\"city\":\"Paris\""), "{tool}");
    let thinking = browser.js("return document.querySelector('.thinking').innerText");
    assert_eq!(thinking, "Let me check the weather in Paris.");
    let steps = browser.js("return document.querySelectorAll('.thread')[0].querySelectorAll('.step').length");
    assert_eq!(steps, 2);
    let prompt = browser.js("return document.querySelector('.thread .prompt-text').innerText");
    assert_eq!(prompt, "What is the weather in Paris?");
    browser.screenshot("session-detail");

    browser.go(&format!("{base}/ui/#/usage"));
    browser.wait_for(
        "the usage chart",
        "return [...document.querySelectorAll('#chart-by-model rect.bar')].some(r => Number(r.dataset.value) > 0)",
    );
    let users =
        browser.js("return [...document.querySelectorAll('#top-users tbody tr td:first-child')].map(t => t.innerText)");
    assert_eq!(users, json!(["alice"]));
    browser.screenshot("usage");

    // Bob, in a fresh sign-in, sees his own session and not alice's, not even by its address.
    browser.click("#sign-out");
    browser.sign_in(&base, &bob);
    browser.wait_for("bob's sessions", "return document.querySelectorAll('#sessions-table tbody tr').length > 0");
    let rows =
        browser.js("return [...document.querySelectorAll('#sessions-table tbody tr')].map(r => r.dataset.sessionId)");
    assert_eq!(rows, json!([BOB_SESSION]));
    browser.go(&format!("{base}/ui/#/session/{ALICE_SESSION}"));
    browser.wait_for("the refusal", "return !!document.getElementById('error')");
    let text = browser.js("return document.body.innerText");
    let text = text.as_str().unwrap();
    assert!(text.contains("You may not see this.") && !text.contains("Paris"), "{text}");
    browser.screenshot("forbidden");
}
