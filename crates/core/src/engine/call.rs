//! The phone-call method: the user answers and presses # (or PIN #), or reports fraud.
//!
//! The request waits while the call rings (the front-end holds it; RADIUS drops
//! retransmissions of a request still being decided, so they never place a second call).

use super::{describe_phone, Engine, Outcome, Reason, Request};
use crate::audit::AuditRecord;
use crate::delivery::{CallRequest, CallResult};
use crate::model::{PinMode, User};
use crate::phone;
use crate::store::StoreError;

impl Engine {
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
        let Some(voice) = &self.voice else {
            tracing::warn!(user = %user.username, "user has the call method but no voice gateway is configured; set [voice] gateway");
            return Ok(Outcome::Reject(Reason::NoGateway));
        };
        if user.phone.trim().is_empty() {
            return Ok(Outcome::Reject(Reason::NoPhone));
        }
        let pin_hash = match (user.pin_mode, &user.pin_hash) {
            (PinMode::Pin, Some(hash)) => Some(hash.clone()),
            _ => None,
        };
        let country = &self.policy.default_country_code;
        let call_to = |stored: &str| {
            phone::normalise(stored, country).map(|number| CallRequest {
                to: number.e164,
                extension: number.extension,
                ask_pin: pin_hash.is_some(),
            })
        };
        let Ok(call) = call_to(&user.phone) else {
            return Ok(Outcome::Reject(Reason::InvalidNumber));
        };
        if !self.within_limits(user, "call", now).await? {
            return Ok(Outcome::Reject(Reason::RateLimited));
        }
        let mut result = voice.call(&call).await;
        // The backup phone is called when the primary one does not answer.
        if matches!(result, CallResult::NoAnswer | CallResult::Busy)
            && !user.backup_phone.trim().is_empty()
        {
            if let (Ok(backup), true) = (
                call_to(&user.backup_phone),
                self.within_limits(user, "call", now).await?,
            ) {
                tracing::info!(user = %user.username, "primary phone did not answer; calling the backup phone");
                audit.device = user.backup_phone.clone();
                result = voice.call(&backup).await;
            }
        }
        let digits = match result {
            CallResult::Digits(digits) => digits,
            CallResult::HungUp => return Ok(Outcome::Reject(Reason::CallHungUp)),
            CallResult::NoAnswer | CallResult::Busy => {
                return Ok(Outcome::Reject(Reason::CallNoAnswer))
            }
            CallResult::InvalidNumber => return Ok(Outcome::Reject(Reason::InvalidNumber)),
            CallResult::TimedOut => return Ok(Outcome::Reject(Reason::CallTimeout)),
            CallResult::Failed(err) => {
                tracing::warn!(user = %user.username, "call not placed: {err}");
                return Ok(Outcome::Reject(Reason::DeliveryFailed));
            }
        };
        let fraud = &self.policy.fraud;
        if fraud.allow_reports && !fraud.code.is_empty() && digits.as_str() == fraud.code {
            return self.fraud_reported(user, now).await;
        }
        match pin_hash {
            Some(_) if digits.is_empty() => {
                self.count_failure(user, now).await?;
                Ok(Outcome::Reject(Reason::NoPinEntered))
            }
            Some(hash) => {
                if self.pin_matches(&hash, &digits).await {
                    let cache_key = self.cache_key(user, req);
                    self.accepted(user, req, now, cache_key).await
                } else {
                    self.count_failure(user, now).await?;
                    Ok(Outcome::Reject(Reason::WrongPin))
                }
            }
            // Standard mode: # alone. Other keys are not an approval.
            None if digits.is_empty() => {
                let cache_key = self.cache_key(user, req);
                self.accepted(user, req, now, cache_key).await
            }
            None => {
                self.count_failure(user, now).await?;
                Ok(Outcome::Reject(Reason::WrongCode))
            }
        }
    }

    /// The user said this login is not theirs: reject it and block them (until the block
    /// expires or an operator runs `mfad user unblock`).
    async fn fraud_reported(&self, user: &User, now: i64) -> Result<Outcome, StoreError> {
        tracing::warn!(user = %user.username, "fraud reported: the user did not start this sign-in");
        if self.policy.fraud.block_user {
            let until = now.saturating_add(self.policy.block_days.saturating_mul(86_400));
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
