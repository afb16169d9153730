//! The outbound channels the engine uses during a login, as traits the notify crate implements.

use crate::model::User;
use async_trait::async_trait;

/// Why a message did not go out; one line, never holding the code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

/// Sends one-time codes by SMS.
#[async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Sends the sign-in `code` to `to` (E.164). Returns once the gateway accepted the
    /// message, or with an error after the gateway's timeout.
    async fn send_code(&self, to: &str, code: &str) -> Result<(), DeliveryError>;
    /// Sends the two-way message to `to` (E.164): it asks the user to reply with `code`,
    /// after their PIN when `with_pin`, to sign in to `client` (what the reply approves).
    async fn send_reply_request(
        &self,
        to: &str,
        code: &str,
        with_pin: bool,
        client: &str,
    ) -> Result<(), DeliveryError>;
}

/// A verification call to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRequest {
    /// E.164.
    pub to: String,
    /// Dialled after the call is answered.
    pub extension: Option<String>,
    /// Ask for the PIN followed by # instead of # alone.
    pub ask_pin: bool,
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallResult {
    /// Answered; the keys pressed before # (empty for # alone).
    Digits(zeroize::Zeroizing<String>),
    /// Answered, then hung up without pressing #.
    HungUp,
    NoAnswer,
    Busy,
    /// The provider refused the number.
    InvalidNumber,
    /// The provider failed; one line, no secrets.
    Failed(String),
    /// No outcome within the configured time.
    TimedOut,
}

/// Places verification calls (Twilio Voice, or another provider implementing it).
#[async_trait]
pub trait VoiceCaller: Send + Sync + 'static {
    /// Places the call of out-of-band transaction `txn` and returns once the provider
    /// took it; how the call ends is reported later, by the provider's webhooks, with
    /// [`crate::engine::Engine::call_ended`]. An error says why no call was placed.
    async fn place(&self, call: &CallRequest, txn: &str) -> Result<(), CallResult>;
}

/// Tells the operators about fraud reports (e-mail through the outbox). Never fails the
/// login: problems are logged by the implementation.
#[async_trait]
pub trait FraudAlerts: Send + Sync + 'static {
    /// `user` reported the sign-in at `at` (Unix seconds) as not theirs, by `method`.
    async fn fraud_reported(&self, user: &User, method: &str, at: i64);
}
