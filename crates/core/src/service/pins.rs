//! PINs an operator sets or generates: the PIN rules, argon2id, the PIN history.

use super::Result;
use crate::clock::Random;
use crate::model::{PinMode, User};
use crate::pin;
use crate::policy::{PinRules, Policy};
use crate::store::Store;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Something the operator should know about a PIN that was set.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinNotice {
    /// The user's PIN mode does not ask for the PIN, so logins do not need it: setting
    /// a PIN does not switch the mode.
    NotAsked { username: String, pin_mode: PinMode },
}

impl PinNotice {
    /// A stable word for the notice, as [`super::Error::code`] is for errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAsked { .. } => "pin.not_asked",
        }
    }
}

impl std::fmt::Display for PinNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAsked { username, pin_mode } => write!(
                f,
                "the PIN mode of {username} is {pin_mode} (code only), so logins do not ask for this PIN; run 'mfad user update {username} --pin-mode pin' to require it"
            ),
        }
    }
}

/// The PIN service.
pub struct Pins {
    store: Arc<dyn Store>,
    rng: Arc<dyn Random>,
    rules: PinRules,
}

impl Pins {
    pub fn new(store: Arc<dyn Store>, rng: Arc<dyn Random>, policy: &Policy) -> Self {
        Self {
            store,
            rng,
            rules: policy.pin.clone(),
        }
    }

    /// What the operator should know before a PIN is set for `user`.
    pub fn notice(&self, user: &User) -> Option<PinNotice> {
        (user.pin_mode != PinMode::Pin).then(|| PinNotice::NotAsked {
            username: user.username.clone(),
            pin_mode: user.pin_mode,
        })
    }

    /// Checks the PIN rules, then stores the argon2id hash; with `change_required` the
    /// user must replace it at the next login.
    pub async fn set(&self, user: &User, pin: &str, change_required: bool) -> Result<()> {
        pin::check(pin, &self.rules, &user.phone, &user.pin_history)?;
        self.store_pin(user, pin, change_required).await
    }

    /// A random PIN that follows the rules, stored and returned once. A PIN someone else
    /// chose is known to them: callers mark it "change required".
    pub async fn generate(&self, user: &User, change_required: bool) -> Result<Zeroizing<String>> {
        let pin = Zeroizing::new(pin::generate(&*self.rng, &self.rules, &user.phone));
        self.store_pin(user, &pin, change_required).await?;
        Ok(pin)
    }

    /// Hashes a PIN that passed the rules and stores it with the history the policy keeps.
    async fn store_pin(&self, user: &User, pin: &str, change_required: bool) -> Result<()> {
        let hash = pin::hash(pin, &*self.rng)?;
        self.store
            .set_pin(user.id, Some(&hash), change_required, self.rules.history)
            .await?;
        Ok(())
    }
}
