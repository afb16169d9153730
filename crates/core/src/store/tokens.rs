//! OATH token records: creation, lookup, assignment and removal.

use super::StoreResult;
use crate::model::{NewToken, Token, TokenId, UserId};
use async_trait::async_trait;

/// Token records; the counters that replay protection moves are [`AuthStore`]'s.
///
/// [`AuthStore`]: super::AuthStore
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// All or nothing: a duplicate serial (stored or within `tokens`) fails the whole call.
    async fn create_tokens(&self, tokens: &[NewToken], now: i64) -> StoreResult<Vec<Token>>;
    async fn token_by_serial(&self, serial: &str) -> StoreResult<Option<Token>>;
    async fn tokens_for_user(&self, id: UserId) -> StoreResult<Vec<Token>>;
    /// Ordered by serial.
    async fn list_tokens(&self) -> StoreResult<Vec<Token>>;
    async fn assign_token(&self, token: TokenId, user: Option<UserId>) -> StoreResult<()>;
    async fn delete_token(&self, token: TokenId) -> StoreResult<()>;
}
