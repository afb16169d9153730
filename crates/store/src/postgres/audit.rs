//! The audit log: records queued by every request and inserted in batches by one
//! task per node, newest-first queries, chunked purge.
//!
//! A batch is one multi-row INSERT (arrays unnested server-side), so a node under load
//! spends one round trip and one commit on hundreds of records.

use super::map::audit_from_row;
use super::map::db_err;
use super::{audit_gone, PgStore};
use crate::rules::{audit_query, AuditArg};
use async_trait::async_trait;
use mfad_core::audit::{AuditQuery, AuditRecord, AuditResult};
use mfad_core::store::AuditStore;
use mfad_core::store::{StoreError, StoreResult};
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgConnection, PgPool};
use std::sync::LazyLock;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Rows removed per statement by a purge, so a purge of months of records never holds
/// locks long enough to stall the nodes.
pub(super) const PURGE_CHUNK: i64 = 5_000;
/// Most records in one INSERT.
const MAX_BATCH: usize = 2_000;
/// Records kept for a retry while the database is away before the oldest are dropped.
const MAX_CARRIED: usize = 100_000;
/// Wait between attempts while the database does not take a batch.
const RETRY: Duration = Duration::from_millis(500);

/// A caller waiting for its record to be committed.
type Waiter = Option<oneshot::Sender<StoreResult<()>>>;

pub(super) enum Command {
    /// A record; with a reply, answered once committed and dropped if its batch fails;
    /// without, kept for a retry.
    Record(Box<AuditRecord>, Waiter),
    /// Answered once everything queued before it is committed (or the attempt failed).
    Flush(oneshot::Sender<StoreResult<()>>),
}

/// One column of the audit table: how to read it from a record.
enum Column {
    Text(fn(&AuditRecord) -> Option<&str>),
    Int(fn(&AuditRecord) -> i64),
}

/// The audit table's columns, in the order [`bind_records`] binds them.
const COLUMNS: [(&str, Column); 18] = [
    ("id", Column::Text(|r| Some(&r.id))),
    ("time_ms", Column::Int(|r| r.time_ms)),
    ("username", Column::Text(|r| Some(&r.username))),
    ("given_name", Column::Text(|r| Some(&r.given_name))),
    ("surname", Column::Text(|r| Some(&r.surname))),
    ("email", Column::Text(|r| Some(&r.email))),
    ("phone", Column::Text(|r| Some(&r.phone))),
    ("device", Column::Text(|r| Some(&r.device))),
    ("method", Column::Text(|r| Some(&r.method))),
    ("mode", Column::Text(|r| Some(&r.mode))),
    (
        "result",
        Column::Text(|r| r.result.map(AuditResult::as_str)),
    ),
    ("reason", Column::Text(|r| Some(&r.reason))),
    ("server_name", Column::Text(|r| Some(&r.server_name))),
    ("server_ip", Column::Text(|r| Some(&r.server_ip))),
    ("client_name", Column::Text(|r| Some(&r.client_name))),
    ("client_ip", Column::Text(|r| Some(&r.client_ip))),
    ("channel", Column::Text(|r| Some(&r.channel))),
    (
        "calling_station",
        Column::Text(|r| Some(&r.calling_station)),
    ),
];

/// `INSERT INTO audit (...) SELECT ... FROM UNNEST(...)` of the records bound by
/// [`bind_records`] as parameters `$first` on. `keyed`: the UNNEST starts with one more
/// array, bound before the records as `$first - 1` and named `key`, and the rows come
/// from `FROM` plus what `keyed` adds (`JOIN ... ON ... r.key ...`).
pub(super) fn insert_sql(first: usize, keyed: Option<&str>) -> String {
    let names = COLUMNS.map(|(name, _)| name);
    let arrays = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (_, column))| {
            let ty = match column {
                Column::Text(_) => "text",
                Column::Int(_) => "bigint",
            };
            format!("${}::{ty}[]", first + i)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let list = names.join(", ");
    match keyed {
        None => format!("INSERT INTO audit ({list}) SELECT * FROM UNNEST({arrays})"),
        Some(join) => {
            let key = first - 1;
            let picked = names.map(|name| format!("r.{name}")).join(", ");
            format!(
                "INSERT INTO audit ({list}) SELECT {picked}
                 FROM UNNEST(${key}::bigint[], {arrays}) AS r(key, {list}) {join}"
            )
        }
    }
}

/// Binds the records as one array per column, in the order of [`COLUMNS`].
pub(super) fn bind_records<'r>(
    args: &mut PgArguments,
    records: impl Iterator<Item = &'r AuditRecord> + Clone,
) -> StoreResult<()> {
    for (_, column) in &COLUMNS {
        match column {
            Column::Text(read) => args.add(records.clone().map(read).collect::<Vec<_>>()),
            Column::Int(read) => args.add(records.clone().map(read).collect::<Vec<_>>()),
        }
        .map_err(|e| StoreError::Unavailable(format!("cannot bind audit records: {e}")))?;
    }
    Ok(())
}

static INSERT: LazyLock<String> = LazyLock::new(|| insert_sql(1, None));

/// Inserts the records in one statement (and so one transaction).
pub(super) async fn insert_batch(
    conn: &mut PgConnection,
    records: &[AuditRecord],
) -> StoreResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut args = PgArguments::default();
    bind_records(&mut args, records.iter())?;
    sqlx::query_with(&INSERT, args)
        .execute(conn)
        .await
        .map(drop)
        .map_err(db_err)
}

