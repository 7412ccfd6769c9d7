//! The sink thread: receives compact records over a bounded crossbeam channel, batches them into
//! transactions of the [`Store`], writes structured "interception log" lines, purges by retention, retries
//! with backoff while the database refuses writes, and drains fully on shutdown. Owns the thread, batching,
//! backoff and shutdown; knows no SQL. Never runs on a worker; the only thing workers touch is
//! `SinkHandle::send`.

mod doorbell;
mod logline;
mod probe;
mod spill;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use doorbell::Doorbell;

use crate::db::{self, DbError, Store, StoreError, Workload};
use crate::metrics::histogram::AtomicHistogram;
use crate::metrics::recorded::Recorded;
use crate::records::Record;
use crate::runtime::shutdown::ShutdownFlag;

pub(crate) use probe::SinkProbe;

/// Re-exported where the relay has always found it.
pub use crate::db::new_interception_id;
/// Where the sink writes (benches and tests build it from a path or a PostgreSQL URL).
pub use crate::db::DatabaseUrl;

/// How often an idle sink looks for a close request.
const CLOSE_POLL: Duration = Duration::from_millis(100);

/// Default for [`SinkOptions::max_batch_records`]: large enough to amortise the commit, small enough that a
/// transaction never holds the write lock for long.
pub(crate) const MAX_BATCH_RECORDS: usize = 1024;

/// Default for [`SinkOptions::max_batch_delay`]: how long a received record may wait for its commit.
pub(crate) const MAX_BATCH_DELAY: Duration = Duration::from_millis(50);

/// How many full batches may queue before a sender wakes a gathering sink early. One wake-up then commits
/// them all (a transaction per batch), so at full load the sink wakes a few times per batch delay instead
/// of once per batch (each wake-up can preempt a worker sharing its CPU). Capped at half the channel, so a
/// ring always comes before the channel fills.
const WAKE_BATCHES: usize = 4;

/// Default channel capacity: about a quarter second of full load before workers feel backpressure.
pub(crate) const DEFAULT_CHANNEL_CAPACITY: usize = 65_536;

/// Records held in memory while the database refuses writes (locked, disk full). Beyond this the sink stops
/// reading the channel, so workers block on `send` instead of anything being dropped. At ~300 bytes a
/// record this bounds the backlog near 300 MiB.
pub(crate) const MAX_PENDING_RECORDS: usize = 1 << 20;

/// How often retention runs (it also runs once at start).
pub(crate) const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Interceptions deleted per retention transaction, so a purge never stalls the event batches for long.
pub(crate) const RETENTION_CHUNK: usize = 1000;

/// First and largest pause between retries of a failing batch.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// `end_reason` of an interception its gateway settled at start: the previous run of that gateway stopped
/// (SIGKILL, crash, power cut) before the interception ended, so how it ended is unknown.
pub(crate) const GATEWAY_RESTART_REASON: &str = "gateway_restart";

/// Tries of the start-up settle while the database is locked (about a second and a half in all).
const SETTLE_ATTEMPTS: u32 = 7;

/// Default for [`SinkOptions::shutdown_drain`].
pub(crate) const DEFAULT_SHUTDOWN_DRAIN: Duration = Duration::from_secs(30);

/// Pause before retrying a retention chunk that failed on a passing fault.
const RETENTION_RETRY: Duration = Duration::from_secs(30);

/// Everything `start` needs; built by the server from the validated configuration.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    pub(crate) database: DatabaseUrl,
    /// Write one "interception log" line per record.
    pub structured_logging: bool,
    /// JSON log destination, resolved as the gateway's own logs resolve it ([`crate::logging::Destination`]).
    pub log_json: Option<String>,
    /// Human log destination, resolved the same way.
    pub(crate) log_human: Option<String>,
    /// Records of interceptions started longer ago than this are purged; `None` keeps everything.
    pub(crate) retention: Option<Duration>,
    /// How often retention runs; tests shorten it.
    pub(crate) retention_interval: Duration,
    /// Bound of the worker → sink channel.
    pub(crate) channel_capacity: usize,
    /// Most records committed in one transaction.
    pub(crate) max_batch_records: usize,
    /// Longest a received record waits before its transaction commits.
    pub(crate) max_batch_delay: Duration,
    /// This gateway's id: when set, the interceptions its previous run left open are settled before the
    /// sink starts.
    pub(crate) gateway_id: Option<Arc<str>>,
    /// The metrics families counted from committed records (`None` when metrics are off).
    pub(crate) recorded: Option<Arc<Recorded>>,
    /// After a close, how long the sink keeps trying to commit before it spills what is left to a file
    /// beside the database ([`spill`]) and stops.
    pub(crate) shutdown_drain: Duration,
    /// The process's shutdown flag: once it is set, a backlog that reached `max_pending_records` while
    /// the database refuses writes is spilled at once, so workers waiting on the full channel can finish
    /// within the grace period.
    pub(crate) shutdown: Option<ShutdownFlag>,
    /// Most records held in memory while the database refuses writes; tests lower it.
    pub(crate) max_pending_records: usize,
}

