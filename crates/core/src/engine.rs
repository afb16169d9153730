//! The verification engine: one request in, one [`Outcome`] out, every rule applied here.

use crate::model::{FirstFactor, Prompt};
use std::net::IpAddr;
use zeroize::Zeroizing;

/// The client a request came through, as the engine needs it.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub name: String,
    pub first_factor: FirstFactor,
    pub prompt: Prompt,
    pub require_user_match: bool,
}

/// One authentication attempt, from any channel.
#[derive(Clone, Debug)]
pub struct Request {
    pub username: String,
    /// What the user typed (RADIUS User-Password): `[PIN]code`, a PIN, or a challenge answer.
    pub password: Option<Zeroizing<String>>,
    /// The state of the challenge this request answers (RADIUS State).
    pub state: Option<Vec<u8>>,
    pub client: ClientInfo,
    pub source_ip: IpAddr,
    /// `radius`, `api`, ...
    pub channel: &'static str,
    pub calling_station: Option<String>,
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
        }
    }
}

/// The engine's answer; front-ends map it to protocol replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accept,
    Reject(Reason),
    /// Ask the user for more: `state` goes back in the follow-up request.
    Challenge { state: Vec<u8>, prompt: String },
}
