//! The embedded SQLite store: one writer thread with group commit, a pool of read connections.
//!
//! Writes go through a channel to the writer thread, which commits everything waiting
//! in one transaction (one fsync for the batch) and answers each caller after that
//! commit. Reads run on the caller's thread with pooled WAL connections. Another process
//! (the CLI while `mfad serve` runs) may write the same file: SQLite's locking with a
//! busy timeout serialises the two writers.

mod audit;
mod auth;
mod checkpoint;
mod clients;
mod directory;
mod map;
mod outbox;
mod reader;
mod schema;
mod settings;
mod snapshot;
mod tokens;
mod transactions;
mod users;
mod writer;

use crate::crypto::Cipher;
use mfad_core::store::{StoreError, StoreResult};
use reader::Readers;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc;
use writer::Command;

/// Commands that may wait for the writer before `append_audit` has to wait for room.
const WRITE_QUEUE: usize = 16_384;

/// How SQLite makes a commit durable (`PRAGMA synchronous`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every commit is on disk before the caller hears back: a used code stays used
    /// through a power cut.
    #[default]
    Full,
    /// Commits survive a crash of mfad but the last ones may be lost in a power cut
    /// (WAL is synced at checkpoints only).
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    /// Read connections kept open; 0 picks one per CPU, at least 2 and at most 8.
    pub readers: usize,
    /// How long a statement waits for another process's write lock before failing.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            readers: 0,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The SQLite implementation of [`Store`](mfad_core::store::Store): each capability trait
/// is implemented in the file of its concern.
pub struct SqliteStore {
    path: PathBuf,
    cipher: Arc<Cipher>,
    /// `None` only while dropping, to close the queue before joining the thread.
    writer: Option<mpsc::Sender<Command>>,
    writer_thread: Option<JoinHandle<()>>,
    /// Dropping it stops the checkpoint thread.
    checkpoint_stop: Option<std::sync::mpsc::Sender<()>>,
    checkpoint_thread: Option<JoinHandle<()>>,
    readers: Arc<Readers>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// SQLite's write-ahead log beside the database file.
fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

fn open_error(path: &Path, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!(
        "cannot open database {}: {what}: {e}",
        path.display()
    ))
}

