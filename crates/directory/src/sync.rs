//! One import or sync run: read the directory, resolve the sync items, plan with the
//! core's rules, apply through the store, and record the outcome in the sync state;
//! and the operator's approval of the phone changes a sync held.

use crate::client::LdapDirectory;
use crate::Error;
use mfad_core::directory::sync::{item_for, Held, Scope};
use mfad_core::directory::{
    pending_phones, plan, DirectoryUser, RemovedUsers, SyncItem, SyncOptions,
};
use mfad_core::model::{Method, PinMode};
use mfad_core::store::{PendingPhone, Store, StoreError, UserUpdate};
use std::fmt;

/// What a run did (or, with `--dry-run`, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub read: usize,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub disabled: usize,
    pub removed: usize,
    /// Entries the filter found that are in no sync item.
    pub out_of_scope: usize,
    /// Disables or removals held back by the mass-change safeguard.
    pub held: Option<Held>,
    /// Entries that could not be imported, with the reason.
    pub skipped: Vec<String>,
    /// Phone changes of SMS and call users waiting for `mfad directory approve-phone`
    /// after this run, including ones earlier runs held.
    pub phones_held: Vec<PendingPhone>,
    /// Users whose phone or mobile number is not E.164 and is stored as written.
    pub phones_as_written: Vec<String>,
    /// The directory IDs of the users added (empty on a dry run), for their welcome mails.
    pub added_ids: Vec<String>,
    pub dry_run: bool,
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}added {}, updated {}, unchanged {}, disabled {}, removed {} ({} entries read, {} in no sync item, {} skipped)",
            if self.dry_run { "dry run, nothing changed: " } else { "" },
            self.added,
            self.updated,
            self.unchanged,
            self.disabled,
            self.removed,
            self.read,
            self.out_of_scope,
            self.skipped.len()
        )?;
        if let Some(held) = &self.held {
            write!(f, "; {}", held_reason(held))?;
        }
        if !self.phones_held.is_empty() {
            write!(f, "; {}", phones_reason(&self.phones_held))?;
        }
        if !self.phones_as_written.is_empty() {
            write!(f, "; {}", as_written_reason(&self.phones_as_written))?;
        }
        Ok(())
    }
}

fn held_reason(held: &Held) -> String {
    let action = match held.action {
        RemovedUsers::Disable => "disable",
        RemovedUsers::Remove => "remove",
    };
    format!(
        "held back: this sync would {action} {} users, more than directory.mass_change_threshold; \
         check the directory, then run 'mfad directory approve'",
        held.count
    )
}

fn phones_reason(held: &[PendingPhone]) -> String {
    let names: Vec<&str> = held.iter().map(|p| p.username.as_str()).collect();
    format!(
        "phone changes held for approval: {} ({}), the phone is their second factor; \
         'mfad directory status' lists them, 'mfad directory approve-phone USER' applies one",
        held.len(),
        names.join(", ")
    )
}

/// Names shown in a report line; the rest are counted.
const NAMES_SHOWN: usize = 10;

