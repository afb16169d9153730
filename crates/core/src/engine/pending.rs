//! Pending transactions: a login that waits for a call or a two-way SMS reply.
//!
//! The transaction and the attempt's draft audit record live in the store, so every step
//! may happen on any node. The call or SMS lives there as a challenge under the
//! transaction's id: the provider's webhook, on whichever node it reaches, takes it
//! (single use, so exactly one decides), applies the rules and records the decision in
//! the transaction. [`Engine::poll`], on any node, then takes the decided transaction
//! (again single use) and writes the one final audit record. [`Engine::wait`] is a poll
//! loop that a webhook on the same node wakes at once.

use super::{Engine, Outcome, Prompt, Reason, TxnId};
use crate::audit::{AuditRecord, AuditResult};
use crate::model::ChallengeKind;
use crate::store::{Decision, PendingTxn, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// How often a waiting node looks in the store for a decision made on another node.
const POLL: Duration = Duration::from_millis(500);
/// How long a waiting node gives a webhook that took the transaction at the deadline to
/// store its decision.
const GRACE: Duration = Duration::from_secs(5);
/// How long a decided transaction stays readable after its out-of-band wait.
const DECISION_SECONDS: i64 = 120;

/// The wake-ups of the transactions this node waits for.
#[derive(Default)]
pub(super) struct Waiting(Mutex<HashMap<TxnId, Arc<Notify>>>);

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TxnId, Arc<Notify>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, txn: &TxnId) -> Arc<Notify> {
        self.lock()
            .entry(txn.clone())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    fn release(&self, txn: &TxnId) {
        self.lock().remove(txn);
    }

    /// Wakes the local waiter of `txn`, if this node has one. `notify_one` keeps the
    /// wake-up for a waiter that is between two polls.
    fn wake(&self, txn: &TxnId) {
        if let Some(wake) = self.lock().get(txn) {
            wake.notify_one();
        }
    }
}

/// What one look at a transaction found.
enum Polled {
    /// Decided, taken by this call, and audited: the final outcome.
    Final(Outcome),
    /// Undecided yet.
    Waiting(Prompt),
    /// Unknown, expired, or finished by another poll.
    Gone,
}

impl Engine {
    /// Where the pending transaction `txn` stands, from the store, on any node: `Pending`
    /// while it waits; once decided, the final outcome, exactly once (this call then
    /// writes the attempt's audit record); afterwards, or for an unknown or expired
    /// transaction, `Reject(challenge_expired)`.
    pub async fn poll(&self, txn: &TxnId) -> Outcome {
        match self.poll_once(txn).await {
            Ok(Polled::Final(outcome)) => outcome,
            Ok(Polled::Waiting(prompt)) => Outcome::Pending {
                txn: txn.clone(),
                prompt,
            },
            Ok(Polled::Gone) => Outcome::Reject(Reason::ChallengeExpired),
            Err(err) => {
                tracing::warn!("cannot read a pending login, rejecting this poll: {err}");
                Outcome::Reject(Reason::StoreUnavailable)
            }
        }
    }

    async fn poll_once(&self, txn: &TxnId) -> Result<Polled, StoreError> {
        let now = self.clock.now();
        if let Some(taken) = self.store.take_decided(txn.as_bytes(), now).await? {
            return Ok(Polled::Final(self.finish(taken).await));
        }
        Ok(match self.store.pending(txn.as_bytes(), now).await? {
            Some(pending) => Polled::Waiting(pending.prompt),
            None => Polled::Gone,
        })
    }

    /// Completes a decided transaction's audit record, writes it, and returns the outcome
    /// to send.
    async fn finish(&self, taken: PendingTxn) -> Outcome {
        let mut audit = taken.draft;
        let Some(decision) = taken.decision else {
            return Outcome::Reject(Reason::Unsupported);
        };
        if !decision.device.is_empty() {
            audit.device = decision.device;
        }
        let outcome = match decision.result {
            AuditResult::Accept => Outcome::Accept,
            AuditResult::Reject => Outcome::Reject(reason_from(&decision.reason)),
            AuditResult::Challenge => match decision.challenge {
                Some((state, prompt)) => Outcome::Challenge {
                    txn: TxnId::from_bytes(state),
                    prompt,
                },
                None => Outcome::Reject(Reason::Unsupported),
            },
        };
        if outcome == Outcome::Accept {
            audit.reason = decision.reason;
        }
        self.write_audit(audit, outcome).await
    }

