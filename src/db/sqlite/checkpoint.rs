//! WAL checkpoints of a record-writing [`super::SqliteStore`]: copy committed WAL pages back into the
//! database file between the sink's batches, on the sink's own thread and connection. A thread of its own
//! woke several hundred times a second at full load (its connection contending with the sink's for
//! SQLite's shared file state), each wake-up preempting the worker on a shared CPU; run from the sink it
//! costs no wake-up at all. Owns only when and how to checkpoint; never writes records.

use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Least time between passive checkpoints: short enough that the WAL stays a few MiB at full load.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// WAL length, in pages, past which a passive checkpoint is not enough (readers can keep the WAL from
/// ever restarting) and a RESTART checkpoint waits (up to the writer's busy timeout) for them so the WAL is
/// reused from its start. 32768 pages = 128 MiB of disk at most.
const WAL_RESTART_PAGES: i64 = 32_768;

/// When the next checkpoint is due.
pub(super) struct Checkpoints {
    last: Instant,
    /// A batch was committed since the last checkpoint.
    dirty: bool,
    /// The last checkpoint failed (logged once until one succeeds).
    failing: bool,
}

impl Checkpoints {
    pub(super) fn new() -> Self {
        Checkpoints { last: Instant::now(), dirty: false, failing: false }
    }

    /// Notes a committed batch.
    pub(super) fn committed(&mut self) {
        self.dirty = true;
    }

    /// Checkpoints `conn` if something was committed and the interval has passed since the last one.
    pub(super) fn run_if_due(&mut self, conn: &Connection) {
        if !self.dirty || self.last.elapsed() < CHECKPOINT_INTERVAL {
            return;
        }
        self.last = Instant::now();
        self.dirty = false;
        let result = checkpoint(conn, "PASSIVE").and_then(|pages| {
            if pages > WAL_RESTART_PAGES {
                checkpoint(conn, "RESTART")
            } else {
                Ok(pages)
            }
        });
        match result {
            Ok(_) => self.failing = false,
            Err(e) => {
                // The sink keeps committing to the WAL meanwhile; only its size grows.
                if !self.failing {
                    tracing::error!(error = %e, "WAL checkpoint failed; will retry");
                }
                self.failing = true;
                self.dirty = true;
            }
        }
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)`, returning the WAL length in pages.
fn checkpoint(conn: &Connection, mode: &str) -> Result<i64, rusqlite::Error> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get::<_, i64>(1))
}
