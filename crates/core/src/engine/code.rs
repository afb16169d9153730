//! The one-time code check: which of the user's tokens a `[PIN]code` matches, and the
//! attempt's slot and outcome, taken in the store before anything the match says is
//! acted on.

use super::{finish_record, new_pin_due, Engine, Outcome, Reason, Request};
use crate::audit::AuditRecord;
use crate::model::{PinMode, Token, TokenId, User};
use crate::otp::{find_hotp, find_totp, OtpKind};
use crate::store::{CodeAttempt, StoreError};

/// What one token says about a code.
enum CodeCheck {
    /// Matches a counter or step not yet used.
    Fresh(u64),
    /// Matches one already used.
    Used,
    /// An HOTP code beyond the look-ahead window: the first of the two consecutive codes
    /// that resynchronise the counter (RFC 4226 §7.4).
    ResyncFirst(u64),
    NoMatch,
}

/// What the user's tokens say about a `[PIN]code`, worked out without the store.
struct Matched<'a> {
    /// The first token with a code not yet used: the token, the counter value the code
    /// stands for, and the PIN typed before the code.
    fresh: Option<(&'a Token, u64, &'a str)>,
    /// Some token matched a code already used.
    used: bool,
    /// A first resynchronisation code, remembered once the attempt's slot is granted.
    resync: Option<(TokenId, u64)>,
}

impl Engine {
    /// Checks `[PIN]code` and consumes the code. Without a PIN, the slot, the code's use
    /// and the failure count are one store call ([`crate::store::Store::attempt_code`]).
    /// With one, the slot comes first, then the PIN (argon2id, only for a code that
    /// matched, before the code is used, so that a wrong PIN leaves the code unused).
    #[allow(clippy::too_many_arguments)] // the request's parts the check needs
    pub(super) async fn second_factor(
        &self,
        user: &User,
        tokens: &[Token],
        answer: &str,
        req: &Request,
        now: i64,
        cache_key: Option<String>,
        audit: &mut AuditRecord,
    ) -> Result<Outcome, StoreError> {
        audit.mode = user.pin_mode.to_string();
        let pin_hash = match (user.pin_mode, &user.pin_hash) {
            (PinMode::Pin, Some(hash)) => Some(hash.as_str()),
            _ => None,
        };
        let matched = self.match_code(tokens, answer, pin_hash.is_some(), now);
        let wrong = if matched.used {
            Reason::Replayed
        } else {
            Reason::WrongCode
        };
        let client = &req.client.name;
        if let Some(hash) = pin_hash {
            if let Some(reason) = self.slot_or_reject(user, now).await? {
                return Ok(Outcome::Reject(reason));
            }
            let Some((token, used, pin)) = matched.fresh else {
                self.remember_resync(matched.resync).await?;
                return Ok(Outcome::Reject(wrong));
            };
            if !self.pin_matches(hash, pin).await {
                return Ok(Outcome::Reject(Reason::WrongPin));
            }
            if !self.store.advance_token(token.id, used).await? {
                return Ok(Outcome::Reject(Reason::Replayed));
            }
            describe_token(audit, token);
            return self.accepted(user, client, now, cache_key).await;
        }
        // When an accepted code ends the login (no new PIN due, nothing to cache), its
        // audit record goes with it: one durable write for the whole Accept.
        let final_record = match matched.fresh {
            Some((token, _, _)) if cache_key.is_none() && !new_pin_due(user) => {
                let mut record = audit.clone();
                describe_token(&mut record, token);
                finish_record(&mut record, &Outcome::Accept);
                Some(record)
            }
            _ => None,
        };
        let written = final_record.is_some();
        let policy = self.policy();
        let attempt = self
            .store
            .attempt_code(
                user.id,
                matched.fresh.map(|(token, used, _)| (token.id, used)),
                now,
                policy.max_failures,
                policy.lockout_seconds,
                final_record,
            )
            .await?;
        match (attempt, matched.fresh) {
            (CodeAttempt::Locked, _) => Ok(Outcome::Reject(Reason::Locked)),
            (CodeAttempt::Accepted, Some((token, _, _))) => {
                describe_token(audit, token);
                if written {
                    finish_record(audit, &Outcome::Accept);
                    return Ok(Outcome::Accept);
                }
                self.succeeded(user, client, now, cache_key).await
            }
            // The store accepts only a code it was given.
            (CodeAttempt::Accepted, None) => Ok(Outcome::Reject(Reason::WrongCode)),
            (CodeAttempt::Failed { replayed, state }, _) => {
                self.note_lock(user, &state);
                self.remember_resync(matched.resync).await?;
                Ok(Outcome::Reject(if replayed {
                    Reason::Replayed
                } else {
                    wrong
                }))
            }
        }
    }