impl SinkOptions {
    /// Options with the defaults: no structured logs, no retention, default capacity and interval.
    pub fn new(database: impl Into<DatabaseUrl>) -> Self {
        SinkOptions {
            database: database.into(),
            structured_logging: false,
            log_json: None,
            log_human: None,
            retention: None,
            retention_interval: DEFAULT_RETENTION_INTERVAL,
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            max_batch_records: MAX_BATCH_RECORDS,
            max_batch_delay: MAX_BATCH_DELAY,
            gateway_id: None,
            recorded: None,
            shutdown_drain: DEFAULT_SHUTDOWN_DRAIN,
            shutdown: None,
            max_pending_records: MAX_PENDING_RECORDS,
        }
    }
}

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot open log destination {path}: {source}")]
    Log {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot spawn the sink thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Shared counters the handle reads and the thread writes (plain numbers for /metrics).
#[derive(Default)]
struct Counters {
    full_waits: AtomicU64,
    received: AtomicU64,
    records_written: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    pending_in_memory: AtomicU64,
    purged_interceptions: AtomicU64,
    failed_records: AtomicU64,
    log_write_errors: AtomicU64,
    send_after_exit: AtomicU64,
    /// Records in the channel, as the sink last saw it (for /metrics).
    queued: AtomicU64,
    spilled_records: AtomicU64,
    lost_at_shutdown: AtomicU64,
}

/// A snapshot of the sink's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Sends that found the channel full and had to wait.
    pub full_waits: u64,
    /// Records taken off the channel by the sink thread.
    pub(crate) records_received: u64,
    /// Records committed to the database.
    pub records_written: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Batch attempts that failed on a passing fault and were retried.
    pub(crate) retries: u64,
    /// Records received but not yet committed (the fault backlog plus the batch being built).
    pub(crate) pending_in_memory: u64,
    /// Records waiting in the channel.
    pub(crate) queued: u64,
    /// Interceptions removed by retention.
    pub(crate) purged_interceptions: u64,
    /// Records the database rejected for a reason that will not pass (each one logged with its record type).
    pub(crate) failed_records: u64,
    /// Structured log writes or flushes that failed.
    pub(crate) log_write_errors: u64,
    /// Sends after the sink thread had already exited (only possible if it panicked).
    pub(crate) send_after_exit: u64,
    /// Records the shutdown drain could not commit and wrote to a spill file instead.
    pub(crate) spilled_records: u64,
    /// Records the shutdown drain could neither commit nor spill (the spill file could not be written).
    pub(crate) lost_at_shutdown: u64,
}

/// The workers' end of the channel. Cheap to clone; the sink thread exits once every clone is dropped.
#[derive(Clone)]
pub struct SinkHandle {
    tx: Sender<Record>,
    counters: Arc<Counters>,
    doorbell: Arc<Doorbell>,
}

impl SinkHandle {
    /// Queues a record. Never drops it: when the channel is full this blocks until the sink makes room, and
    /// counts the wait.
    pub fn send(&self, record: Record) {
        match self.tx.try_send(record) {
            Ok(()) => self.doorbell.after_send(self.tx.len()),
            Err(TrySendError::Full(record)) => {
                self.counters.full_waits.fetch_add(1, Ordering::Relaxed);
                // The sink may be parked until its batch deadline: it must make room now.
                self.doorbell.ring();
                if self.tx.send(record).is_err() {
                    self.lost_after_exit();
                }
            }
            Err(TrySendError::Disconnected(_)) => self.lost_after_exit(),
        }
    }

    fn lost_after_exit(&self) {
        self.counters.send_after_exit.fetch_add(1, Ordering::Relaxed);
        tracing::error!("interception record sent after the sink thread exited; it cannot be stored");
    }

