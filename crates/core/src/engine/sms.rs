//! The SMS method: a random code sent to the user's phone, answered in an Access-Challenge.
//!
//! The code is single-use and expires (`policy.sms.code_seconds` after it was sent);
//! wrong answers count towards the user's lockout and end the login after
//! `policy.sms.max_attempts`; typing the resend keyword sends a new code, which makes the
//! old one useless and keeps the count of wrong answers.
//!
//! In two-way mode (`policy.sms.mode = "two-way"`) the user replies to the SMS instead:
//! the login is `Pending` until the reply, received by the gateway's inbound webhook on
//! any node, reaches [`Engine::sms_reply`], which matches the sender's number to the
//! pending login and decides it. The text names what the reply approves, and one phone
//! waits for one reply at a time: a reply carries nothing but the code, so when a second
//! login asks the same phone, neither may take the reply (an attacker who knows the
//! password would otherwise start a login right after the user's and get their reply).

use super::{describe_phone, hex, Engine, Outcome, PromptKind, Reason, Request, TxnId};
use crate::audit::AuditRecord;
use crate::clock::{random_array, random_digits};
use crate::delivery::SmsSender;
use crate::model::{Challenge, ChallengeKind, PinMode, User};
use crate::phone;
use crate::policy::SmsMode;
use crate::store::StoreError;
use std::sync::Arc;

/// A code that was sent, as its challenge remembers it.
pub(super) struct SentCode {
    pub salt: String,
    pub code_hash: String,
    pub attempts: u32,
    pub sends: u32,
    pub expires_at: i64,
}

