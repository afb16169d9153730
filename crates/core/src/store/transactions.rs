//! Transactions the engine issued, kept in the store so that any node can finish them:
//! challenges (single use, bound to user and client, expiring) with the keyed hash of
//! the codes they hold, and pending out-of-band logins (a call ringing, a two-way SMS
//! waiting for its reply) with their draft audit records.

use super::StoreResult;
use crate::audit::{AuditRecord, AuditResult};
use crate::code_mac::CodeMac;
use crate::engine::{Prompt, Reason};
use crate::model::Challenge;
use async_trait::async_trait;

/// A pending out-of-band login (a call ringing, a two-way SMS waiting for its reply),
/// kept in the store so that any node can poll it and finish it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingTxn {
    pub txn: Vec<u8>,
    /// The attempt's audit record so far; the decision completes it.
    pub draft: AuditRecord,
    /// What the user is asked to do meanwhile.
    pub prompt: Prompt,
    /// How it ended, once a webhook (or the timeout) decided it.
    pub decision: Option<Decision>,
    pub expires_at: i64,
}

impl PendingTxn {
    /// The audit record of a pending login that expired before any node finished it (the
    /// node that held the request stopped, or lost the store while it waited): the
    /// draft, rejected as `challenge_expired`, with the phone that answered if a
    /// decision named one. Nobody was let in: only a finishing poll sends an Accept.
    pub fn unfinished_record(self) -> AuditRecord {
        let mut record = self.draft;
        if let Some(decision) = self.decision.filter(|d| !d.device.is_empty()) {
            record.device = decision.device;
        }
        record.result = Some(AuditResult::Reject);
        record.reason = Reason::ChallengeExpired.as_str().to_owned();
        record
    }
}

/// How a pending out-of-band login ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    pub result: AuditResult,
    /// The reject reason, or what the audit log says of an accept.
    pub reason: String,
    /// The challenge that follows an accepted answer (a new PIN is due): its id and prompt.
    pub challenge: Option<(Vec<u8>, Prompt)>,
    /// The phone that answered, for the audit log.
    pub device: String,
}

/// Challenges and pending logins in the store, so any node can finish them. Each rule
/// is one conditional statement, so racing nodes agree.
#[async_trait]
pub trait TransactionStore: Send + Sync {
    async fn put_challenge(&self, challenge: &Challenge) -> StoreResult<()>;
    /// Removes and returns the challenge if it exists and has not expired at `now`
    /// (single use: a second call for the same state returns `None`).
    async fn take_challenge(&self, state: &[u8], now: i64) -> StoreResult<Option<Challenge>>;
    /// The keyed hash for the short codes a challenge keeps (an SMS code), keyed from the
    /// store's key file: reading the database does not give a way to test codes.
    fn code_mac(&self) -> &CodeMac;

    /// Stores a new, undecided pending login, and sweeps those expired at `now` (as
    /// [`TransactionStore::sweep_pending`]). `Duplicate` when its id exists.
    async fn put_pending(&self, pending: &PendingTxn, now: i64) -> StoreResult<()>;
    /// Ends the pending logins expired at `now`, which no node can finish any more:
    /// writes each one's [`PendingTxn::unfinished_record`] and removes it, together, so
    /// that every attempt keeps its one audit record. Returns how many it ended.
    async fn sweep_pending(&self, now: i64) -> StoreResult<u64>;
    /// The pending login as stored, decided or not; `None` when unknown or expired at
    /// `now`.
    async fn pending(&self, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>>;
    /// Records the decision of an undecided pending login: true when this call decided
    /// it; false, changing nothing, when it is decided already, unknown, or expired at
    /// `now`.
    async fn decide_pending(&self, txn: &[u8], decision: &Decision, now: i64) -> StoreResult<bool>;
    /// Removes and returns a decided pending login; `None` when it is undecided, unknown
    /// or expired at `now`. Of racing calls on any nodes exactly one gets it: the one
    /// that writes the attempt's final audit record.
    async fn take_decided(&self, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>>;
    /// Removes the pending login whatever its state (its call or SMS could not be sent).
    async fn delete_pending(&self, txn: &[u8]) -> StoreResult<()>;
}
