//! Challenges the engine issued (single use, bound to user and client, expiring) and
//! the keyed hash of the codes they hold.

use super::StoreResult;
use crate::code_mac::CodeMac;
use crate::model::Challenge;
use async_trait::async_trait;

/// Challenges (transactions) in the store, so any node can finish them.
#[async_trait]
pub trait TransactionStore: Send + Sync {
    async fn put_challenge(&self, challenge: &Challenge) -> StoreResult<()>;
    /// Removes and returns the challenge if it exists and has not expired at `now`
    /// (single use: a second call for the same state returns `None`).
    async fn take_challenge(&self, state: &[u8], now: i64) -> StoreResult<Option<Challenge>>;
    /// The keyed hash for the short codes a challenge keeps (an SMS code), keyed from the
    /// store's key file: reading the database does not give a way to test codes.
    fn code_mac(&self) -> &CodeMac;
}
