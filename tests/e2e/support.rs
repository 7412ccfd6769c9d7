//! Test support: a real gateway process on a loopback port, gateway tokens, a raw HTTP/1.1 client that
//! keeps the exact wire bytes, and reading records back from SQLite. Every wait is bounded.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_aibridged");
const START_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a new token may take to become visible to the gateway (its cache reloads every 250 ms).
const TOKEN_VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often [`Gateway::wait_until_accepted`] asks again.
const PROBE_INTERVAL: Duration = Duration::from_millis(5);
/// A request body no inspector can read: a token probe is refused at inspection, after authentication.
const PROBE_BODY: &[u8] = b"not json";

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory removed on drop.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> ScratchDir {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("aibridged-e2e-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        ScratchDir(p)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `aibridged server` child process.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub db: PathBuf,
    pub dir: ScratchDir,
    pub log_lines: mpsc::Receiver<String>,
    /// An intercepted route of one of the gateway's providers, to probe tokens on; `None` when the gateway
    /// is disabled or has no provider (authentication cannot be observed there).
    pub probe_path: Option<String>,
    /// The log lines printed before the gateway listened (start-up announcements).
    pub startup_log: Vec<String>,
    /// Where the sessions API and web page listen (`None` when turned off).
    pub admin_addr: Option<SocketAddr>,
}

impl Gateway {
    /// Starts a gateway with two instances on one upstream `base` (`http://host:port`): `openai` (at
    /// `base/v1`, key `keys.0`) and `anthropic` (at `base`, key `keys.1`), plus the `extra` settings.
    pub fn start_on(base: &str, keys: (&str, &str), extra: &[(&str, &str)]) -> Gateway {
        let openai = format!("{base}/v1");
        let mut env = vec![
            ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
            ("CODER_AIBRIDGE_PROVIDER_0_KEY", keys.0),
            ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", openai.as_str()),
            ("CODER_AIBRIDGE_PROVIDER_1_TYPE", "anthropic"),
            ("CODER_AIBRIDGE_PROVIDER_1_KEY", keys.1),
            ("CODER_AIBRIDGE_PROVIDER_1_BASE_URL", base),
        ];
        env.extend_from_slice(extra);
        Gateway::start(&env)
    }

    /// Starts the gateway with `env` on top of a clean environment (no CODER_* from the caller's shell).
    pub fn start(env: &[(&str, &str)]) -> Gateway {
        let dir = ScratchDir::new("gw");
        let db = dir.0.join("aibridge.db");
        Self::start_in(dir, db, env)
    }

    pub fn start_in(dir: ScratchDir, db: PathBuf, env: &[(&str, &str)]) -> Gateway {
        Self::start_in_with_args(dir, db, &[], env)
    }

    /// [`Gateway::start`] with command-line flags after `server`.
    pub fn start_with_args(args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let dir = ScratchDir::new("gw");
        let db = dir.0.join("aibridge.db");
        Self::start_in_with_args(dir, db, args, env)
    }

    /// [`Gateway::start_in`] with command-line flags after `server`.
    pub fn start_in_with_args(dir: ScratchDir, db: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let mut cmd = Command::new(BIN);
        cmd.arg("server")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CODER_HTTP_ADDRESS", "127.0.0.1:0")
            .env("CODER_AIBRIDGE_DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("CODER_AIBRIDGE_WORKERS", "2")
            // The sessions API listens on a port of its own; tests run many gateways at once.
            .env("CODER_AIBRIDGE_ADMIN_ADDRESS", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn aibridged");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var("E2E_VERBOSE").is_ok() {
                    eprintln!("[gateway] {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(i) = line.find("listening on http://") {
                        let rest = &line[i + "listening on http://".len()..];
                        let addr: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
                        let addr: SocketAddr = addr.parse().expect("listen address in log");
                        let probe_path = if line.contains("enabled=false") { None } else { probe_path(&seen) };
                        let admin_addr = admin_addr(&seen);
                        return Gateway {
                            child,
                            addr,
                            db,
                            dir,
                            log_lines: rx,
                            probe_path,
                            startup_log: seen,
                            admin_addr,
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("gateway did not start within {START_TIMEOUT:?}; stderr so far:\n{}", seen.join("\n"));
                }
            }
        }
    }

    /// Starts the gateway with a token for each of `users` already in its database: they are in the
    /// snapshot the gateway loads before it listens, so they are usable at once. For gateways where
    /// [`Gateway::token`] cannot observe a token becoming known (a disabled gateway answers before
    /// authenticating).
    pub fn start_with_tokens(env: &[(&str, &str)], users: &[&str]) -> (Gateway, Vec<String>) {
        let dir = ScratchDir::new("gw");
        let db = dir.0.join("aibridge.db");
        let tokens = users.iter().map(|u| create_token(&db, u, None)).collect();
        (Self::start_in(dir, db, env), tokens)
    }

    /// Creates a gateway token for `user` with the CLI, as an operator would, and returns it once the
    /// gateway accepts it.
    pub fn token(&self, user: &str) -> String {
        let t = create_token(&self.db, user, None);
        self.wait_until_accepted(&t);
        t
    }

    /// Waits (bounded) until the gateway's token cache knows `token`.
    pub fn wait_until_accepted(&self, token: &str) {
        let deadline = Instant::now() + TOKEN_VISIBLE_TIMEOUT;
        let mut client = Client::connect(self.addr);
        while !self.accepts_on(&mut client, token) {
            assert!(
                Instant::now() < deadline,
                "the gateway did not accept a new token within {TOKEN_VISIBLE_TIMEOUT:?}"
            );
            std::thread::sleep(PROBE_INTERVAL);
        }
    }

    /// Whether the gateway accepts `token` now.
    pub fn accepts(&self, token: &str) -> bool {
        self.accepts_on(&mut Client::connect(self.addr), token)
    }

    /// Asks over `client` (reconnecting it when the gateway closed it) whether `token` passes
    /// authentication, without reaching an upstream or recording anything: the relay routes, then
    /// authenticates, then reads and inspects the body, so a body that is not JSON is refused with 400
    /// once the token is known and with 401 before. Key pools, the mock's request log and the records
    /// stay as they were.
    fn accepts_on(&self, client: &mut Client, token: &str) -> bool {
        let path = self.probe_path.as_deref().unwrap_or_else(|| {
            panic!("this gateway is disabled or has no provider: create tokens with Gateway::start_with_tokens")
        });
        let r = client.request("POST", path, &[("Authorization", &format!("Bearer {token}"))], PROBE_BODY);
        if !r.complete || r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            *client = Client::connect(self.addr);
        }
        match r.status {
            400 => true,
            401 => false,
            other => panic!("token probe on {path}: unexpected {other}: {}", r.text()),
        }
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Log lines printed so far.
    pub fn drain_log(&self) -> Vec<String> {
        self.log_lines.try_iter().collect()
    }

    /// Where the gateway serves `/metrics`, from its start-up log; `None` when metrics are off.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.startup_log.iter().find_map(|line| {
            let rest = &line[line.find("metrics on http://")? + "metrics on http://".len()..];
            rest.split('/').next()?.parse().ok()
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first intercepted route among the providers the gateway announced before listening
/// (`provider ready provider=NAME kind="KIND"` log lines).
fn probe_path(log: &[String]) -> Option<String> {
    log.iter().filter(|l| l.contains("provider ready")).find_map(|line| {
        let field = |key: &str| {
            line.split_whitespace().find_map(|w| w.strip_prefix(key)).map(|v| v.trim_matches('"').to_string())
        };
        let route = match field("kind=")?.as_str() {
            "openai" => "/v1/chat/completions",
            "anthropic" => "/v1/messages",
            "copilot" => "/chat/completions",
            _ => return None,
        };
        Some(format!("/api/v2/aibridge/{}{route}", field("provider=")?))
    })
}

/// The sessions API address from the start-up log line `sessions API and web page on http://ADDR/ui/`.
fn admin_addr(lines: &[String]) -> Option<SocketAddr> {
    const MARK: &str = "sessions API and web page on http://";
    lines.iter().find_map(|line| {
        let rest = &line[line.find(MARK)? + MARK.len()..];
        rest.split('/').next()?.parse().ok()
    })
}

/// Runs `aibridged tokens create --role ROLE` against `db` and returns the token printed on stdout.
pub fn create_token_with_role(db: &Path, user: &str, role: &str) -> String {
    let out = Command::new(BIN)
        .args(["tokens", "create", "--user", user, "--role", role])
        .env_clear()
        .env("CODER_AIBRIDGE_DATABASE_URL", format!("sqlite://{}", db.display()))
        .output()
        .expect("run tokens create");
    assert!(out.status.success(), "tokens create failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs `aibridged ARGS…` against `db` (a CLI command reading the database) and returns its stdout,
/// asserting it succeeded.
pub fn run_cli(db: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("CODER_AIBRIDGE_DATABASE_URL", format!("sqlite://{}", db.display()))
        .output()
        .expect("run aibridged");
    assert!(out.status.success(), "aibridged {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `aibridged tokens create` against `db` and returns the token printed on stdout.
pub fn create_token(db: &Path, user: &str, expires: Option<&str>) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(["tokens", "create", "--user", user])
        .env_clear()
        .env("CODER_AIBRIDGE_DATABASE_URL", format!("sqlite://{}", db.display()));
    if let Some(e) = expires {
        cmd.args(["--expires", e]);
    }
    let out = cmd.output().expect("run tokens create");
    assert!(out.status.success(), "tokens create failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A response read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body with its framing removed.
    pub body: Vec<u8>,
    /// The body bytes exactly as they came after the head (framing included).
    pub raw_body: Vec<u8>,
    /// False when the connection ended before the body was complete.
    pub complete: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// A keep-alive HTTP/1.1 client connection that returns exact bytes.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, buf: Vec::new() }
    }

    /// Sends a request with a Content-Length body (when `body` is not empty or the method is POST).
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).expect("write request");
    }

    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        self.send(method, path, headers, body);
        self.read_response()
    }

    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 16384];
        match self.stream.read(&mut tmp) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    /// Reads one response; panics if no head arrives.
    pub fn read_response(&mut self) -> Response {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill(),
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
            .collect();
        let get = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
        let mut resp =
            Response { status, headers: headers.clone(), body: Vec::new(), raw_body: Vec::new(), complete: true };
        if status == 204 || status == 304 || (100..200).contains(&status) {
            return resp;
        }
        if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                // chunk size line
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    if !self.fill() {
                        resp.raw_body.extend_from_slice(&self.buf);
                        self.buf.clear();
                        resp.complete = false;
                        return resp;
                    }
                };
                let size_str = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).expect("chunk size");
                let need = line_end + 2 + size + 2;
                while self.buf.len() < need {
                    if !self.fill() {
                        resp.raw_body.extend_from_slice(&self.buf);
                        self.buf.clear();
                        resp.complete = false;
                        return resp;
                    }
                }
                resp.raw_body.extend_from_slice(&self.buf[..need]);
                resp.body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..need);
                if size == 0 {
                    return resp;
                }
            }
        } else if let Some(len) = get("content-length") {
            let len: usize = len.parse().unwrap();
            while self.buf.len() < len {
                if !self.fill() {
                    resp.complete = false;
                    break;
                }
            }
            let take = len.min(self.buf.len());
            resp.body = self.buf[..take].to_vec();
            resp.raw_body = resp.body.clone();
            self.buf.drain(..take);
            resp
        } else {
            while self.fill() {}
            resp.body = std::mem::take(&mut self.buf);
            resp.raw_body = resp.body.clone();
            resp
        }
    }

    /// Reads until `needle` has arrived, keeping every byte for [`Client::read_response`]; false when the
    /// connection ended (or timed out) first. Lets a test act once a response has visibly started.
    pub fn read_until_seen(&mut self, needle: &[u8]) -> bool {
        while find(&self.buf, needle).is_none() {
            if !self.fill() {
                return false;
            }
        }
        true
    }

    /// The bytes received and not yet consumed by [`Client::read_response`].
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// True when the server closed the connection (reads EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        self.stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut tmp = [0u8; 1];
        matches!(self.stream.read(&mut tmp), Ok(0) | Err(_))
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One request on a fresh connection.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    Client::connect(addr).request(method, path, headers, body)
}

/// Opens the gateway's database read-only for assertions.
pub fn db(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open db");
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// Polls `cond` every few milliseconds until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `query` (returning one integer) until it equals `want` or 10 s pass; returns the last value.
pub fn wait_count(path: &Path, query: &str, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = -1;
    while Instant::now() < deadline {
        let c = db(path);
        last = c.query_row(query, [], |r| r.get(0)).unwrap_or(-1);
        if last == want {
            return last;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    last
}
