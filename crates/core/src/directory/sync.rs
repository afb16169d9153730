//! Sync planning: which users to add, update, leave alone, disable or remove, the
//! mass-change safeguard, and holding phone changes of SMS and call users for approval.
//! Pure functions over what the directory and the store hold. Phone numbers are stored
//! in E.164, as the CLI stores what an operator types.

use super::DirectoryUser;
use crate::model::{Method, NewUser, PinMode, User, UserId};
use crate::phone;
use crate::store::{DirectoryRecord, DirectorySync, PendingPhone};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// What happens to users that left every sync item (or the directory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemovedUsers {
    /// Keep them, disabled, with their tokens: they can come back.
    #[default]
    Disable,
    /// Delete them with their tokens.
    Remove,
}

/// Where a sync item finds its users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Entries at or below this DN (an OU or container).
    Container(String),
    /// Entries whose DN is a member of the group; the set holds normalised member DNs.
    Group(HashSet<String>),
}

/// One item of `[[directory.sync_items]]`, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncItem {
    pub name: String,
    pub scope: Scope,
    /// Default method for users added through this item.
    pub method: Method,
    /// PIN mode for users added through this item.
    pub pin_mode: PinMode,
    /// Language for users whose entry has none.
    pub language: String,
}

/// A DN compared the way LDAP compares them for our purposes: case-insensitive, with no
/// spaces around `,` and `=` (RFC 4514 §2 allows neither to matter here).
pub fn normalise_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// The first item (in configured order) that holds the entry. With no items configured
/// every entry the user filter finds is in scope, under the item name "".
pub fn item_for<'a>(items: &'a [SyncItem], dn: &str) -> Option<&'a SyncItem> {
    let dn = normalise_dn(dn);
    items.iter().find(|item| match &item.scope {
        Scope::Container(base) => {
            let base = normalise_dn(base);
            dn == base || dn.ends_with(&format!(",{base}"))
        }
        Scope::Group(members) => members.contains(&dn),
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOptions {
    pub removed: RemovedUsers,
    /// More disables or removals than this in one run are held for approval.
    pub threshold: u32,
    /// `mfad directory approve` allowed up to this many.
    pub approved: Option<u32>,
    /// The country code of numbers the directory writes without one
    /// (`policy.default_country_code`).
    pub default_country: String,
}

/// Disables or removals that the safeguard held back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub count: u32,
    pub action: RemovedUsers,
}

/// What one sync would do; `changes` is what the store applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncPlan {
    pub changes: DirectorySync,
    pub unchanged: usize,
    pub held: Option<Held>,
    /// Entries left out, with the reason (name clashes, duplicates).
    pub skipped: Vec<String>,
    /// Phone changes not applied: the users' phone is their second factor. `since` is 0;
    /// [`pending_phones`] dates them.
    pub held_phones: Vec<PendingPhone>,
    /// Users added or kept whose phone or mobile number is not a number E.164 can
    /// write (letters, too few digits): stored as the directory writes it, for the
    /// operator to correct there.
    pub phones_as_written: Vec<String>,
}

impl SyncPlan {
    pub fn is_empty(&self) -> bool {
        self.changes.add.is_empty()
            && self.changes.update.is_empty()
            && self.changes.disable.is_empty()
            && self.changes.remove.is_empty()
    }
}

