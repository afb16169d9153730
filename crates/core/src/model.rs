//! The records the engine reasons about: users, tokens, clients and challenges.

use crate::otp::{Algorithm, OtpKind};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

pub type UserId = i64;
pub type TokenId = i64;

/// How the user proves the second factor on top of the one-time code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinMode {
    /// The one-time code alone ("standard" in the seed's product).
    #[default]
    Standard,
    /// PIN followed by the one-time code.
    Pin,
}

impl fmt::Display for PinMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Standard => "standard",
            Self::Pin => "pin",
        })
    }
}

impl FromStr for PinMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "standard" | "none" | "otp" => Ok(Self::Standard),
            "pin" | "pin+otp" => Ok(Self::Pin),
            other => Err(format!(
                "unknown PIN mode '{other}'; use 'standard' or 'pin'"
            )),
        }
    }
}

/// How the user proves the second factor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// An authenticator app (TOTP).
    #[default]
    App,
    /// A hardware OATH token.
    Token,
    /// A one-time code sent by SMS.
    Sms,
    /// A phone call answered with # (or PIN #).
    Call,
    /// A push notification to the mobile app.
    Push,
}

impl Method {
    pub const ALL: [Method; 5] = [Self::App, Self::Token, Self::Sms, Self::Call, Self::Push];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Token => "token",
            Self::Sms => "sms",
            Self::Call => "call",
            Self::Push => "push",
        }
    }

    /// Methods verified against the user's OATH tokens.
    pub fn uses_tokens(self) -> bool {
        matches!(self, Self::App | Self::Token)
    }

    /// Methods that send the code or the call to the user's `phone` (and `backup_phone`):
    /// for these users the phone number is the second factor itself.
    pub fn uses_phone(self) -> bool {
        matches!(self, Self::Sms | Self::Call)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "app" | "totp" | "oath" => Ok(Self::App),
            "token" | "hardware" | "hotp" => Ok(Self::Token),
            "sms" | "text" => Ok(Self::Sms),
            "call" | "phone" | "voice" => Ok(Self::Call),
            "push" => Ok(Self::Push),
            other => Err(format!(
                "unknown method '{other}'; use app, token, sms, call or push"
            )),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub given_name: String,
    pub surname: String,
    pub email: String,
    pub phone: String,
    pub pin_mode: PinMode,
    pub mobile: String,
    pub extension: String,
    /// Language of prompts and messages (e.g. `en`, `de-CH`); empty for the default.
    pub language: String,
    /// The directory's unique ID (objectGUID, entryUUID) for users that came from it.
    pub directory_id: Option<String>,
    /// The sync item (OU or group) the user was imported through.
    pub sync_item: Option<String>,
    pub method: Method,
    /// Called when the phone does not answer; E.164, empty for none.
    pub backup_phone: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub given_name: String,
    pub surname: String,
    pub email: String,
    pub phone: String,
    pub enabled: bool,
    /// Blocked until this Unix time (fraud report or operator); `i64::MAX` means until unblocked.
    pub blocked_until: Option<i64>,
    pub block_reason: Option<String>,
    /// Locked after too many failures until this Unix time.
    pub locked_until: Option<i64>,
    /// Consecutive failures since the last success or lock.
    pub failures: u32,
    pub pin_mode: PinMode,
    pub method: Method,
    /// Called when `phone` does not answer.
    pub backup_phone: String,
    #[serde(skip)]
    pub pin_hash: Option<String>,
    pub pin_change_required: bool,
    /// Hashes of recent PINs, newest first (the current one included).
    #[serde(skip)]
    pub pin_history: Vec<String>,
    /// A one-time bypass is valid until this Unix time.
    pub bypass_until: Option<i64>,
    pub created_at: i64,
    pub mobile: String,
    pub extension: String,
    pub language: String,
    /// The directory's unique ID; unique among users when set. Renames and moves in the
    /// directory keep it, so a sync finds the same user again.
    pub directory_id: Option<String>,
    /// The sync item the user currently belongs to; `None` for local users and for
    /// directory users that left every item.
    pub sync_item: Option<String>,
}

impl User {
    pub fn is_blocked(&self, now: i64) -> bool {
        self.blocked_until.is_some_and(|t| t > now)
    }
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }
    pub fn has_pin(&self) -> bool {
        self.pin_hash.is_some()
    }
}

/// An OATH seed. Plaintext only in memory; stores encrypt it at rest.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    pub serial: String,
    pub user_id: Option<UserId>,
    pub kind: OtpKind,
    pub algorithm: Algorithm,
    pub digits: u32,
    /// TOTP step in seconds (ignored for HOTP).
    pub period: u64,
    pub secret: Secret,
    /// HOTP: the next counter value expected. TOTP: 0.
    pub next: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Token {
    pub id: TokenId,
    pub serial: String,
    pub user_id: Option<UserId>,
    pub kind: OtpKind,
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u64,
    #[serde(skip)]
    pub secret: Secret,
    /// The lowest counter (HOTP) or time step (TOTP) that may still be accepted: every
    /// value below it has been used. Moved forward only by an atomic conditional update.
    pub next: u64,
    /// HOTP resynchronisation: a counter beyond the look-ahead window seen in the last
    /// attempt; the next code at `resync + 1` completes the resync.
    pub resync: Option<u64>,
    pub enabled: bool,
    pub created_at: i64,
}

