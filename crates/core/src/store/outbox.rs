//! The e-mail outbox: queued mails that any node may claim and send.

use super::StoreResult;
use crate::outbox::{Attempt, Email, EmailId, NewEmail};
use async_trait::async_trait;

/// The e-mail outbox.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues a mail for delivery at `now`. Returns `None`, queuing nothing, when
    /// `once_key` is set and a mail with that key was queued before (whatever became of
    /// it).
    async fn queue_email(&self, email: &NewEmail, now: i64) -> StoreResult<Option<Email>>;
    /// Claims up to `limit` queued mails due at `now` (oldest first) for one sender:
    /// atomically counts the attempt and moves their next attempt to `lease_until`, so no
    /// other node or process sends them meanwhile. A sender that dies leaves them to be
    /// claimed again once the lease lapses.
    async fn claim_emails(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Email>>;
    /// Records how a claimed attempt ended. `Sent` also erases the body (it may hold
    /// an initial PIN). Fails with `NotFound` for an unknown id.
    async fn finish_email(&self, id: EmailId, attempt: &Attempt) -> StoreResult<()>;
    /// The newest `limit` mails, newest first, bodies left empty.
    async fn list_emails(&self, limit: usize) -> StoreResult<Vec<Email>>;
}