    /// The current counters.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> SinkStats {
        self.counters.snapshot(self.tx.len() as u64)
    }
}

impl Counters {
    fn snapshot(&self, queued: u64) -> SinkStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SinkStats {
            full_waits: get(&self.full_waits),
            records_received: get(&self.received),
            records_written: get(&self.records_written),
            batches: get(&self.batches),
            retries: get(&self.retries),
            pending_in_memory: get(&self.pending_in_memory),
            queued,
            purged_interceptions: get(&self.purged_interceptions),
            failed_records: get(&self.failed_records),
            log_write_errors: get(&self.log_write_errors),
            send_after_exit: get(&self.send_after_exit),
            spilled_records: get(&self.spilled_records),
            lost_at_shutdown: get(&self.lost_at_shutdown),
        }
    }
}

/// The running sink thread.
pub struct SinkThread {
    thread: std::thread::JoinHandle<()>,
    counters: Arc<Counters>,
    commit_time: Arc<AtomicHistogram>,
    close_requested: Arc<AtomicBool>,
    doorbell: Arc<Doorbell>,
}

impl SinkThread {
    /// Waits until every `SinkHandle` is dropped and everything received is committed and logged, and
    /// returns the final counters (for the shutdown log line; callers may ignore them).
    pub fn join(self) -> SinkStats {
        self.doorbell.finish();
        if self.thread.join().is_err() {
            tracing::error!("the sink thread panicked; records still in its memory were lost");
        }
        self.counters.snapshot(0)
    }

    /// Drains everything already sent, commits it and stops, without waiting for the remaining handles to
    /// be dropped. For shutdown after the workers stopped: a task abandoned at the end of the grace period
    /// may still own a handle it will never use again.
    pub(crate) fn close(self) -> SinkStats {
        self.close_requested.store(true, Ordering::SeqCst);
        self.join()
    }

    /// A way to read the counters from another thread without holding a [`SinkHandle`] (which would keep
    /// the sink alive).
    pub(crate) fn stats_source(&self) -> impl Fn() -> SinkStats + Send + 'static {
        let counters = self.counters.clone();
        move || counters.snapshot(0)
    }

    /// The counters and the commit-time histogram, for the metrics scrape.
    pub(crate) fn probe(&self) -> SinkProbe {
        SinkProbe::new(self.counters.clone(), self.commit_time.clone())
    }
}

/// Opens the database (running migrations) and the log destinations, then spawns the sink thread.
pub fn start(opts: SinkOptions) -> Result<(SinkHandle, SinkThread), SinkError> {
    let store = db::open(&opts.database, Workload::RecordWriter)?;
    start_with_store(opts, store)
}

/// [`start`] over a store the caller opened: the sink's logic is the same whatever the backend.
pub(crate) fn start_with_store(
    opts: SinkOptions,
    mut store: Box<dyn Store>,
) -> Result<(SinkHandle, SinkThread), SinkError> {
    let (json, human) =
        if opts.structured_logging { (opts.log_json.as_deref(), opts.log_human.as_deref()) } else { (None, None) };
    let mut log = logline::RecordLog::open(json, human)
        .map_err(|source| SinkError::Log { path: json.or(human).unwrap_or_default().to_owned(), source })?;
    // Before the settle: a spilled end must land before the start is taken for one left open. Spilled
    // records never reached the record log either, so the import writes their lines.
    let spill_anchor = opts.database.spill_anchor(opts.gateway_id.as_deref());
    spill::import_all(&spill_anchor, store.as_mut(), &mut log);
    if let Some(gateway_id) = &opts.gateway_id {
        settle_previous_run(store.as_mut(), gateway_id);
    }
    let (tx, rx) = crossbeam_channel::bounded(opts.channel_capacity.max(1));
    let counters = Arc::new(Counters::default());
    let close_requested = Arc::new(AtomicBool::new(false));
    let max_batch_records = opts.max_batch_records.max(1);
    let capacity = opts.channel_capacity.max(1);
    let wake_level = max_batch_records.saturating_mul(WAKE_BATCHES).min((capacity / 2).max(1));
    let doorbell = Arc::new(Doorbell::new(wake_level));
    let commit_time = Arc::new(probe::commit_histogram());
    let sink = Sink {
        store,
        rx,
        close_requested: close_requested.clone(),
        log,
        counters: counters.clone(),
        retention: opts.retention.filter(|d| !d.is_zero()),
        retention_interval: opts.retention_interval,
        max_batch_records,
        wake_level,
        max_batch_delay: opts.max_batch_delay,
        doorbell: doorbell.clone(),
        // Records sent before the first receive were sent after this: they wait at most the delay from here.
        gather_until: Instant::now() + opts.max_batch_delay,
        pending: VecDeque::with_capacity(max_batch_records * 2),
        closed: false,
        backoff: BACKOFF_MIN,
        retry_at: None,
        next_purge: Instant::now(),
        purge_more: false,
        recorded: opts.recorded,
        commit_time: commit_time.clone(),
        database_path: spill_anchor,
        shutdown_drain: opts.shutdown_drain,
        drain_until: None,
        shutdown: opts.shutdown.clone(),
        max_pending_records: opts.max_pending_records.max(1),
    };
    let thread =
        std::thread::Builder::new().name("aibridge-sink".into()).spawn(move || sink.run()).map_err(SinkError::Spawn)?;
    doorbell.install(thread.thread().clone());
    Ok((
        SinkHandle { tx, counters: counters.clone(), doorbell: doorbell.clone() },
        SinkThread { thread, counters, commit_time, close_requested, doorbell },
    ))
}

