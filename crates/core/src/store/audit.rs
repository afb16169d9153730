//! The audit log: one record per attempt, group-committed.

use super::StoreResult;
use crate::audit::{AuditQuery, AuditRecord};
use async_trait::async_trait;

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Writes an attempt's record and answers once it is durable, together with every write
    /// the caller made before it (which is how the outcome of
    /// [`AuthStore::attempt_code`](super::AuthStore::attempt_code) becomes durable before
    /// its reply leaves). On an error the record is not kept: the caller decides what to
    /// record instead ([`AuditStore::queue_audit`]).
    async fn append_audit(&self, record: AuditRecord) -> StoreResult<()>;
    /// Queues the record without waiting; it is durable after the next group commit or
    /// [`AuditStore::flush`], and kept for a retry while the database does not take it (the
    /// rejects of an outage reach the log once it is back).
    async fn queue_audit(&self, record: AuditRecord) -> StoreResult<()>;
    /// Newest first.
    async fn query_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;
    /// Deletes records older than `before_ms`; returns how many.
    async fn purge_audit(&self, before_ms: i64) -> StoreResult<u64>;
    /// Waits until every queued write is durable.
    async fn flush(&self) -> StoreResult<()>;
}
