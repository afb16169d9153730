//! Engine settings with the defaults DESIGN.md names, in one place.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which authentications a cached success may stand in for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    #[default]
    Off,
    User,
    UserClient,
    UserClientIp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// TOTP steps accepted either side of the current one (RFC 6238 §5.2 recommends one).
    pub totp_skew: u64,
    /// HOTP look-ahead window (RFC 4226 §7.4).
    pub hotp_window: u64,
    /// How far beyond the look-ahead window two consecutive codes resynchronise a token.
    pub hotp_resync_window: u64,
    /// Failures before the user is locked (NIST SP 800-63B §5.2.2 caps this at 100).
    pub max_failures: u32,
    /// How long a lockout lasts.
    pub lockout_seconds: i64,
    /// How long a challenge (RADIUS State) may be answered.
    pub challenge_seconds: i64,
    /// How long a login waits for an out-of-band answer (a call, a two-way SMS reply)
    /// before it is rejected; below the 60 s RADIUS clients usually wait.
    pub out_of_band_timeout_seconds: u64,
    pub cache: CacheMode,
    pub cache_seconds: i64,
    pub pin: PinRules,
    /// How long `mfad user block` blocks by default.
    pub block_days: i64,
    /// Country code given to phone numbers written without one (digits, e.g. "1", "44").
    pub default_country_code: String,
    pub sms: SmsPolicy,
    pub fraud: FraudPolicy,
    pub limits: Limits,
}

/// Caps on SMS and calls, so a stolen password cannot run up a phone bill or flood a
/// phone (toll fraud). Each holds per window across all nodes; 0 means no cap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub window_seconds: i64,
    pub sms_per_user: u32,
    pub calls_per_user: u32,
    pub sms_per_gateway: u32,
    pub calls_per_gateway: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            window_seconds: 3600,
            sms_per_user: 10,
            calls_per_user: 10,
            sms_per_gateway: 1000,
            calls_per_gateway: 1000,
        }
    }
}

/// Fraud reports: a user who gets a call they did not start presses the fraud code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FraudPolicy {
    /// Whether the fraud code counts as a report (else it is just a wrong answer).
    pub allow_reports: bool,
    /// Keys pressed before # that report fraud ("0" means "0#").
    pub code: String,
    /// Block the user on a report, for `block_days` or until `mfad user unblock`.
    pub block_user: bool,
}

impl FraudPolicy {
    /// The keys (pressed before #) that report fraud, when reports are on.
    pub fn report_code(&self) -> Option<&str> {
        Some(self.code.as_str()).filter(|code| self.allow_reports && !code.is_empty())
    }
}

impl Default for FraudPolicy {
    fn default() -> Self {
        Self {
            allow_reports: true,
            code: "0".into(),
            block_user: true,
        }
    }
}

/// How SMS users answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmsMode {
    /// The code is typed into the client, answering an Access-Challenge.
    #[default]
    OneWay,
    /// The user replies to the SMS with the code (PIN users: PIN followed by the code);
    /// the login waits for the reply like it waits for a call.
    TwoWay,
}

/// One-time codes sent by SMS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsPolicy {
    pub mode: SmsMode,
    /// Digits of a code.
    pub code_digits: usize,
    /// How long a code may be entered after it was sent.
    pub code_seconds: i64,
    /// Wrong codes within one login before it is rejected (each also counts towards the
    /// lockout, like any failure).
    pub max_attempts: u32,
    /// Codes one login may send (the first and the resends).
    pub max_sends: u32,
    /// What the user types instead of a code to get a new one.
    pub resend_keyword: String,
}

impl Default for SmsPolicy {
    fn default() -> Self {
        Self {
            mode: SmsMode::OneWay,
            code_digits: 6,
            code_seconds: 300,
            max_attempts: 3,
            max_sends: 3,
            resend_keyword: "resend".into(),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            totp_skew: 1,
            hotp_window: 10,
            hotp_resync_window: 100,
            max_failures: 10,
            lockout_seconds: 15 * 60,
            challenge_seconds: 120,
            out_of_band_timeout_seconds: 45,
            cache: CacheMode::Off,
            cache_seconds: 0,
            pin: PinRules::default(),
            block_days: 90,
            default_country_code: "1".into(),
            sms: SmsPolicy::default(),
            fraud: FraudPolicy::default(),
            limits: Limits::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PinRules {
    pub min_length: usize,
    pub max_length: usize,
    /// Reject three or more repeated digits ("111") and runs ("123", "987").
    pub forbid_patterns: bool,
    /// Reject a PIN that appears in the user's phone number.
    pub forbid_phone: bool,
    /// How many previous PINs may not be reused.
    pub history: usize,
}

impl Default for PinRules {
    fn default() -> Self {
        Self {
            min_length: 4,
            max_length: 16,
            forbid_patterns: true,
            forbid_phone: true,
            history: 5,
        }
    }
}

/// The policy in force, replaceable while the engine runs (stored settings changed on
/// any node). A request takes the policy in force when it reads it; one replaced while a
/// request runs is freed when the last request holding it ends.
pub struct LivePolicy {
    current: std::sync::RwLock<Arc<Policy>>,
}

impl LivePolicy {
    pub fn new(policy: Policy) -> Self {
        Self {
            current: std::sync::RwLock::new(Arc::new(policy)),
        }
    }

    /// Puts `policy` in force for every request that starts from now on; true when it
    /// differs from the one in force (an equal policy is not replaced).
    pub fn replace(&self, policy: Policy) -> bool {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if **current == policy {
            return false;
        }
        *current = Arc::new(policy);
        true
    }

    /// The policy in force.
    pub fn get(&self) -> Arc<Policy> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl std::fmt::Debug for LivePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.get(), f)
    }
}
