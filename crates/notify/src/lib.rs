//! mfad-notify: delivery of e-mail (SMTP) and SMS, and the templates operators edit.
//!
//! The rules (what is sent when, codes, retries) are the core's; this crate only turns
//! them into messages on the wire. Nothing here is on the authentication path except
//! an SMS send, which has its own timeout: a slow or dead gateway costs one request,
//! never the server.

pub mod alerts;
pub mod compose;
pub mod live;
pub mod outbox;
pub mod sms;
pub mod smtp;
pub mod templates;
pub mod voice;
pub mod webhook;

pub use compose::compose;
pub use live::{Listening, Live};
pub use outbox::Outbox;
pub use sms::{GatewayKind, LiveSms, SmsConfig, SmsGateway};
pub use smtp::{Mailer, Security, SmtpConfig};
pub use templates::{MailContext, Rendered, Templates};
pub use voice::{LiveVoice, TwilioVoice, VoiceConfig, VoiceKind};

/// A credential given as a value rather than a file (a stored secret setting, `mfad
/// setting set KEY --secret`). Read like a string; `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub String);

impl SecretText {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<hidden>"
        })
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// The credential from `value` when it is set (a stored secret setting), else from
/// the file `file_key` names.
pub(crate) fn credential(
    value: &SecretText,
    file_key: &str,
    file: &std::path::Path,
) -> Result<zeroize::Zeroizing<String>, NotifyError> {
    if value.is_empty() {
        sms::read_secret(file_key, file)
    } else {
        Ok(zeroize::Zeroizing::new(value.0.clone()))
    }
}

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
