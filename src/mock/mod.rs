//! A mock upstream speaking the providers' exact wire formats (OpenAI Chat Completions and Responses,
//! Anthropic Messages, AWS Bedrock runtime), for end-to-end tests and as the benchmarks' baseline server.
//! Plain std threads and blocking sockets, one thread per connection; never linked into the gateway's
//! request path. Scenarios are chosen per request by `x-mock-*` headers (see `scenario`).

mod anthropic;
pub(crate) mod bedrock;
mod conn;
mod content;
mod emit;
mod http;
mod openai;
mod route;
pub(crate) mod scenario;

pub use bedrock::{decode_frame, AwsCredentials, Frame, FrameError};
pub use emit::monotonic_ns;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Stack of a connection thread: the handlers keep their buffers on the heap, and load tests open
/// thousands of connections, so the 2 MiB default would only waste address space. `x-mock-gzip`'s
/// encoder (miniz_oxide) builds its large state on the stack before boxing it, more than 256 KiB in
/// debug builds.
const CONN_STACK_BYTES: usize = 1024 * 1024;

/// One request the mock received, kept so tests can assert what the gateway sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// Which connection of the mock it came on (numbered from 1 in accept order), so tests can tell a
    /// reused upstream connection from a fresh one.
    pub connection: u64,
    /// The request method as received.
    pub method: String,
    /// The request target as received (path and query).
    pub path: String,
    /// Headers in received order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body after de-chunking.
    pub body: Vec<u8>,
    /// SigV4 verdict for Bedrock routes when the mock has AWS credentials; `None` otherwise.
    pub sigv4_valid: Option<bool>,
}

impl SeenRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "connection": self.connection,
            "method": self.method,
            "path": self.path,
            "headers": self.headers.iter().map(|(n, v)| [n, v]).collect::<Vec<_>>(),
            "body": String::from_utf8_lossy(&self.body),
            "sigv4_valid": self.sigv4_valid,
        })
    }
}

/// How a mock is started.
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Keep every request for `requests()`; turned off for load so memory stays flat.
    pub record: bool,
    /// Verify SigV4 signatures on Bedrock routes against these credentials.
    pub aws: Option<AwsCredentials>,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions { record: true, aws: None }
    }
}

/// State shared by the accept thread and the connection threads.
pub(crate) struct Shared {
    opts: MockOptions,
    seen: Mutex<Vec<SeenRequest>>,
    next_id: AtomicU64,
    stop: AtomicBool,
    /// A handle on each open connection so that Drop can shut them down.
    conns: Mutex<HashMap<u64, TcpStream>>,
    /// Connections the mock has closed (or reset) itself, counted after the close.
    closed: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not make the mock unusable for the others.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn record(&self, req: SeenRequest) {
        lock(&self.seen).push(req);
    }

    fn forget(&self, conn: u64) {
        lock(&self.conns).remove(&conn);
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Per-request inputs of the content renderers.
pub(crate) struct Ctx<'a> {
    pub(crate) model: &'a str,
    pub(crate) id: u64,
    pub(crate) created: u64,
    pub(crate) scenario: &'a scenario::Scenario<'a>,
    pub(crate) plan: content::Plan,
    pub(crate) include_usage: bool,
    pub(crate) bedrock: bool,
}

/// An in-process mock upstream server; stops accepting and shuts its connections down on Drop.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl MockUpstream {
    /// Starts a recording mock on 127.0.0.1 with an ephemeral port.
    pub fn start() -> std::io::Result<MockUpstream> {
        Self::start_with("127.0.0.1:0", MockOptions::default())
    }

    /// Starts a recording mock on `addr`.
    pub fn start_on(addr: &str) -> std::io::Result<MockUpstream> {
        Self::start_with(addr, MockOptions::default())
    }

    /// Starts a recording mock on 127.0.0.1:0 that verifies SigV4 on Bedrock routes.
    pub fn with_aws(access_key: &str, secret: &str, region: &str) -> std::io::Result<MockUpstream> {
        let aws = AwsCredentials {
            access_key: access_key.to_string(),
            secret: secret.to_string(),
            region: region.to_string(),
        };
        Self::start_with("127.0.0.1:0", MockOptions { record: true, aws: Some(aws) })
    }

    /// Starts a mock on `addr` with explicit options.
    pub fn start_with(addr: &str, opts: MockOptions) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            opts,
            seen: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            closed: AtomicU64::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("mock-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(MockUpstream { addr, shared, accept: Some(accept) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, to use as a provider base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received so far (empty when recording is off).
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.shared.seen).clone()
    }

    /// How many connections the mock has closed on its side so far: a test can wait on it to know that a
    /// connection the mock hung up on is closed before the next request.
    pub fn closed_connections(&self) -> u64 {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        lock(&self.shared.seen).clear();
    }

    /// Blocks the calling thread while the server runs (for the binary).
    pub fn wait(mut self) {
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a throwaway connection.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let _ = TcpStream::connect_timeout(&wake, std::time::Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for (_, s) in lock(&self.shared.conns).drain() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conn_id = 0u64;
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        conn_id += 1;
        if let Ok(handle) = stream.try_clone() {
            lock(&shared.conns).insert(conn_id, handle);
        }
        let conn_shared = Arc::clone(&shared);
        let id = conn_id;
        let spawned = std::thread::Builder::new()
            .name("mock-conn".into())
            .stack_size(CONN_STACK_BYTES)
            .spawn(move || conn::serve(stream, id, conn_shared));
        if spawned.is_err() {
            shared.forget(id);
        }
    }
}