    /// Waits until the pending transaction `txn` (from a `Pending` outcome) is decided, at
    /// most `timeout`, and returns its final outcome ([`Engine::poll`] in a loop, woken at
    /// once by a webhook on this node). Without an answer in time the login is rejected
    /// (`call_timeout`, `sms_no_reply`) and a late answer finds nothing to decide.
    // How long this node holds a request is the runtime's timer (tokio's, which tests can
    // pause), not the time of any rule: the transaction's expiry is the Clock's.
    #[allow(clippy::disallowed_methods)]
    pub async fn wait(&self, txn: &TxnId, timeout: Duration) -> Outcome {
        let wake = self.waiting.register(txn);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut grace_until = None;
        let outcome = loop {
            match self.poll_once(txn).await {
                Ok(Polled::Final(outcome)) => break outcome,
                Ok(Polled::Gone) => break Outcome::Reject(Reason::ChallengeExpired),
                Ok(Polled::Waiting(_)) => {}
                Err(err) => tracing::warn!("cannot read a pending login, retrying: {err}"),
            }
            let now = tokio::time::Instant::now();
            if let Some(until) = grace_until {
                if now >= until {
                    // The webhook that took it did not decide: the login ends here.
                    break self.end(txn, Reason::CallTimeout).await;
                }
            } else if now >= deadline {
                match self.expire(txn).await {
                    // Decided as timed out: the next poll finishes it.
                    Ok(true) => continue,
                    // Taken by a webhook that is deciding right now: give it a moment.
                    Ok(false) => grace_until = Some(now + GRACE),
                    Err(err) => break store_failed(&err),
                }
            }
            let until = grace_until.unwrap_or(deadline);
            let nap = POLL.min(until.saturating_duration_since(now));
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(nap) => {}
            }
        };
        self.waiting.release(txn);
        outcome
    }

    /// Ends a transaction nobody answered: true when this call decided it (timed out),
    /// false when a webhook took it first.
    async fn expire(&self, txn: &TxnId) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let Some(taken) = self.store.take_challenge(txn.as_bytes(), now).await? else {
            return Ok(false);
        };
        let reason = match taken.kind {
            ChallengeKind::SmsReply { .. } => Reason::SmsNoReply,
            _ => Reason::CallTimeout,
        };
        let decision = rejected(reason, "");
        self.store
            .decide_pending(txn.as_bytes(), &decision, now)
            .await
    }

    /// Decides `txn` as rejected for `reason` unless it is decided already, and finishes
    /// it if no other poll did.
    async fn end(&self, txn: &TxnId, reason: Reason) -> Outcome {
        let now = self.clock.now();
        let decided = self
            .store
            .decide_pending(txn.as_bytes(), &rejected(reason, ""), now)
            .await;
        if let Err(err) = decided {
            return store_failed(&err);
        }
        match self.poll_once(txn).await {
            Ok(Polled::Final(outcome)) => outcome,
            Ok(_) => Outcome::Reject(reason),
            Err(err) => store_failed(&err),
        }
    }

    /// Stores a new pending transaction with the attempt's audit record so far. Done
    /// before the call is placed or the SMS sent: the webhook may come at once, to any
    /// node.
    pub(super) async fn start_pending(
        &self,
        txn: &TxnId,
        audit: &AuditRecord,
        prompt: Prompt,
        now: i64,
    ) -> Result<(), StoreError> {
        let pending = PendingTxn {
            txn: txn.as_bytes().to_vec(),
            draft: audit.clone(),
            prompt,
            decision: None,
            expires_at: self.pending_expiry(now),
        };
        self.store.put_pending(&pending, now).await
    }

    /// Records the decision of a transaction a webhook took, and wakes its waiter when it
    /// is on this node.
    pub(super) async fn settle(
        &self,
        txn: &TxnId,
        outcome: Outcome,
        note: &str,
        device: &str,
    ) -> Result<(), StoreError> {
        let decision = match outcome {
            Outcome::Accept => Decision {
                result: AuditResult::Accept,
                reason: note.to_owned(),
                challenge: None,
                device: device.to_owned(),
            },
            Outcome::Reject(reason) => rejected(reason, device),
            Outcome::Challenge { txn, prompt } => Decision {
                result: AuditResult::Challenge,
                reason: String::new(),
                challenge: Some((txn.into_bytes(), prompt)),
                device: device.to_owned(),
            },
            // A decision is final by definition.
            Outcome::Pending { .. } => rejected(Reason::Unsupported, device),
        };
        let now = self.clock.now();
        if !self
            .store
            .decide_pending(txn.as_bytes(), &decision, now)
            .await?
        {
            tracing::info!(
                "a pending login was decided already or has expired; this decision is dropped"
            );
        }
        self.waiting.wake(txn);
        Ok(())
    }

    /// A fresh transaction id: random hex, safe in a URL.
    pub(super) fn new_txn(&self) -> TxnId {
        TxnId::from(super::hex(&crate::clock::random_array::<16>(&*self.rng)))
    }

    /// When an out-of-band transaction started now stops being answerable.
    pub(super) fn pending_expiry(&self, now: i64) -> i64 {
        let wait = i64::try_from(self.policy().out_of_band_timeout_seconds).unwrap_or(i64::MAX);
        now.saturating_add(wait).saturating_add(DECISION_SECONDS)
    }
}

/// The outcome of a wait the store failed: a Reject. The login stays in the store, and
/// the sweep of expired logins writes its record once the store is back.
fn store_failed(err: &StoreError) -> Outcome {
    tracing::warn!("rejecting a pending login, the store failed: {err}");
    Outcome::Reject(Reason::StoreUnavailable)
}

fn rejected(reason: Reason, device: &str) -> Decision {
    Decision {
        result: AuditResult::Reject,
        reason: reason.as_str().to_owned(),
        challenge: None,
        device: device.to_owned(),
    }
}

/// The reason a stored decision names; an unknown word (a newer node's) stays a reject.
fn reason_from(word: &str) -> Reason {
    const ALL: &[Reason] = &[
        Reason::WrongCode,
        Reason::WrongPin,
        Reason::Disabled,
        Reason::Blocked,
        Reason::Locked,
        Reason::FraudReported,
        Reason::NoPinEntered,
        Reason::CallHungUp,
        Reason::CallNoAnswer,
        Reason::InvalidNumber,
        Reason::CallTimeout,
        Reason::SmsNoReply,
        Reason::SmsReplyPending,
        Reason::DeliveryFailed,
        Reason::RateLimited,
        Reason::UnknownUser,
        Reason::StoreUnavailable,
    ];
    ALL.iter()
        .copied()
        .find(|r| r.as_str() == word)
        .unwrap_or(Reason::Unsupported)
}