/// The node's audit writer: drains the queue into batches until the store is dropped.
/// While the database is away the records wait (up to [`MAX_CARRIED`]) and are written
/// when it is back; flushes in between get the error.
pub(super) async fn run_writer(pool: PgPool, mut queue: mpsc::Receiver<Command>) {
    let mut pending: Vec<AuditRecord> = Vec::new();
    // One per pending record, in the same order.
    let mut waiters: Vec<Waiter> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<StoreResult<()>>> = Vec::new();
    let mut open = true;
    while open || !pending.is_empty() {
        if pending.is_empty() && flushes.is_empty() {
            match queue.recv().await {
                Some(cmd) => take(cmd, &mut pending, &mut waiters, &mut flushes),
                None => break,
            }
        }
        while pending.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(cmd) => take(cmd, &mut pending, &mut waiters, &mut flushes),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if pending.is_empty() {
            for flush in flushes.drain(..) {
                let _ = flush.send(Ok(()));
            }
            continue;
        }
        let batch = pending.len().min(MAX_BATCH);
        let written = match pool.acquire().await {
            Ok(mut conn) => {
                let done = insert_batch(&mut conn, pending.get(..batch).unwrap_or_default()).await;
                if done.is_err() {
                    conn.close_on_drop();
                }
                done
            }
            Err(e) => Err(db_err(e)),
        };
        match written {
            Ok(()) => {
                pending.drain(..batch);
                for waiter in waiters.drain(..batch).flatten() {
                    let _ = waiter.send(Ok(()));
                }
                if pending.is_empty() {
                    for flush in flushes.drain(..) {
                        let _ = flush.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    queued = pending.len(),
                    "audit records wait for the database: {e}"
                );
                let failed =
                    StoreError::Unavailable(format!("audit records are not written yet: {e}"));
                for flush in flushes.drain(..) {
                    let _ = flush.send(Err(failed.clone()));
                }
                // Records whose callers wait hear the error and are not kept.
                let mut kept = Vec::with_capacity(pending.len());
                for (record, waiter) in pending.drain(..).zip(waiters.drain(..)) {
                    match waiter {
                        Some(waiter) => {
                            let _ = waiter.send(Err(failed.clone()));
                        }
                        None => kept.push(record),
                    }
                }
                pending = kept;
                if pending.len() > MAX_CARRIED {
                    let dropped = pending.len() - MAX_CARRIED;
                    pending.drain(..dropped);
                    tracing::error!("dropped {dropped} audit records: the database stayed away");
                }
                waiters.resize_with(pending.len(), || None);
                if !open {
                    tracing::error!(
                        "{} audit records were not written before shutdown: {e}",
                        pending.len()
                    );
                    return;
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    }
    for flush in flushes {
        let _ = flush.send(Ok(()));
    }
}

fn take(
    cmd: Command,
    pending: &mut Vec<AuditRecord>,
    waiters: &mut Vec<Waiter>,
    flushes: &mut Vec<oneshot::Sender<StoreResult<()>>>,
) {
    match cmd {
        Command::Record(record, waiter) => {
            pending.push(*record);
            waiters.push(waiter);
        }
        Command::Flush(reply) => flushes.push(reply),
    }
}

/// The query of [`audit_query`].
pub(super) async fn query(
    conn: &mut PgConnection,
    q: &AuditQuery,
) -> StoreResult<Vec<AuditRecord>> {
    let (sql, params) = audit_query(q, |n| format!("${n}"));
    let mut args = PgArguments::default();
    for param in params {
        match param {
            AuditArg::Text(text) => args.add(text),
            AuditArg::Int(n) => args.add(n),
        }
        .map_err(|e| StoreError::Unavailable(format!("cannot bind an audit query: {e}")))?;
    }
    let rows = sqlx::query_with(&sql, args)
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    rows.iter().map(audit_from_row).collect()
}

/// Deletes up to [`PURGE_CHUNK`] records older than `before_ms`; returns how many.
pub(super) async fn purge_chunk(conn: &mut PgConnection, before_ms: i64) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM audit WHERE seq IN
             (SELECT seq FROM audit WHERE time_ms < $1 ORDER BY time_ms LIMIT $2)",
    )
    .bind(before_ms)
    .bind(PURGE_CHUNK)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected())
}

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(&self, record: AuditRecord) -> StoreResult<()> {
        let (reply, done) = oneshot::channel();
        self.audit
            .send(Command::Record(Box::new(record), Some(reply)))
            .await
            .map_err(|_| audit_gone())?;
        self.bounded(async { done.await.unwrap_or_else(|_| Err(audit_gone())) })
            .await
    }

    async fn queue_audit(&self, record: AuditRecord) -> StoreResult<()> {
        self.audit
            .send(Command::Record(Box::new(record), None))
            .await
            .map_err(|_| audit_gone())
    }

    async fn query_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        on_conn!(self, |c| super::audit::query(c, query))
    }

    async fn purge_audit(&self, before_ms: i64) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let deleted = on_conn!(self, |c| super::audit::purge_chunk(c, before_ms))?;
            total += deleted;
            if deleted < PURGE_CHUNK.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    async fn flush(&self) -> StoreResult<()> {
        let (reply, done) = oneshot::channel();
        self.audit
            .send(Command::Flush(reply))
            .await
            .map_err(|_| audit_gone())?;
        done.await.unwrap_or_else(|_| Err(audit_gone()))
    }
}
