//! Challenges: single-use transactions that ask for more (the code, a new PIN and its
//! confirmation, an SMS code, a target server's own question), bound to the user and
//! client they were issued to, and the answers to them, PIN change included.

use super::{describe, sms, Engine, Outcome, Prompt, PromptKind, Reason, Request, TxnId};
use crate::audit::AuditRecord;
use crate::clock::random_array;
use crate::model::{Challenge, ChallengeKind, Token, User};
use crate::pin::{self, PinError};
use crate::store::StoreError;
use crate::upstream::Resume;
use zeroize::Zeroizing;

/// Length of a RADIUS State issued with a challenge: 128 random bits.
pub(super) const STATE_LEN: usize = 16;

impl Engine {
    /// `kind`, to be shown in `user`'s language (else the server's).
    pub(super) fn prompt(&self, user: &User, kind: PromptKind) -> Prompt {
        let language = if user.language.is_empty() {
            &self.server.language
        } else {
            &user.language
        };
        Prompt {
            kind,
            language: language.clone(),
        }
    }

    pub(super) async fn challenge(
        &self,
        user: &User,
        client: &str,
        kind: ChallengeKind,
        prompt: PromptKind,
    ) -> Result<Outcome, StoreError> {
        let expires_at = self
            .clock
            .now()
            .saturating_add(self.policy().challenge_seconds);
        self.challenge_until(user, client, kind, prompt, expires_at)
            .await
    }

    /// A new single-use state for `kind`, answerable until `expires_at`.
    pub(super) async fn challenge_until(
        &self,
        user: &User,
        client: &str,
        kind: ChallengeKind,
        prompt: PromptKind,
        expires_at: i64,
    ) -> Result<Outcome, StoreError> {
        let state = random_array::<STATE_LEN>(&*self.rng).to_vec();
        let challenge = Challenge {
            state: state.clone(),
            user_id: user.id,
            client: client.to_owned(),
            kind,
            expires_at,
        };
        self.store.put_challenge(&challenge).await?;
        Ok(Outcome::Challenge {
            txn: TxnId::from_bytes(state),
            prompt: self.prompt(user, prompt),
        })
    }

    pub(super) async fn answer_challenge(
        &self,
        req: &Request,
        state: &[u8],
        answer: &str,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Result<Outcome, StoreError> {
        // Out-of-band transactions and their indexes share the store's challenges but
        // are longer: a State that cannot be one of ours never touches the store, so a
        // client cannot take (even for a moment) what a webhook is waiting to decide.
        if state.len() != STATE_LEN {
            return Ok(Outcome::Reject(Reason::ChallengeExpired));
        }
        let Some(challenge) = self.store.take_challenge(state, now).await? else {
            return Ok(Outcome::Reject(Reason::ChallengeExpired));
        };
        if matches!(
            challenge.kind,
            ChallengeKind::Call { .. }
                | ChallengeKind::SmsReply { .. }
                | ChallengeKind::SmsReplyTo { .. }
        ) {
            // Out-of-band transactions are no RADIUS State: leave them to their webhooks.
            self.store.put_challenge(&challenge).await?;
            return Ok(Outcome::Reject(Reason::ChallengeExpired));
        }
        let Some(user) = self.store.user_by_id(challenge.user_id).await? else {
            return Ok(Outcome::Reject(Reason::UnknownUser));
        };
        describe(audit, &user);
        // A state is bound to the user and client it was issued to.
        if challenge.client != req.client.name || !self.names_user(&req.username, &user).await? {
            return Ok(Outcome::Reject(Reason::ChallengeExpired));
        }
        if let Some(reason) = self.unavailable(&user, now) {
            return Ok(Outcome::Reject(reason));
        }
        match challenge.kind {
            ChallengeKind::Upstream { target, state } => {
                let resume = Resume { target, state };
                if let Some(reason) = self.slot_or_reject(&user, now).await? {
                    return Ok(Outcome::Reject(reason));
                }
                let answer = self.upstream(req, None, Some(&resume)).await;
                if let Some(outcome) = self.upstream_outcome(&user, req, answer).await? {
                    return Ok(outcome);
                }
                let tokens = self.store.tokens_for_user(user.id).await?;
                let tokens: Vec<Token> = tokens.into_iter().filter(|t| t.enabled).collect();
                self.after_first_factor(&user, &tokens, "", true, req, now, audit)
                    .await
            }
            ChallengeKind::Otp => {
                let tokens = self.store.tokens_for_user(user.id).await?;
                let tokens: Vec<Token> = tokens.into_iter().filter(|t| t.enabled).collect();
                let cache_key = self.cache_key(&user, req);
                self.second_factor(&user, &tokens, answer, req, now, cache_key, audit)
                    .await
            }
            ChallengeKind::NewPin => {
                let (pin, phone, history) = (
                    Zeroizing::new(answer.to_string()),
                    user.phone.clone(),
                    user.pin_history.clone(),
                );
                let rules = self.policy().pin.clone();
                let rng = self.rng.clone();
                let checked = self
                    .argon2(move || {
                        pin::check(&pin, &rules, &phone, &history)?;
                        pin::hash(&pin, &*rng)
                    })
                    .await
                    .unwrap_or(Err(PinError::Hash));
                match checked {
                    Ok(pin_hash) => {
                        let kind = ChallengeKind::ConfirmPin { pin_hash };
                        self.challenge(&user, &req.client.name, kind, PromptKind::ConfirmPin)
                            .await
                    }
                    Err(err) => {
                        audit.reason = Reason::PinRejected.as_str().into();
                        let prompt = PromptKind::PinRejected { why: err };
                        self.challenge(&user, &req.client.name, ChallengeKind::NewPin, prompt)
                            .await
                    }
                }
            }
            ChallengeKind::SmsCode {
                salt,
                code_hash,
                attempts,
                sends,
            } => {
                let sent = sms::SentCode {
                    salt,
                    code_hash,
                    attempts,
                    sends,
                    expires_at: challenge.expires_at,
                };
                self.answer_sms(&user, req, answer, sent, now, audit).await
            }
            ChallengeKind::Call { .. }
            | ChallengeKind::SmsReply { .. }
            | ChallengeKind::SmsReplyTo { .. } => Ok(Outcome::Reject(Reason::ChallengeExpired)),
            ChallengeKind::ConfirmPin { pin_hash } => {
                if self.pin_matches(&pin_hash, answer).await {
                    self.store
                        .set_pin(user.id, Some(&pin_hash), false, self.policy().pin.history)
                        .await?;
                    audit.reason = "pin_changed".into();
                    Ok(Outcome::Accept)
                } else {
                    audit.reason = Reason::PinMismatch.as_str().into();
                    let prompt = PromptKind::PinMismatch;
                    self.challenge(&user, &req.client.name, ChallengeKind::NewPin, prompt)
                        .await
                }
            }
        }
    }
}
