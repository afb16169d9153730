//! Operator actions as services: the rules every front-end (the CLI, the admin console,
//! the admin API, the user portal) applies the same way.
//!
//! Each service holds what it needs (the store, the clock, the random source, the part
//! of the policy it applies) as the engine does, and fails with one [`Error`], whose
//! [`Error::code`] is a stable word a front-end maps to its own reply (an HTTP status, an
//! exit status) and whose text says what is wrong and what to do.

pub mod access;
pub mod clients;
pub mod mail;
pub mod pins;
pub mod tokens;
pub mod users;

pub use access::Access;
pub use clients::Clients;
pub use mail::{Composer, MailRules, Mails};
pub use pins::Pins;
pub use tokens::Tokens;
pub use users::Users;

use crate::model::Method;
use crate::phone::PhoneError;
use crate::pin::PinError;
use crate::store::StoreError;

/// Why an operator action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("user '{0}' does not exist; see 'mfad user list'")]
    UserNotFound(String),
    #[error("user '{0}' already exists; use 'mfad user update' to change it")]
    UserExists(String),
    #[error("'{0}' is not a valid username: it must be non-empty, without spaces")]
    InvalidUsername(String),
    #[error("{0}")]
    InvalidPinMode(String),
    #[error("{0}")]
    InvalidMethod(String),
    #[error("method {0} needs a phone number; add --phone NUMBER")]
    PhoneRequired(Method),
    #[error("{0}")]
    Phone(#[from] PhoneError),
    #[error("{0}")]
    Pin(#[from] PinError),
    #[error("--days must be positive")]
    InvalidBlockDays,
    #[error("--seconds must be between 1 and {max}", max = access::MAX_BYPASS_SECONDS)]
    InvalidBypassSeconds,
    #[error("token '{0}' does not exist; see 'mfad token list'")]
    TokenNotFound(String),
    #[error("token '{0}' already exists; choose another --serial")]
    TokenExists(String),
    /// A token of an import exists already (`what` names it); nothing was imported.
    #[error("{0} already exists")]
    ImportDuplicate(String),
    #[error("--digits must be 6 or 8 (what authenticator apps support)")]
    InvalidDigits,
    #[error("--period must be 30 or 60 seconds")]
    InvalidPeriod,
    #[error("--secret: {0}")]
    InvalidSecret(String),
    #[error("those codes were already used; enter two new ones")]
    ResyncCodesUsed,
    #[error("no HOTP token of '{0}' produces those two codes in sequence; check the codes (TOTP tokens follow the clock and need no resync)")]
    ResyncNoMatch(String),
    #[error("client '{0}' already exists; remove it first with 'mfad client remove {0}'")]
    ClientExists(String),
    #[error("client '{0}' does not exist; see 'mfad client list'")]
    ClientNotFound(String),
    #[error(
        "--address '{address}' is not an IP address or CIDR network such as 10.0.0.0/24: {reason}"
    )]
    InvalidAddress { address: String, reason: String },
    #[error("the shared secret is empty; give a random secret of at least 16 characters")]
    EmptySecret,
    #[error(
        "--targets applies only with --first-factor radius; drop it or add --first-factor radius"
    )]
    TargetsWithoutRadius,
    #[error("target '{0}' is not configured; add a [[radius.targets]] entry with name = \"{0}\" or check the spelling")]
    UnknownTarget(String),
    #[error("e-mail is not configured; set smtp.host and smtp.from in the [smtp] section")]
    MailNotConfigured,
    /// The mail could not be rendered (a template error).
    #[error(transparent)]
    Compose(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// A stable word for what went wrong, the same whatever the message says: front-ends
    /// map it to their replies, scripts and the console may match on it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(err) => match err {
                StoreError::NotFound(_) => "store.not_found",
                StoreError::Duplicate(_) => "store.duplicate",
                StoreError::Unavailable(_) => "store.unavailable",
                StoreError::Corrupt(_) => "store.corrupt",
            },
            Self::UserNotFound(_) => "user.not_found",
            Self::UserExists(_) => "user.exists",
            Self::InvalidUsername(_) => "user.invalid_name",
            Self::InvalidPinMode(_) => "user.invalid_pin_mode",
            Self::InvalidMethod(_) => "user.invalid_method",
            Self::PhoneRequired(_) => "user.phone_required",
            Self::Phone(_) => "phone.invalid",
            Self::Pin(err) => match err {
                PinError::NotDigits => "pin.not_digits",
                PinError::TooShort(_) => "pin.too_short",
                PinError::TooLong(_) => "pin.too_long",
                PinError::Pattern => "pin.pattern",
                PinError::InPhone => "pin.in_phone",
                PinError::Reused => "pin.reused",
                PinError::Hash => "pin.hash_failed",
            },
            Self::InvalidBlockDays => "block.invalid_days",
            Self::InvalidBypassSeconds => "bypass.invalid_seconds",
            Self::TokenNotFound(_) => "token.not_found",
            Self::TokenExists(_) => "token.exists",
            Self::ImportDuplicate(_) => "token.import_duplicate",
            Self::InvalidDigits => "token.invalid_digits",
            Self::InvalidPeriod => "token.invalid_period",
            Self::InvalidSecret(_) => "token.invalid_secret",
            Self::ResyncCodesUsed => "token.resync_codes_used",
            Self::ResyncNoMatch(_) => "token.resync_no_match",
            Self::ClientExists(_) => "client.exists",
            Self::ClientNotFound(_) => "client.not_found",
            Self::InvalidAddress { .. } => "client.invalid_address",
            Self::EmptySecret => "client.empty_secret",
            Self::TargetsWithoutRadius => "client.targets_without_radius",
            Self::UnknownTarget(_) => "client.unknown_target",
            Self::MailNotConfigured => "email.not_configured",
            Self::Compose(_) => "email.compose_failed",
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
