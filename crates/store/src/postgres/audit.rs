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
use mfad_core::audit::{AuditQuery, AuditRecord};
use mfad_core::store::AuditStore;
use mfad_core::store::{StoreError, StoreResult};
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgConnection, PgPool};
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

/// Column-wise arrays of a batch, bound as one parameter each.
#[derive(Default)]
struct Columns {
    text: [Vec<String>; 16],
    time_ms: Vec<i64>,
    result: Vec<Option<String>>,
}

fn columns(records: &[AuditRecord]) -> Columns {
    let mut c = Columns::default();
    for r in records {
        let texts = [
            &r.id,
            &r.username,
            &r.given_name,
            &r.surname,
            &r.email,
            &r.phone,
            &r.device,
            &r.method,
            &r.mode,
            &r.reason,
            &r.server_name,
            &r.server_ip,
            &r.client_name,
            &r.client_ip,
            &r.channel,
            &r.calling_station,
        ];
        for (column, value) in c.text.iter_mut().zip(texts) {
            column.push(value.clone());
        }
        c.time_ms.push(r.time_ms);
        c.result.push(r.result.map(|x| x.as_str().to_owned()));
    }
    c
}

/// Inserts the records in one statement (and so one transaction).
pub(super) async fn insert_batch(
    conn: &mut PgConnection,
    records: &[AuditRecord],
) -> StoreResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let Columns {
        text,
        time_ms,
        result,
    } = columns(records);
    let [id, username, given_name, surname, email, phone, device, method, mode, reason, server_name, server_ip, client_name, client_ip, channel, calling_station] =
        text;
    let mut args = PgArguments::default();
    let bind_err = |e| StoreError::Unavailable(format!("cannot bind audit records: {e}"));
    args.add(id).map_err(bind_err)?;
    args.add(time_ms).map_err(bind_err)?;
    for column in [
        username, given_name, surname, email, phone, device, method, mode,
    ] {
        args.add(column).map_err(bind_err)?;
    }
    args.add(result).map_err(bind_err)?;
    for column in [
        reason,
        server_name,
        server_ip,
        client_name,
        client_ip,
        channel,
        calling_station,
    ] {
        args.add(column).map_err(bind_err)?;
    }
    sqlx::query_with(
        "INSERT INTO audit (id, time_ms, username, given_name, surname, email, phone, device,
             method, mode, result, reason, server_name, server_ip, client_name, client_ip,
             channel, calling_station)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
             $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[],
             $18::text[])",
        args,
    )
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