/// Plans a sync: `existing` is every stored user, `incoming` every directory user that
/// is in a sync item, with that item's name, method, PIN mode and language (the last
/// three only for users it adds: afterwards they are the operator's or the user's).
pub fn plan(
    existing: &[User],
    incoming: &[(DirectoryUser, &SyncItem)],
    options: &SyncOptions,
) -> SyncPlan {
    let by_id: HashMap<&str, &User> = existing
        .iter()
        .filter_map(|u| u.directory_id.as_deref().map(|id| (id, u)))
        .collect();
    let by_name: HashMap<&str, &User> = existing.iter().map(|u| (u.username.as_str(), u)).collect();
    let mut out = SyncPlan::default();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut names_taken: HashSet<String> = HashSet::new();
    for (user, item) in incoming {
        if !seen.insert(&user.unique_id) {
            out.skipped.push(format!(
                "{}: the unique ID {} appears twice",
                user.dn, user.unique_id
            ));
            continue;
        }
        if !names_taken.insert(user.username.clone()) {
            out.skipped.push(format!(
                "{}: another entry in this sync has the username '{}'",
                user.dn, user.username
            ));
            continue;
        }
        let mut record = record(user, item);
        let as_written = to_e164(&mut record, &options.default_country);
        let stored = by_id.get(user.unique_id.as_str()).copied().or_else(|| {
            // A local user of the same name that no entry owns yet is linked, so an
            // operator's manual users are taken over by the first import.
            by_name
                .get(user.username.as_str())
                .copied()
                .filter(|u| u.directory_id.is_none())
        });
        match stored {
            Some(stored) => {
                if let Some(other) = by_name.get(user.username.as_str()) {
                    if other.id != stored.id {
                        out.skipped.push(format!(
                            "{}: renamed to '{}', which another mfad user has",
                            user.dn, user.username
                        ));
                        continue;
                    }
                }
                // Active Directory lets every user write telephoneNumber and mobile on
                // their own entry: applying such a change to an SMS or call user would
                // let anyone with the password alone move the second factor to their own
                // phone. The rest of the entry is applied; the phone waits for approval.
                // A number stored before it was normalised is the same number, not a
                // change.
                let same_number = stored.phone == record.phone
                    || stored_form(&stored.phone, &options.default_country).as_deref()
                        == Some(record.phone.as_str());
                if as_written {
                    out.phones_as_written.push(record.username.clone());
                }
                if stored.method.uses_phone() && !same_number {
                    out.held_phones.push(PendingPhone {
                        user_id: stored.id,
                        username: record.username.clone(),
                        email: stored.email.clone(),
                        old_phone: stored.phone.clone(),
                        new_phone: std::mem::replace(&mut record.phone, stored.phone.clone()),
                        since: 0,
                    });
                }
                if same(stored, &record) {
                    out.unchanged += 1;
                } else {
                    out.changes.update.push((stored.id, record));
                }
            }
            None if by_name.contains_key(user.username.as_str()) => {
                out.skipped.push(format!(
                    "{}: username '{}' belongs to a user of another directory entry",
                    user.dn, user.username
                ));
            }
            // A disabled account that mfad does not know yet has nothing to protect.
            None if !user.enabled => out.unchanged += 1,
            None => {
                if as_written {
                    out.phones_as_written.push(record.username.clone());
                }
                out.changes.add.push(NewUser {
                    username: record.username.clone(),
                    given_name: record.given_name.clone(),
                    surname: record.surname.clone(),
                    email: record.email.clone(),
                    phone: record.phone.clone(),
                    mobile: record.mobile.clone(),
                    extension: record.extension.clone(),
                    language: record.language.clone(),
                    method: item.method,
                    pin_mode: item.pin_mode,
                    directory_id: Some(record.directory_id.clone()),
                    sync_item: Some(item.name.clone()),
                    ..NewUser::default()
                });
            }
        }
    }
    let mut leaving: Vec<UserId> = Vec::new();
    for user in existing {
        let Some(id) = user.directory_id.as_deref() else {
            continue;
        };
        if seen.contains(id) {
            continue;
        }
        let already_out = !user.enabled && user.sync_item.is_none();
        if options.removed == RemovedUsers::Remove || !already_out {
            leaving.push(user.id);
        } else {
            out.unchanged += 1;
        }
    }
    let count = u32::try_from(leaving.len()).unwrap_or(u32::MAX);
    let allowed = count <= options.threshold || options.approved.is_some_and(|a| count <= a);
    if !allowed {
        out.held = Some(Held {
            count,
            action: options.removed,
        });
    } else if options.removed == RemovedUsers::Remove {
        out.changes.remove = leaving;
    } else {
        out.changes.disable = leaving;
    }
    out
}

