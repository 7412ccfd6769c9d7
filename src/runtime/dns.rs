//! DNS for upstream hosts: one background thread resolves the configured hosts and publishes the answers;
//! workers only read the published snapshot (lock-free) and never call the resolver themselves.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

/// Longest wait for one host's answer. `getaddrinfo` has no timeout of its own, so each lookup runs on a
/// short-lived thread and is abandoned (its thread finishes on its own) after this; an unreachable resolver
/// then delays start-up by at most this much, since all hosts are resolved in parallel.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers by host (ASCII-lowercased) then port.
type Table = HashMap<String, HashMap<u16, Vec<SocketAddr>>>;

struct Shared {
    table: ArcSwap<Table>,
    /// Dropped with the last `DnsCache`, which wakes the resolver thread so it exits promptly.
    _stop: Sender<()>,
}

/// The published DNS answers. Cheap to clone (one `Arc`); `lookup` never blocks and never resolves.
#[derive(Clone)]
pub struct DnsCache {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DnsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsCache").field("hosts", &self.shared.table.load().len()).finish()
    }
}

impl DnsCache {
    /// A cache with fixed answers and no resolver thread, for tests.
    #[cfg(test)]
    pub fn fixed(entries: impl IntoIterator<Item = ((String, u16), Vec<SocketAddr>)>) -> Self {
        let mut table = Table::new();
        for ((host, port), addrs) in entries {
            table.entry(host.to_ascii_lowercase()).or_default().insert(port, addrs);
        }
        Self::from_table(table).0
    }

    fn from_table(table: Table) -> (Self, Receiver<()>) {
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let shared = Arc::new(Shared { table: ArcSwap::from_pointee(table), _stop: stop });
        (Self { shared }, stopped)
    }

    /// The addresses for `host:port`. An IP literal (`10.0.0.1`, `::1` or `[::1]`) answers itself; a name
    /// answers from the last successful resolution, or `None` if it never resolved or was not configured.
    pub fn lookup(&self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        if let Some(ip) = ip_literal(host) {
            return Some(vec![SocketAddr::new(ip, port)]);
        }
        let table = self.shared.table.load();
        let by_port = match table.get(host) {
            Some(p) => p,
            // Configured names are stored lowercased; only a mixed-case query pays for lowercasing.
            None => table.get(&host.to_ascii_lowercase())?,
        };
        by_port.get(&port).filter(|a| !a.is_empty()).cloned()
    }
}

fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse().ok()
}

/// Resolves every configured upstream `(host, port)` once before returning (in parallel, each bounded by
/// `RESOLVE_TIMEOUT`), then re-resolves all of them every `refresh` on a background thread named
/// `dns-resolver`. A failed lookup keeps the previous answer and is logged. The thread exits once every
/// `DnsCache` clone is dropped. IP literals are skipped: `lookup` answers them directly.
pub fn spawn_resolver(hosts: Vec<(String, u16)>, refresh: Duration) -> (DnsCache, JoinHandle<()>) {
    spawn_resolver_with(hosts, refresh, RESOLVE_TIMEOUT, system_resolve)
}

/// The resolver function: blocking, may be slow or fail.
type ResolveFn = fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>;

fn system_resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

fn spawn_resolver_with(
    hosts: Vec<(String, u16)>,
    refresh: Duration,
    timeout: Duration,
    resolve: ResolveFn,
) -> (DnsCache, JoinHandle<()>) {
    let mut names: Vec<(String, u16)> =
        hosts.into_iter().filter(|(h, _)| ip_literal(h).is_none()).map(|(h, p)| (h.to_ascii_lowercase(), p)).collect();
    names.sort();
    names.dedup();

    let first = resolve_round(&names, &Table::new(), timeout, resolve);
    let (cache, stopped) = DnsCache::from_table(first);
    let weak: Weak<Shared> = Arc::downgrade(&cache.shared);
    let handle = std::thread::Builder::new()
        .name("dns-resolver".into())
        .spawn(move || refresh_loop(names, refresh, timeout, resolve, weak, stopped));
    match handle {
        Ok(handle) => (cache, handle),
        Err(e) => {
            // Without the thread the first answers simply never refresh; start-up must not fail for it.
            tracing::warn!(error = %e, "could not start the DNS refresh thread; answers will not refresh");
            (cache, std::thread::spawn(|| {}))
        }
    }
}

