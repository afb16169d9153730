//! The embedded SQLite store: one writer thread with group commit, a pool of read connections.
//!
//! Writes go through a channel to the writer thread, which commits everything waiting
//! in one transaction (one fsync for the batch) and answers each caller after that
//! commit. Reads run on the caller's thread with pooled WAL connections. Another process
//! (the CLI while `mfad serve` runs) may write the same file: SQLite's locking with a
//! busy timeout serialises the two writers.

mod audit;
mod checkpoint;
mod clients;
mod directory;
mod map;
mod outbox;
mod reader;
mod schema;
mod sessions;
mod settings;
mod snapshot;
mod tokens;
mod users;
mod writer;

use crate::crypto::Cipher;
use async_trait::async_trait;
use mfad_core::audit::{AuditQuery, AuditRecord};
use mfad_core::model::{
    Challenge, Client, NewClient, NewToken, NewUser, Token, TokenId, User, UserId,
};
use mfad_core::outbox::{Attempt, Email, EmailId, NewEmail};
use mfad_core::settings::Setting;
use mfad_core::snapshot::Snapshot;
use mfad_core::store::{
    CodeAttempt, Decision, DirectorySync, FailureState, PendingTxn, Store, StoreError, StoreResult,
    SyncState, UserUpdate,
};
use reader::Readers;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokens::SealedToken;
use tokio::sync::{mpsc, oneshot};
use writer::{Command, Heard};

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

