//! The outbound channels the engine uses during a login, as traits the notify crate implements.

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
}