/// How a RADIUS client's users prove their first factor before mfad asks for the second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FirstFactor {
    /// The client (VPN) already checked the password.
    #[default]
    None,
    /// mfad checks the password with an LDAP bind as the user (`[directory]` config).
    Directory,
    /// mfad forwards the request to target RADIUS servers (`[[radius.targets]]` config).
    Radius,
}

impl FromStr for FirstFactor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "directory" => Ok(Self::Directory),
            "radius" => Ok(Self::Radius),
            other => Err(format!(
                "unknown first factor '{other}'; use 'none', 'directory' or 'radius'"
            )),
        }
    }
}

impl fmt::Display for FirstFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Directory => "directory",
            Self::Radius => "radius",
        })
    }
}

/// Where the one-time code is expected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prompt {
    /// A password that holds a code is checked inline; anything else gets a challenge.
    #[default]
    Auto,
    /// The password is `[PIN]code`.
    Inline,
    /// Always answer with a challenge for the code.
    Challenge,
}

impl FromStr for Prompt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "inline" => Ok(Self::Inline),
            "challenge" => Ok(Self::Challenge),
            other => Err(format!(
                "unknown prompt mode '{other}'; use auto, inline or challenge"
            )),
        }
    }
}

impl fmt::Display for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Inline => "inline",
            Self::Challenge => "challenge",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewClient {
    pub name: String,
    pub address: ipnet::IpNet,
    pub secret: String,
    pub first_factor: FirstFactor,
    pub prompt: Prompt,
    pub require_message_authenticator: bool,
    pub require_user_match: bool,
    /// With a first factor and one field for both: what separates the password from
    /// the code (`password,123456`); empty means the code is the last digits.
    pub code_separator: String,
    /// With `first_factor = radius`: the names of the target servers to try, in order;
    /// empty means every configured target in the configured order.
    pub targets: Vec<String>,
}

/// A RADIUS client (NAS): a VPN, gateway or PAM host.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    pub id: i64,
    pub name: String,
    pub address: ipnet::IpNet,
    #[serde(skip)]
    pub secret: String,
    pub first_factor: FirstFactor,
    pub prompt: Prompt,
    pub require_message_authenticator: bool,
    pub require_user_match: bool,
    pub code_separator: String,
    pub targets: Vec<String>,
    pub created_at: i64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.name)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// What a pending challenge (RADIUS State) waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChallengeKind {
    /// `[PIN]code`.
    Otp,
    /// A new PIN (after "PIN change required", or a PIN user without a PIN).
    NewPin,
    /// The new PIN again; holds the argon2 hash of the first entry.
    ConfirmPin { pin_hash: String },
    /// The code sent by SMS. Only its keyed hash is kept ([`crate::code_mac`]), so
    /// reading the store does not reveal a live code.
    SmsCode {
        /// Random hex salt of `code_hash`, so equal codes do not hash alike.
        salt: String,
        /// Hex HMAC-SHA256 of the salt and the code, keyed from the key file.
        code_hash: String,
        /// Wrong answers so far; kept across a resend, so resending does not buy guesses.
        attempts: u32,
        /// Codes sent for this login so far (the first one included).
        sends: u32,
    },
    /// The answer to a challenge of an upstream RADIUS server (`first_factor = radius`):
    /// forwarded to that `target` with its `state`.
    Upstream { target: String, state: Vec<u8> },
    /// A verification call that is ringing (an out-of-band transaction): decided by the
    /// call's webhooks on whichever node receives them.
    Call {
        /// The PIN is asked for, followed by #.
        ask_pin: bool,
        /// The phone called (E.164), for the audit log.
        device: String,
        /// The backup phone to call when this one does not answer; empty: none (or
        /// called already).
        backup: String,
        /// Where a success is remembered for the authentication cache.
        cache_key: Option<String>,
    },
    /// A two-way SMS waiting for the user's reply (an out-of-band transaction). Only the
    /// keyed hash of the code is kept, as for [`ChallengeKind::SmsCode`].
    SmsReply {
        salt: String,
        code_hash: String,
        /// The reply starts with the PIN.
        ask_pin: bool,
        /// The number texted (E.164), which the reply must come from.
        device: String,
        cache_key: Option<String>,
    },
    /// Points the replies from one number to its pending two-way SMS (one at a time).
    SmsReplyTo { txn: String },
}

/// A single-use challenge bound to a user and a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub state: Vec<u8>,
    pub user_id: UserId,
    pub client: String,
    pub kind: ChallengeKind,
    pub expires_at: i64,
}
