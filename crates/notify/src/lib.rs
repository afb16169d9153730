//! mfad-notify: delivery of e-mail (SMTP) and SMS, and the templates operators edit.
//!
//! The rules (what is sent when, codes, retries) are the core's; this crate only turns
//! them into messages on the wire. Nothing here is on the authentication path except
//! an SMS send, which has its own timeout: a slow or dead gateway costs one request,
//! never the server.

pub mod alerts;
pub mod compose;
pub mod outbox;
pub mod sms;
pub mod smtp;
pub mod templates;
pub mod voice;
pub mod webhook;

pub use compose::compose;
pub use outbox::Outbox;
pub use sms::{GatewayKind, SmsConfig, SmsGateway};
pub use smtp::{Mailer, Security, SmtpConfig};
pub use templates::{MailContext, Rendered, Templates};
pub use voice::{TwilioVoice, VoiceConfig, VoiceKind};

/// Why a message could not be prepared or delivered. Messages are one line and never
/// hold a password, token or code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The configuration cannot work; the text says which key and what to do.
    #[error("{0}")]
    Config(String),
    #[error("template {name} line {line}: {message}")]
    Template {
        name: String,
        line: usize,
        message: String,
    },
    #[error("'{0}' is not a valid e-mail address")]
    Address(String),
    #[error("SMTP delivery failed: {0}")]
    Smtp(String),
    #[error("SMS delivery failed: {0}")]
    Sms(String),
}

/// One line of an error chain, for logs and the outbox's `last_error`.
pub(crate) fn one_line(text: impl std::fmt::Display) -> String {
    text.to_string()
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
