//! The phone-call method: the user answers and presses # (or PIN #), or reports fraud.
//!
//! The call is an out-of-band transaction: the login is `Pending` while the phone rings,
//! and the call's webhooks, on whichever node receives them, report how it ended with
//! [`Engine::call_ended`], which applies the rules. The backup phone is called when the
//! phone does not answer.

use super::{describe_phone, Engine, Outcome, PromptKind, Reason, Request, TxnId};
use crate::audit::AuditRecord;
use crate::delivery::{CallRequest, CallResult};
use crate::model::{Challenge, ChallengeKind, PinMode, User};
use crate::phone;
use crate::store::StoreError;

impl Engine {
    /// First request of a call login: places the call and returns `Pending`.
    pub(super) async fn phone_call(
        &self,
        user: &User,
        req: &Request,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Result<Outcome, StoreError> {
        audit.method = "call".into();
        audit.mode = user.pin_mode.to_string();
        describe_phone(audit, user);
        if self.voice.is_none() {
            tracing::warn!(user = %user.username, "user has the call method but no voice gateway is configured; set [voice] gateway");
            return Ok(Outcome::Reject(Reason::NoGateway));
        }
        if user.phone.trim().is_empty() {
            return Ok(Outcome::Reject(Reason::NoPhone));
        }
        let ask_pin = matches!((user.pin_mode, &user.pin_hash), (PinMode::Pin, Some(_)));
        let Some(call) = self.call_to(&user.phone, ask_pin) else {
            return Ok(Outcome::Reject(Reason::InvalidNumber));
        };
        if !self.within_limits(user, "call", now).await? {
            return Ok(Outcome::Reject(Reason::RateLimited));
        }
        let txn = self.new_txn();
        let pending = Challenge {
            state: txn.as_bytes().to_vec(),
            user_id: user.id,
            client: req.client.name.clone(),
            kind: ChallengeKind::Call {
                ask_pin,
                device: user.phone.clone(),
                backup: user.backup_phone.trim().to_owned(),
                cache_key: self.cache_key(user, req),
            },
            expires_at: self.pending_expiry(now),
        };
        // Stored before the call is placed: its webhooks may come at once, to any node.
        self.store.put_challenge(&pending).await?;
        let prompt = self.prompt(user, PromptKind::AnswerCall);
        if let Err(e) = self.start_pending(&txn, audit, prompt.clone(), now).await {
            self.store.take_challenge(txn.as_bytes(), now).await?;
            return Err(e);
        }
        if let Err(result) = self.place_call(&call, &txn).await {
            self.store.take_challenge(txn.as_bytes(), now).await?;
            self.store.delete_pending(txn.as_bytes()).await?;
            return Ok(Outcome::Reject(self.call_failed(user, result)));
        }
        Ok(Outcome::Pending { txn, prompt })
    }

    /// The call to place to a stored number, `None` when it is not a phone number.
    fn call_to(&self, stored: &str, ask_pin: bool) -> Option<CallRequest> {
        phone::normalise(stored, &self.policy().default_country_code)
            .ok()
            .map(|number| CallRequest {
                to: number.e164,
                extension: number.extension,
                ask_pin,
            })
    }

    async fn place_call(&self, call: &CallRequest, txn: &TxnId) -> Result<(), CallResult> {
        match &self.voice {
            Some(voice) => voice.place(call, txn.as_str().unwrap_or_default()).await,
            None => Err(CallResult::Failed("no voice gateway".into())),
        }
    }

    /// The reason for a call that ended without digits.
    fn call_failed(&self, user: &User, result: CallResult) -> Reason {
        match result {
            CallResult::Digits(_) => Reason::Unsupported,
            CallResult::HungUp => Reason::CallHungUp,
            CallResult::NoAnswer | CallResult::Busy => Reason::CallNoAnswer,
            CallResult::InvalidNumber => Reason::InvalidNumber,
            CallResult::TimedOut => Reason::CallTimeout,
            CallResult::Failed(err) => {
                tracing::warn!(user = %user.username, "call not placed: {err}");
                Reason::DeliveryFailed
            }
        }
    }

    /// How call `txn` ended, as the provider's webhook reported it (on any node). Decides
    /// the login, or calls the backup phone when the phone did not answer. False when no
    /// call of that id is pending (ended, timed out, or another webhook decided it).
    pub async fn call_ended(&self, txn: &TxnId, result: CallResult) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let Some(taken) = self.store.take_challenge(txn.as_bytes(), now).await? else {
            return Ok(false);
        };
        let ChallengeKind::Call {
            ask_pin,
            device,
            backup,
            cache_key,
        } = taken.kind.clone()
        else {
            tracing::warn!("a call webhook named a transaction that is not a call; ignored");
            return Ok(false);
        };
        let Some(user) = self.store.user_by_id(taken.user_id).await? else {
            self.settle(txn, Outcome::Reject(Reason::UnknownUser), "", &device)
                .await?;
            return Ok(true);
        };
        if matches!(result, CallResult::NoAnswer | CallResult::Busy) && !backup.is_empty() {
            if let (Some(call), true) = (
                self.call_to(&backup, ask_pin),
                self.within_limits(&user, "call", now).await?,
            ) {
                tracing::info!(user = %user.username, "primary phone did not answer; calling the backup phone");
                let again = Challenge {
                    kind: ChallengeKind::Call {
                        ask_pin,
                        device: backup.clone(),
                        backup: String::new(),
                        cache_key,
                    },
                    ..taken.clone()
                };
                self.store.put_challenge(&again).await?;
                match self.place_call(&call, txn).await {
                    Ok(()) => return Ok(true),
                    Err(failed) => {
                        self.store.take_challenge(txn.as_bytes(), now).await?;
                        let reason = self.call_failed(&user, failed);
                        self.settle(txn, Outcome::Reject(reason), "", &backup)
                            .await?;
                        return Ok(true);
                    }
                }
            }
        }
        let outcome = match result {
            CallResult::Digits(digits) => {
                self.call_answered(&user, &taken.client, &digits, ask_pin, cache_key, now)
                    .await?
            }
            other => Outcome::Reject(self.call_failed(&user, other)),
        };
        self.settle(txn, outcome, "accepted", &device).await?;
        Ok(true)
    }

