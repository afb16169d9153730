//! The audit log: inserts batched by the writer, newest-first queries, chunked purge.

use super::map::audit_from_row;
use super::map::db_err;
use super::writer::Command;
use super::{writer_gone, SqliteStore};
use crate::rules::{audit_query, AuditArg};
use async_trait::async_trait;
use mfad_core::audit::{AuditQuery, AuditRecord, AuditResult};
use mfad_core::store::AuditStore;
use mfad_core::store::StoreResult;
use rusqlite::{params, Connection};
use tokio::sync::oneshot;

/// Rows removed per writer operation by a purge, so a purge of months of records
/// never holds the write lock long enough to stall authentications.
pub(super) const PURGE_CHUNK: u64 = 5_000;

pub(super) fn insert_audit(conn: &Connection, r: &AuditRecord) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO audit (id, time_ms, username, given_name, surname, email, phone, device,
             method, mode, result, reason, server_name, server_ip, client_name, client_ip,
             channel, calling_station)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.id,
            r.time_ms,
            r.username,
            r.given_name,
            r.surname,
            r.email,
            r.phone,
            r.device,
            r.method,
            r.mode,
            r.result.map(AuditResult::as_str),
            r.reason,
            r.server_name,
            r.server_ip,
            r.client_name,
            r.client_ip,
            r.channel,
            r.calling_station
        ])
    })
    .map(drop)
    .map_err(db_err)
}

/// The query of [`audit_query`].
pub(super) fn query(conn: &Connection, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
    let (sql, args) = audit_query(q, |n| format!("?{n}"));
    let args = args.into_iter().map(|arg| match arg {
        AuditArg::Text(text) => rusqlite::types::Value::from(text.to_owned()),
        AuditArg::Int(n) => rusqlite::types::Value::from(n),
    });
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args))
        .map_err(db_err)?;
    let mut records = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        records.push(audit_from_row(row)?);
    }
    Ok(records)
}

/// Deletes up to [`PURGE_CHUNK`] records older than `before_ms`; returns how many.
pub(super) fn purge_chunk(conn: &Connection, before_ms: i64) -> StoreResult<u64> {
    let deleted = conn
        .prepare_cached(
            "DELETE FROM audit WHERE seq IN
                 (SELECT seq FROM audit WHERE time_ms < ?1 ORDER BY time_ms LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![before_ms, PURGE_CHUNK]))
        .map_err(db_err)?;
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
}

#[async_trait]
impl AuditStore for SqliteStore {
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
        self.read_bulk(move |c, _| self::query(c, &query)).await
    }

    async fn purge_audit(&self, before_ms: i64) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let deleted = self.write(move |c| purge_chunk(c, before_ms)).await?;
            total += deleted;
            if deleted < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }

    async fn flush(&self) -> StoreResult<()> {
        let (reply, done) = oneshot::channel();
        self.send(Command::Flush(reply)).await?;
        done.await.unwrap_or_else(|_| Err(writer_gone()))
    }
}
