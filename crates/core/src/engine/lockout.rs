//! The lockout budget: every secret checked (first-factor password, code, PIN, SMS
//! reply) takes a slot in the store first, so that however many guesses race, on one
//! node or several, at most `max_failures` are checked per lockout period (NIST SP
//! 800-63B §5.2.2). Also the bound on argon2 work, and the per-user and per-gateway
//! limits on SMS and calls.

use super::{Engine, Reason};
use crate::model::User;
use crate::pin;
use crate::store::{FailureState, StoreError};
use zeroize::Zeroizing;

impl Engine {
    /// Takes the slot of one attempt before its secret is checked: the failure count with
    /// this attempt in it, or `None` when the user is locked and nothing may be checked.
    pub(super) async fn take_slot(
        &self,
        user: &User,
        now: i64,
    ) -> Result<Option<FailureState>, StoreError> {
        let policy = self.policy();
        let taken = self
            .store
            .take_attempt(user.id, now, policy.max_failures, policy.lockout_seconds)
            .await?;
        if let Some(state) = &taken {
            self.note_lock(user, state);
        }
        Ok(taken)
    }

    /// Says so in the log when this attempt's failure locked the user.
    pub(super) fn note_lock(&self, user: &User, state: &FailureState) {
        if let Some(until) = state.locked_until {
            tracing::warn!(user = %user.username, until, "user locked after too many failures");
        }
    }

    /// [`Engine::take_slot`], with the reject for a locked user.
    pub(super) async fn slot_or_reject(
        &self,
        user: &User,
        now: i64,
    ) -> Result<Option<Reason>, StoreError> {
        Ok(match self.take_slot(user, now).await? {
            Some(_) => None,
            None => Some(Reason::Locked),
        })
    }

    /// Gives a slot back when its attempt proved nothing against the user: a first factor
    /// that passed (the code is checked under a slot of its own), or a directory or target
    /// that did not answer.
    pub(super) async fn release_slot(&self, user: &User) -> Result<(), StoreError> {
        self.store.release_attempt(user.id).await
    }

    /// Runs argon2id work (a PIN check or hash, 19 MiB each) on a blocking thread, at most
    /// as many at once as there are cores: a burst of PIN guesses queues here instead of
    /// taking the machine's memory. `None` when the work could not run.
    pub(super) async fn argon2<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.argon2.acquire().await.ok()?;
        tokio::task::spawn_blocking(work).await.ok()
    }

    /// Whether `user` may get one more SMS (`channel` "sms") or call ("call") within the
    /// per-user and per-gateway limits; counts the use when so.
    pub(super) async fn within_limits(
        &self,
        user: &User,
        channel: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let limits = &self.policy().limits;
        let (per_user, per_gateway) = match channel {
            "sms" => (limits.sms_per_user, limits.sms_per_gateway),
            _ => (limits.calls_per_user, limits.calls_per_gateway),
        };
        let window = limits.window_seconds.max(1);
        for (key, limit) in [
            (format!("{channel}:user:{}", user.id), per_user),
            (format!("{channel}:gateway"), per_gateway),
        ] {
            if limit > 0 && !self.store.take_rate(&key, now, window, limit).await? {
                tracing::warn!(user = %user.username, key, limit, window, "{channel} limit reached; not sending");
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// argon2id is deliberately slow: run it off the async workers, bounded. Callers
    /// take the attempt's slot first.
    pub(super) async fn pin_matches(&self, hash: &str, pin: &str) -> bool {
        let (hash, pin) = (hash.to_string(), Zeroizing::new(pin.to_string()));
        self.argon2(move || pin::verify(&hash, &pin))
            .await
            .unwrap_or(false)
    }
}
