//! The `[directory]` section: servers, TLS, service account, what to read and how to sync.

use crate::Error;
use mfad_core::directory::{AttributeMap, Preset, RemovedUsers};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// `[directory]`. Defaults come from [`DirectoryConfig::default`]; the preset supplies
/// the user filter and attribute names unless they are set here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// Tried in order (primary first, then backups): `ldaps://host:636` or
    /// `ldap://host:389` (with StartTLS unless `starttls = false`).
    pub servers: Vec<String>,
    /// `active-directory` or `openldap`.
    pub preset: Preset,
    /// Upgrade `ldap://` connections with StartTLS (RFC 4511 §4.14). Turning it off
    /// sends passwords in clear text: only for a directory on the same host.
    pub starttls: bool,
    /// PEM file with the CA certificate(s) the servers' certificates chain to; the
    /// system's trust store when empty.
    pub ca_file: Option<PathBuf>,
    /// The service account used for searches.
    pub bind_dn: String,
    /// File holding the service account's password (trailing newline ignored).
    pub bind_password_file: Option<PathBuf>,
    /// Where users are searched (subtree).
    pub base_dn: String,
    /// LDAP filter (RFC 4515) selecting user entries; the preset's when empty.
    pub user_filter: String,
    /// Entries per page of a paged search (RFC 2696).
    pub page_size: u32,
    /// Most entries one import reads; 0 for no limit.
    pub size_limit: u32,
    /// Connecting, TLS and the service bind, per server.
    pub connect_timeout_ms: u64,
    /// One search or bind. A first-factor check (find the user, bind as them) answers
    /// within 2 × (connect_timeout_ms + timeout_ms), failover included, or rejects.
    pub timeout_ms: u64,
    /// Scheduled sync while `mfad serve` runs: `15m`, `1h`, `24h` (1 minute to 24 hours);
    /// empty for none.
    pub sync_interval: String,
    /// Users who leave every sync item: `disable` (kept, disabled) or `remove`.
    pub removed_users: RemovedUsers,
    /// A sync that would disable or remove more users than this applies none of those
    /// changes and waits for `mfad directory approve`.
    pub mass_change_threshold: u32,
    /// Attribute names that replace the preset's.
    pub attributes: AttributeMap,
    /// Give every user an import or sync adds in PIN mode a random initial PIN that
    /// follows the PIN rules, in their welcome mail, marked "change required". Users who
    /// would get no mail (e-mail to users off, no address) get none; the summary counts
    /// them.
    pub generate_pins: bool,
    /// OUs and groups to import, in order; first match wins. Empty: every user the filter
    /// finds under `base_dn`.
    pub sync_items: Vec<SyncItemConfig>,
}

/// `[[directory.sync_items]]`: an OU (container) or a group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncItemConfig {
    /// Shown in `mfad user show` and the summary; the DN when empty.
    pub name: String,
    /// Users at or below this container DN...
    pub container: String,
    /// ...or the members of this group DN (exactly one of the two).
    pub group: String,
    /// Default method for users added through this item (`app` when empty).
    pub method: String,
    /// PIN mode for users added through this item: `standard` (the code alone, when
    /// empty) or `pin` (PIN followed by the code).
    pub pin_mode: String,
    /// Language for users whose entry has none.
    pub language: String,
}

impl SyncItemConfig {
    /// The item's default method.
    pub fn method(&self) -> Result<mfad_core::model::Method, String> {
        if self.method.is_empty() {
            return Ok(mfad_core::model::Method::default());
        }
        self.method.parse()
    }

    /// The item's PIN mode.
    pub fn pin_mode(&self) -> Result<mfad_core::model::PinMode, String> {
        if self.pin_mode.is_empty() {
            return Ok(mfad_core::model::PinMode::default());
        }
        self.pin_mode.parse()
    }
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            preset: Preset::ActiveDirectory,
            starttls: true,
            ca_file: None,
            bind_dn: String::new(),
            bind_password_file: None,
            base_dn: String::new(),
            user_filter: String::new(),
            page_size: 500,
            size_limit: 0,
            connect_timeout_ms: 2000,
            timeout_ms: 3000,
            sync_interval: String::new(),
            removed_users: RemovedUsers::Disable,
            mass_change_threshold: 5,
            generate_pins: false,
            attributes: AttributeMap::default(),
            sync_items: Vec::new(),
        }
    }
}

