//! Stored settings: configuration values kept in the store, shared by every node.
//!
//! A setting is a dotted config key (`policy.max_failures`) with its value as TOML text
//! (`5`, `"https://mfa.example.org"`), or a template (`template.welcome-sms.en.txt`).
//! Secret settings (gateway credentials) are sealed at rest by the store and never
//! shown; their value is the credential itself.

use std::fmt;

/// One stored setting. `value` is the plaintext: the store seals it when `secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub secret: bool,
    /// When it was last set (Unix seconds).
    pub updated_at: i64,
}

impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value: &dyn fmt::Debug = if self.secret {
            &"<hidden>"
        } else {
            &self.value
        };
        f.debug_struct("Setting")
            .field("key", &self.key)
            .field("value", value)
            .field("secret", &self.secret)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}
