//! Queued e-mails and the retry rule: what is sent, when it is tried again, when it fails for good.
//!
//! Mails are rendered when they are queued (so an initial PIN is in the body once and
//! nowhere else) and delivered later by a worker, so a slow or dead SMTP server never
//! holds up an authentication or an operator command.

use crate::model::UserId;
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

pub type EmailId = i64;

/// What a mail is about; `welcome` mails are sent once per user unless asked again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailKind {
    /// Enrollment: how to set up the user's method, with an initial PIN if one was made.
    Welcome,
    /// The user's phone or method changed.
    Update,
    /// To the operators: a user reported a sign-in as fraud.
    FraudAlert,
    /// To the user: a directory sync found a new phone number, held for approval.
    PhoneChange,
}

impl EmailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::Update => "update",
            Self::FraudAlert => "fraud_alert",
            Self::PhoneChange => "phone_change",
        }
    }
}

impl fmt::Display for EmailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EmailKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "welcome" => Ok(Self::Welcome),
            "update" => Ok(Self::Update),
            "fraud_alert" => Ok(Self::FraudAlert),
            "phone_change" => Ok(Self::PhoneChange),
            other => Err(format!("unknown e-mail kind '{other}'")),
        }
    }
}

/// Where a queued mail stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailStatus {
    /// Waiting for its first or next attempt.
    Queued,
    Sent,
    /// Gave up after the last attempt; `mfad email send` queues it anew.
    Failed,
}

impl EmailStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for EmailStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EmailStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "queued" => Ok(Self::Queued),
            "sent" => Ok(Self::Sent),
            "failed" => Ok(Self::Failed),
            other => Err(format!("unknown e-mail status '{other}'")),
        }
    }
}

/// A rendered mail to queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEmail {
    pub user_id: Option<UserId>,
    pub recipient: String,
    pub kind: EmailKind,
    pub subject: String,
    /// May hold an initial PIN: stores keep it encrypted and drop it once sent.
    pub body: Zeroizing<String>,
    /// When set, a second mail with the same key is not queued (a welcome mail is sent
    /// once per user, whichever node or command asks first).
    pub once_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Email {
    pub id: EmailId,
    pub user_id: Option<UserId>,
    pub recipient: String,
    pub kind: EmailKind,
    pub subject: String,
    /// Empty once the mail was sent.
    #[serde(skip)]
    pub body: Zeroizing<String>,
    pub status: EmailStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// When a queued mail is tried next (or, while one node sends it, when that node's
    /// claim lapses).
    pub next_attempt_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// How an attempt ended, as [`crate::store::Store::finish_email`] records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Sent {
        at: i64,
    },
    /// Failed; try again at `at`.
    Retry {
        at: i64,
        error: String,
    },
    /// Failed for the last time.
    Failed {
        error: String,
    },
}

/// When failed deliveries are tried again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Wait after the first failure; doubled after each further one.
    pub initial_seconds: i64,
    /// The longest wait between two attempts.
    pub max_seconds: i64,
    /// Attempts before a mail is marked failed.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_seconds: 60,
            max_seconds: 3600,
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// What to record after attempt number `attempts` (1 for the first) failed at `now`.
    pub fn after_failure(&self, attempts: u32, now: i64, error: String) -> Attempt {
        if attempts >= self.max_attempts {
            return Attempt::Failed { error };
        }
        // Exponential backoff (RFC 5321 §4.5.4.1 asks senders to space retries out).
        let doublings = attempts.saturating_sub(1).min(30);
        let wait = self
            .initial_seconds
            .max(1)
            .saturating_mul(1_i64 << doublings)
            .min(self.max_seconds.max(1));
        Attempt::Retry {
            at: now.saturating_add(wait),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_the_last_attempt_fails() {
        let policy = RetryPolicy {
            initial_seconds: 10,
            max_seconds: 60,
            max_attempts: 5,
        };
        let at = |n| match policy.after_failure(n, 1000, "down".into()) {
            Attempt::Retry { at, .. } => Some(at - 1000),
            _ => None,
        };
        assert_eq!(
            [at(1), at(2), at(3), at(4)],
            [Some(10), Some(20), Some(40), Some(60)]
        );
        assert_eq!(
            policy.after_failure(5, 1000, "down".into()),
            Attempt::Failed {
                error: "down".into()
            }
        );
    }
}
