//! The single writer thread: group commit of every waiting write in one transaction.
//!
//! SQLite allows one writer at a time and a durable commit costs an fsync, so the
//! writer drains everything queued, applies it inside one `BEGIN IMMEDIATE`
//! transaction (each operation in its own SAVEPOINT, so a failing one leaves the
//! others intact) and commits once. Callers hear back only after that commit is on
//! disk, which is what makes a `true` from `advance_token` durable replay protection.
//! The one exception is a write answered as soon as it is applied ([`Answer::Applied`]):
//! its order among the writes matters to the callers, its durability does not.
//!
//! The fsync does not hold the writer up. The writer commits without one (its
//! connection runs `synchronous = NORMAL`, which still syncs around checkpoints) and
//! hands the batch's callers to the sync thread, which syncs the WAL file once for all
//! the batches committed meanwhile and only then answers them. So a write answered once
//! applied never waits behind a disk flush, and a request that visits the writer
//! several times waits for about one flush in all.

use super::audit::insert_audit;
use super::map::db_err;
use mfad_core::audit::AuditRecord;
use mfad_core::store::{StoreError, StoreResult};
use rusqlite::Connection;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc as sync_mpsc;
use tokio::sync::{mpsc, oneshot};

/// Most commands applied in one transaction; bounds how long one commit takes.
const MAX_BATCH: usize = 4096;
/// Audit records kept for a retry after failed commits before the oldest are dropped.
const MAX_CARRIED_AUDIT: usize = 100_000;

/// A write that runs inside the batch transaction and answers after the commit.
pub(super) trait Op: Send {
    /// Applies the write; false when it failed and its savepoint must be rolled back.
    fn apply(&mut self, conn: &Connection) -> bool;
    /// True when the write is one SQL statement, which SQLite already applies all or
    /// nothing (a failing statement undoes its own changes), so it needs no savepoint.
    fn single_statement(&self) -> bool;
    /// Sends the result, or `commit`'s error when the batch did not become durable.
    fn finish(self: Box<Self>, commit: StoreResult<()>);
}

pub(super) enum Command {
    Write(Box<dyn Op>),
    /// An audit record, durable with the batch it lands in. With a reply, answered once
    /// durable, and dropped if its batch fails; without, kept for a retry.
    Audit(Box<AuditRecord>, Option<oneshot::Sender<StoreResult<()>>>),
    /// Answered once everything queued before it is committed.
    Flush(oneshot::Sender<StoreResult<()>>),
    /// From the sync thread: the last commit is durable, the next may go.
    Synced,
}

/// When a write's caller hears back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// After the commit; the work runs in a savepoint.
    Committed,
    /// After the commit; the work is one SQL statement (see [`Op::single_statement`]).
    CommittedStatement,
    /// As soon as the work is applied, before the commit. The work must be one
    /// statement (or reads and one statement).
    Applied,
}

/// An [`Op`] made from a closure and the channel its caller waits on.
struct Pending<F, T> {
    work: Option<F>,
    answer: Answer,
    result: Option<StoreResult<T>>,
    reply: Option<oneshot::Sender<StoreResult<T>>>,
}

/// Wraps `work` as an [`Op`]; the receiver yields its result when `answer` says.
pub(super) fn pending<F, T>(
    work: F,
    answer: Answer,
) -> (Box<dyn Op>, oneshot::Receiver<StoreResult<T>>)
where
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    T: Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    (
        Box::new(Pending {
            work: Some(work),
            answer,
            result: None,
            reply: Some(reply),
        }),
        rx,
    )
}

impl<F, T> Op for Pending<F, T>
where
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    T: Send + 'static,
{
    fn apply(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        if self.answer == Answer::Applied {
            if let Some(reply) = self.reply.take() {
                let _ = reply.send(result);
            }
        } else {
            self.result = Some(result);
        }
        ok
    }

    fn single_statement(&self) -> bool {
        self.answer != Answer::Committed
    }

    fn finish(self: Box<Self>, commit: StoreResult<()>) {
        answer_after_commit(self.reply, self.result, commit);
    }
}

/// When the caller of a [`decided`] write hears back, as the write itself decided.
pub(super) enum Heard {
    /// At once: what was applied may still be lost, which only errs on the safe side.
    Applied,
    /// Once the transaction it landed in is durable.
    Durable,
}

