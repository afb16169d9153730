//! What an attempt carries, from any channel: who, which credentials, which transaction it
//! continues, and through which channel and client it came.

use super::ClientInfo;
use crate::first_factor::{self, Split};
use crate::model::Prompt as PromptMode;
use crate::upstream::UpstreamHandle;
use std::fmt;
use std::net::IpAddr;
use zeroize::Zeroizing;

/// One authentication attempt, from any channel.
#[derive(Clone, Debug)]
pub struct Request {
    pub username: String,
    pub credentials: Credentials,
    /// The transaction this request continues (the answer to a challenge, or a poll of a
    /// pending login): an id the engine issued.
    pub txn: Option<TxnId>,
    pub channel: Channel,
    pub client: ClientInfo,
    pub source_ip: IpAddr,
    pub calling_station: Option<String>,
    /// How to reach the target servers of a `first_factor = radius` client, set by the
    /// front-end that received the request.
    pub upstream: Option<UpstreamHandle>,
}

/// What the user typed.
#[derive(Clone, Debug, Default)]
pub enum Credentials {
    /// Nothing (RADIUS CHAP or MS-CHAP, whose password mfad cannot read, or a poll).
    #[default]
    None,
    /// One field as typed (RADIUS User-Password, an LDAP bind password): `[PIN]code`, a
    /// password followed by the code, a PIN, or the answer to a challenge. The client's
    /// prompt mode and code separator say where a first-factor password ends.
    Inline(Zeroizing<String>),
    /// A first-factor password and a `[PIN]code` (or an answer) typed in fields of their
    /// own. An empty code asks for it with a challenge.
    Split {
        password: Zeroizing<String>,
        code: Zeroizing<String>,
    },
}

impl Credentials {
    /// Inline credentials from what was typed.
    pub fn inline(typed: impl Into<String>) -> Self {
        Self::Inline(Zeroizing::new(typed.into()))
    }

    /// What the second factor (or a challenge) is answered with: the inline field, or the
    /// code of split credentials; empty without credentials.
    pub(super) fn answer(&self) -> &str {
        match self {
            Self::None => "",
            Self::Inline(typed) => typed,
            Self::Split { code, .. } => code,
        }
    }

    /// The first-factor password alone, when it was typed in a field of its own.
    pub(super) fn password(&self) -> Option<&str> {
        match self {
            Self::Split { password, .. } => Some(password),
            _ => None,
        }
    }

    /// Where the first-factor password ends and the code starts, for a client with a first
    /// factor; `None` without credentials.
    pub(super) fn split(
        &self,
        mode: PromptMode,
        separator: &str,
        code_len: usize,
    ) -> Option<Split<'_>> {
        match self {
            Self::None => None,
            Self::Inline(typed) => Some(first_factor::split(mode, separator, code_len, typed)),
            Self::Split { password, code } => Some(Split {
                password,
                code: (!code.is_empty()).then_some(code.as_str()),
            }),
        }
    }
}

/// The id of a transaction the engine issued: a challenge (on RADIUS, its State octets)
/// or a pending out-of-band login.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TxnId(Vec<u8>);

impl TxnId {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The id as text, when it is text (out-of-band transactions' ids are, for URLs).
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl From<&str> for TxnId {
    fn from(text: &str) -> Self {
        Self(text.as_bytes().to_vec())
    }
}

impl From<String> for TxnId {
    fn from(text: String) -> Self {
        Self(text.into_bytes())
    }
}

/// Ids are bearer secrets for as long as they are live: the debug form shows a prefix.
impl fmt::Debug for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxnId(")?;
        for b in self.0.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// The way in a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Channel {
    /// RADIUS: a challenge is an Access-Challenge with a Reply-Message.
    Radius,
    /// The validate API (privacyIDEA's `/validate/*`).
    Validate,
    /// The LDAP proxy: a bind has no way to ask a question.
    Ldap,
    /// The user portal's sign-in page.
    Portal,
}

impl Channel {
    /// The word in the audit log and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Radius => "radius",
            Self::Validate => "validate",
            Self::Ldap => "ldap",
            Self::Portal => "portal",
        }
    }

    /// Whether the channel can show the user a prompt.
    pub fn can_prompt(self) -> bool {
        !matches!(self, Self::Ldap)
    }

    /// Whether the channel can take an answer to a challenge (a second request that
    /// carries the transaction id).
    pub fn can_answer(self) -> bool {
        !matches!(self, Self::Ldap)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_credentials_keep_their_fields() {
        let creds = Credentials::Split {
            password: Zeroizing::new("secret".into()),
            code: Zeroizing::new("123456".into()),
        };
        assert_eq!(creds.answer(), "123456");
        assert_eq!(creds.password(), Some("secret"));
        let split = creds.split(PromptMode::Auto, "", 6).unwrap();
        assert_eq!((split.password, split.code), ("secret", Some("123456")));
        let no_code = Credentials::Split {
            password: Zeroizing::new("secret".into()),
            code: Zeroizing::new(String::new()),
        };
        assert_eq!(no_code.split(PromptMode::Inline, "", 6).unwrap().code, None);
    }

    #[test]
    fn inline_credentials_split_by_the_client_mode() {
        let creds = Credentials::inline("secret123456");
        assert_eq!(creds.answer(), "secret123456");
        assert_eq!(creds.password(), None);
        let split = creds.split(PromptMode::Inline, "", 6).unwrap();
        assert_eq!((split.password, split.code), ("secret", Some("123456")));
        assert!(Credentials::None.split(PromptMode::Inline, "", 6).is_none());
    }

    #[test]
    fn only_ldap_can_neither_prompt_nor_take_an_answer() {
        for channel in [Channel::Radius, Channel::Validate, Channel::Portal] {
            assert!(channel.can_prompt() && channel.can_answer(), "{channel}");
        }
        assert!(!Channel::Ldap.can_prompt() && !Channel::Ldap.can_answer());
        assert_eq!(Channel::Radius.as_str(), "radius");
    }

    #[test]
    fn a_txn_id_round_trips_bytes_and_text() {
        let state = TxnId::from_bytes(vec![0xff; 16]);
        assert_eq!(state.as_bytes(), &[0xff; 16]);
        assert_eq!(state.as_str(), None);
        let pending = TxnId::from("00ab");
        assert_eq!(pending.as_str(), Some("00ab"));
        assert_eq!(format!("{pending:?}"), "TxnId(30306162..)");
    }
}
