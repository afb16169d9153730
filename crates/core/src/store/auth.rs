//! The hot path of an authentication: the subject lookup, lockout slots, replay
//! protection, one-time bypasses, the cache of recent successes and abuse limits.

use super::{AuditStore, StoreResult};
use crate::audit::AuditRecord;
use crate::model::{Token, TokenId, User, UserId};
use async_trait::async_trait;

/// The failure counter after [`AuthStore::take_attempt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureState {
    /// Consecutive failures (0 right after a lock was set).
    pub failures: u32,
    /// Set when this failure locked the user.
    pub locked_until: Option<i64>,
}

/// What [`AuthStore::attempt_code`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeAttempt {
    /// The user is locked: nothing was changed.
    Locked,
    /// The code was fresh: its token moved past it and the failure count was cleared.
    Accepted,
    /// The attempt counted as a failure. `replayed`: the code matched a fresh counter
    /// value when it was checked, but another request used that value first.
    Failed { replayed: bool, state: FailureState },
}

/// What every authentication reads and writes, on every channel and node; an attempt's
/// audit record is written through [`AuditStore`].
#[async_trait]
pub trait AuthStore: AuditStore + Send + Sync {
    /// The user and their enabled tokens, in one read.
    async fn auth_subject(&self, username: &str) -> StoreResult<Option<(User, Vec<Token>)>>;
    /// Takes one attempt's slot in the lockout budget, before a secret is checked: one
    /// conditional write, so that however many attempts race (on one node or several), at
    /// most `max_failures` are granted per lockout period. `None`, changing nothing, while
    /// the user is locked at `now`. Otherwise the attempt counts as a failure until
    /// [`AuthStore::clear_failures`] (success) or [`AuthStore::release_attempt`] says
    /// otherwise; on reaching `max_failures` this sets `locked_until = now +
    /// lockout_seconds` and resets the count.
    async fn take_attempt(
        &self,
        id: UserId,
        now: i64,
        max_failures: u32,
        lockout_seconds: i64,
    ) -> StoreResult<Option<FailureState>>;
    /// One attempt at a one-time code: its slot and its outcome in one step. Refused
    /// (`Locked`) while the user is locked; otherwise a slot is taken as by
    /// [`AuthStore::take_attempt`], and then `fresh` (the token and the counter value the
    /// code matched, if it matched one not yet used) advances the token as by
    /// [`AuthStore::advance_token`] and clears the failure count. The code is compared
    /// before the call, but what it matched decides nothing unless the slot is granted
    /// here, so a burst of guesses learns no more than `max_failures` outcomes per lockout
    /// period.
    ///
    /// `accepted`: the attempt's final audit record should the code be accepted; it is
    /// then written as by [`AuditStore::append_audit`], durable with the accepted code
    /// before the answer, in the same transaction, so that an Accept costs one commit.
    /// Otherwise backends may answer before the change is durable (SQLite answers once
    /// the writer applied it): the caller makes the outcome durable with the attempt's
    /// [`AuditStore::append_audit`], which is committed with it or after it.
    async fn attempt_code(
        &self,
        user: UserId,
        fresh: Option<(TokenId, u64)>,
        now: i64,
        max_failures: u32,
        lockout_seconds: i64,
        accepted: Option<AuditRecord>,
    ) -> StoreResult<CodeAttempt> {
        let Some(state) = self
            .take_attempt(user, now, max_failures, lockout_seconds)
            .await?
        else {
            return Ok(CodeAttempt::Locked);
        };
        let Some((token, used)) = fresh else {
            return Ok(CodeAttempt::Failed {
                replayed: false,
                state,
            });
        };
        if self.advance_token(token, used).await? {
            self.clear_failures(user).await?;
            if let Some(record) = accepted {
                self.append_audit(record).await?;
            }
            return Ok(CodeAttempt::Accepted);
        }
        Ok(CodeAttempt::Failed {
            replayed: true,
            state,
        })
    }
    /// Gives back a slot whose attempt proved nothing either way (a first factor that
    /// passed before a challenge, a directory that did not answer): one failure less, never
    /// below zero. A lock already set stays.
    async fn release_attempt(&self, id: UserId) -> StoreResult<()>;
    /// Clears the failure count and any lock (success, or `mfad user unlock`).
    async fn clear_failures(&self, id: UserId) -> StoreResult<()>;
    /// Replay protection: `SET next = used + 1 WHERE id = ? AND next <= used`, and clears
    /// any pending resync. True when this call moved the counter (the code is fresh);
    /// false when another request used `used` or a later value first.
    async fn advance_token(&self, token: TokenId, used: u64) -> StoreResult<bool>;
    /// Remembers (or forgets) the first code of an HOTP resynchronisation.
    async fn set_token_resync(&self, token: TokenId, resync: Option<u64>) -> StoreResult<()>;
    /// Uses the bypass if one is valid at `now`: true exactly once per grant.
    async fn consume_bypass(&self, id: UserId, now: i64) -> StoreResult<bool>;
    /// Records a successful authentication under `key` until `until`.
    async fn put_cached_auth(&self, key: &str, until: i64) -> StoreResult<()>;
    async fn cached_auth(&self, key: &str, now: i64) -> StoreResult<bool>;
    /// Counts one use of `key` (e.g. `sms:user:7`) and says whether it is within `limit`
    /// uses per window. A window starts at the first use after the previous one ended
    /// and lasts `window_seconds`. A refused use does not count. Atomic across nodes.
    async fn take_rate(
        &self,
        key: &str,
        now: i64,
        window_seconds: i64,
        limit: u32,
    ) -> StoreResult<bool>;
}
