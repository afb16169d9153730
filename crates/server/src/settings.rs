//! Stored settings: which config keys the store may set, how their values are read,
//! and the effective configuration (the file's, with the stored settings over it).
//!
//! Only keys that every node rereads while running can be stored (see [`LIVE`]); keys
//! read once at start (listen addresses, the store, the key file) stay in each node's
//! config file. Templates are stored under `template.<file name>`.

use crate::config::{Config, Layers};
use anyhow::{bail, Context};
use mfad_core::settings::Setting;
use std::collections::BTreeMap;

/// Where stored templates live among the settings.
pub const TEMPLATE_PREFIX: &str = "template.";

/// The keys a stored setting may set: a whole section (`policy.`) or one key.
pub const LIVE: &[&str] = &[
    "policy.",
    "email.send_to_users",
    "email.send_updates",
    "email.language",
    "portal.url",
    "sms.message",
    "sms.timeout_seconds",
    "sms.twilio.",
    "sms.http.",
    "voice.ring_seconds",
    "voice.twilio.",
    "smtp.user",
    "smtp.password",
    "smtp.from",
];

/// Credentials: set with `--secret`, sealed in the store, never shown.
pub const SECRETS: &[&str] = &[
    "sms.twilio.auth_token",
    "sms.http.secret",
    "voice.twilio.auth_token",
    "smtp.password",
];

/// The config file's sections, to tell a start-only key from an unknown one.
const SECTIONS: &[&str] = &[
    "server",
    "store",
    "radius",
    "policy",
    "audit",
    "directory",
    "smtp",
    "email",
    "portal",
    "sms",
    "voice",
    "http",
];

pub fn is_secret(key: &str) -> bool {
    SECRETS.contains(&key)
}

/// Keys inside a [`LIVE`] section that are still read only at start: the two-way SMS
/// mode decides whether the inbound webhook listener is started.
const START_ONLY: &[&str] = &["policy.sms.mode"];

fn is_live(key: &str) -> bool {
    !START_ONLY.contains(&key)
        && LIVE.iter().any(|allowed| match allowed.strip_suffix('.') {
            Some(section) => key
                .strip_prefix(section)
                .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.')),
            None => key == *allowed,
        })
}

/// Refuses a key the store may not set, saying why in one line.
pub fn check_key(key: &str) -> anyhow::Result<()> {
    if key.starts_with(TEMPLATE_PREFIX) {
        bail!("'{key}' is a template; use 'mfad template set|unset'");
    }
    if is_live(key) {
        return Ok(());
    }
    let section = key.split('.').next().unwrap_or_default();
    if SECTIONS.contains(&section) {
        bail!(
            "'{key}' is read only when mfad starts; set it in the config file of each node \
             (stored settings: {})",
            LIVE.iter()
                .map(|k| if k.ends_with('.') {
                    format!("{k}*")
                } else {
                    (*k).to_owned()
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    bail!("unknown setting '{key}'; see docs/configuration.md")
}

/// A value as typed on the command line: TOML (`5`, `true`, `"text"`, `["a", "b"]`), or
/// when it is not TOML, the text itself as a string (`https://mfa.example.org`).
pub fn parse_value(text: &str) -> toml::Value {
    let parsed = toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"));
    parsed.unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// The stored settings as the config overlay; templates are left out.
fn overlay(settings: &[Setting]) -> anyhow::Result<Vec<(String, toml::Value)>> {
    settings
        .iter()
        .filter(|s| !s.key.starts_with(TEMPLATE_PREFIX))
        .map(|s| {
            let value = if s.secret {
                toml::Value::String(s.value.clone())
            } else {
                toml::from_str::<toml::Table>(&format!("v = {}", s.value))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .with_context(|| format!("stored setting '{}' is not a TOML value", s.key))?
            };
            Ok((s.key.clone(), value))
        })
        .collect()
}

/// The configuration in force: the file's with the stored settings over it, checked.
pub fn effective(layers: &Layers, settings: &[Setting]) -> anyhow::Result<Config> {
    layers.with(&overlay(settings)?)
}

/// The stored templates, by file name.
pub fn templates(settings: &[Setting]) -> BTreeMap<String, String> {
    settings
        .iter()
        .filter_map(|s| {
            s.key
                .strip_prefix(TEMPLATE_PREFIX)
                .map(|name| (name.to_owned(), s.value.clone()))
        })
        .collect()
}

/// The effective value of `key` as TOML text, if the config has one.
pub fn lookup(config: &Config, key: &str) -> Option<String> {
    let mut value = toml::Value::try_from(config).ok()?;
    for part in key.split('.') {
        value = value.as_table_mut()?.remove(part)?;
    }
    Some(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_sections_and_keys_are_allowed_and_others_refused() {
        for key in [
            "policy.max_failures",
            "policy.sms.code_digits",
            "sms.twilio.auth_token",
            "portal.url",
            "email.send_to_users",
        ] {
            check_key(key).unwrap();
        }
        for key in [
            "radius.listen",
            "store.url",
            "store.key_file",
            "policy",
            "policy.sms.mode",
            "sms.gateway",
            "sms.listen",
            "http.public_url",
        ] {
            let err = check_key(key).unwrap_err().to_string();
            assert!(err.contains("config file"), "{key}: {err}");
        }
        let err = check_key("nosuch.key").unwrap_err().to_string();
        assert!(err.contains("unknown setting"), "{err}");
        let err = check_key("template.welcome-app.en.txt")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mfad template"), "{err}");
    }

    #[test]
    fn values_are_toml_or_else_plain_text() {
        assert_eq!(parse_value("5"), toml::Value::Integer(5));
        assert_eq!(parse_value("true"), toml::Value::Boolean(true));
        assert_eq!(parse_value("\"x y\""), toml::Value::String("x y".into()));
        assert_eq!(
            parse_value("https://mfa.example.org"),
            toml::Value::String("https://mfa.example.org".into())
        );
        assert_eq!(parse_value("[\"a\"]").to_string(), "[\"a\"]");
    }
}