    /// The keys pressed before #: approval, PIN, or the fraud code.
    async fn call_answered(
        &self,
        user: &User,
        client: &str,
        digits: &str,
        ask_pin: bool,
        cache_key: Option<String>,
        now: i64,
    ) -> Result<Outcome, StoreError> {
        // Blocked or disabled while the phone rang: the answer changes nothing.
        if let Some(reason) = self.unavailable(user, now) {
            return Ok(Outcome::Reject(reason));
        }
        if self.policy().fraud.report_code() == Some(digits) {
            return self.fraud_reported(user, now).await;
        }
        // Standard mode: # alone, no secret to check. Anything else (a PIN, or keys
        // that are not an approval) is an attempt and takes a slot.
        if !ask_pin && digits.is_empty() {
            return self.accepted(user, client, now, cache_key).await;
        }
        if let Some(reason) = self.slot_or_reject(user, now).await? {
            return Ok(Outcome::Reject(reason));
        }
        if !ask_pin {
            return Ok(Outcome::Reject(Reason::WrongCode));
        }
        if digits.is_empty() {
            return Ok(Outcome::Reject(Reason::NoPinEntered));
        }
        let hash = match (user.pin_mode, &user.pin_hash) {
            (PinMode::Pin, Some(hash)) => hash.clone(),
            _ => String::new(),
        };
        if hash.is_empty() || !self.pin_matches(&hash, digits).await {
            return Ok(Outcome::Reject(Reason::WrongPin));
        }
        self.accepted(user, client, now, cache_key).await
    }

    /// The user said this login is not theirs: reject it and block them (until the block
    /// expires or an operator runs `mfad user unblock`).
    async fn fraud_reported(&self, user: &User, now: i64) -> Result<Outcome, StoreError> {
        tracing::warn!(user = %user.username, "fraud reported: the user did not start this sign-in");
        if self.policy().fraud.block_user {
            let until = now.saturating_add(self.policy().block_days.saturating_mul(86_400));
            self.store
                .set_block(user.id, Some(until), Some("fraud reported by the user"))
                .await?;
        }
        if let Some(alerts) = &self.alerts {
            alerts.fraud_reported(user, "call", now).await;
        }
        Ok(Outcome::Reject(Reason::FraudReported))
    }
}
