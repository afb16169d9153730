//! Background WAL checkpoints, so the writer thread never stops to copy pages.
//!
//! A passive checkpoint copies committed WAL frames into the database file without
//! taking the write lock, so commits go on meanwhile. SQLite's own automatic checkpoint
//! stays on with a higher threshold as the backstop when this thread falls behind.

use rusqlite::Connection;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// How often the WAL is copied back into the database file.
const INTERVAL: Duration = Duration::from_secs(1);

/// Checkpoints every [`INTERVAL`] until `stop`'s sender is dropped.
pub(super) fn run(conn: Connection, stop: Receiver<()>) {
    loop {
        match stop.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        // Busy (another checkpoint running, e.g. the CLI's) is normal: try again later.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!("WAL checkpoint skipped: {e}");
        }
    }
}
