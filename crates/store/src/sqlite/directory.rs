//! Directory sync: applying a sync plan, the sync bookkeeping and the scheduled-sync lock.

use super::map::{db_err, is_unique_violation};
use super::users;
use super::SqliteStore;
use crate::normalise_username as normalise;
use crate::pending_phones;
use crate::rules::{plan_steps, user_not_found, user_taken, PlanStep};
use async_trait::async_trait;
use mfad_core::store::DirectoryStore;
use mfad_core::store::{DirectoryRecord, DirectorySync, StoreResult, SyncState};
use rusqlite::{params, Connection};

/// Runs inside one writer savepoint: any error rolls the whole plan back. The changes go in
/// the order of [`plan_steps`].
pub(super) fn apply(conn: &Connection, changes: &DirectorySync, now: i64) -> StoreResult<()> {
    for step in plan_steps(changes) {
        match step {
            PlanStep::Update(id, record) => update(conn, id, record)?,
            PlanStep::Add(user) => {
                users::insert_user(conn, &crate::normalised_user(user), now)?;
            }
            PlanStep::Disable(id) => disable(conn, id)?,
            PlanStep::Remove(id) => users::delete(conn, id)?,
        }
    }
    Ok(())
}

fn disable(conn: &Connection, id: i64) -> StoreResult<()> {
    conn.prepare_cached("UPDATE users SET enabled = 0, sync_item = NULL WHERE id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map(drop)
        .map_err(db_err)
}

fn update(conn: &Connection, id: i64, r: &DirectoryRecord) -> StoreResult<()> {
    let changed = conn
        .prepare_cached(
            "UPDATE users SET directory_id = ?2, username = ?3, given_name = ?4, surname = ?5,
                 email = ?6, phone = ?7, mobile = ?8, extension = ?9, language = ?10,
                 sync_item = ?11, enabled = ?12
             WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                r.directory_id,
                normalise(&r.username),
                r.given_name,
                r.surname,
                r.email,
                r.phone,
                r.mobile,
                r.extension,
                r.language,
                r.sync_item,
                r.enabled
            ])
        });
    match changed {
        Ok(0) => Err(user_not_found(id)),
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(user_taken(&r.username, Some(&r.directory_id))),
        Err(e) => Err(db_err(e)),
    }
}

pub(super) fn state(conn: &Connection) -> StoreResult<SyncState> {
    conn.prepare_cached(
        "SELECT last_run, last_summary, pending_count, pending_reason, approved_count,
             pending_phones
         FROM directory_sync WHERE id = 1",
    )
    .and_then(|mut s| {
        s.query_row([], |r| {
            Ok((
                SyncState {
                    last_run: r.get(0)?,
                    last_summary: r.get(1)?,
                    pending_count: r.get(2)?,
                    pending_reason: r.get(3)?,
                    approved_count: r.get(4)?,
                    pending_phones: Vec::new(),
                },
                r.get::<_, String>(5)?,
            ))
        })
    })
    .map_err(db_err)
    .and_then(|(state, phones)| {
        Ok(SyncState {
            pending_phones: pending_phones::decode(&phones)?,
            ..state
        })
    })
}

pub(super) fn put_state(conn: &Connection, s: &SyncState) -> StoreResult<()> {
    let phones = pending_phones::encode(&s.pending_phones)?;
    conn.prepare_cached(
        "UPDATE directory_sync SET last_run = ?1, last_summary = ?2, pending_count = ?3,
             pending_reason = ?4, approved_count = ?5, pending_phones = ?6
         WHERE id = 1",
    )
    .and_then(|mut st| {
        st.execute(params![
            s.last_run,
            s.last_summary,
            s.pending_count,
            s.pending_reason,
            s.approved_count,
            phones
        ])
    })
    .map_err(db_err)?;
    Ok(())
}

/// One conditional update decides: free, expired, or ours.
pub(super) fn acquire_lock(
    conn: &Connection,
    holder: &str,
    now: i64,
    until: i64,
) -> StoreResult<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE directory_sync SET lock_holder = ?1, lock_until = ?3
             WHERE id = 1 AND (lock_holder IS NULL OR lock_until <= ?2 OR lock_holder = ?1)",
        )
        .and_then(|mut s| s.execute(params![holder, now, until]))
        .map_err(db_err)?;
    Ok(changed == 1)
}

pub(super) fn release_lock(conn: &Connection, holder: &str) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE directory_sync SET lock_holder = NULL, lock_until = NULL
         WHERE id = 1 AND lock_holder = ?1",
    )
    .and_then(|mut s| s.execute([holder]))
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn apply_directory_sync(&self, changes: &DirectorySync, now: i64) -> StoreResult<()> {
        let changes = changes.clone();
        self.write(move |c| apply(c, &changes, now)).await
    }

    async fn sync_state(&self) -> StoreResult<SyncState> {
        self.read(|c, _| state(c)).await
    }

    async fn put_sync_state(&self, state: &SyncState) -> StoreResult<()> {
        let state = state.clone();
        self.write(move |c| put_state(c, &state)).await
    }

    async fn acquire_sync_lock(&self, holder: &str, now: i64, until: i64) -> StoreResult<bool> {
        let holder = holder.to_owned();
        self.write(move |c| acquire_lock(c, &holder, now, until))
            .await
    }

    async fn release_sync_lock(&self, holder: &str) -> StoreResult<()> {
        let holder = holder.to_owned();
        self.write(move |c| release_lock(c, &holder)).await
    }
}
