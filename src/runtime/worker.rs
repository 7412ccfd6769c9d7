//! Worker threads: one monoio runtime per thread (io_uring, or epoll where the kernel refuses it), each
//! with its own listener, accept loop and per-connection tasks. Only the shutdown flag and what the
//! service factory hands out cross threads.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::net::{TcpListener, TcpStream};

use super::shutdown::{LocalShutdown, ShutdownFlag};

/// Accept failures (descriptor exhaustion) are logged at most once per this interval, with a count.
const ACCEPT_WARN_INTERVAL: Duration = Duration::from_secs(5);

/// Which I/O driver the workers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DriverChoice {
    /// io_uring when the kernel allows it, epoll otherwise.
    Auto,
    /// io_uring only (start-up fails without it).
    IoUring,
    /// The legacy epoll driver.
    Epoll,
}

impl DriverChoice {
    /// Reads `AIBRIDGED_IO_DRIVER` (`auto`, `io_uring`, `epoll`); benches use it to compare drivers.
    pub(crate) fn from_env() -> DriverChoice {
        match std::env::var("AIBRIDGED_IO_DRIVER").as_deref() {
            Ok("io_uring") | Ok("iouring") | Ok("uring") => DriverChoice::IoUring,
            Ok("epoll") | Ok("legacy") => DriverChoice::Epoll,
            _ => DriverChoice::Auto,
        }
    }

    /// The driver that will actually run, for the start-up log.
    pub(crate) fn resolved_name(self) -> &'static str {
        match self {
            DriverChoice::Auto if monoio::utils::detect_uring() => "io_uring",
            DriverChoice::Auto => "epoll (io_uring unavailable)",
            DriverChoice::IoUring => "io_uring",
            DriverChoice::Epoll => "epoll",
        }
    }

    /// The driver that will run, as the metrics' info label names it (`io_uring` or `epoll`).
    pub(crate) fn metric_name(self) -> &'static str {
        match self {
            DriverChoice::Auto if monoio::utils::detect_uring() => "io_uring",
            DriverChoice::IoUring => "io_uring",
            DriverChoice::Auto | DriverChoice::Epoll => "epoll",
        }
    }
}

/// Serves connections on one worker. Built once per worker by the factory given to [`spawn_workers`].
pub(crate) trait Service: 'static {
    /// Serves one accepted connection until it closes. Must not block.
    fn serve(
        self: Rc<Self>,
        conn: TcpStream,
        peer: SocketAddr,
        shutdown: Rc<LocalShutdown>,
    ) -> impl Future<Output = ()>;

    /// Called once when the shutdown grace has elapsed with requests still open, just before the worker
    /// stops: the service settles whatever those requests owe (e.g. their end records).
    fn abandon(&self);
}

/// Starts one worker thread per listener. Each runs until shutdown is flagged and its connections have
/// finished, or `grace` has passed since the flag went up. `factory` runs on the worker once its
/// listener is registered with the runtime, right before the accept loop (readiness counts on that).
pub(crate) fn spawn_workers<S, F>(
    listeners: Vec<std::net::TcpListener>,
    driver: DriverChoice,
    flag: ShutdownFlag,
    grace: Duration,
    factory: F,
) -> std::io::Result<Vec<JoinHandle<()>>>
where
    S: Service,
    F: Fn(usize) -> S + Send + Sync + 'static,
{
    let factory = std::sync::Arc::new(factory);
    let mut handles = Vec::with_capacity(listeners.len());
    for (index, std_listener) in listeners.into_iter().enumerate() {
        let factory = factory.clone();
        let flag = flag.clone();
        let handle = std::thread::Builder::new().name(format!("aibridged-worker-{index}")).spawn(move || {
            let work = move || worker_main(index, std_listener, flag, grace, move || factory(index));
            if let Err(e) = run_on_driver(driver, work) {
                tracing::error!(worker = index, error = %e, "worker runtime failed to start");
            }
        })?;
        handles.push(handle);
    }
    Ok(handles)
}

/// io_uring submission queue size per worker.
const URING_ENTRIES: u32 = 4096;

fn run_on_driver<Fut: Future<Output = ()>>(driver: DriverChoice, work: impl FnOnce() -> Fut) -> std::io::Result<()> {
    match driver {
        DriverChoice::Auto => {
            let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .with_entries(URING_ENTRIES)
                .enable_timer()
                .build()?;
            rt.block_on(work());
        }
        DriverChoice::IoUring => {
            let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .with_entries(URING_ENTRIES)
                .enable_timer()
                .build()?;
            rt.block_on(work());
        }
        DriverChoice::Epoll => {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build()?;
            rt.block_on(work());
        }
    }
    Ok(())
}

async fn worker_main<S: Service>(
    index: usize,
    std_listener: std::net::TcpListener,
    flag: ShutdownFlag,
    grace: Duration,
    make_service: impl FnOnce() -> S,
) {
    let listener = match TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "cannot register listener");
            return;
        }
    };
    let service = Rc::new(make_service());
    let shutdown = LocalShutdown::new(flag);
    monoio::spawn(shutdown.clone().watch());
    let active = Rc::new(Cell::new(0usize));
    let mut last_accept_warn: Option<Instant> = None;
    let mut accept_errors = 0u64;
    loop {
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((conn, peer)) => {
                    let _ = conn.set_nodelay(true);
                    active.set(active.get() + 1);
                    let guard = ActiveGuard(active.clone());
                    let service = service.clone();
                    let shutdown = shutdown.clone();
                    monoio::spawn(async move {
                        service.serve(conn, peer, shutdown).await;
                        drop(guard);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning, and say so at most once
                    // per interval: clients holding every descriptor must not also flood the log.
                    accept_errors += 1;
                    if last_accept_warn.is_none_or(|t: Instant| t.elapsed() >= ACCEPT_WARN_INTERVAL) {
                        tracing::warn!(worker = index, error = %e, failures = accept_errors, "accept failed");
                        last_accept_warn = Some(Instant::now());
                        accept_errors = 0;
                    }
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = shutdown.wait() => break,
        }
    }
    drop(listener);
    let deadline = Instant::now() + grace;
    while active.get() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    if active.get() > 0 {
        tracing::warn!(worker = index, open = active.get(), "shutdown grace elapsed with requests in flight");
        service.abandon();
    }
}

/// Counts a connection as open until dropped (also when its task is dropped mid-way).
struct ActiveGuard(Rc<Cell<usize>>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
