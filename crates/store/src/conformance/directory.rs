//! Conformance cases for directory sync: applying a plan, unique directory IDs, the
//! sync bookkeeping (with the phone changes held for approval) and the scheduled-sync
//! lock.

use super::{ensure, ensure_eq, ensure_err, given_token, given_user, new_user, CaseResult, NOW};
use mfad_core::model::{Method, NewUser};
use mfad_core::store::{DirectoryRecord, DirectorySync, PendingPhone, Store, SyncState};
use std::sync::Arc;

fn from_directory(username: &str, id: &str, item: &str) -> NewUser {
    NewUser {
        directory_id: Some(id.to_owned()),
        sync_item: Some(item.to_owned()),
        method: Method::Token,
        ..new_user(username)
    }
}

fn record(username: &str, id: &str, item: &str) -> DirectoryRecord {
    DirectoryRecord {
        directory_id: id.to_owned(),
        username: username.to_owned(),
        given_name: "Renamed".to_owned(),
        surname: "Person".to_owned(),
        email: format!("{username}@example.org"),
        phone: "+15555550199".to_owned(),
        mobile: "+15555550198".to_owned(),
        extension: "12".to_owned(),
        language: "fr".to_owned(),
        sync_item: item.to_owned(),
        enabled: true,
    }
}

pub async fn directory_sync_adds_updates_disables_and_removes_together(
    store: Arc<dyn Store>,
) -> CaseResult {
    let first = DirectorySync {
        add: vec![
            from_directory("ann", "guid-ann", "staff"),
            from_directory("ben", "guid-ben", "staff"),
            from_directory("cat", "guid-cat", "vpn"),
            from_directory("dan", "guid-dan", "vpn"),
        ],
        ..DirectorySync::default()
    };
    store.apply_directory_sync(&first, NOW).await?;
    let users = store.list_users().await?;
    ensure_eq!(users.len(), 4);
    let ann = store.user_by_name("ann").await?.ok_or("ann missing")?;
    ensure_eq!(ann.directory_id.as_deref(), Some("guid-ann"));
    ensure_eq!(
        store.user_by_directory_id("guid-ann").await?,
        Some(ann.clone()),
        "found by the entry's unique ID"
    );
    ensure_eq!(store.user_by_directory_id("guid-nobody").await?, None);
    ensure_eq!(ann.sync_item.as_deref(), Some("staff"));
    ensure_eq!(
        (ann.mobile.as_str(), ann.extension.as_str()),
        ("+15555550101", "4711")
    );
    ensure_eq!((ann.language.as_str(), ann.method), ("de", Method::Token));
    let ben = store.user_by_name("ben").await?.ok_or("ben missing")?;
    let cat = store.user_by_name("cat").await?.ok_or("cat missing")?;
    let dan = store.user_by_name("dan").await?.ok_or("dan missing")?;
    given_token(&*store, "T-dan", Some(dan.id)).await?;

    // A rename of ann that frees her name for a new entry in the same call.
    let second = DirectorySync {
        add: vec![from_directory("ann", "guid-new-ann", "staff")],
        update: vec![(ann.id, record("Ann.Renamed", "guid-ann", "vpn"))],
        disable: vec![cat.id],
        remove: vec![dan.id],
    };
    store.apply_directory_sync(&second, NOW + 1).await?;
    let renamed = store.user_by_id(ann.id).await?.ok_or("ann's row missing")?;
    ensure_eq!(
        renamed.username,
        "ann.renamed",
        "usernames are stored lower-case"
    );
    ensure_eq!(renamed.sync_item.as_deref(), Some("vpn"));
    ensure_eq!(
        (renamed.given_name.as_str(), renamed.phone.as_str()),
        ("Renamed", "+15555550199")
    );
    ensure_eq!(
        (renamed.mobile.as_str(), renamed.extension.as_str()),
        ("+15555550198", "12")
    );
    ensure_eq!(renamed.language, "fr");
    ensure_eq!(
        renamed.method,
        Method::Token,
        "an update keeps the user's method"
    );
    let new_ann = store.user_by_name("ann").await?.ok_or("new ann missing")?;
    ensure_eq!(new_ann.directory_id.as_deref(), Some("guid-new-ann"));
    let cat = store.user_by_id(cat.id).await?.ok_or("cat's row missing")?;
    ensure!(!cat.enabled, "a disabled leaver is kept, disabled");
    ensure_eq!(cat.sync_item, None);
    ensure_eq!(
        cat.directory_id.as_deref(),
        Some("guid-cat"),
        "and keeps its ID"
    );
    ensure_eq!(store.user_by_id(dan.id).await?, None);
    ensure_eq!(
        store.token_by_serial("T-dan").await?,
        None,
        "removal takes the tokens"
    );
    ensure!(
        store.user_by_id(ben.id).await?.is_some(),
        "untouched users stay"
    );
    Ok(())
}