/// A write that decides, once applied, whether its caller hears back at once or once
/// durable: an attempt at a code answers at once when it failed, and after the commit
/// when it was accepted (with the audit record it wrote). Like [`Answer::Applied`], the
/// work is reads and one statement, or fails closed when a later statement fails.
struct Decided<F, T> {
    work: Option<F>,
    result: Option<StoreResult<T>>,
    reply: Option<oneshot::Sender<StoreResult<T>>>,
}

/// Wraps `work` as an [`Op`] whose receiver yields its result when the work says.
pub(super) fn decided<F, T>(work: F) -> (Box<dyn Op>, oneshot::Receiver<StoreResult<T>>)
where
    F: FnOnce(&Connection) -> StoreResult<(T, Heard)> + Send + 'static,
    T: Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    (
        Box::new(Decided {
            work: Some(work),
            result: None,
            reply: Some(reply),
        }),
        rx,
    )
}

impl<F, T> Op for Decided<F, T>
where
    F: FnOnce(&Connection) -> StoreResult<(T, Heard)> + Send + 'static,
    T: Send + 'static,
{
    fn apply(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        match work(conn) {
            Ok((value, Heard::Durable)) => {
                self.result = Some(Ok(value));
                true
            }
            Ok((value, Heard::Applied)) => {
                if let Some(reply) = self.reply.take() {
                    let _ = reply.send(Ok(value));
                }
                true
            }
            Err(e) => {
                if let Some(reply) = self.reply.take() {
                    let _ = reply.send(Err(e));
                }
                false
            }
        }
    }

    fn single_statement(&self) -> bool {
        true
    }

    fn finish(self: Box<Self>, commit: StoreResult<()>) {
        answer_after_commit(self.reply, self.result, commit);
    }
}

/// Sends a write's result once its transaction is settled: `commit`'s error if it did
/// not become durable. No reply: answered already, or the caller went away (request
/// cancelled); the write stands regardless.
fn answer_after_commit<T>(
    reply: Option<oneshot::Sender<StoreResult<T>>>,
    result: Option<StoreResult<T>>,
    commit: StoreResult<()>,
) {
    let Some(reply) = reply else {
        return;
    };
    let outcome = match (commit, result) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(result)) => result,
        (Ok(()), None) => Err(StoreError::Unavailable("the write was not applied".into())),
    };
    let _ = reply.send(outcome);
}

/// When a committed batch counts as durable.
pub(super) enum Durability {
    /// Once committed (`synchronous = normal`: a power cut may lose the last commits).
    Committed,
    /// Once the WAL file at this path has been synced after the commit.
    SyncedWal(PathBuf),
}

/// A committed batch's callers, answered when it is durable.
#[derive(Default)]
struct Settled {
    ops: Vec<Box<dyn Op>>,
    /// Flushes and audit records that wait for the batch.
    waiting: Vec<oneshot::Sender<StoreResult<()>>>,
}

impl Settled {
    fn answer(self, outcome: StoreResult<()>) {
        for op in self.ops {
            op.finish(outcome.clone());
        }
        for reply in self.waiting {
            let _ = reply.send(outcome.clone());
        }
    }
}

/// Runs until every sender is dropped, then commits what is left and returns.
/// `wake`: the writer's own queue, for the sync thread's word that a sync is done.
pub(super) fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Command>,
    wake: mpsc::WeakSender<Command>,
    durability: Durability,
) {
    let (sync, sync_thread) = match durability {
        Durability::Committed => (None, None),
        Durability::SyncedWal(wal) => {
            let (tx, settled) = sync_mpsc::channel::<Settled>();
            let thread = std::thread::Builder::new()
                .name("mfad-store-sync".into())
                .spawn(move || sync_wal(&wal, &settled, &wake));
            match thread {
                Ok(thread) => (Some(tx), Some(thread)),
                Err(e) => {
                    // Without it no commit could be known durable: fail every write.
                    tracing::error!("cannot start the WAL sync thread: {e}");
                    let (tx, _) = sync_mpsc::channel::<Settled>();
                    (Some(tx), None)
                }
            }
        }
    };
    let mut writer = Writer {
        conn,
        carried: Vec::new(),
        sync,
        syncing: false,
        open: None,
    };
    while let Some(first) = rx.blocking_recv() {
        writer.take(first);
        let mut taken = 1;
        while taken < MAX_BATCH {
            match rx.try_recv() {
                Ok(cmd) => writer.take(cmd),
                Err(_) => break,
            }
            taken += 1;
        }
        // While the last commit is being synced, what arrives is applied (and answered,
        // where it may be) in an open transaction that commits as soon as the sync is
        // done: one commit per sync, however many requests come meanwhile.
        if !writer.syncing || writer.open_len() >= MAX_BATCH {
            writer.commit();
        }
    }
    writer.commit();
    if !writer.carried.is_empty() {
        writer.begin();
        writer.commit();
    }
    if !writer.carried.is_empty() {
        tracing::error!(
            lost = writer.carried.len(),
            "audit records could not be written before the store closed"
        );
    }
    // The sync thread answers what it holds, then ends.
    writer.sync = None;
    if let Some(thread) = sync_thread {
        let _ = thread.join();
    }
}