/// Ends what this gateway's previous run left open. Runs on the starting thread before any worker exists,
/// so no interception of this run can be settled and no worker waits for it. A failure only leaves those
/// rows open until the next start: it never stops the gateway from serving.
fn settle_previous_run(store: &mut dyn Store, gateway_id: &str) {
    let mut attempt = 1;
    let settled = loop {
        match store.settle_open(gateway_id, SystemTime::now(), GATEWAY_RESTART_REASON) {
            // Another gateway on the store may hold the write lock for a moment: ride over it briefly.
            Err(StoreError::Transient(_)) if attempt < SETTLE_ATTEMPTS => {
                std::thread::sleep(BACKOFF_MIN * attempt);
                attempt += 1;
            }
            other => break other,
        }
    };
    match settled {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            interceptions = n,
            gateway_id,
            "the previous run of this gateway stopped with interceptions in flight; recorded them as failed"
        ),
        Err(e) => tracing::error!(
            error = %e,
            gateway_id,
            "cannot settle the interceptions the previous run left open; they stay open until the next start"
        ),
    }
}

/// State owned by the sink thread.
struct Sink {
    store: Box<dyn Store>,
    rx: Receiver<Record>,
    /// Set by [`SinkThread::close`]: drain what the channel holds now and exit, even if handles remain.
    close_requested: Arc<AtomicBool>,
    log: logline::RecordLog,
    counters: Arc<Counters>,
    retention: Option<Duration>,
    retention_interval: Duration,
    max_batch_records: usize,
    /// Records queued (pending included) that end a gather early: [`WAKE_BATCHES`] batches.
    wake_level: usize,
    max_batch_delay: Duration,
    /// How senders wake the sink early while it gathers.
    doorbell: Arc<Doorbell>,
    /// When the batch being gathered is due: the receipt of its first record, or the previous drain (the
    /// first moment a record still in the channel can have arrived), plus the batch delay.
    gather_until: Instant,
    /// Received, not yet committed, in channel order.
    pending: VecDeque<Record>,
    /// Every handle is gone: drain what is left and exit.
    closed: bool,
    backoff: Duration,
    /// Set while a fault lasts: the next attempt is not before this instant.
    retry_at: Option<Instant>,
    next_purge: Instant,
    /// The last retention chunk was full: run another after the next batch.
    purge_more: bool,
    /// Counts committed records into the metrics families (metrics on only).
    recorded: Option<Arc<Recorded>>,
    commit_time: Arc<AtomicHistogram>,
    /// Spill files go beside it (for PostgreSQL, a name in the working directory).
    database_path: PathBuf,
    shutdown_drain: Duration,
    /// Set when the sink is closed: past it, what is still pending is spilled and the sink stops.
    drain_until: Option<Instant>,
    shutdown: Option<ShutdownFlag>,
    max_pending_records: usize,
}