pub async fn directory_ids_are_unique_and_a_clash_applies_nothing(
    store: Arc<dyn Store>,
) -> CaseResult {
    let eve = store
        .create_user(&from_directory("eve", "guid-eve", "staff"), NOW)
        .await?;
    ensure_err!(
        store
            .create_user(&from_directory("eve2", "guid-eve", "staff"), NOW)
            .await,
        Duplicate
    );
    let clash = DirectorySync {
        add: vec![
            from_directory("fay", "guid-fay", "staff"),
            from_directory("gus", "guid-eve", "staff"),
        ],
        disable: vec![eve.id],
        ..DirectorySync::default()
    };
    ensure_err!(store.apply_directory_sync(&clash, NOW).await, Duplicate);
    ensure_eq!(store.user_by_name("fay").await?, None, "all or nothing");
    let eve_now = store.user_by_id(eve.id).await?.ok_or("eve missing")?;
    ensure!(
        eve_now.enabled,
        "the disable in the failed call was rolled back"
    );
    // An update onto another user's name is a duplicate too.
    let hal = store
        .create_user(&from_directory("hal", "guid-hal", "staff"), NOW)
        .await?;
    let onto_eve = DirectorySync {
        update: vec![(hal.id, record("eve", "guid-hal", "staff"))],
        ..DirectorySync::default()
    };
    ensure_err!(store.apply_directory_sync(&onto_eve, NOW).await, Duplicate);
    Ok(())
}

pub async fn local_users_keep_no_directory_id(store: Arc<dyn Store>) -> CaseResult {
    // Many users without an ID do not clash with each other.
    let a = given_user(&*store, "local-a").await?;
    given_user(&*store, "local-b").await?;
    ensure_eq!(a.directory_id, None);
    ensure_eq!(a.sync_item, None);
    // Linking a local user to an entry.
    let link = DirectorySync {
        update: vec![(a.id, record("local-a", "guid-a", "staff"))],
        ..DirectorySync::default()
    };
    store.apply_directory_sync(&link, NOW).await?;
    let linked = store.user_by_id(a.id).await?.ok_or("user missing")?;
    ensure_eq!(linked.directory_id.as_deref(), Some("guid-a"));
    ensure_eq!(linked.created_at, NOW);
    Ok(())
}

pub async fn sync_state_starts_empty_and_round_trips(store: Arc<dyn Store>) -> CaseResult {
    ensure_eq!(store.sync_state().await?, SyncState::default());
    let state = SyncState {
        last_run: Some(NOW),
        last_summary: "added 3, updated 1".to_owned(),
        pending_count: 7,
        pending_reason: "7 users would be disabled".to_owned(),
        approved_count: Some(7),
        pending_phones: Vec::new(),
    };
    store.put_sync_state(&state).await?;
    ensure_eq!(store.sync_state().await?, state);
    // The lock is separate from the state.
    ensure!(
        store.acquire_sync_lock("node-a", NOW, NOW + 60).await?,
        "lock free"
    );
    store.put_sync_state(&SyncState::default()).await?;
    ensure!(
        !store.acquire_sync_lock("node-b", NOW, NOW + 60).await?,
        "writing the state does not release the lock"
    );
    ensure_eq!(store.sync_state().await?, SyncState::default());
    Ok(())
}

pub async fn sync_lock_has_one_holder_until_it_expires(store: Arc<dyn Store>) -> CaseResult {
    // Several nodes race for a free lock: exactly one wins.
    let mut racers = Vec::new();
    for n in 0..8 {
        let store = Arc::clone(&store);
        racers.push(tokio::spawn(async move {
            store
                .acquire_sync_lock(&format!("node-{n}"), NOW, NOW + 60)
                .await
        }));
    }
    let mut winners = 0;
    for racer in racers {
        if racer.await?? {
            winners += 1;
        }
    }
    ensure_eq!(winners, 1);
    ensure!(
        !store.acquire_sync_lock("late", NOW + 59, NOW + 120).await?,
        "still held"
    );
    ensure!(
        store.acquire_sync_lock("late", NOW + 60, NOW + 120).await?,
        "expired"
    );
    ensure!(
        store.acquire_sync_lock("late", NOW + 70, NOW + 180).await?,
        "holder extends"
    );
    store.release_sync_lock("someone-else").await?;
    ensure!(
        !store
            .acquire_sync_lock("other", NOW + 71, NOW + 100)
            .await?,
        "not released by others"
    );
    store.release_sync_lock("late").await?;
    ensure!(
        store
            .acquire_sync_lock("other", NOW + 71, NOW + 100)
            .await?,
        "released"
    );
    Ok(())
}

pub async fn held_phone_changes_round_trip_with_the_sync_state(
    store: Arc<dyn Store>,
) -> CaseResult {
    let held = vec![
        PendingPhone {
            user_id: 7,
            username: "alice".to_owned(),
            email: "alice@example.org".to_owned(),
            old_phone: "+15550000001".to_owned(),
            new_phone: "+15559999999".to_owned(),
            since: NOW,
        },
        PendingPhone {
            user_id: 8,
            username: "zoë \"quoted\"".to_owned(),
            email: String::new(),
            old_phone: String::new(),
            new_phone: "+41 44 668 18 00".to_owned(),
            since: NOW + 60,
        },
    ];
    let state = SyncState {
        last_run: Some(NOW),
        last_summary: "2 phone changes held".to_owned(),
        pending_phones: held.clone(),
        ..SyncState::default()
    };
    store.put_sync_state(&state).await?;
    ensure_eq!(store.sync_state().await?, state);
    // Approving the first leaves the second.
    let rest = SyncState {
        pending_phones: held.get(1..).unwrap_or_default().to_vec(),
        ..state
    };
    store.put_sync_state(&rest).await?;
    ensure_eq!(
        store.sync_state().await?.pending_phones,
        rest.pending_phones
    );
    store.put_sync_state(&SyncState::default()).await?;
    ensure_eq!(store.sync_state().await?.pending_phones, Vec::new());
    Ok(())
}