impl DirectoryConfig {
    /// Everything that can be checked without a server.
    pub fn validate(&self) -> Result<(), Error> {
        if self.servers.is_empty() {
            return Err(Error::Config(
                "directory.servers is empty; list at least one URL such as \"ldaps://dc1.example.org\"".into(),
            ));
        }
        for url in &self.servers {
            if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
                return Err(Error::Config(format!(
                    "directory.servers: '{url}' is not an ldap:// or ldaps:// URL"
                )));
            }
        }
        if self.base_dn.trim().is_empty() {
            return Err(Error::Config(
                "directory.base_dn is empty; set it to where users are, e.g. \"DC=example,DC=org\""
                    .into(),
            ));
        }
        if self.page_size == 0 {
            return Err(Error::Config(
                "directory.page_size must be at least 1".into(),
            ));
        }
        self.sync_every()?;
        for (n, item) in self.sync_items.iter().enumerate() {
            if item.container.is_empty() == item.group.is_empty() {
                return Err(Error::Config(format!(
                    "directory.sync_items[{n}] ('{}') needs exactly one of container or group",
                    item.name
                )));
            }
            item.method()
                .and(item.pin_mode().map(|_| ()))
                .map_err(|e| {
                    Error::Config(format!("directory.sync_items[{n}] ('{}'): {e}", item.name))
                })?;
        }
        Ok(())
    }

    /// The parsed `sync_interval`; `None` when scheduled sync is off.
    pub fn sync_every(&self) -> Result<Option<Duration>, Error> {
        let text = self.sync_interval.trim();
        if text.is_empty() || text == "0" {
            return Ok(None);
        }
        let bad = || {
            Error::Config(format!(
                "directory.sync_interval '{text}' is not a duration such as \"15m\", \"1h\" or \"3600s\""
            ))
        };
        let (digits, unit) = text.split_at(
            text.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len()),
        );
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let seconds = match unit {
            "s" | "" => n,
            "m" => n.saturating_mul(60),
            "h" => n.saturating_mul(3600),
            _ => return Err(bad()),
        };
        if !(60..=86_400).contains(&seconds) {
            return Err(Error::Config(format!(
                "directory.sync_interval '{text}' is outside 1 minute to 24 hours"
            )));
        }
        Ok(Some(Duration::from_secs(seconds)))
    }

    pub fn attribute_map(&self) -> AttributeMap {
        AttributeMap::merged(self.preset, &self.attributes)
    }

    pub fn filter(&self) -> String {
        if self.user_filter.trim().is_empty() {
            self.preset.user_filter().to_string()
        } else {
            self.user_filter.trim().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> DirectoryConfig {
        DirectoryConfig {
            servers: vec!["ldaps://dc1.example.org".into()],
            base_dn: "dc=example,dc=org".into(),
            ..DirectoryConfig::default()
        }
    }

    #[test]
    fn sync_interval_is_between_a_minute_and_a_day() {
        let with = |s: &str| DirectoryConfig {
            sync_interval: s.into(),
            ..valid()
        };
        assert_eq!(with("").sync_every().unwrap(), None);
        assert_eq!(
            with("15m").sync_every().unwrap(),
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            with("24h").sync_every().unwrap(),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            with("60").sync_every().unwrap(),
            Some(Duration::from_secs(60))
        );
        for bad in ["59s", "25h", "1d", "often"] {
            assert!(with(bad).validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn each_problem_names_its_key() {
        let no_servers = DirectoryConfig {
            servers: vec![],
            ..valid()
        };
        assert!(no_servers
            .validate()
            .unwrap_err()
            .to_string()
            .contains("directory.servers"));
        let http = DirectoryConfig {
            servers: vec!["http://dc1".into()],
            ..valid()
        };
        assert!(http
            .validate()
            .unwrap_err()
            .to_string()
            .contains("http://dc1"));
        let both = DirectoryConfig {
            sync_items: vec![SyncItemConfig {
                name: "x".into(),
                container: "ou=a".into(),
                group: "cn=b".into(),
                ..Default::default()
            }],
            ..valid()
        };
        assert!(both
            .validate()
            .unwrap_err()
            .to_string()
            .contains("sync_items[0]"));
        let bad_mode = DirectoryConfig {
            sync_items: vec![SyncItemConfig {
                name: "vpn".into(),
                container: "ou=a".into(),
                pin_mode: "sometimes".into(),
                ..Default::default()
            }],
            ..valid()
        };
        let err = bad_mode.validate().unwrap_err().to_string();
        assert!(
            err.contains("sync_items[0]") && err.contains("sometimes"),
            "{err}"
        );
        valid().validate().unwrap();
    }

    #[test]
    fn an_item_pin_mode_defaults_to_standard() {
        let mut item = SyncItemConfig::default();
        assert_eq!(item.pin_mode(), Ok(mfad_core::model::PinMode::Standard));
        item.pin_mode = "pin".into();
        assert_eq!(item.pin_mode(), Ok(mfad_core::model::PinMode::Pin));
    }

    #[test]
    fn the_preset_supplies_the_filter_unless_one_is_set() {
        let openldap = DirectoryConfig {
            preset: Preset::Openldap,
            ..valid()
        };
        assert_eq!(openldap.filter(), "(objectClass=inetOrgPerson)");
        assert_eq!(openldap.attribute_map().unique_id, "entryUUID");
        let custom = DirectoryConfig {
            user_filter: "(employeeType=staff)".into(),
            ..openldap
        };
        assert_eq!(custom.filter(), "(employeeType=staff)");
    }
}
