//! The RADIUS clients mfad answers.

use super::StoreResult;
use crate::model::{Client, NewClient};
use async_trait::async_trait;

/// RADIUS client records.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Fails with `Duplicate` when the name exists.
    async fn create_client(&self, client: &NewClient, now: i64) -> StoreResult<Client>;
    /// Ordered by name.
    async fn list_clients(&self) -> StoreResult<Vec<Client>>;
    async fn delete_client(&self, name: &str) -> StoreResult<()>;
}