/// The phone changes pending after a sync that `held` these: each keeps the time a sync
/// first held it (the same user and new number in `previous`), new ones date from `now`.
/// Changes no longer held (approved, or the directory went back) are dropped.
pub fn pending_phones(
    previous: &[PendingPhone],
    held: &[PendingPhone],
    now: i64,
) -> Vec<PendingPhone> {
    let mut pending: Vec<PendingPhone> = held
        .iter()
        .map(|h| {
            let since = previous
                .iter()
                .find(|p| p.user_id == h.user_id && p.new_phone == h.new_phone)
                .map_or(now, |p| p.since);
            PendingPhone { since, ..h.clone() }
        })
        .collect();
    pending.sort_by(|a, b| a.username.cmp(&b.username));
    pending
}

/// What `[directory] generate_pins` does for one user a sync added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialPin {
    /// Not a PIN user, or one who has a PIN already.
    NotNeeded,
    /// Generate one and put it in the welcome mail.
    Generate,
    /// A PIN user who gets none, and why. A PIN is only made when it can reach the user
    /// in the welcome mail: one nobody receives would only lock them out, and printing
    /// or logging it would leak it.
    Withheld(&'static str),
}

/// The initial PIN rule for a user a sync added, with welcome mails on or off.
pub fn initial_pin(user: &User, mail_on: bool) -> InitialPin {
    if user.pin_mode != PinMode::Pin || user.has_pin() {
        InitialPin::NotNeeded
    } else if !mail_on {
        InitialPin::Withheld("[email] send_to_users is off")
    } else if user.email.is_empty() {
        InitialPin::Withheld("no e-mail address")
    } else {
        InitialPin::Generate
    }
}

fn record(user: &DirectoryUser, item: &SyncItem) -> DirectoryRecord {
    DirectoryRecord {
        directory_id: user.unique_id.clone(),
        username: user.username.clone(),
        given_name: user.given_name.clone(),
        surname: user.surname.clone(),
        email: user.email.clone(),
        phone: user.phone.clone(),
        mobile: user.mobile.clone(),
        extension: user.extension.clone(),
        language: if user.language.is_empty() {
            item.language.clone()
        } else {
            user.language.clone()
        },
        sync_item: item.name.clone(),
        enabled: user.enabled,
    }
}

/// The record's phone and mobile in their stored E.164 form (as `mfad user add` stores
/// them); true when one cannot be normalised and stays as the directory writes it.
fn to_e164(record: &mut DirectoryRecord, default_country: &str) -> bool {
    let mut as_written = false;
    for number in [&mut record.phone, &mut record.mobile] {
        match stored_form(number, default_country) {
            Some(e164) => *number = e164,
            None => as_written = true,
        }
    }
    as_written
}

/// `written` as stored: E.164 (with `x` and an extension), "" for no number, or None
/// when it is not a phone number.
fn stored_form(written: &str, default_country: &str) -> Option<String> {
    if written.trim().is_empty() {
        return Some(String::new());
    }
    phone::normalise(written, default_country)
        .ok()
        .map(|p| phone::stored(&p))
}

