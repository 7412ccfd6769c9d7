//! The WAL checkpointer of a record-writing [`super::SqliteStore`]: copies committed WAL pages back into the
//! database file on its own thread and connection, so the sink thread's commits never pay for checkpoint
//! I/O and fsyncs. Owns only that; never writes records.

use std::path::Path;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rusqlite::Connection;

use super::connection::{open_connection, open_error};
use crate::db::DbError;

/// Pause between passive checkpoints: short enough that the WAL stays a few MiB at full load.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// WAL length, in pages, past which a passive checkpoint is not enough (a busy writer can keep the WAL
/// from ever restarting) and a RESTART checkpoint briefly waits for the writer so the WAL is reused from
/// its start. 32768 pages = 128 MiB of disk at most.
const WAL_RESTART_PAGES: i64 = 32_768;

/// How long the RESTART checkpoint may wait for the sink's transaction to end.
const RESTART_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Running checkpointer; stops when `stop` (the sender side) is dropped.
pub(super) struct Checkpointer {
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    /// Opens a second connection and spawns the thread.
    pub(super) fn spawn(path: &Path, stop: Receiver<()>) -> Result<Self, DbError> {
        let conn = open_connection(path)?;
        conn.busy_timeout(RESTART_BUSY_TIMEOUT).map_err(open_error)?;
        let thread = std::thread::Builder::new()
            .name("aibridge-checkpoint".into())
            .spawn(move || run(conn, stop))
            .map_err(DbError::Spawn)?;
        Ok(Checkpointer { thread })
    }

    /// Waits for the thread after its stop channel was dropped.
    pub(super) fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("the WAL checkpointer panicked");
        }
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)`, returning the WAL length in pages.
fn checkpoint(conn: &Connection, mode: &str) -> Result<i64, rusqlite::Error> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get::<_, i64>(1))
}

fn run(conn: Connection, stop: Receiver<()>) {
    let mut failing = false;
    loop {
        match stop.recv_timeout(CHECKPOINT_INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let result = checkpoint(&conn, "PASSIVE").and_then(|pages| {
            if pages > WAL_RESTART_PAGES {
                checkpoint(&conn, "RESTART")
            } else {
                Ok(pages)
            }
        });
        match result {
            Ok(_) => failing = false,
            Err(e) => {
                // The sink keeps committing to the WAL meanwhile; only its size grows.
                if !failing {
                    tracing::error!(error = %e, "WAL checkpoint failed; will retry");
                }
                failing = true;
            }
        }
    }
}