/// The sync thread: one `fdatasync` of the WAL for every group of committed batches
/// waiting, then their callers are answered and the writer is told it may commit again.
fn sync_wal(wal: &Path, settled: &sync_mpsc::Receiver<Settled>, wake: &mpsc::WeakSender<Command>) {
    let mut file: Option<File> = None;
    while let Ok(first) = settled.recv() {
        let mut group = vec![first];
        group.extend(settled.try_iter());
        let durable = sync_file(wal, &mut file);
        if let Err(e) = &durable {
            tracing::error!(error = %e, "the database's WAL could not be synced");
        }
        for batch in group {
            batch.answer(durable.clone());
        }
        // A store that is closing has no writer left to wake.
        if let Some(writer) = wake.upgrade() {
            let _ = writer.blocking_send(Command::Synced);
        }
    }
}

/// Syncs the WAL file, opening it (and syncing its directory, so that the file itself
/// survives a power cut) the first time.
fn sync_file(wal: &Path, file: &mut Option<File>) -> StoreResult<()> {
    let unavailable = |what: &str, e: std::io::Error| {
        StoreError::Unavailable(format!("{what} {}: {e}", wal.display()))
    };
    let open = match file.take() {
        Some(open) => open,
        None => {
            let open = File::open(wal).map_err(|e| unavailable("cannot open", e))?;
            if let Some(dir) = wal.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| unavailable("cannot sync the folder of", e))?;
            }
            open
        }
    };
    // A failed fsync may have dropped the dirty pages: reopen before trusting another.
    open.sync_data()
        .map_err(|e| unavailable("cannot sync", e))?;
    *file = Some(open);
    Ok(())
}

/// The transaction being filled: what it applied and who waits for its commit.
#[derive(Default)]
struct Open {
    callers: Settled,
    /// Audit records inserted, with whether to keep them for a retry should the
    /// transaction fail (records whose callers wait hear the error instead).
    audits: Vec<(AuditRecord, bool)>,
}

struct Writer {
    conn: Connection,
    /// Audit records from transactions that failed, retried with the next one.
    carried: Vec<AuditRecord>,
    /// Where committed batches go to be made durable; `None`: they are once committed.
    sync: Option<sync_mpsc::Sender<Settled>>,
    /// A commit is with the sync thread.
    syncing: bool,
    /// The transaction being filled; `None` when there is none (flushes alone wait
    /// without one).
    open: Option<Open>,
}

impl Writer {
    fn open_len(&self) -> usize {
        self.open
            .as_ref()
            .map_or(0, |o| o.callers.ops.len() + o.audits.len())
    }

    /// Applies one command in the open transaction.
    fn take(&mut self, cmd: Command) {
        match cmd {
            Command::Synced => self.syncing = false,
            Command::Flush(reply) => self.begin_callers().waiting.push(reply),
            Command::Write(mut op) => {
                if !self.begin() {
                    op.finish(Err(rolled_back()));
                    return;
                }
                let applied = self.apply(&mut op);
                self.begin_callers().ops.push(op);
                if let Err(e) = applied {
                    self.abort(e);
                }
            }
            Command::Audit(record, reply) => {
                if !self.begin() {
                    match reply {
                        Some(reply) => drop(reply.send(Err(rolled_back()))),
                        None => self.carried.push(*record),
                    }
                    return;
                }
                let inserted = insert_audit(&self.conn, &record);
                let keep = reply.is_none();
                let open = self.open.get_or_insert_with(Open::default);
                open.audits.push((*record, keep));
                open.callers.waiting.extend(reply);
                if let Err(e) = inserted {
                    if self.conn.is_autocommit() {
                        self.abort(e);
                    } else {
                        tracing::error!(error = %e, "audit record dropped");
                    }
                }
            }
        }
    }

