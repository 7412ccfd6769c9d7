//! The `/metrics` listener: a plain `std::net` socket on its own thread (`aibridged-metrics`), never on a
//! worker. Each connection gets a short-lived thread, at most [`MAX_CONNECTIONS`] at once (a scraper needs
//! one; more are refused by closing), with read and write deadlines so a stalled peer cannot pin one.
//! One request per connection: `GET`/`HEAD /metrics` → 200 with the exposition text, other paths → 404,
//! other methods → 405.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::exposition::CONTENT_TYPE;
use super::Metrics;

/// Scrape connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 8;
/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Read and write deadline per connection.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `address` (so a bad or taken address is a start-up error) and serves it on its own thread.
/// Returns the bound address.
pub(crate) fn spawn(address: &str, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address)?;
    let bound = listener.local_addr()?;
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name("aibridged-metrics".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                active.fetch_sub(1, Ordering::AcqRel);
                drop(conn);
                continue;
            }
            let (metrics, slot) = (metrics.clone(), active.clone());
            let spawned = std::thread::Builder::new().name("aibridged-scrape".into()).spawn(move || {
                serve(conn, &metrics);
                slot.fetch_sub(1, Ordering::AcqRel);
            });
            if spawned.is_err() {
                // The thread never ran, so it never gave its slot back.
                active.fetch_sub(1, Ordering::AcqRel);
            }
        }
    })?;
    Ok(bound)
}

fn serve(mut conn: TcpStream, metrics: &Metrics) {
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    let Some((method, path)) = read_request(&mut conn) else {
        let _ = conn.write_all(&answer(400, "text/plain", b"bad request\n", true));
        return;
    };
    let head_only = method == "HEAD";
    let reply = match (method.as_str(), path.split('?').next().unwrap_or("")) {
        ("GET" | "HEAD", "/metrics") => {
            let body = metrics.render();
            answer(200, CONTENT_TYPE, body.as_bytes(), !head_only)
        }
        ("GET" | "HEAD", _) => answer(404, "text/plain", b"not found: try /metrics\n", !head_only),
        _ => answer(405, "text/plain", b"method not allowed\n", true),
    };
    let _ = conn.write_all(&reply);
    let _ = conn.flush();
}

/// Reads one request head; `(method, target)`.
fn read_request(conn: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => return Some((req.method?.to_string(), req.path?.to_string())),
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            _ => return None,
        }
    }
}

/// A whole HTTP/1.1 answer that closes the connection; `with_body: false` answers `HEAD` (the length of
/// the body it would have sent, no body).
fn answer(status: u16, content_type: &str, body: &[u8], with_body: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    out
}