/// The SQLite implementation of [`Store`].
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
    /// errs on the safe side (see [`Store::take_attempt`]). Its changes still commit with
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

    fn seal_tokens(&self, tokens: &[NewToken]) -> StoreResult<Vec<SealedToken>> {
        tokens
            .iter()
            .map(|t| SealedToken::seal(t, &self.cipher))
            .collect()
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

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, user: &NewUser, now: i64) -> StoreResult<User> {
        let user = NewUser {
            username: crate::normalise_username(&user.username),
            ..user.clone()
        };
        self.write(move |c| users::insert_user(c, &user, now)).await
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        let username = crate::normalise_username(username);
        self.read(move |c, _| users::by_name(c, &username)).await
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        self.read(move |c, _| users::by_id(c, id)).await
    }

    async fn user_by_directory_id(&self, directory_id: &str) -> StoreResult<Option<User>> {
        let directory_id = directory_id.to_owned();
        self.read(move |c, _| users::by_directory_id(c, &directory_id))
            .await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.read_bulk(|c, _| users::list(c)).await
    }

    async fn update_user(&self, id: UserId, update: &UserUpdate) -> StoreResult<User> {
        let update = update.clone();
        self.write(move |c| users::update(c, id, &update)).await
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        self.write(move |c| users::delete(c, id)).await
    }

    async fn set_block(
        &self,
        id: UserId,
        until: Option<i64>,
        reason: Option<&str>,
    ) -> StoreResult<()> {
        let reason = reason.map(str::to_owned);
        self.write(move |c| users::set_block(c, id, until, reason.as_deref()))
            .await
    }

    async fn set_bypass(&self, id: UserId, until: Option<i64>) -> StoreResult<()> {
        self.write(move |c| users::set_bypass(c, id, until)).await
    }

    async fn consume_bypass(&self, id: UserId, now: i64) -> StoreResult<bool> {
        // The engine asks on every authentication and almost nobody has a bypass: answer
        // "none" from a reader instead of waiting for a commit. Returning false when a
        // grant lands just after the read is the same as this call coming first.
        if !self.read(move |c, _| users::has_bypass(c, id, now)).await? {
            return Ok(false);
        }
        self.write(move |c| users::consume_bypass(c, id, now)).await
    }

    async fn take_attempt(
        &self,
        id: UserId,
        now: i64,
        max_failures: u32,
        lockout_seconds: i64,
    ) -> StoreResult<Option<FailureState>> {
        // Answered as soon as the writer has applied it, before the commit: every later
        // write (another attempt's slot, this attempt's outcome) goes through the same
        // writer after it, so the slot holds for them, and the outcome of the attempt
        // becomes durable in the same or a later commit. Waiting for the fsync here
        // would double the latency of every authentication.
        self.write_early(move |c| users::take_attempt(c, id, now, max_failures, lockout_seconds))
            .await
    }

    async fn attempt_code(
        &self,
        user: UserId,
        fresh: Option<(TokenId, u64)>,
        now: i64,
        max_failures: u32,
        lockout_seconds: i64,
        accepted: Option<AuditRecord>,
    ) -> StoreResult<CodeAttempt> {
        // The trait's rule in one visit to the writer. The writer runs one op at a time,
        // so reading the lock first is as atomic as the trait's order, and a fresh code,
        // the common case, costs one read and one write instead of three writes. A
        // failed attempt is answered once applied (the engine's audit record of it,
        // committed after it, makes it durable); an accepted one with its audit record
        // in the same transaction, once durable: one commit per Accept.
        let (op, done) = writer::decided(move |c| {
            if let Some((token, used)) = fresh {
                let (failures, locked_until) = users::failure_state(c, user)?;
                if locked_until.is_some_and(|until| until > now) {
                    return Ok((CodeAttempt::Locked, Heard::Applied));
                }
                if tokens::advance(c, token, used)? {
                    if failures > 0 || locked_until.is_some() {
                        users::clear_failures(c, user)?;
                    }
                    let Some(record) = accepted else {
                        return Ok((CodeAttempt::Accepted, Heard::Applied));
                    };
                    audit::insert_audit(c, &record)?;
                    return Ok((CodeAttempt::Accepted, Heard::Durable));
                }
            }
            let attempt = match users::take_attempt(c, user, now, max_failures, lockout_seconds)? {
                None => CodeAttempt::Locked,
                Some(state) => CodeAttempt::Failed {
                    replayed: fresh.is_some(),
                    state,
                },
            };
            Ok((attempt, Heard::Applied))
        });
        self.send(Command::Write(op)).await?;
        done.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    async fn release_attempt(&self, id: UserId) -> StoreResult<()> {
        self.write_early(move |c| users::release_attempt(c, id))
            .await
    }

    async fn clear_failures(&self, id: UserId) -> StoreResult<()> {
        // Like a slot: every later write sees it; a crash before its commit leaves the
        // user with the count of the attempt that succeeded, which errs on the safe side.
        self.write_early(move |c| users::clear_failures(c, id))
            .await
    }

    async fn set_pin(
        &self,
        id: UserId,
        pin_hash: Option<&str>,
        change_required: bool,
        history: usize,
    ) -> StoreResult<()> {
        let pin_hash = pin_hash.map(str::to_owned);
        self.write(move |c| users::set_pin(c, id, pin_hash.as_deref(), change_required, history))
            .await
    }

    async fn create_users_with_tokens(
        &self,
        batch: &[(NewUser, Vec<NewToken>)],
        now: i64,
    ) -> StoreResult<usize> {
        let batch = batch
            .iter()
            .map(|(user, tokens)| {
                let user = NewUser {
                    username: crate::normalise_username(&user.username),
                    ..user.clone()
                };
                Ok((user, self.seal_tokens(tokens)?))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.write(move |c| users::insert_users_with_tokens(c, &batch, now))
            .await
    }

    async fn apply_directory_sync(&self, changes: &DirectorySync, now: i64) -> StoreResult<()> {
        let changes = changes.clone();
        self.write(move |c| directory::apply(c, &changes, now))
            .await
    }

    async fn sync_state(&self) -> StoreResult<SyncState> {
        self.read(|c, _| directory::state(c)).await
    }

    async fn put_sync_state(&self, state: &SyncState) -> StoreResult<()> {
        let state = state.clone();
        self.write(move |c| directory::put_state(c, &state)).await
    }

    async fn acquire_sync_lock(&self, holder: &str, now: i64, until: i64) -> StoreResult<bool> {
        let holder = holder.to_owned();
        self.write(move |c| directory::acquire_lock(c, &holder, now, until))
            .await
    }

    async fn release_sync_lock(&self, holder: &str) -> StoreResult<()> {
        let holder = holder.to_owned();
        self.write(move |c| directory::release_lock(c, &holder))
            .await
    }

    async fn create_tokens(&self, tokens: &[NewToken], now: i64) -> StoreResult<Vec<Token>> {
        let sealed = self.seal_tokens(tokens)?;
        let cipher = Arc::clone(&self.cipher);
        self.write(move |c| tokens::create(c, &cipher, &sealed, now))
            .await
    }

    async fn token_by_serial(&self, serial: &str) -> StoreResult<Option<Token>> {
        let serial = serial.to_owned();
        self.read(move |c, cipher| tokens::by_serial(c, cipher, &serial))
            .await
    }

    async fn tokens_for_user(&self, id: UserId) -> StoreResult<Vec<Token>> {
        self.read(move |c, cipher| tokens::for_user(c, cipher, id))
            .await
    }

    async fn list_tokens(&self) -> StoreResult<Vec<Token>> {
        self.read_bulk(tokens::list).await
    }

    async fn assign_token(&self, token: TokenId, user: Option<UserId>) -> StoreResult<()> {
        self.write(move |c| tokens::assign(c, token, user)).await
    }

    async fn delete_token(&self, token: TokenId) -> StoreResult<()> {
        self.write(move |c| tokens::delete(c, token)).await
    }

    async fn advance_token(&self, token: TokenId, used: u64) -> StoreResult<bool> {
        self.write_statement(move |c| tokens::advance(c, token, used))
            .await
    }

    async fn set_token_resync(&self, token: TokenId, resync: Option<u64>) -> StoreResult<()> {
        self.write(move |c| tokens::set_resync(c, token, resync))
            .await
    }

    async fn auth_subject(&self, username: &str) -> StoreResult<Option<(User, Vec<Token>)>> {
        let username = crate::normalise_username(username);
        self.read(move |c, cipher| users::auth_subject(c, cipher, &username))
            .await
    }

    async fn put_challenge(&self, challenge: &Challenge) -> StoreResult<()> {
        let kind = sessions::kind_to_json(&challenge.kind)?;
        let challenge = challenge.clone();
        self.write(move |c| sessions::put_challenge(c, &challenge, &kind))
            .await
    }

    async fn take_challenge(&self, state: &[u8], now: i64) -> StoreResult<Option<Challenge>> {
        let state = state.to_vec();
        self.write(move |c| sessions::take_challenge(c, &state, now))
            .await
    }

    fn code_mac(&self) -> &mfad_core::code_mac::CodeMac {
        self.cipher.code_mac()
    }

    async fn put_cached_auth(&self, key: &str, until: i64) -> StoreResult<()> {
        let key = key.to_owned();
        self.write(move |c| sessions::put_cached_auth(c, &key, until))
            .await
    }

    async fn cached_auth(&self, key: &str, now: i64) -> StoreResult<bool> {
        let key = key.to_owned();
        self.read(move |c, _| sessions::cached_auth(c, &key, now))
            .await
    }

    // --- pending out-of-band transactions ------------------------------------------
    // Through the writer, reads included: a poll sees every decision applied before it.

    async fn put_pending(&self, pending: &PendingTxn, now: i64) -> StoreResult<()> {
        let body = crate::pending_txns::encode_body(pending)?;
        let (txn, expires_at) = (pending.txn.clone(), pending.expires_at);
        self.write(move |c| sessions::put_pending(c, &txn, &body, expires_at, now))
            .await
    }

    async fn pending(&self, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>> {
        let txn = txn.to_vec();
        self.write(move |c| sessions::pending(c, &txn, now)).await
    }

    async fn decide_pending(&self, txn: &[u8], decision: &Decision, now: i64) -> StoreResult<bool> {
        let decision = crate::pending_txns::encode_decision(decision)?;
        let txn = txn.to_vec();
        self.write(move |c| sessions::decide_pending(c, &txn, &decision, now))
            .await
    }

    async fn take_decided(&self, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>> {
        let txn = txn.to_vec();
        self.write(move |c| sessions::take_decided(c, &txn, now))
            .await
    }

    async fn delete_pending(&self, txn: &[u8]) -> StoreResult<()> {
        let txn = txn.to_vec();
        self.write(move |c| sessions::delete_pending(c, &txn)).await
    }

    async fn create_client(&self, client: &NewClient, now: i64) -> StoreResult<Client> {
        let sealed = self
            .cipher
            .encrypt(client.secret.as_bytes(), &map::client_aad(&client.name))
            .map_err(|e| StoreError::Unavailable(format!("cannot encrypt a client secret: {e}")))?;
        let client = client.clone();
        let cipher = Arc::clone(&self.cipher);
        self.write(move |c| clients::create(c, &cipher, &client, &sealed, now))
            .await
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        self.read(clients::list).await
    }

    async fn delete_client(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |c| clients::delete(c, &name)).await
    }

    async fn append_audit(&self, record: AuditRecord) -> StoreResult<()> {
        let (reply, done) = oneshot::channel();
        self.send(Command::Audit(Box::new(record), Some(reply)))
            .await?;
        done.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    async fn queue_audit(&self, record: AuditRecord) -> StoreResult<()> {
        self.send(Command::Audit(Box::new(record), None)).await
    }

    async fn query_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let query = query.clone();
        self.read_bulk(move |c, _| audit::query(c, &query)).await
    }

    async fn purge_audit(&self, before_ms: i64) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let deleted = self
                .write(move |c| audit::purge_chunk(c, before_ms))
                .await?;
            total += deleted;
            if deleted < audit::PURGE_CHUNK {
                return Ok(total);
            }
        }
    }

    async fn flush(&self) -> StoreResult<()> {
        let (reply, done) = oneshot::channel();
        self.send(Command::Flush(reply)).await?;
        done.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    async fn queue_email(&self, email: &NewEmail, now: i64) -> StoreResult<Option<Email>> {
        let email = email.clone();
        let cipher = Arc::clone(&self.cipher);
        self.write(move |c| outbox::queue(c, &cipher, &email, now))
            .await
    }

    async fn claim_emails(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Email>> {
        let cipher = Arc::clone(&self.cipher);
        self.write(move |c| outbox::claim(c, &cipher, now, lease_until, limit))
            .await
    }

    async fn finish_email(&self, id: EmailId, attempt: &Attempt) -> StoreResult<()> {
        let attempt = attempt.clone();
        self.write(move |c| outbox::finish(c, id, &attempt)).await
    }

    async fn list_emails(&self, limit: usize) -> StoreResult<Vec<Email>> {
        self.read(move |c, _| outbox::list(c, limit)).await
    }

    async fn take_rate(
        &self,
        key: &str,
        now: i64,
        window_seconds: i64,
        limit: u32,
    ) -> StoreResult<bool> {
        let key = key.to_owned();
        self.write(move |c| sessions::take_rate(c, &key, now, window_seconds, limit))
            .await
    }

    async fn list_settings(&self) -> StoreResult<Vec<Setting>> {
        self.read(settings::list).await
    }

    async fn put_setting(&self, key: &str, value: &str, secret: bool, now: i64) -> StoreResult<()> {
        let stored = crate::settings::seal(&self.cipher, key, value, secret)?;
        let key = key.to_owned();
        self.write(move |c| settings::put(c, &key, &stored, secret, now))
            .await
    }

    async fn delete_setting(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.write(move |c| settings::delete(c, &key)).await
    }

    async fn settings_version(&self) -> StoreResult<i64> {
        self.read(|c, _| settings::version(c)).await
    }

    async fn export_snapshot(&self) -> StoreResult<Snapshot> {
        self.flush().await?;
        self.read(|c, _| snapshot::export(c)).await
    }

    async fn import_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()> {
        let snapshot = snapshot.clone();
        self.write(move |c| snapshot::import(c, &snapshot)).await
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