impl Sink {
    fn run(mut self) {
        loop {
            self.receive();
            let ready = self.retry_at.is_none_or(|at| Instant::now() >= at);
            if ready && !self.pending.is_empty() {
                self.commit_batch();
            }
            if self.retry_at.is_none() {
                self.store.maintain();
                if !self.closed {
                    self.maybe_purge();
                }
            }
            self.counters.pending_in_memory.store(self.pending.len() as u64, Ordering::Relaxed);
            self.counters.queued.store(self.rx.len() as u64, Ordering::Relaxed);
            if self.closed && self.pending.is_empty() {
                break;
            }
            if self.closed {
                let until = *self.drain_until.get_or_insert_with(|| Instant::now() + self.shutdown_drain);
                if Instant::now() >= until {
                    self.spill("the shutdown drain ended");
                    break;
                }
            }
        }
        if !self.log.flush() {
            self.counters.log_write_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.store.close();
    }

    fn push(&mut self, record: Record) {
        self.pending.push_back(record);
        self.counters.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Fills `pending` from the channel: a batch's worth (or what arrives within the batch delay of the
    /// first record) normally, everything that fits under `MAX_PENDING_RECORDS` while a fault lasts.
    fn receive(&mut self) {
        if !self.closed && self.close_requested.load(Ordering::SeqCst) {
            // Also while a fault lasts: a close must start the bounded drain even with records pending.
            self.drain_for_close();
        }
        if self.closed {
            if let Some(at) = self.retry_at {
                let at = self.drain_until.map_or(at, |until| at.min(until));
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
            }
            return;
        }
        if let Some(at) = self.retry_at {
            while self.pending.len() < self.max_pending_records {
                match self.rx.recv_deadline(at) {
                    Ok(r) => self.push(r),
                    Err(RecvTimeoutError::Timeout) => return,
                    Err(RecvTimeoutError::Disconnected) => {
                        self.closed = true;
                        break;
                    }
                }
            }
            if !self.closed && self.shutdown.as_ref().is_some_and(ShutdownFlag::is_set) {
                // Shutting down with the backlog full: workers waiting on the full channel could never
                // finish their requests, so the grace period (and the drain after it) would never end.
                self.spill("the record backlog was full when shutdown began");
                return;
            }
            // Backlog full (or closed): leave the rest in the channel and wait for the retry.
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            return;
        }
        let fresh = self.pending.is_empty() && self.rx.is_empty();
        if fresh {
            if self.close_requested.load(Ordering::SeqCst) {
                self.drain_for_close();
                return;
            }
            // Idle: a receive, so the first record of the next batch wakes the sink (once per batch). Idle
            // waits are bounded so a close request is seen promptly.
            let poll = Instant::now() + CLOSE_POLL;
            let deadline = self.purge_deadline().map_or(poll, |d| d.min(poll));
            match self.rx.recv_deadline(deadline) {
                Ok(r) => {
                    self.push(r);
                    self.gather_until = Instant::now() + self.max_batch_delay;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.close_requested.load(Ordering::SeqCst) {
                        self.drain_for_close();
                    }
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.closed = true;
                    return;
                }
            }
        } else if !self.pending.is_empty() {
            // Taken at the last wake-up, so due now: committed (a batch per loop turn) before gathering again,
            // so that no record waits for a second delay.
            return;
        }
        // Gather: parked until the batch is due, not in a receive, so a worker's send is a plain queue push
        // and never has to wake the sink (a futex call per record). Several full batches queued or a close
        // ring early.
        let (rx, pending, wake) = (&self.rx, self.pending.len(), self.wake_level);
        self.doorbell.gather(self.gather_until, || pending + rx.len() >= wake);
        // Records that arrive from now on are in the next gather: they wait at most the delay from here.
        self.gather_until = Instant::now() + self.max_batch_delay;
        // Everything queued now is due: take it all (the loop commits it a batch at a time).
        let room = self.max_pending_records.saturating_sub(self.pending.len());
        for _ in 0..self.rx.len().clamp(1, room.max(1)) {
            match self.rx.try_recv() {
                Ok(r) => self.push(r),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.closed = true;
                    break;
                }
            }
        }
    }

    /// Takes everything the channel holds now and marks the sink closed (a close was requested).
    fn drain_for_close(&mut self) {
        while let Ok(r) = self.rx.try_recv() {
            self.push(r);
        }
        self.closed = true;
    }

    /// The drain ended with the database still refusing writes: writes what is pending to a spill file,
    /// which the next start imports, and says where.
    fn spill(&mut self, why: &'static str) {
        let n = self.pending.len();
        match spill::write(&self.database_path, &self.pending) {
            Ok(path) => {
                self.counters.spilled_records.fetch_add(n as u64, Ordering::Relaxed);
                tracing::error!(
                    records = n,
                    path = %path.display(),
                    "{why} with the database refusing writes; wrote the uncommitted records to a spill file, \
                     imported at the next start"
                );
            }
            Err(e) => {
                self.counters.lost_at_shutdown.fetch_add(n as u64, Ordering::Relaxed);
                tracing::error!(
                    records = n,
                    error = %e,
                    "{why} with the database refusing writes and the spill file could not be written; these \
                     records are lost"
                );
            }
        }
        self.pending.clear();
        self.counters.pending_in_memory.store(0, Ordering::Relaxed);
    }

    /// When the idle wait must end for retention to run, if retention is on.
    fn purge_deadline(&self) -> Option<Instant> {
        self.retention?;
        Some(if self.purge_more { Instant::now() } else { self.next_purge })
    }

    /// Commits the oldest pending records (a batch's worth) in one transaction, then logs them.
    fn commit_batch(&mut self) {
        let n = self.pending.len().min(self.max_batch_records);
        let began = Instant::now();
        match self.store.write_batch(&self.pending.range(..n).collect::<Vec<_>>()) {
            Ok(()) => {
                self.commit_time.observe(began.elapsed());
                self.committed(n);
            }
            Err(e @ StoreError::Rejected(_)) => {
                tracing::error!(error = %e, records = n, "sink batch rejected; retrying its records one by one");
                self.commit_one_by_one(n);
            }
            Err(e) => self.fault(&e),
        }
    }

    /// Isolates the record(s) the database will never accept so the rest of the batch is still stored. A
    /// record is given up on (logged and counted) only when the database rejects that record's content; any
    /// other error is a database fault and goes to the retry path with everything still pending.
    fn commit_one_by_one(&mut self, n: usize) {
        for _ in 0..n {
            let Some(record) = self.pending.front() else {
                return;
            };
            match self.store.write_batch(&[record]) {
                Ok(()) => self.committed(1),
                Err(e @ StoreError::Rejected(_)) => {
                    tracing::error!(
                        error = %e,
                        record_type = record.record_type(),
                        "interception record rejected by the database; it is not stored"
                    );
                    self.counters.failed_records.fetch_add(1, Ordering::Relaxed);
                    self.pending.pop_front();
                }
                Err(e) => {
                    self.fault(&e);
                    return;
                }
            }
        }
    }

    fn committed(&mut self, n: usize) {
        if self.retry_at.take().is_some() {
            tracing::warn!(backlog = self.pending.len(), "database writable again; sink is catching up");
        }
        self.backoff = BACKOFF_MIN;
        if let Some(recorded) = &self.recorded {
            recorded.committed(self.pending.range(..n));
        }
        if self.log.is_active() {
            let now = SystemTime::now();
            let mut failed = false;
            for record in self.pending.range(..n) {
                failed |= !self.log.write(record, now);
            }
            failed |= !self.log.flush();
            if failed {
                self.counters.log_write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.pending.drain(..n);
        self.counters.records_written.fetch_add(n as u64, Ordering::Relaxed);
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps everything pending and schedules the retry: whatever the class of error, nothing is dropped.
    fn fault(&mut self, e: &StoreError) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            error = %e,
            backlog = self.pending.len(),
            retry_in_ms = self.backoff.as_millis() as u64,
            "cannot write interception records; keeping them in memory and retrying"
        );
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Runs one retention chunk when one is due. Chunks alternate with event batches.
    fn maybe_purge(&mut self) {
        let Some(retention) = self.retention else {
            return;
        };
        let now = Instant::now();
        if !self.purge_more && now < self.next_purge {
            return;
        }
        let Some(cutoff) = SystemTime::now().checked_sub(retention) else {
            self.next_purge = now + self.retention_interval;
            return;
        };
        match self.store.purge_before(cutoff, RETENTION_CHUNK) {
            Ok(n) => {
                self.counters.purged_interceptions.fetch_add(n as u64, Ordering::Relaxed);
                self.purge_more = n == RETENTION_CHUNK;
                if !self.purge_more {
                    self.next_purge = now + self.retention_interval;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "retention purge failed; will retry");
                self.purge_more = false;
                self.next_purge = now
                    + if matches!(e, StoreError::Transient(_)) {
                        RETENTION_RETRY.min(self.retention_interval)
                    } else {
                        self.retention_interval
                    };
            }
        }
    }
}
