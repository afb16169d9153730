//! Whole-store copies: every row out, and into an empty store.

use super::StoreResult;
use crate::snapshot::Snapshot;
use async_trait::async_trait;

/// Whole-store export and import.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    /// Every row, read in one consistent view (queued audit records are flushed
    /// first), secrets still sealed.
    async fn export_snapshot(&self) -> StoreResult<Snapshot>;
    /// Loads a snapshot into this store in one transaction, keeping ids, and moves the
    /// id sequences past [`Snapshot::ids`]. Fails with `Duplicate` unless the store is
    /// empty, so a copy never merges into or overwrites live data.
    async fn import_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()>;
}
