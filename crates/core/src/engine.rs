//! The verification engine: one request in, one [`Outcome`] out, every rule applied here.
//!
//! By concept: the request ([`request`]), the pipeline that decides it (`pipeline`), the
//! one-time code check (`code`), challenges and PIN change (`challenge`), limits and
//! lockout (`lockout`), the SMS and call methods (`sms`, `call`), pending out-of-band
//! transactions (`pending`), the prompts (`prompt`) and the count of outcomes
//! (`counters`). Operator actions are services (`crate::service`).

use crate::audit::AuditRecord;
use crate::clock::{Clock, Random};
use crate::delivery::{FraudAlerts, SmsSender, VoiceCaller};
use crate::directory::Directory;
use crate::model::{FirstFactor, Prompt as PromptMode, User};
use crate::policy::{LivePolicy, Policy};
use crate::store::Store;
use std::sync::Arc;

mod call;
mod challenge;
mod code;
mod counters;
mod lockout;
mod pending;
mod pipeline;
mod prompt;
mod request;
mod sms;

pub use prompt::{Prompt, PromptKind};
pub use request::{Channel, Credentials, Request, TxnId};

/// The client a request came through, as the engine needs it.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub name: String,
    pub first_factor: FirstFactor,
    pub prompt: PromptMode,
    pub require_user_match: bool,
    /// Separates the first-factor password from the code in one field; empty: none.
    pub code_separator: String,
}

/// Why a request was rejected: a stable word for the audit log. Never sent to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    UnknownUser,
    Disabled,
    Blocked,
    Locked,
    NoToken,
    WrongCode,
    Replayed,
    WrongPin,
    NoCode,
    ChallengeExpired,
    PinRejected,
    PinMismatch,
    StoreUnavailable,
    Unsupported,
    WrongPassword,
    DirectoryUnavailable,
    NoPhone,
    NoGateway,
    DeliveryFailed,
    ResendLimit,
    FraudReported,
    NoPinEntered,
    CallHungUp,
    CallNoAnswer,
    InvalidNumber,
    CallTimeout,
    SmsNoReply,
    SmsReplyPending,
    RateLimited,
    UpstreamUnavailable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::Disabled => "disabled",
            Self::Blocked => "blocked",
            Self::Locked => "locked",
            Self::NoToken => "no_token",
            Self::WrongCode => "wrong_code",
            Self::Replayed => "replayed_code",
            Self::WrongPin => "wrong_pin",
            Self::NoCode => "no_code",
            Self::ChallengeExpired => "challenge_expired",
            Self::PinRejected => "pin_rejected",
            Self::PinMismatch => "pin_mismatch",
            Self::StoreUnavailable => "store_unavailable",
            Self::Unsupported => "unsupported",
            Self::WrongPassword => "wrong_password",
            Self::DirectoryUnavailable => "directory_unavailable",
            Self::NoPhone => "no_phone",
            Self::NoGateway => "no_gateway",
            Self::DeliveryFailed => "delivery_failed",
            Self::ResendLimit => "resend_limit",
            Self::FraudReported => "fraud_reported",
            Self::NoPinEntered => "answered_without_pin",
            Self::CallHungUp => "call_hung_up",
            Self::CallNoAnswer => "call_no_answer",
            Self::InvalidNumber => "invalid_number",
            Self::CallTimeout => "call_timeout",
            Self::SmsNoReply => "sms_no_reply",
            Self::SmsReplyPending => "sms_reply_pending",
            Self::RateLimited => "rate_limited",
            Self::UpstreamUnavailable => "upstream_unavailable",
        }
    }
}

/// The engine's answer; front-ends map it to protocol replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accept,
    Reject(Reason),
    /// Ask the user for more: `txn` goes back in the follow-up request.
    Challenge {
        txn: TxnId,
        prompt: Prompt,
    },
    /// An out-of-band answer (a call, a two-way SMS reply) is awaited: the front-end
    /// holds the request and asks [`Engine::wait`] for the final outcome, or polls it.
    Pending {
        txn: TxnId,
        prompt: Prompt,
    },
}

/// Who answers: recorded in every audit record.
#[derive(Clone, Debug, Default)]
pub struct ServerInfo {
    pub name: String,
    pub ip: String,
    /// The language of prompts for users without one of their own (`[server] language`).
    pub language: String,
}

/// The verification engine. Cheap to share: hold it in an `Arc`.
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Random>,
    policy: LivePolicy,
    server: ServerInfo,
    directory: Option<Arc<dyn Directory>>,
    sms: Option<Arc<dyn SmsSender>>,
    voice: Option<Arc<dyn VoiceCaller>>,
    alerts: Option<Arc<dyn FraudAlerts>>,
    /// Wake-ups of the pending transactions this node waits for.
    waiting: pending::Waiting,
    /// Permits for argon2id work, one per core: see [`Engine::argon2`].
    argon2: Arc<tokio::sync::Semaphore>,
    counters: counters::AuthCounters,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Random>,
        policy: Policy,
        server: ServerInfo,
    ) -> Self {
        Self {
            store,
            clock,
            rng,
            policy: LivePolicy::new(policy),
            server,
            directory: None,
            sms: None,
            voice: None,
            alerts: None,
            waiting: pending::Waiting::default(),
            argon2: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            counters: counters::AuthCounters::default(),
        }
    }

    /// Checks first-factor passwords of `first_factor = "directory"` clients with `directory`.
    #[must_use]
    pub fn with_directory(mut self, directory: Arc<dyn Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Tells the operators about fraud reports through `alerts`.
    pub fn with_alerts(mut self, alerts: Arc<dyn FraudAlerts>) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// Places verification calls through `caller`; without one, call users are rejected.
    pub fn with_voice(mut self, caller: Arc<dyn VoiceCaller>) -> Self {
        self.voice = Some(caller);
        self
    }

    /// Sends SMS codes through `sender`; without one, SMS users are rejected.
    pub fn with_sms(mut self, sender: Arc<dyn SmsSender>) -> Self {
        self.sms = Some(sender);
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.get()
    }

    /// Puts a new policy in force for requests that start from now on (stored settings
    /// changed while the server runs); true when it differs from the one in force.
    pub fn set_policy(&self, policy: Policy) -> bool {
        self.policy.replace(policy)
    }
}

fn describe(audit: &mut AuditRecord, user: &User) {
    audit.username = user.username.clone();
    audit.given_name = user.given_name.clone();
    audit.surname = user.surname.clone();
    audit.email = user.email.clone();
    audit.phone = user.phone.clone();
    audit.mode = user.pin_mode.to_string();
}

/// The phone as the audit log shows it for SMS and calls.
fn describe_phone(audit: &mut AuditRecord, user: &User) {
    audit.device = user.phone.clone();
}

/// Lower-case hex, without the formatting machinery: it runs for every attempt's audit ID.
fn hex(bytes: &[u8]) -> String {
    let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(b & 0x0f));
    }
    out
}
