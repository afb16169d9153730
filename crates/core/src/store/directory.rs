//! Directory sync: the plan a sync applies, its bookkeeping and the lock that lets one
//! node run it.

use super::StoreResult;
use crate::model::{NewUser, UserId};
use async_trait::async_trait;

/// Everything a directory sync decides about one user; the store writes all of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectoryRecord {
    pub directory_id: String,
    pub username: String,
    pub given_name: String,
    pub surname: String,
    pub email: String,
    pub phone: String,
    pub mobile: String,
    pub extension: String,
    pub language: String,
    pub sync_item: String,
    pub enabled: bool,
}

/// One directory sync's changes, applied by [`DirectoryStore::apply_directory_sync`] all or
/// nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectorySync {
    /// New users; each carries `directory_id` and `sync_item`.
    pub add: Vec<NewUser>,
    /// Existing users (renamed, moved, changed, or linked to an entry for the first time).
    pub update: Vec<(UserId, DirectoryRecord)>,
    /// Users that left every sync item: `enabled = false`, `sync_item = NULL`.
    pub disable: Vec<UserId>,
    /// Users that left every sync item, deleted like
    /// [`UserStore::delete_user`](super::UserStore::delete_user).
    pub remove: Vec<UserId>,
}

/// A phone change a directory sync found for a user whose phone is their second factor
/// (SMS or call), held until the operator approves it: the directory attribute it comes
/// from may be one that every user can write on their own entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingPhone {
    pub user_id: UserId,
    pub username: String,
    /// The e-mail address on record when the change was held, which the notice goes to
    /// (not one the same directory change may have brought).
    pub email: String,
    /// The number mfad uses now.
    pub old_phone: String,
    /// The number the directory holds.
    pub new_phone: String,
    /// When a sync first held this change (Unix time).
    pub since: i64,
}

/// Directory sync bookkeeping shared by every node (one row per store).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncState {
    /// When the last sync finished (Unix time), and its one-line summary.
    pub last_run: Option<i64>,
    pub last_summary: String,
    /// Disables or removals the mass-change safeguard held back (0: none pending).
    pub pending_count: u32,
    /// Why they were held, for `mfad directory status`.
    pub pending_reason: String,
    /// `mfad directory approve`: the next sync may disable or remove up to this many.
    pub approved_count: Option<u32>,
    /// Phone changes held for approval (`mfad directory approve-phone`), by username.
    pub pending_phones: Vec<PendingPhone>,
}

/// Directory sync state shared by every node.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Applies a sync plan in one transaction: all of it or, on any error (e.g. a
    /// `directory_id` or username that is already taken: `Duplicate`), none of it. Updates
    /// go before additions, so a rename frees its old name for a new entry in the same
    /// call. Usernames are stored lower-case, as by
    /// [`UserStore::create_user`](super::UserStore::create_user).
    async fn apply_directory_sync(&self, changes: &DirectorySync, now: i64) -> StoreResult<()>;
    /// The sync bookkeeping; the default (nothing run yet) when never written.
    async fn sync_state(&self) -> StoreResult<SyncState>;
    /// Replaces the sync bookkeeping (not the lock).
    async fn put_sync_state(&self, state: &SyncState) -> StoreResult<()>;
    /// Takes the scheduled-sync lock for `holder` until `until` if it is free, expired at
    /// `now`, or already `holder`'s (which extends it). One conditional write, so of
    /// several nodes exactly one gets it.
    async fn acquire_sync_lock(&self, holder: &str, now: i64, until: i64) -> StoreResult<bool>;
    /// Lets go of the lock if `holder` has it.
    async fn release_sync_lock(&self, holder: &str) -> StoreResult<()>;
}