fn connect(path: &Path, options: &SqliteOptions, read_only: bool) -> StoreResult<Connection> {
    let fail = |e: rusqlite::Error| open_error(path, "connect", e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(options.busy_timeout).map_err(fail)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(fail)?;
    conn.pragma_update(None, "synchronous", options.synchronous.pragma())
        .map_err(fail)?;
    conn.set_prepared_statement_cache_capacity(64);
    if read_only {
        conn.pragma_update(None, "query_only", true).map_err(fail)?;
        conn.pragma_update(None, "cache_size", -16_384)
            .map_err(fail)?;
    }
    Ok(conn)
}

/// Says at start-up, not first at each authentication, that the key file does not
/// match the sealed values. Not fatal: with the key lost, the operator still needs the
/// store to delete and re-enroll tokens.
fn warn_on_other_key(conn: &Connection, cipher: &Cipher, path: &Path) {
    let sample: Result<Option<String>, _> = conn
        .query_row(
            "SELECT secret FROM tokens UNION ALL SELECT secret FROM clients LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional();
    if let Ok(Some(sealed)) = sample {
        match Cipher::key_id_of(&sealed) {
            Some(stored) if stored != cipher.key_id() => tracing::error!(
                database = %path.display(),
                stored_key = stored,
                loaded_key = cipher.key_id(),
                "the database's secrets were sealed with another key than the key file holds; \
                 they cannot be read until mfad runs with the key file they were written with"
            ),
            _ => {}
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed, with its directories) the database at `path`, brings
    /// its schema up to date and starts the writer and reader threads.
    pub fn open(path: &Path, cipher: Cipher, options: SqliteOptions) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_error(path, &format!("create {}", dir.display()), e))?;
        }
        // The database holds PIN hashes and sealed secrets: create it private. SQLite
        // gives its -wal and -shm files the database file's mode.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(open_error(path, "create", e)),
        }

        let mut conn = connect(path, &options, false)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| open_error(path, "enable WAL", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_error(
                path,
                "enable WAL",
                format!("journal mode stayed '{mode}'"),
            ));
        }
        // Keep a WAL that grew during a burst from staying large on disk.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(|e| open_error(path, "set journal_size_limit", e))?;
        // The checkpoint thread keeps the WAL short; this is the backstop if it cannot.
        conn.pragma_update(None, "wal_autocheckpoint", 16_384)
            .map_err(|e| open_error(path, "set wal_autocheckpoint", e))?;
        schema::migrate(&mut conn, &path.display().to_string())?;
        warn_on_other_key(&conn, &cipher, path);

        let keep = match options.readers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)),
            n => n,
        };
        let readers = {
            let (path, options) = (path.to_owned(), options.clone());
            Arc::new(Readers::new(keep, move || connect(&path, &options, true))?)
        };

        let (checkpoint_stop, stop) = std::sync::mpsc::channel();
        let checkpointer = connect(path, &options, false)?;
        let checkpoint_thread = std::thread::Builder::new()
            .name("mfad-store-checkpoint".into())
            .spawn(move || checkpoint::run(checkpointer, stop))
            .map_err(|e| open_error(path, "start checkpoints", e))?;

        // The writer commits without waiting for the disk; with `synchronous = full` its
        // callers are answered once the sync thread has synced the WAL (see `writer`).
        conn.pragma_update(None, "synchronous", Synchronous::Normal.pragma())
            .map_err(|e| open_error(path, "set synchronous", e))?;
        let durability = match options.synchronous {
            Synchronous::Full => writer::Durability::SyncedWal(wal_path(path)),
            Synchronous::Normal => writer::Durability::Committed,
        };
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let wake = tx.downgrade();
        let writer_thread = std::thread::Builder::new()
            .name("mfad-store-writer".into())
            .spawn(move || writer::run(conn, rx, wake, durability))
            .map_err(|e| open_error(path, "start writer", e))?;

        Ok(Self {
            path: path.to_owned(),
            cipher: Arc::new(cipher),
            writer: Some(tx),
            writer_thread: Some(writer_thread),
            checkpoint_stop: Some(checkpoint_stop),
            checkpoint_thread: Some(checkpoint_thread),
            readers,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn send(&self, cmd: Command) -> StoreResult<()> {
        let tx = self.writer.as_ref().ok_or_else(writer_gone)?;
        tx.send(cmd).await.map_err(|_| writer_gone())
    }

    /// Runs `work` in the writer's next batch, inside a savepoint so that a failure
    /// part-way leaves nothing behind, and answers after that batch commits.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write_op(work, false).await
    }

    /// [`Self::write`] for work that is a single SQL statement, which needs no savepoint.
    async fn write_statement<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write_op(work, true).await
    }

    /// Work that answers once the writer applied it, without waiting for the commit:
    /// for counters whose order matters across callers but whose loss in a crash only
    /// errs on the safe side (see [`AuthStore::take_attempt`](mfad_core::store::AuthStore::take_attempt)). Its changes still commit with
    /// the batch they land in.
    async fn write_early<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let (op, done) = writer::pending(work, writer::Answer::Applied);
        self.send(Command::Write(op)).await?;
        done.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    async fn write_op<T, F>(&self, work: F, single_statement: bool) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let answer = if single_statement {
            writer::Answer::CommittedStatement
        } else {
            writer::Answer::Committed
        };
        let (op, done) = writer::pending(work, answer);
        self.send(Command::Write(op)).await?;
        done.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Runs `work` on a read connection, on this thread: point reads take microseconds.
    async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection, &Cipher) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.readers.with(|conn| work(conn, &self.cipher))?
    }

    /// Runs `work` on a read connection on a blocking thread, for reads that may scan
    /// many rows (listings, audit queries) and would hold up other requests.
    async fn read_bulk<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection, &Cipher) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let cipher = Arc::clone(&self.cipher);
        tokio::task::spawn_blocking(move || readers.with(|conn| work(conn, &cipher))?)
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Unavailable(format!(
                    "a database read failed: {e}"
                )))
            })
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the database writer thread has stopped".into())
}

impl Drop for SqliteStore {
    /// Closes the queue and waits for the writer to commit what is left in it, so audit
    /// records appended just before shutdown are not lost.
    fn drop(&mut self) {
        self.writer = None;
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
        self.checkpoint_stop = None;
        if let Some(thread) = self.checkpoint_thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PRAGMA synchronous` is per connection: every connection the store opens, for
    /// writing and for reading, carries the configured mode (FULL = 2, NORMAL = 1).
    #[test]
    fn the_synchronous_option_is_set_on_every_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        for (synchronous, want) in [(Synchronous::Full, 2), (Synchronous::Normal, 1)] {
            let options = SqliteOptions {
                synchronous,
                ..SqliteOptions::default()
            };
            for read_only in [false, true] {
                let conn = connect(&path, &options, read_only).unwrap();
                let got: i64 = conn
                    .pragma_query_value(None, "synchronous", |r| r.get(0))
                    .unwrap();
                assert_eq!(got, want, "{synchronous:?}, read_only {read_only}");
            }
        }
    }
}
