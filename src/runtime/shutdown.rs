//! Graceful shutdown: a process-wide flag set by SIGTERM/SIGINT, and a per-worker notifier that wakes the
//! accept loop and idle keep-alive connections when the flag goes up. The signal thread is the only place
//! that waits on signals; workers never block.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// How often a worker looks at the process-wide flag. Shutdown is rare; 50 ms keeps it prompt and cheap.
const FLAG_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The process-wide "stop accepting" flag.
#[derive(Clone, Default, Debug)]
pub(crate) struct ShutdownFlag(Arc<AtomicBool>);

impl ShutdownFlag {
    pub(crate) fn new() -> ShutdownFlag {
        ShutdownFlag::default()
    }
    pub(crate) fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Blocks SIGTERM and SIGINT in the calling thread (and so in every thread it spawns afterwards) and
/// starts a thread that waits for either, then calls `on_signal` and sets `flag`. `on_signal` runs
/// before the flag goes up and may wait (the readiness drain: /readyz answers 503 while the listeners
/// still accept). Call it from `main` before any other thread exists.
pub(crate) fn install_signal_thread(
    flag: ShutdownFlag,
    on_signal: impl FnOnce(i32) + Send + 'static,
) -> std::io::Result<()> {
    // SAFETY: plain libc signal-mask calls on a zero-initialised sigset_t owned by this frame.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        set
    };
    std::thread::Builder::new().name("aibridged-signals".into()).spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is a valid, initialised sigset_t; sigwait writes one int.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc == 0 {
            on_signal(sig);
            flag.trigger();
        }
    })?;
    Ok(())
}

/// A worker-local view of the flag that async tasks can await.
pub(crate) struct LocalShutdown {
    flag: ShutdownFlag,
    /// Wakers of the tasks waiting now, keyed so a dropped wait removes its own entry.
    waiters: RefCell<std::collections::HashMap<u64, Waker>>,
    next_key: std::cell::Cell<u64>,
}

impl LocalShutdown {
    pub(crate) fn new(flag: ShutdownFlag) -> Rc<LocalShutdown> {
        Rc::new(LocalShutdown { flag, waiters: RefCell::new(Default::default()), next_key: Default::default() })
    }

    /// True once shutdown has begun.
    pub(crate) fn is_set(&self) -> bool {
        self.flag.is_set()
    }

    /// Resolves once shutdown has begun.
    pub(crate) fn wait(self: &Rc<Self>) -> ShutdownWait {
        ShutdownWait { local: self.clone(), key: None }
    }

    /// Runs for the worker's lifetime: polls the flag and wakes every waiter when it goes up.
    pub(crate) async fn watch(self: Rc<Self>) {
        while !self.flag.is_set() {
            monoio::time::sleep(FLAG_POLL_INTERVAL).await;
        }
        let waiters: Vec<Waker> = self.waiters.borrow_mut().drain().map(|(_, w)| w).collect();
        for w in waiters {
            w.wake();
        }
    }
}

/// Future returned by [`LocalShutdown::wait`].
pub(crate) struct ShutdownWait {
    local: Rc<LocalShutdown>,
    key: Option<u64>,
}

impl Future for ShutdownWait {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.local.flag.is_set() {
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                let k = self.local.next_key.get();
                self.local.next_key.set(k + 1);
                self.key = Some(k);
                k
            }
        };
        self.local.waiters.borrow_mut().insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for ShutdownWait {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.local.waiters.borrow_mut().remove(&k);
        }
    }
}
