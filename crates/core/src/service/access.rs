//! Access an operator grants or takes away: one-time bypasses, blocks, unblocks and
//! unlocks.

use super::{users, Error, Result};
use crate::clock::Clock;
use crate::model::User;
use crate::policy::Policy;
use crate::store::Store;
use std::sync::Arc;

/// The longest one-time bypass: a day.
pub const MAX_BYPASS_SECONDS: i64 = 86_400;

const DAY: i64 = 86_400;

/// The bypass, block and unlock service.
pub struct Access {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// How long a block lasts when the operator names no length (`[policy] block_days`).
    block_days: i64,
}

impl Access {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, policy: &Policy) -> Self {
        Self {
            store,
            clock,
            block_days: policy.block_days,
        }
    }

    /// Lets the user log in once without a second factor within `seconds` (1 to
    /// [`MAX_BYPASS_SECONDS`]); returns the user and when the bypass lapses.
    pub async fn bypass(&self, name: &str, seconds: i64) -> Result<(User, i64)> {
        if !(1..=MAX_BYPASS_SECONDS).contains(&seconds) {
            return Err(Error::InvalidBypassSeconds);
        }
        let user = users::find(&*self.store, name).await?;
        let until = self.clock.now().saturating_add(seconds);
        self.store.set_bypass(user.id, Some(until)).await?;
        Ok((user, until))
    }

    /// Blocks the user for `days` (else the policy's default) with a reason; returns the
    /// user and when the block ends.
    pub async fn block(&self, name: &str, reason: &str, days: Option<i64>) -> Result<(User, i64)> {
        let user = users::find(&*self.store, name).await?;
        let days = days.unwrap_or(self.block_days);
        if days <= 0 {
            return Err(Error::InvalidBlockDays);
        }
        let until = self.clock.now().saturating_add(days.saturating_mul(DAY));
        self.store
            .set_block(user.id, Some(until), Some(reason))
            .await?;
        Ok((user, until))
    }

    /// Ends a block.
    pub async fn unblock(&self, name: &str) -> Result<User> {
        let user = users::find(&*self.store, name).await?;
        self.store.set_block(user.id, None, None).await?;
        Ok(user)
    }

    /// Clears the failure count and any lockout.
    pub async fn unlock(&self, name: &str) -> Result<User> {
        let user = users::find(&*self.store, name).await?;
        self.store.clear_failures(user.id).await?;
        Ok(user)
    }
}
