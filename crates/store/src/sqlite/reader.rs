//! A pool of read-only connections used on the caller's thread.
//!
//! A point read in WAL mode takes microseconds and never waits for the writer, so
//! it runs where it is asked for: handing it to another thread would cost two
//! context switches, more than the read itself. Each connection keeps its own
//! prepared-statement cache; the pool only hands them out one caller at a time.

use mfad_core::store::StoreResult;
use rusqlite::Connection;
use std::sync::{Mutex, PoisonError};

pub(super) struct Readers {
    idle: Mutex<Vec<Connection>>,
    /// Connections kept when idle; more are opened under load and closed after.
    keep: usize,
    open: Box<dyn Fn() -> StoreResult<Connection> + Send + Sync>,
}

impl Readers {
    pub(super) fn new(
        keep: usize,
        open: impl Fn() -> StoreResult<Connection> + Send + Sync + 'static,
    ) -> StoreResult<Self> {
        let idle = (0..keep).map(|_| open()).collect::<StoreResult<Vec<_>>>()?;
        Ok(Self {
            idle: Mutex::new(idle),
            keep,
            open: Box::new(open),
        })
    }

    /// Runs `work` on an idle connection (a new one when all are busy).
    pub(super) fn with<T>(&self, work: impl FnOnce(&Connection) -> T) -> StoreResult<T> {
        let taken = self.lock().pop();
        let conn = match taken {
            Some(conn) => conn,
            None => (self.open)()?,
        };
        let result = work(&conn);
        let mut idle = self.lock();
        if idle.len() < self.keep {
            idle.push(conn);
        }
        Ok(result)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A poisoned lock only means a reader panicked; the list itself is sound.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}