    /// Compares `answer` with every token's codes; `with_pin`: a PIN may come first.
    fn match_code<'a>(
        &self,
        tokens: &'a [Token],
        answer: &'a str,
        with_pin: bool,
        now: i64,
    ) -> Matched<'a> {
        let mut matched = Matched {
            fresh: None,
            used: false,
            resync: None,
        };
        for token in tokens {
            let digits = token.digits as usize;
            let Some(split) = answer.len().checked_sub(digits) else {
                continue;
            };
            let (Some(pin), Some(code)) = (answer.get(..split), answer.get(split..)) else {
                continue;
            };
            if !with_pin && !pin.is_empty() {
                continue;
            }
            match self.check_code(token, code, now) {
                CodeCheck::Fresh(used) => {
                    matched.fresh = Some((token, used, pin));
                    return matched;
                }
                CodeCheck::Used => matched.used = true,
                CodeCheck::ResyncFirst(c) => matched.resync = Some((token.id, c)),
                CodeCheck::NoMatch => {}
            }
        }
        matched
    }

    /// What `token` says about `code` at `now`: a pure computation.
    fn check_code(&self, token: &Token, code: &str, now: i64) -> CodeCheck {
        let key = token.secret.expose();
        let policy = self.policy();
        match token.kind {
            OtpKind::Totp => {
                let at = |min| {
                    find_totp(
                        token.algorithm,
                        key,
                        token.digits,
                        token.period,
                        code,
                        now,
                        policy.totp_skew,
                        min,
                    )
                };
                match at(token.next) {
                    Some(step) => CodeCheck::Fresh(step),
                    None if at(0).is_some() => CodeCheck::Used,
                    None => CodeCheck::NoMatch,
                }
            }
            OtpKind::Hotp => {
                let window = policy.hotp_window;
                let hotp =
                    |from, count| find_hotp(token.algorithm, key, token.digits, code, from, count);
                if let Some(c) = hotp(token.next, window) {
                    return CodeCheck::Fresh(c);
                }
                // RFC 4226 §7.4: beyond the look-ahead window, two consecutive codes
                // resynchronise the counter.
                let far = token.next.saturating_add(window);
                if let Some(c) = hotp(far, policy.hotp_resync_window) {
                    return if token.resync.is_some_and(|r| r.checked_add(1) == Some(c)) {
                        CodeCheck::Fresh(c)
                    } else {
                        CodeCheck::ResyncFirst(c)
                    };
                }
                // A code from just below the counter was used already: say so in the log.
                let recent = token.next.saturating_sub(window);
                if hotp(recent, token.next - recent).is_some() {
                    CodeCheck::Used
                } else {
                    CodeCheck::NoMatch
                }
            }
        }
    }

    /// Remembers the first code of a resynchronisation, under the attempt's slot.
    async fn remember_resync(&self, resync: Option<(TokenId, u64)>) -> Result<(), StoreError> {
        match resync {
            Some((token, c)) => self.store.set_token_resync(token, Some(c)).await,
            None => Ok(()),
        }
    }
}

fn describe_token(audit: &mut AuditRecord, token: &Token) {
    audit.method = token.kind.to_string();
    audit.device = token.serial.clone();
}