/// Whether the stored user already holds everything the directory says.
fn same(stored: &User, r: &DirectoryRecord) -> bool {
    stored.directory_id.as_deref() == Some(r.directory_id.as_str())
        && stored.username == r.username
        && stored.given_name == r.given_name
        && stored.surname == r.surname
        && stored.email == r.email
        && stored.phone == r.phone
        && stored.mobile == r.mobile
        && stored.extension == r.extension
        && stored.language == r.language
        && stored.sync_item.as_deref() == Some(r.sync_item.as_str())
        && stored.enabled == r.enabled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, base: &str) -> SyncItem {
        SyncItem {
            name: name.into(),
            scope: Scope::Container(base.into()),
            method: Method::App,
            pin_mode: PinMode::Standard,
            language: "en".into(),
        }
    }

    fn dir_user(n: u32, dn: &str) -> DirectoryUser {
        DirectoryUser {
            unique_id: format!("id-{n}"),
            dn: dn.into(),
            username: format!("user{n}"),
            given_name: "Given".into(),
            surname: "Sur".into(),
            email: format!("user{n}@example.org"),
            enabled: true,
            ..DirectoryUser::default()
        }
    }

    /// The stored user a previous sync of `u` through `item` left behind.
    fn stored(id: UserId, u: &DirectoryUser, item: &SyncItem) -> User {
        let r = record(u, item);
        User {
            id,
            username: r.username,
            given_name: r.given_name,
            surname: r.surname,
            email: r.email,
            phone: r.phone,
            enabled: true,
            blocked_until: None,
            block_reason: None,
            locked_until: None,
            failures: 0,
            pin_mode: PinMode::Standard,
            pin_hash: None,
            pin_change_required: false,
            pin_history: vec![],
            bypass_until: None,
            created_at: 0,
            mobile: r.mobile,
            extension: r.extension,
            language: r.language,
            method: Method::App,
            backup_phone: String::new(),
            directory_id: Some(r.directory_id),
            sync_item: Some(r.sync_item),
        }
    }

    fn options() -> SyncOptions {
        SyncOptions {
            removed: RemovedUsers::Disable,
            threshold: 5,
            approved: None,
            default_country: "1".into(),
        }
    }

    #[test]
    fn first_match_wins_in_configured_order() {
        let items = [
            item("admins", "ou=Admins,ou=Staff,dc=example,dc=org"),
            item("staff", "OU=Staff, DC=example, DC=org"),
        ];
        let pick = |dn| item_for(&items, dn).map(|i| i.name.as_str());
        assert_eq!(
            pick("uid=a,ou=admins,ou=staff,dc=example,dc=org"),
            Some("admins")
        );
        assert_eq!(pick("uid=b, ou=Staff,dc=example,dc=org"), Some("staff"));
        assert_eq!(pick("uid=c,ou=Guests,dc=example,dc=org"), None);
        // A suffix of an RDN value is not containment.
        assert_eq!(pick("uid=d,ou=NotStaff,dc=example,dc=org"), None);
        let group = SyncItem {
            scope: Scope::Group(["uid=c,ou=guests,dc=example,dc=org".to_string()].into()),
            ..item("vpn", "")
        };
        let items = [group];
        assert_eq!(
            item_for(&items, "UID=c,ou=Guests,dc=example,dc=org").map(|i| i.name.as_str()),
            Some("vpn")
        );
    }

    #[test]
    fn a_first_sync_adds_and_a_second_changes_nothing() {
        let staff = item("staff", "ou=staff,dc=x");
        let users: Vec<_> = (0..3).map(|n| dir_user(n, "uid=u,ou=staff,dc=x")).collect();
        let incoming: Vec<_> = users.iter().map(|u| (u.clone(), &staff)).collect();
        let first = plan(&[], &incoming, &options());
        assert_eq!(first.changes.add.len(), 3);
        assert_eq!(first.changes.add[0].sync_item.as_deref(), Some("staff"));
        assert_eq!(first.changes.add[0].language, "en", "the item's default");
        assert_eq!(first.changes.add[0].method, Method::App);
        assert_eq!(first.changes.add[0].pin_mode, PinMode::Standard);
        let existing: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, u)| stored(i as i64 + 1, u, &staff))
            .collect();
        let second = plan(&existing, &incoming, &options());
        assert!(second.is_empty(), "{second:?}");
        assert_eq!(second.unchanged, 3);
    }

    #[test]
    fn users_added_through_a_pin_item_are_pin_users_and_stay_so_only_when_added() {
        let vpn = SyncItem {
            pin_mode: PinMode::Pin,
            ..item("vpn", "ou=vpn,dc=x")
        };
        let u = dir_user(1, "uid=user1,ou=vpn,dc=x");
        let added = plan(&[], &[(u.clone(), &vpn)], &options());
        assert_eq!(added.changes.add[0].pin_mode, PinMode::Pin);
        // A user the operator switched to standard is not switched back by a sync.
        let existing = [stored(1, &u, &vpn)];
        assert!(plan(&existing, &[(u, &vpn)], &options()).is_empty());
    }

    #[test]
    fn an_initial_pin_is_made_only_for_pin_users_it_can_reach() {
        let u = dir_user(1, "uid=user1,ou=x");
        let mut user = stored(1, &u, &item("x", "ou=x"));
        assert_eq!(initial_pin(&user, true), InitialPin::NotNeeded, "standard");
        user.pin_mode = PinMode::Pin;
        assert_eq!(initial_pin(&user, true), InitialPin::Generate);
        assert!(matches!(
            initial_pin(&user, false),
            InitialPin::Withheld(why) if why.contains("send_to_users")
        ));
        user.email.clear();
        assert!(matches!(
            initial_pin(&user, true),
            InitialPin::Withheld(why) if why.contains("address")
        ));
        user.pin_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$x$y".into());
        assert_eq!(
            initial_pin(&user, true),
            InitialPin::NotNeeded,
            "a PIN is never replaced"
        );
    }

    #[test]
    fn renames_and_attribute_changes_update_the_same_user() {
        let staff = item("staff", "ou=staff,dc=x");
        let before = dir_user(1, "uid=user1,ou=staff,dc=x");
        let existing = [stored(10, &before, &staff)];
        let mut after = before.clone();
        after.username = "renamed".into();
        after.dn = "uid=renamed,ou=moved,ou=staff,dc=x".into();
        after.phone = "+15550001".into();
        let plan = plan(&existing, &[(after, &staff)], &options());
        assert!(plan.changes.add.is_empty());
        let [(id, record)] = plan.changes.update.as_slice() else {
            panic!("one update expected: {plan:?}");
        };
        assert_eq!(*id, 10);
        assert_eq!(
            (record.username.as_str(), record.phone.as_str()),
            ("renamed", "+15550001")
        );
    }

    #[test]
    fn directory_numbers_are_stored_as_e164_and_the_rest_is_reported_as_written() {
        let staff = item("staff", "ou=staff,dc=x");
        let mut written = dir_user(1, "uid=u1,ou=staff,dc=x");
        written.phone = "+1 425 555 0000".into();
        written.mobile = "(425) 555-0101".into();
        let mut national = dir_user(2, "uid=u2,ou=staff,dc=x");
        national.phone = "425.555.0102 x7".into();
        let mut words = dir_user(3, "uid=u3,ou=staff,dc=x");
        words.phone = "ask reception".into();
        words.mobile = "+1 425 555 0103".into();
        let no_phone = dir_user(4, "uid=u4,ou=staff,dc=x");
        let incoming: Vec<_> = [written, national, words, no_phone]
            .into_iter()
            .map(|u| (u, &staff))
            .collect();
        let p = plan(&[], &incoming, &options());
        let numbers: Vec<_> = p
            .changes
            .add
            .iter()
            .map(|u| (u.username.as_str(), u.phone.as_str(), u.mobile.as_str()))
            .collect();
        assert_eq!(
            numbers,
            [
                ("user1", "+14255550000", "+14255550101"),
                ("user2", "+14255550102x7", ""),
                ("user3", "ask reception", "+14255550103"),
                ("user4", "", ""),
            ]
        );
        assert_eq!(p.phones_as_written, ["user3"]);
    }

    #[test]
    fn a_number_stored_as_written_is_normalised_without_holding_it_for_approval() {
        let staff = item("staff", "ou=staff,dc=x");
        let mut u = dir_user(1, "uid=u1,ou=staff,dc=x");
        u.phone = "+1 425 555 0000".into();
        // Stored by an earlier version, which kept the directory's spelling.
        let existing = [User {
            phone: u.phone.clone(),
            method: Method::Sms,
            ..stored(10, &u, &staff)
        }];
        let p = plan(&existing, &[(u, &staff)], &options());
        assert!(p.held_phones.is_empty(), "{p:?}");
        assert_eq!(p.changes.update.len(), 1);
        assert_eq!(p.changes.update[0].1.phone, "+14255550000");
    }

    #[test]
    fn a_phone_change_of_an_sms_or_call_user_is_held_and_of_an_app_user_applied() {
        let staff = item("staff", "ou=staff,dc=x");
        let dir: Vec<_> = (1..=4)
            .map(|n| dir_user(n, "uid=u,ou=staff,dc=x"))
            .collect();
        let existing: Vec<_> = dir
            .iter()
            .zip([Method::Sms, Method::Call, Method::App, Method::Token])
            .enumerate()
            .map(|(i, (u, method))| User {
                phone: "+15550000001".into(),
                method,
                ..stored(i as i64 + 10, u, &staff)
            })
            .collect();
        let incoming: Vec<_> = dir
            .iter()
            .map(|u| {
                let mut changed = u.clone();
                changed.phone = "+15559999999".into();
                (changed, &staff)
            })
            .collect();
        let p = plan(&existing, &incoming, &options());
        let held: Vec<_> = p
            .held_phones
            .iter()
            .map(|h| (h.user_id, h.old_phone.as_str(), h.new_phone.as_str()))
            .collect();
        assert_eq!(
            held,
            [
                (10, "+15550000001", "+15559999999"),
                (11, "+15550000001", "+15559999999")
            ]
        );
        assert_eq!(p.held_phones[0].username, "user1");
        assert_eq!(p.held_phones[0].email, "user1@example.org");
        let applied: Vec<_> = p
            .changes
            .update
            .iter()
            .map(|(id, r)| (*id, r.phone.as_str()))
            .collect();
        assert_eq!(
            applied,
            [(12, "+15559999999"), (13, "+15559999999")],
            "only the app and token users' phones change: {p:?}"
        );
        assert_eq!(p.unchanged, 2, "a held phone alone is no update");

        // The rest of the entry still syncs; the phone keeps the stored number.
        let mut renamed = incoming[0].0.clone();
        renamed.surname = "Married".into();
        let p = plan(&existing[..1], &[(renamed, &staff)], &options());
        let [(10, record)] = p.changes.update.as_slice() else {
            panic!("one update expected: {p:?}");
        };
        assert_eq!(
            (record.surname.as_str(), record.phone.as_str()),
            ("Married", "+15550000001")
        );
        assert_eq!(p.held_phones.len(), 1);
    }

    #[test]
    fn a_held_phone_change_keeps_its_date_and_is_dropped_once_no_longer_held() {
        let change = |user_id, new: &str| PendingPhone {
            user_id,
            username: format!("user{user_id}"),
            new_phone: new.into(),
            ..PendingPhone::default()
        };
        let first = pending_phones(&[], &[change(2, "+1"), change(1, "+1")], 100);
        assert_eq!(
            first
                .iter()
                .map(|p| (p.user_id, p.since))
                .collect::<Vec<_>>(),
            [(1, 100), (2, 100)],
            "new changes date from now, ordered by username"
        );
        let second = pending_phones(&first, &[change(1, "+1"), change(2, "+2")], 200);
        assert_eq!(
            second
                .iter()
                .map(|p| (p.user_id, p.since))
                .collect::<Vec<_>>(),
            [(1, 100), (2, 200)],
            "another new number is another change"
        );
        assert!(pending_phones(&second, &[], 300).is_empty());
    }

    #[test]
    fn users_leaving_every_item_are_disabled_once_or_removed() {
        let staff = item("staff", "ou=staff,dc=x");
        let gone = dir_user(1, "uid=user1,ou=staff,dc=x");
        let mut existing = vec![stored(10, &gone, &staff)];
        let p = plan(&existing, &[], &options());
        assert_eq!(p.changes.disable, [10]);
        // After the disable, the next run leaves it alone.
        existing[0].enabled = false;
        existing[0].sync_item = None;
        let p = plan(&existing, &[], &options());
        assert!(p.is_empty());
        let remove = SyncOptions {
            removed: RemovedUsers::Remove,
            ..options()
        };
        assert_eq!(plan(&existing, &[], &remove).changes.remove, [10]);
        // Coming back re-enables the same user.
        let p = plan(&existing, &[(gone, &staff)], &options());
        assert_eq!(p.changes.update.len(), 1);
        assert!(p.changes.update[0].1.enabled);
    }

    #[test]
    fn more_leavers_than_the_threshold_are_held_until_approved() {
        let staff = item("staff", "ou=staff,dc=x");
        let existing: Vec<_> = (0..6)
            .map(|n| stored(n + 1, &dir_user(n as u32, "uid=u,ou=staff,dc=x"), &staff))
            .collect();
        let newcomer = dir_user(99, "uid=new,ou=staff,dc=x");
        let p = plan(&existing, &[(newcomer.clone(), &staff)], &options());
        assert_eq!(
            p.held,
            Some(Held {
                count: 6,
                action: RemovedUsers::Disable
            })
        );
        assert!(p.changes.disable.is_empty());
        assert_eq!(p.changes.add.len(), 1, "additions are not held");
        let approved = SyncOptions {
            approved: Some(6),
            ..options()
        };
        let p = plan(&existing, &[(newcomer.clone(), &staff)], &approved);
        assert_eq!((p.held, p.changes.disable.len()), (None, 6));
        // An approval covers that many, not a larger change later.
        let fewer = SyncOptions {
            approved: Some(5),
            threshold: 2,
            ..options()
        };
        assert!(plan(&existing, &[], &fewer).held.is_some());
        // Exactly the threshold is allowed.
        let p = plan(&existing[..5], &[], &options());
        assert_eq!((p.held, p.changes.disable.len()), (None, 5));
    }

    #[test]
    fn local_users_are_linked_and_name_clashes_are_skipped() {
        let staff = item("staff", "ou=staff,dc=x");
        let mut local = stored(5, &dir_user(1, "uid=user1,ou=staff,dc=x"), &staff);
        local.directory_id = None;
        local.sync_item = None;
        let p = plan(
            &[local.clone()],
            &[(dir_user(1, "uid=user1,ou=staff,dc=x"), &staff)],
            &options(),
        );
        assert_eq!(p.changes.update.len(), 1);
        assert_eq!(p.changes.update[0].1.directory_id, "id-1");
        // Another entry renamed onto an existing user's name is skipped.
        let other = stored(6, &dir_user(2, "uid=user2,ou=staff,dc=x"), &staff);
        let mut renamed = dir_user(2, "uid=user2,ou=staff,dc=x");
        renamed.username = "user1".into();
        let linked = stored(5, &dir_user(1, "uid=user1,ou=staff,dc=x"), &staff);
        let p = plan(
            &[linked, other],
            &[(dir_user(1, "x"), &staff), (renamed, &staff)],
            &options(),
        );
        assert!(p.changes.update.is_empty(), "{p:?}");
        assert_eq!(p.skipped.len(), 1, "{p:?}");
    }

    #[test]
    fn dns_are_normalised_for_comparison() {
        assert_eq!(
            normalise_dn("CN=Alice Smith , OU = Staff,DC=Example"),
            "cn=alice smith,ou=staff,dc=example"
        );
    }
}