impl Engine {
    /// First request of an SMS login: check the PIN (PIN mode), then send a code.
    pub(super) async fn start_sms(
        &self,
        user: &User,
        req: &Request,
        answer: &str,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Result<Outcome, StoreError> {
        audit.method = "sms".into();
        audit.mode = user.pin_mode.to_string();
        describe_phone(audit, user);
        if self.policy().sms.mode == SmsMode::TwoWay {
            return self.start_two_way(user, req, now, audit).await;
        }
        // The PIN is checked before anything is sent, so guessing usernames cannot be
        // used to flood phones with messages.
        if let (PinMode::Pin, Some(hash)) = (user.pin_mode, &user.pin_hash) {
            if let Some(reason) = self.slot_or_reject(user, now).await? {
                return Ok(Outcome::Reject(reason));
            }
            if !self.pin_matches(hash, answer).await {
                return Ok(Outcome::Reject(Reason::WrongPin));
            }
            // The code that follows is checked under a slot of its own.
            self.release_slot(user).await?;
        }
        self.send_code(user, req, 0, 1, now).await
    }

    /// The gateway and the numbers to text (E.164): the phone, then the backup phone, for
    /// when the phone has no usable number or the gateway does not take the message for
    /// it. Or why nothing may be sent: no gateway, no usable number, or the abuse limits
    /// reached (this SMS counts; one to the backup phone counts again).
    async fn sms_recipients(
        &self,
        user: &User,
        now: i64,
    ) -> Result<Result<(&Arc<dyn SmsSender>, Vec<String>), Reason>, StoreError> {
        let Some(sender) = &self.sms else {
            tracing::warn!(user = %user.username, "user has the SMS method but no SMS gateway is configured; set [sms] gateway");
            return Ok(Err(Reason::NoGateway));
        };
        let country = &self.policy().default_country_code;
        let mut numbers: Vec<String> = [&user.phone, &user.backup_phone]
            .into_iter()
            .filter_map(|stored| e164(stored, country))
            .collect();
        numbers.dedup();
        if numbers.is_empty() {
            return Ok(Err(Reason::NoPhone));
        }
        if !self.within_limits(user, "sms", now).await? {
            return Ok(Err(Reason::RateLimited));
        }
        Ok(Ok((sender, numbers)))
    }

    /// Whether the `nth` number (from 0) of [`Self::sms_recipients`] may be texted: the
    /// first was counted there, a backup phone counts here.
    async fn may_text(&self, user: &User, nth: usize, now: i64) -> Result<bool, StoreError> {
        if nth == 0 {
            return Ok(true);
        }
        if !self.within_limits(user, "sms", now).await? {
            return Ok(false);
        }
        tracing::info!(user = %user.username, "texting the backup phone");
        Ok(true)
    }

    /// Sends a fresh code and issues the challenge that waits for it.
    async fn send_code(
        &self,
        user: &User,
        req: &Request,
        attempts: u32,
        sends: u32,
        now: i64,
    ) -> Result<Outcome, StoreError> {
        let (sender, numbers) = match self.sms_recipients(user, now).await? {
            Ok(found) => found,
            Err(reason) => return Ok(Outcome::Reject(reason)),
        };
        let rules = &self.policy().sms;
        let code = zeroize::Zeroizing::new(random_digits(&*self.rng, rules.code_digits.max(4)));
        let salt = hex(&random_array::<16>(&*self.rng));
        let mut sent = false;
        for (nth, to) in numbers.iter().enumerate() {
            if !self.may_text(user, nth, now).await? {
                break;
            }
            match sender.send_code(to, &code).await {
                Ok(()) => {
                    sent = true;
                    break;
                }
                Err(err) => tracing::warn!(user = %user.username, "SMS not sent: {err}"),
            }
        }
        if !sent {
            return Ok(Outcome::Reject(Reason::DeliveryFailed));
        }
        let kind = ChallengeKind::SmsCode {
            code_hash: self.store.code_mac().digest(&salt, &code),
            salt,
            attempts,
            sends,
        };
        let prompt = if sends > 1 {
            PromptKind::SmsResent
        } else {
            PromptKind::SmsCode
        };
        let expires_at = now.saturating_add(rules.code_seconds);
        self.challenge_until(user, &req.client.name, kind, prompt, expires_at)
            .await
    }

    /// An answer to the SMS challenge: the code, or the resend keyword.
    pub(super) async fn answer_sms(
        &self,
        user: &User,
        req: &Request,
        answer: &str,
        sent: SentCode,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Result<Outcome, StoreError> {
        audit.method = "sms".into();
        audit.mode = user.pin_mode.to_string();
        describe_phone(audit, user);
        let rules = &self.policy().sms;
        let answer = answer.trim();
        if !rules.resend_keyword.is_empty() && answer.eq_ignore_ascii_case(&rules.resend_keyword) {
            if sent.sends >= rules.max_sends {
                return Ok(Outcome::Reject(Reason::ResendLimit));
            }
            return self
                .send_code(user, req, sent.attempts, sent.sends.saturating_add(1), now)
                .await;
        }
        let Some(failure) = self.take_slot(user, now).await? else {
            return Ok(Outcome::Reject(Reason::Locked));
        };
        if self
            .store
            .code_mac()
            .matches(&sent.salt, answer, &sent.code_hash)
        {
            let cache_key = self.cache_key(user, req);
            return self.accepted(user, &req.client.name, now, cache_key).await;
        }
        let attempts = sent.attempts.saturating_add(1);
        if attempts >= rules.max_attempts || failure.locked_until.is_some() {
            return Ok(Outcome::Reject(Reason::WrongCode));
        }
        audit.reason = Reason::WrongCode.as_str().into();
        let kind = ChallengeKind::SmsCode {
            salt: sent.salt,
            code_hash: sent.code_hash,
            attempts,
            sends: sent.sends,
        };
        // The same code stays valid until its own expiry, under a new state.
        let prompt = PromptKind::SmsWrongCode;
        self.challenge_until(user, &req.client.name, kind, prompt, sent.expires_at)
            .await
    }
}

/// The store key that leads replies from `e164` to its pending two-way SMS.
fn reply_index(e164: &str) -> Vec<u8> {
    format!("sms-reply:{e164}").into_bytes()
}

impl Engine {
    /// Two-way mode: texts a code to reply with and returns `Pending`.
    async fn start_two_way(
        &self,
        user: &User,
        req: &Request,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<Outcome, StoreError> {
        let (sender, numbers) = match self.sms_recipients(user, now).await? {
            Ok(found) => found,
            Err(reason) => return Ok(Outcome::Reject(reason)),
        };
        let ask_pin = matches!((user.pin_mode, &user.pin_hash), (PinMode::Pin, Some(_)));
        let code = zeroize::Zeroizing::new(random_digits(
            &*self.rng,
            self.policy().sms.code_digits.max(4),
        ));
        let salt = hex(&random_array::<16>(&*self.rng));
        let id = self.new_txn();
        // The reply index names the transaction by its text.
        let txn = id.as_str().unwrap_or_default().to_owned();
        let expires_at = self.pending_expiry(now);
        for (nth, to) in numbers.iter().enumerate() {
            if !self.may_text(user, nth, now).await? {
                break;
            }
            let pending = Challenge {
                state: txn.clone().into_bytes(),
                user_id: user.id,
                client: req.client.name.clone(),
                kind: ChallengeKind::SmsReply {
                    code_hash: self.store.code_mac().digest(&salt, &code),
                    salt: salt.clone(),
                    ask_pin,
                    device: to.clone(),
                    cache_key: self.cache_key(user, req),
                },
                expires_at,
            };
            // The reply is matched to the login by the number it comes from.
            let index = Challenge {
                state: reply_index(to),
                kind: ChallengeKind::SmsReplyTo { txn: txn.clone() },
                ..pending.clone()
            };
            // Stored before the message goes out: the reply may come at once, to any node.
            self.store.put_challenge(&pending).await?;
            let indexed = match self.store.put_challenge(&index).await {
                Ok(()) => true,
                Err(StoreError::Duplicate(_)) => {
                    !self.end_other_reply_login(&index.state, now).await?
                        && self.put_reply_index(&index, &txn, now).await?
                }
                Err(e) => {
                    self.store.take_challenge(txn.as_bytes(), now).await?;
                    return Err(e);
                }
            };
            if !indexed {
                tracing::warn!(user = %user.username, phone = %to, "two sign-ins wait for an SMS reply from one phone; both are refused, as a reply could not tell them apart");
                self.store.take_challenge(txn.as_bytes(), now).await?;
                return Ok(Outcome::Reject(Reason::SmsReplyPending));
            }
            let prompt = self.prompt(user, PromptKind::ReplySms);
            if let Err(e) = self.start_pending(&id, audit, prompt.clone(), now).await {
                self.store.take_challenge(txn.as_bytes(), now).await?;
                self.drop_reply_index(&index.state, &txn, now).await?;
                return Err(e);
            }
            match sender
                .send_reply_request(to, &code, ask_pin, &req.client.name)
                .await
            {
                Ok(()) => return Ok(Outcome::Pending { txn: id, prompt }),
                Err(err) => {
                    tracing::warn!(user = %user.username, "SMS not sent: {err}");
                    self.store.take_challenge(txn.as_bytes(), now).await?;
                    self.drop_reply_index(&index.state, &txn, now).await?;
                    self.store.delete_pending(id.as_bytes()).await?;
                }
            }
        }
        Ok(Outcome::Reject(Reason::DeliveryFailed))
    }

    /// Another login's reply index `state` was found where this one's goes. When that
    /// login still waits, it is rejected (`sms_reply_pending`) and true says this one must
    /// be refused as well; an index left by a login that has ended is removed (false).
    async fn end_other_reply_login(&self, state: &[u8], now: i64) -> Result<bool, StoreError> {
        let Some(index) = self.store.take_challenge(state, now).await? else {
            return Ok(false);
        };
        let ChallengeKind::SmsReplyTo { txn } = &index.kind else {
            return Ok(false);
        };
        let Some(other) = self.store.take_challenge(txn.as_bytes(), now).await? else {
            return Ok(false);
        };
        let device = match &other.kind {
            ChallengeKind::SmsReply { device, .. } => device.clone(),
            _ => String::new(),
        };
        let refused = Outcome::Reject(Reason::SmsReplyPending);
        self.settle(&TxnId::from(txn.as_str()), refused, "", &device)
            .await?;
        Ok(true)
    }

    /// Stores the reply index of `txn` in place of a stale one; false when yet another
    /// login stored its own meanwhile.
    async fn put_reply_index(
        &self,
        index: &Challenge,
        txn: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        match self.store.put_challenge(index).await {
            Ok(()) => Ok(true),
            Err(StoreError::Duplicate(_)) => Ok(false),
            Err(e) => {
                self.store.take_challenge(txn.as_bytes(), now).await?;
                Err(e)
            }
        }
    }

    /// Removes the reply index `state` if it still points to `txn`; a newer login to the
    /// same phone may have taken it over meanwhile, and keeps it.
    async fn drop_reply_index(&self, state: &[u8], txn: &str, now: i64) -> Result<(), StoreError> {
        let Some(taken) = self.store.take_challenge(state, now).await? else {
            return Ok(());
        };
        if matches!(&taken.kind, ChallengeKind::SmsReplyTo { txn: t } if t.as_str() == txn) {
            return Ok(());
        }
        match self.store.put_challenge(&taken).await {
            // Yet another login wrote its own index meanwhile: that one is the newest.
            Ok(()) | Err(StoreError::Duplicate(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A reply to a two-way SMS, from the gateway's inbound webhook: `from` is the sender's
    /// number as the gateway gives it. False, deciding nothing, when no login waits for a
    /// reply from that number.
    pub async fn sms_reply(&self, from: &str, body: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let Some(sender) = e164(from, &self.policy().default_country_code) else {
            tracing::info!("SMS reply from '{from}', which is not a phone number, ignored");
            return Ok(false);
        };
        let Some(index) = self
            .store
            .take_challenge(&reply_index(&sender), now)
            .await?
        else {
            tracing::info!(from = %sender, "SMS reply from a number with no pending sign-in ignored");
            return Ok(false);
        };
        let ChallengeKind::SmsReplyTo { txn } = index.kind else {
            return Ok(false);
        };
        let Some(taken) = self.store.take_challenge(txn.as_bytes(), now).await? else {
            tracing::info!(from = %sender, "SMS reply for a sign-in that has ended ignored");
            return Ok(false);
        };
        let ChallengeKind::SmsReply {
            salt,
            code_hash: expected,
            ask_pin,
            device,
            cache_key,
        } = taken.kind.clone()
        else {
            return Ok(false);
        };
        let outcome = match self.store.user_by_id(taken.user_id).await? {
            None => Outcome::Reject(Reason::UnknownUser),
            Some(user) => match self.unavailable(&user, now) {
                Some(reason) => Outcome::Reject(reason),
                None => {
                    self.check_reply(
                        &user,
                        &taken.client,
                        body,
                        ask_pin,
                        &salt,
                        &expected,
                        cache_key,
                        now,
                    )
                    .await?
                }
            },
        };
        self.settle(&TxnId::from(txn), outcome, "accepted", &device)
            .await?;
        Ok(true)
    }

    /// The reply's text: the code, after the PIN when one is asked for. Spaces are
    /// ignored (phones insert them in long numbers).
    #[allow(clippy::too_many_arguments)] // the pending SMS's parts the check needs
    async fn check_reply(
        &self,
        user: &User,
        client: &str,
        body: &str,
        ask_pin: bool,
        salt: &str,
        expected: &str,
        cache_key: Option<String>,
        now: i64,
    ) -> Result<Outcome, StoreError> {
        let text: zeroize::Zeroizing<String> =
            zeroize::Zeroizing::new(body.chars().filter(|c| !c.is_whitespace()).collect());
        let digits = self.policy().sms.code_digits.max(4);
        let split = text.len().saturating_sub(digits);
        let (pin, code) = (
            text.get(..split).unwrap_or(""),
            text.get(split..).unwrap_or(""),
        );
        if let Some(reason) = self.slot_or_reject(user, now).await? {
            return Ok(Outcome::Reject(reason));
        }
        let code_ok = self.store.code_mac().matches(salt, code, expected);
        if !code_ok || (!ask_pin && !pin.is_empty()) {
            return Ok(Outcome::Reject(Reason::WrongCode));
        }
        if ask_pin {
            let hash = match (user.pin_mode, &user.pin_hash) {
                (PinMode::Pin, Some(hash)) => hash.clone(),
                _ => String::new(),
            };
            if hash.is_empty() || !self.pin_matches(&hash, pin).await {
                return Ok(Outcome::Reject(Reason::WrongPin));
            }
        }
        self.accepted(user, client, now, cache_key).await
    }
}

/// The number to text: the stored phone without its extension.
fn e164(stored: &str, default_country: &str) -> Option<String> {
    if stored.trim().is_empty() {
        return None;
    }
    phone::normalise(stored, default_country)
        .ok()
        .map(|p| p.e164)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_texted_has_no_extension() {
        assert_eq!(
            e164("+14255550100x12", "1").as_deref(),
            Some("+14255550100")
        );
        assert_eq!(e164("", "1"), None);
    }
}
