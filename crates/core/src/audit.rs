//! One audit record per authentication attempt, with the fields the seed's reports had.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The answer an attempt got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    Accept,
    Reject,
    Challenge,
}

impl AuditResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::Challenge => "challenge",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accept" => Some(Self::Accept),
            "reject" => Some(Self::Reject),
            "challenge" => Some(Self::Challenge),
            _ => None,
        }
    }
}

impl fmt::Display for AuditResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unique ID (32 hex digits).
    pub id: String,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    pub username: String,
    pub given_name: String,
    pub surname: String,
    pub email: String,
    pub phone: String,
    /// The token serial that answered, if any.
    pub device: String,
    /// totp, hotp, bypass, cache, or empty.
    pub method: String,
    /// standard or pin.
    pub mode: String,
    pub result: Option<AuditResult>,
    /// Why: accepted reason or denial reason, a stable snake_case word.
    pub reason: String,
    pub server_name: String,
    pub server_ip: String,
    pub client_name: String,
    pub client_ip: String,
    /// radius, api, ...
    pub channel: String,
    /// The calling station (e.g. the VPN user's public address), when the client sends it.
    pub calling_station: String,
}

/// Filters for `mfad log`.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub username: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: Option<u32>,
}