    /// The callers of the open transaction, made if there is none.
    fn begin_callers(&mut self) -> &mut Settled {
        &mut self.open.get_or_insert_with(Open::default).callers
    }

    /// Starts a transaction if none is running (with the records kept from a failed one
    /// first); false when it cannot.
    fn begin(&mut self) -> bool {
        if !self.conn.is_autocommit() {
            return true;
        }
        if let Err(e) = exec(&self.conn, "BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "cannot start a write transaction");
            return false;
        }
        for record in std::mem::take(&mut self.carried) {
            if let Err(e) = insert_audit(&self.conn, &record) {
                tracing::error!(error = %e, id = %record.id, "audit record dropped");
            }
            self.open
                .get_or_insert_with(Open::default)
                .audits
                .push((record, true));
        }
        true
    }

    /// Runs one op in its savepoint (if it needs one).
    fn apply(&mut self, op: &mut Box<dyn Op>) -> StoreResult<()> {
        let conn = &self.conn;
        let savepoint = !op.single_statement();
        if savepoint {
            exec(conn, "SAVEPOINT op")?;
        }
        let ok = op.apply(conn);
        // An I/O or disk-full error makes SQLite roll the whole transaction back.
        if conn.is_autocommit() {
            return Err(rolled_back());
        }
        if savepoint {
            if ok {
                exec(conn, "RELEASE op")?;
            } else {
                rollback_op(conn)?;
            }
        }
        Ok(())
    }

    /// Commits the open transaction and hands its callers on to be answered once it
    /// is durable.
    fn commit(&mut self) {
        let size = self.open_len();
        let Some(open) = self.open.take() else {
            return;
        };
        metrics::histogram!("mfad_store_batch_size", "store" => "sqlite", "kind" => "write")
            .record(size as f64);
        if !self.conn.is_autocommit() {
            if let Err(e) = exec(&self.conn, "COMMIT") {
                let e = abort(&self.conn, e);
                self.fail(open, e);
                return;
            }
        }
        match &self.sync {
            None => open.callers.answer(Ok(())),
            Some(sync) => match sync.send(open.callers) {
                Ok(()) => self.syncing = true,
                Err(sync_mpsc::SendError(callers)) => callers.answer(Err(StoreError::Unavailable(
                    "the database's WAL sync thread has stopped".into(),
                ))),
            },
        }
    }

    /// Ends the open transaction after an error that lost it.
    fn abort(&mut self, e: StoreError) {
        let e = abort(&self.conn, e);
        if let Some(open) = self.open.take() {
            self.fail(open, e);
        }
    }

    /// Answers a lost transaction's callers with `e` and keeps its other audit records.
    fn fail(&mut self, open: Open, e: StoreError) {
        tracing::error!(error = %e, writes = open.callers.ops.len(), audit = open.audits.len(), "store commit failed");
        let kept = open
            .audits
            .into_iter()
            .filter_map(|(record, keep)| keep.then_some(record));
        self.carried.extend(kept);
        if self.carried.len() > MAX_CARRIED_AUDIT {
            let excess = self.carried.len() - MAX_CARRIED_AUDIT;
            tracing::error!(
                lost = excess,
                "audit records dropped: the database is not accepting writes"
            );
            self.carried.drain(..excess);
        }
        open.callers.answer(Err(e));
    }
}

fn rolled_back() -> StoreError {
    StoreError::Unavailable("the database rolled the transaction back after an error".into())
}

fn exec(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(drop)
        .map_err(db_err)
}

fn rollback_op(conn: &Connection) -> StoreResult<()> {
    exec(conn, "ROLLBACK TO op")?;
    exec(conn, "RELEASE op")
}

/// Ends a transaction that cannot go on, keeping the first error.
fn abort(conn: &Connection, e: StoreError) -> StoreError {
    if !conn.is_autocommit() {
        if let Err(rollback) = exec(conn, "ROLLBACK") {
            tracing::error!(error = %rollback, "rollback failed");
        }
    }
    e
}
