//! Out-of-band transactions: a login that waits for a call or a two-way SMS reply.
//!
//! The transaction lives in the store as a challenge under its id, so the provider's
//! webhook may reach any node: that node takes it (single use, so exactly one decides),
//! applies the rules and stores the decision under `<txn>.done`. The node holding the
//! request is woken at once when the webhook reached it, and otherwise finds the decision
//! by polling the store.

use super::{Engine, Outcome, Reason, TxnId};
use crate::audit::AuditRecord;
use crate::model::{Challenge, ChallengeKind};
use crate::store::StoreError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// How often a waiting node looks in the store for a decision made on another node.
const POLL: Duration = Duration::from_millis(500);
/// How long a waiting node gives a webhook that took the transaction at the deadline to
/// store its decision.
const GRACE: Duration = Duration::from_secs(5);
/// How long a stored decision stays readable.
const DECISION_SECONDS: i64 = 120;

struct Held {
    wake: Arc<Notify>,
    audit: Option<AuditRecord>,
}

/// The transactions whose requests this node holds, with their audit records so far.
#[derive(Default)]
pub(super) struct Waiting(Mutex<HashMap<TxnId, Held>>);

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TxnId, Held>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn hold(&self, txn: &TxnId, audit: AuditRecord) {
        let mut held = self.lock();
        let entry = held.entry(txn.to_owned()).or_insert_with(|| Held {
            wake: Arc::new(Notify::new()),
            audit: None,
        });
        entry.audit = Some(audit);
    }

    fn waker(&self, txn: &TxnId) -> Option<Arc<Notify>> {
        self.lock().get(txn).map(|h| h.wake.clone())
    }

    fn release(&self, txn: &TxnId) -> Option<AuditRecord> {
        self.lock().remove(txn).and_then(|h| h.audit)
    }

    /// Wakes the local waiter of `txn`, if this node holds it. `notify_one` keeps the
    /// wake-up for a waiter that is not parked yet.
    fn wake(&self, txn: &TxnId) {
        if let Some(wake) = self.waker(txn) {
            wake.notify_one();
        }
    }
}

/// The store key of a transaction's decision.
fn decided_key(txn: &TxnId) -> Vec<u8> {
    [txn.as_bytes(), b".done"].concat()
}

/// A decision as the store keeps it.
pub(super) struct Decision {
    pub outcome: Outcome,
    /// What the audit log says beyond the outcome (e.g. "accepted" or a reason).
    pub note: String,
    /// The phone that answered.
    pub device: String,
}

impl Engine {
    /// Waits until the out-of-band transaction `txn` (from a `Pending` outcome) is decided,
    /// at most `timeout`; then writes the attempt's one audit record and returns the final
    /// outcome. Without an answer in time the login is rejected (`call_timeout`,
    /// `sms_no_reply`) and a late answer finds nothing to decide.
    // How long this node holds a request is the runtime's timer (tokio's, which tests can
    // pause), not the time of any rule: the transaction's expiry is the Clock's.
    #[allow(clippy::disallowed_methods)]
    pub async fn wait(&self, txn: &TxnId, timeout: Duration) -> Outcome {
        let Some(wake) = self.waiting.waker(txn) else {
            return Outcome::Reject(Reason::ChallengeExpired);
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut grace_until = None;
        let decision = loop {
            match self.take_decision(txn).await {
                Ok(Some(decision)) => break decision,
                Ok(None) => {}
                Err(err) => tracing::warn!("cannot read an out-of-band decision, retrying: {err}"),
            }
            let now = tokio::time::Instant::now();
            if let Some(until) = grace_until {
                if now >= until {
                    break reject(Reason::CallTimeout, "");
                }
            } else if now >= deadline {
                match self.expire(txn).await {
                    Ok(Some(decision)) => break decision,
                    // Taken by a webhook that is deciding right now: give it a moment.
                    Ok(None) => grace_until = Some(now + GRACE),
                    Err(err) => {
                        tracing::warn!("rejecting a pending login, the store failed: {err}");
                        break reject(Reason::StoreUnavailable, "");
                    }
                }
            }
            let until = grace_until.unwrap_or(deadline);
            let nap = POLL.min(until.saturating_duration_since(now));
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(nap) => {}
            }
        };
        let audit = self.waiting.release(txn);
        let Some(mut audit) = audit else {
            return decision.outcome;
        };
        if !decision.device.is_empty() {
            audit.device = decision.device;
        }
        if decision.outcome == Outcome::Accept {
            audit.reason = decision.note;
        }
        self.write_audit(audit, decision.outcome).await
    }

    /// Ends a transaction nobody answered: `None` when a webhook took it first.
    async fn expire(&self, txn: &TxnId) -> Result<Option<Decision>, StoreError> {
        let now = self.clock.now();
        let Some(taken) = self.store.take_challenge(txn.as_bytes(), now).await? else {
            // Taken by a webhook, or expired in the store (a clock far ahead).
            return self.take_decision(txn).await;
        };
        let reason = match taken.kind {
            ChallengeKind::SmsReply { .. } => Reason::SmsNoReply,
            _ => Reason::CallTimeout,
        };
        Ok(Some(reject(reason, "")))
    }

    async fn take_decision(&self, txn: &TxnId) -> Result<Option<Decision>, StoreError> {
        let now = self.clock.now();
        let Some(found) = self.store.take_challenge(&decided_key(txn), now).await? else {
            return Ok(None);
        };
        let ChallengeKind::Decided {
            result,
            reason,
            state,
            prompt,
            device,
        } = found.kind
        else {
            return Ok(None);
        };
        let outcome = match result.as_str() {
            "accept" => Outcome::Accept,
            "challenge" => match prompt {
                Some(prompt) => Outcome::Challenge {
                    txn: TxnId::from_bytes(state),
                    prompt,
                },
                None => Outcome::Reject(Reason::Unsupported),
            },
            _ => Outcome::Reject(reason_from(&reason)),
        };
        Ok(Some(Decision {
            outcome,
            note: reason,
            device,
        }))
    }

    /// Stores the decision of a transaction a webhook took, and wakes its waiter when it
    /// is on this node.
    pub(super) async fn settle(
        &self,
        txn: &TxnId,
        taken: &Challenge,
        outcome: Outcome,
        note: &str,
        device: &str,
    ) -> Result<(), StoreError> {
        let (result, reason, state, prompt) = match outcome {
            Outcome::Accept => ("accept", note.to_owned(), Vec::new(), None),
            Outcome::Reject(reason) => ("reject", reason.as_str().to_owned(), Vec::new(), None),
            Outcome::Challenge { txn, prompt } => {
                ("challenge", String::new(), txn.into_bytes(), Some(prompt))
            }
            // A decision is final by definition.
            Outcome::Pending { .. } => (
                "reject",
                Reason::Unsupported.as_str().to_owned(),
                Vec::new(),
                None,
            ),
        };
        let decided = Challenge {
            state: decided_key(txn),
            user_id: taken.user_id,
            client: taken.client.clone(),
            kind: ChallengeKind::Decided {
                result: result.to_owned(),
                reason,
                state,
                prompt,
                device: device.to_owned(),
            },
            expires_at: self.clock.now().saturating_add(DECISION_SECONDS),
        };
        self.store.put_challenge(&decided).await?;
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

fn reject(reason: Reason, device: &str) -> Decision {
    Decision {
        outcome: Outcome::Reject(reason),
        note: String::new(),
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
