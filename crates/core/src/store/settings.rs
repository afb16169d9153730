//! Settings stored in the database, an overlay on every node's config file.

use super::StoreResult;
use crate::settings::Setting;
use async_trait::async_trait;

/// Stored settings.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// Every setting, ordered by key, secret values opened.
    async fn list_settings(&self) -> StoreResult<Vec<Setting>>;
    /// Creates or replaces the setting `key` (a secret value is sealed, bound to its key)
    /// and moves [`SettingsStore::settings_version`] on.
    async fn put_setting(&self, key: &str, value: &str, secret: bool, now: i64) -> StoreResult<()>;
    /// Removes the setting; `NotFound` when it is not set.
    async fn delete_setting(&self, key: &str) -> StoreResult<()>;
    /// A number that changes with every put or delete of a setting, so each node can
    /// poll it cheaply and reread the settings only after a change.
    async fn settings_version(&self) -> StoreResult<i64>;
}
