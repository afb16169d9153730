//! User records as the operator and the directory sync manage them.

use super::StoreResult;
use crate::model::{Method, NewToken, NewUser, PinMode, User, UserId};
use async_trait::async_trait;

/// Operator-editable user fields; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserUpdate {
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub pin_mode: Option<PinMode>,
    pub method: Option<Method>,
    pub backup_phone: Option<String>,
    pub enabled: Option<bool>,
}

/// User records.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Duplicate` when the username (case-insensitive) exists.
    async fn create_user(&self, user: &NewUser, now: i64) -> StoreResult<User>;
    /// Exact match on the stored (lower-case) username.
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    /// The user imported from the directory entry with this unique ID (objectGUID,
    /// entryUUID), whatever name they are stored under.
    async fn user_by_directory_id(&self, directory_id: &str) -> StoreResult<Option<User>>;
    /// Ordered by username.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn update_user(&self, id: UserId, update: &UserUpdate) -> StoreResult<User>;
    /// Deletes the user, their tokens, challenges and cached authentications.
    async fn delete_user(&self, id: UserId) -> StoreResult<()>;
    /// Blocks until `until` with a reason, or unblocks with `None`.
    async fn set_block(
        &self,
        id: UserId,
        until: Option<i64>,
        reason: Option<&str>,
    ) -> StoreResult<()>;
    /// Grants (or with `None` revokes) a one-time bypass valid until `until`.
    async fn set_bypass(&self, id: UserId, until: Option<i64>) -> StoreResult<()>;
    /// Sets the PIN hash (or removes it with `None`) and the "change required" flag.
    /// A new hash is put first in the history, which keeps at most `history` entries.
    async fn set_pin(
        &self,
        id: UserId,
        pin_hash: Option<&str>,
        change_required: bool,
        history: usize,
    ) -> StoreResult<()>;
    /// Bulk load for imports and benchmarks: users and their tokens in one transaction,
    /// all or nothing. Returns how many users were created.
    async fn create_users_with_tokens(
        &self,
        batch: &[(NewUser, Vec<NewToken>)],
        now: i64,
    ) -> StoreResult<usize>;
}
