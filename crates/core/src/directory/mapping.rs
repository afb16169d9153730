//! From a directory entry to a [`DirectoryUser`]: presets, attribute maps, GUIDs.

use super::DirectoryUser;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write as _;

/// One entry as the LDAP client read it: attribute names lower-case, values raw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub attrs: HashMap<String, Vec<Vec<u8>>>,
}

impl Entry {
    /// The first value of `name` (any case) as text; binary values are not text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.attrs
            .get(&name.to_ascii_lowercase())?
            .first()
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    pub fn raw(&self, name: &str) -> Option<&[u8]> {
        self.attrs
            .get(&name.to_ascii_lowercase())?
            .first()
            .map(Vec::as_slice)
    }
}

/// Filter and attribute names for a kind of directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    #[default]
    ActiveDirectory,
    Openldap,
}

/// Which attribute holds what. Every field can be overridden in the config; empty
/// means "not mapped".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeMap {
    pub unique_id: String,
    /// Tried in order: the first with a value is the username.
    pub username: Vec<String>,
    pub given_name: String,
    pub surname: String,
    pub email: String,
    pub phone: String,
    pub mobile: String,
    pub extension: String,
    pub language: String,
    /// AD's `userAccountControl`: bit 2 (ACCOUNTDISABLE) marks a disabled account.
    pub user_account_control: String,
}

impl Preset {
    /// Users only: AD's `objectCategory=person` keeps computer accounts out (they are
    /// `objectClass=user` too).
    pub fn user_filter(self) -> &'static str {
        match self {
            Self::ActiveDirectory => "(&(objectCategory=person)(objectClass=user))",
            Self::Openldap => "(objectClass=inetOrgPerson)",
        }
    }

    pub fn attributes(self) -> AttributeMap {
        let s = |v: &str| v.to_string();
        match self {
            Self::ActiveDirectory => AttributeMap {
                unique_id: s("objectGUID"),
                username: vec![s("userPrincipalName"), s("sAMAccountName")],
                given_name: s("givenName"),
                surname: s("sn"),
                email: s("mail"),
                phone: s("telephoneNumber"),
                mobile: s("mobile"),
                extension: s("ipPhone"),
                language: s("preferredLanguage"),
                user_account_control: s("userAccountControl"),
            },
            Self::Openldap => AttributeMap {
                unique_id: s("entryUUID"),
                username: vec![s("uid")],
                given_name: s("givenName"),
                surname: s("sn"),
                email: s("mail"),
                phone: s("telephoneNumber"),
                mobile: s("mobile"),
                extension: s(""),
                language: s("preferredLanguage"),
                user_account_control: s(""),
            },
        }
    }
}

impl AttributeMap {
    /// The preset's map with every non-empty field of `overrides` put over it.
    pub fn merged(preset: Preset, overrides: &AttributeMap) -> AttributeMap {
        let mut map = preset.attributes();
        let pick = |base: &mut String, over: &String| {
            if !over.is_empty() {
                base.clone_from(over);
            }
        };
        pick(&mut map.unique_id, &overrides.unique_id);
        if !overrides.username.is_empty() {
            map.username.clone_from(&overrides.username);
        }
        pick(&mut map.given_name, &overrides.given_name);
        pick(&mut map.surname, &overrides.surname);
        pick(&mut map.email, &overrides.email);
        pick(&mut map.phone, &overrides.phone);
        pick(&mut map.mobile, &overrides.mobile);
        pick(&mut map.extension, &overrides.extension);
        pick(&mut map.language, &overrides.language);
        pick(
            &mut map.user_account_control,
            &overrides.user_account_control,
        );
        map
    }

    /// Every attribute to request in a search.
    pub fn requested(&self) -> Vec<String> {
        let mut names: Vec<String> = [
            &self.unique_id,
            &self.given_name,
            &self.surname,
            &self.email,
            &self.phone,
            &self.mobile,
            &self.extension,
            &self.language,
            &self.user_account_control,
        ]
        .into_iter()
        .chain(self.username.iter())
        .filter(|n| !n.is_empty())
        .cloned()
        .collect();
        names.sort_unstable_by_key(|n| n.to_ascii_lowercase());
        names.dedup_by_key(|n| n.to_ascii_lowercase());
        names
    }

    /// Maps an entry; `Err` says why the entry cannot become a user (no unique ID or
    /// no username), for the import's report.
    pub fn map(&self, entry: &Entry) -> Result<DirectoryUser, String> {
        let unique_id = entry
            .raw(&self.unique_id)
            .map(|raw| unique_id(&self.unique_id, raw))
            .filter(|id| !id.is_empty())
            .ok_or_else(|| format!("{}: no {} value", entry.dn, self.unique_id))?;
        let username = self
            .username
            .iter()
            .find_map(|a| entry.text(a))
            .ok_or_else(|| {
                format!(
                    "{}: none of {} has a value",
                    entry.dn,
                    self.username.join(", ")
                )
            })
            .map(crate::username::normalise)?;
        let text = |attr: &str| {
            if attr.is_empty() {
                String::new()
            } else {
                entry.text(attr).unwrap_or_default().to_string()
            }
        };
        let disabled = entry
            .text(&self.user_account_control)
            .filter(|_| !self.user_account_control.is_empty())
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|flags| flags & UF_ACCOUNTDISABLE != 0);
        Ok(DirectoryUser {
            unique_id,
            dn: entry.dn.clone(),
            username,
            given_name: text(&self.given_name),
            surname: text(&self.surname),
            email: text(&self.email),
            phone: text(&self.phone),
            mobile: text(&self.mobile),
            extension: text(&self.extension),
            language: text(&self.language),
            enabled: !disabled,
        })
    }
}