fn as_written_reason(users: &[String]) -> String {
    let mut names = users
        .iter()
        .take(NAMES_SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if users.len() > NAMES_SHOWN {
        names.push_str(&format!(", and {} more", users.len() - NAMES_SHOWN));
    }
    format!(
        "phone numbers kept as written (not E.164, so SMS and calls cannot reach them): {} ({names}); \
         correct them in the directory",
        users.len()
    )
}

/// The configured sync items, with group memberships read from the directory. No items:
/// everything under the base DN, as one item named after it.
async fn items(dir: &LdapDirectory) -> Result<Vec<SyncItem>, Error> {
    let config = dir.config();
    if config.sync_items.is_empty() {
        return Ok(vec![SyncItem {
            name: config.base_dn.clone(),
            scope: Scope::Container(config.base_dn.clone()),
            method: Method::default(),
            pin_mode: PinMode::default(),
            language: String::new(),
        }]);
    }
    let mut items = Vec::with_capacity(config.sync_items.len());
    for item in &config.sync_items {
        let (scope, dn) = if item.group.is_empty() {
            (Scope::Container(item.container.clone()), &item.container)
        } else {
            (
                Scope::Group(dir.group_members(&item.group).await?),
                &item.group,
            )
        };
        items.push(SyncItem {
            name: if item.name.is_empty() {
                dn.clone()
            } else {
                item.name.clone()
            },
            scope,
            method: item.method().map_err(Error::Config)?,
            pin_mode: item.pin_mode().map_err(Error::Config)?,
            language: item.language.clone(),
        });
    }
    Ok(items)
}

/// Runs one import or sync. With `dry_run` nothing is written, not even the sync state.
/// Numbers written without a country code get `default_country`
/// (`policy.default_country_code`).
pub async fn run_sync(
    dir: &LdapDirectory,
    store: &dyn Store,
    now: i64,
    default_country: &str,
    dry_run: bool,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<SyncReport, Error> {
    let entries = dir.entries(progress).await?;
    let items = items(dir).await?;
    let map = dir.attribute_map();
    let mut report = SyncReport {
        read: entries.len(),
        dry_run,
        ..SyncReport::default()
    };
    let mut incoming: Vec<(DirectoryUser, &SyncItem)> = Vec::with_capacity(entries.len());
    for entry in &entries {
        match map.map(entry) {
            Ok(user) => match item_for(&items, &user.dn) {
                Some(item) => incoming.push((user, item)),
                None => report.out_of_scope += 1,
            },
            Err(why) => report.skipped.push(why),
        }
    }
    let mut state = store.sync_state().await?;
    let existing = store.list_users().await?;
    let config = dir.config();
    let options = SyncOptions {
        removed: config.removed_users,
        threshold: config.mass_change_threshold,
        approved: state.approved_count,
        default_country: default_country.to_owned(),
    };
    let planned = plan(&existing, &incoming, &options);
    report.added = planned.changes.add.len();
    report.updated = planned.changes.update.len();
    report.unchanged = planned.unchanged;
    report.disabled = planned.changes.disable.len();
    report.removed = planned.changes.remove.len();
    report.held = planned.held.clone();
    report.skipped.extend(planned.skipped.iter().cloned());
    report
        .phones_as_written
        .clone_from(&planned.phones_as_written);
    report.phones_held = pending_phones(&state.pending_phones, &planned.held_phones, now);
    if dry_run {
        return Ok(report);
    }
    if !planned.is_empty() {
        store.apply_directory_sync(&planned.changes, now).await?;
    }
    report.added_ids = planned
        .changes
        .add
        .iter()
        .filter_map(|u| u.directory_id.clone())
        .collect();
    state.last_run = Some(now);
    state.last_summary = report.to_string();
    if !report.phones_held.is_empty() {
        tracing::warn!("directory sync {}", phones_reason(&report.phones_held));
    }
    state.pending_phones.clone_from(&report.phones_held);
    match &planned.held {
        Some(held) => {
            state.pending_count = held.count;
            state.pending_reason = held_reason(held);
            tracing::warn!("directory sync {}", state.pending_reason);
        }
        None => {
            // What was approved has been applied (or is no longer needed).
            state.pending_count = 0;
            state.pending_reason.clear();
            state.approved_count = None;
        }
    }
    store.put_sync_state(&state).await?;
    Ok(report)
}

/// Applies phone changes a sync held: `username`'s, or with `None` every one. Returns
/// what it applied. Each sets the number the directory held; the next sync then finds
/// the user unchanged. Fails with `NotFound` when no change is held for `username`.
pub async fn approve_phones(
    store: &dyn Store,
    username: Option<&str>,
) -> Result<Vec<PendingPhone>, Error> {
    let mut state = store.sync_state().await?;
    // The name as an operator types it, normalised as everywhere else.
    let names = username.map(mfad_core::username::candidates);
    let (chosen, kept): (Vec<PendingPhone>, Vec<PendingPhone>) =
        state.pending_phones.iter().cloned().partition(|p| {
            names
                .as_ref()
                .is_none_or(|names| names.contains(&p.username))
        });
    if let (Some(name), true) = (username, chosen.is_empty()) {
        return Err(StoreError::NotFound(format!(
            "a held phone change for user '{name}' ('mfad directory status' lists them)"
        ))
        .into());
    }
    let mut applied = Vec::with_capacity(chosen.len());
    for change in chosen {
        let update = UserUpdate {
            phone: Some(change.new_phone.clone()),
            ..UserUpdate::default()
        };
        match store.update_user(change.user_id, &update).await {
            Ok(_) => applied.push(change),
            // Deleted since: nothing left to change.
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    state.pending_phones = kept;
    store.put_sync_state(&state).await?;
    Ok(applied)
}