fn refresh_loop(
    names: Vec<(String, u16)>,
    refresh: Duration,
    timeout: Duration,
    resolve: ResolveFn,
    shared: Weak<Shared>,
    stopped: Receiver<()>,
) {
    loop {
        match stopped.recv_timeout(refresh) {
            Err(RecvTimeoutError::Timeout) => {}
            // Disconnected: every DnsCache is gone. (Nothing is ever sent.)
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let previous = shared.table.load_full();
        let next = resolve_round(&names, &previous, timeout, resolve);
        shared.table.store(Arc::new(next));
    }
}

/// One pass over all names, in parallel. Each name gets its fresh answer, or else its answer from
/// `previous` (absent if it never resolved).
fn resolve_round(names: &[(String, u16)], previous: &Table, timeout: Duration, resolve: ResolveFn) -> Table {
    let (tx, rx) = crossbeam_channel::unbounded();
    for (i, (host, port)) in names.iter().enumerate() {
        let (tx, host, port) = (tx.clone(), host.clone(), *port);
        let spawned = std::thread::Builder::new().name("dns-lookup".into()).spawn(move || {
            // The receiver may be gone after a timeout; the late answer is then simply dropped.
            let _ = tx.send((i, resolve(&host, port)));
        });
        if let Err(e) = spawned {
            tracing::warn!(host = %names[i].0, error = %e, "could not start a DNS lookup thread");
        }
    }
    drop(tx);

    let mut answers: Vec<Option<std::io::Result<Vec<SocketAddr>>>> = names.iter().map(|_| None).collect();
    let deadline = Instant::now() + timeout;
    while answers.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, r)) => {
                if let Some(slot) = answers.get_mut(i) {
                    *slot = Some(r);
                }
            }
            Err(_) => break,
        }
    }

    let mut table = Table::new();
    for ((host, port), answer) in names.iter().zip(answers) {
        let fresh = match answer {
            Some(Ok(addrs)) if !addrs.is_empty() => Some(addrs),
            Some(Ok(_)) => {
                tracing::warn!(%host, port, "DNS lookup returned no addresses; keeping the last answer");
                None
            }
            Some(Err(e)) => {
                tracing::warn!(%host, port, error = %e, "DNS lookup failed; keeping the last answer");
                None
            }
            None => {
                tracing::warn!(%host, port, timeout_ms = timeout.as_millis() as u64, "DNS lookup timed out; keeping the last answer");
                None
            }
        };
        let kept = fresh.or_else(|| previous.get(host).and_then(|p| p.get(port)).cloned());
        if let Some(addrs) = kept {
            table.entry(host.clone()).or_default().insert(*port, addrs);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn ip_literals_answer_without_the_map() {
        let cache = DnsCache::fixed([]);
        assert_eq!(cache.lookup("127.0.0.1", 80), Some(vec!["127.0.0.1:80".parse().unwrap()]));
        assert_eq!(cache.lookup("::1", 443), Some(vec!["[::1]:443".parse().unwrap()]));
        assert_eq!(cache.lookup("[::1]", 443), Some(vec!["[::1]:443".parse().unwrap()]));
        assert_eq!(cache.lookup("example.invalid", 443), None);
    }

    #[test]
    fn fixed_answers_are_case_insensitive_and_per_port() {
        let addr: SocketAddr = "10.0.0.1:443".parse().unwrap();
        let cache = DnsCache::fixed([(("Api.Example.com".to_owned(), 443), vec![addr])]);
        assert_eq!(cache.lookup("api.example.com", 443), Some(vec![addr]));
        assert_eq!(cache.lookup("API.EXAMPLE.COM", 443), Some(vec![addr]));
        assert_eq!(cache.lookup("api.example.com", 80), None);
    }

    #[test]
    fn localhost_resolves_at_start() {
        let (cache, _thread) = spawn_resolver(
            vec![("localhost".to_owned(), 8080), ("127.0.0.1".to_owned(), 1)],
            Duration::from_secs(3600),
        );
        let addrs = cache.lookup("localhost", 8080).expect("localhost resolves");
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8080), "{addrs:?}");
        assert_eq!(cache.lookup("localhost", 8081), None, "only configured ports are resolved");
    }

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    /// Succeeds on the first call, then fails: the cache must keep the first answer.
    fn flaky(_host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        if CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
            Ok(vec![SocketAddr::new([10, 1, 2, 3].into(), port)])
        } else {
            Err(std::io::Error::other("resolver down"))
        }
    }

    #[test]
    fn failures_keep_the_last_good_answer_and_the_thread_exits_with_the_cache() {
        let (cache, thread) =
            spawn_resolver_with(vec![("up.example".into(), 443)], Duration::from_millis(5), RESOLVE_TIMEOUT, flaky);
        let want = vec![SocketAddr::new([10, 1, 2, 3].into(), 443)];
        assert_eq!(cache.lookup("up.example", 443), Some(want.clone()));
        let start = Instant::now();
        while CALLS.load(Ordering::SeqCst) < 3 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(CALLS.load(Ordering::SeqCst) >= 3, "the refresh loop ran");
        assert_eq!(cache.lookup("up.example", 443), Some(want));
        drop(cache);
        assert!(thread.join().is_ok());
    }

    fn hangs(_host: &str, _port: u16) -> std::io::Result<Vec<SocketAddr>> {
        std::thread::sleep(Duration::from_secs(2));
        Ok(vec![])
    }

    #[test]
    fn a_hanging_resolver_does_not_stall_start_up() {
        let start = Instant::now();
        let (cache, _thread) = spawn_resolver_with(
            vec![("slow.example".into(), 443)],
            Duration::from_secs(3600),
            Duration::from_millis(50),
            hangs,
        );
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
        assert_eq!(cache.lookup("slow.example", 443), None);
    }
}