/// [MS-ADTS] §2.2.16 userAccountControl: ADS_UF_ACCOUNTDISABLE.
const UF_ACCOUNTDISABLE: i64 = 0x2;

/// The unique ID as text: objectGUID is 16 binary bytes and becomes the canonical GUID
/// string; text IDs (entryUUID) are kept, lower-cased; other binary values become hex.
pub fn unique_id(attribute: &str, raw: &[u8]) -> String {
    if attribute.eq_ignore_ascii_case("objectGUID") {
        if let Ok(bytes) = <[u8; 16]>::try_from(raw) {
            return guid_string(&bytes);
        }
    }
    match std::str::from_utf8(raw) {
        Ok(text) if !text.chars().any(char::is_control) => text.trim().to_lowercase(),
        _ => raw.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        }),
    }
}

/// [MS-DTYP] §2.3.4: a GUID's first three fields are little-endian on the wire, so
/// objectGUID `0x67 0x45 0x23 0x01 ...` reads `01234567-...`.
pub fn guid_string(b: &[u8; 16]) -> String {
    let [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15] = *b;
    format!(
        "{b3:02x}{b2:02x}{b1:02x}{b0:02x}-{b5:02x}{b4:02x}-{b7:02x}{b6:02x}-{b8:02x}{b9:02x}-\
         {b10:02x}{b11:02x}{b12:02x}{b13:02x}{b14:02x}{b15:02x}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dn: &str, attrs: &[(&str, &[u8])]) -> Entry {
        let mut map: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for (k, v) in attrs {
            map.entry(k.to_ascii_lowercase())
                .or_default()
                .push(v.to_vec());
        }
        Entry {
            dn: dn.into(),
            attrs: map,
        }
    }

    #[test]
    fn object_guid_bytes_become_the_canonical_guid_string() {
        // The GUID {01234567-89ab-cdef-0123-456789abcdef} as AD sends it.
        let wire = [
            0x67, 0x45, 0x23, 0x01, 0xab, 0x89, 0xef, 0xcd, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        assert_eq!(guid_string(&wire), "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(
            unique_id("objectguid", &wire),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
    }

    #[test]
    fn entry_uuid_text_is_kept_and_other_binary_ids_become_hex() {
        assert_eq!(
            unique_id("entryUUID", b"6F0A1C2E-1111-2222-3333-444455556666"),
            "6f0a1c2e-1111-2222-3333-444455556666"
        );
        assert_eq!(unique_id("someId", &[0, 1, 0xff]), "0001ff");
    }

    #[test]
    fn ad_preset_falls_back_to_sam_account_name_and_reads_the_disabled_bit() {
        let map = AttributeMap::merged(Preset::ActiveDirectory, &AttributeMap::default());
        let guid = [7u8; 16];
        let with_upn = entry(
            "CN=Alice,OU=Staff,DC=example,DC=org",
            &[
                ("objectGUID", &guid),
                ("userPrincipalName", b"Alice@Example.org"),
                ("sAMAccountName", b"alice"),
                ("givenName", b"Alice"),
                ("userAccountControl", b"512"),
            ],
        );
        let user = map.map(&with_upn).unwrap();
        assert_eq!(user.username, "alice@example.org");
        assert_eq!(user.given_name, "Alice");
        assert!(user.enabled);
        let without_upn = entry(
            "CN=Bob,OU=Staff,DC=example,DC=org",
            &[
                ("objectGUID", &guid),
                ("sAMAccountName", b"Bob"),
                ("userAccountControl", b"514"),
            ],
        );
        let user = map.map(&without_upn).unwrap();
        assert_eq!(user.username, "bob");
        assert!(!user.enabled, "514 = NORMAL_ACCOUNT | ACCOUNTDISABLE");
    }

    #[test]
    fn overrides_replace_only_the_fields_they_set() {
        let overrides = AttributeMap {
            username: vec!["mail".into()],
            phone: "homePhone".into(),
            ..AttributeMap::default()
        };
        let map = AttributeMap::merged(Preset::Openldap, &overrides);
        assert_eq!(map.username, ["mail"]);
        assert_eq!(map.phone, "homePhone");
        assert_eq!(map.unique_id, "entryUUID");
        assert_eq!(map.surname, "sn");
        assert!(map.requested().contains(&"homePhone".to_string()));
    }

    #[test]
    fn entries_without_an_id_or_a_username_are_refused_with_the_reason() {
        let map = Preset::Openldap.attributes();
        let no_id = entry("uid=a,dc=x", &[("uid", b"a")]);
        assert!(map.map(&no_id).unwrap_err().contains("entryUUID"));
        let no_name = entry("cn=a,dc=x", &[("entryUUID", b"u-1")]);
        assert!(map.map(&no_name).unwrap_err().contains("uid"));
    }
}
