//! Directory sync: applying a sync plan, the sync bookkeeping and the scheduled-sync lock.

use super::map::{db_err, get, is_unique_violation};
use super::users;
use super::PgStore;
use crate::pending_phones;
use crate::rules::{plan_steps, user_not_found, user_taken, PlanStep};
use async_trait::async_trait;
use mfad_core::store::DirectoryStore;
use mfad_core::store::{DirectoryRecord, DirectorySync, StoreError, StoreResult, SyncState};
use sqlx::{Connection, PgConnection};

/// One transaction: any error rolls the whole plan back. The changes go in the order
/// of [`plan_steps`].
pub(super) async fn apply(
    conn: &mut PgConnection,
    changes: &DirectorySync,
    now: i64,
) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    for step in plan_steps(changes) {
        match step {
            PlanStep::Update(id, record) => update(&mut tx, id, record).await?,
            PlanStep::Add(user) => {
                users::insert_user(&mut tx, &crate::normalised_user(user), now).await?;
            }
            PlanStep::Disable(id) => disable(&mut tx, id).await?,
            PlanStep::Remove(id) => users::delete(&mut tx, id).await?,
        }
    }
    tx.commit().await.map_err(db_err)
}

async fn disable(conn: &mut PgConnection, id: i64) -> StoreResult<()> {
    sqlx::query("UPDATE users SET enabled = FALSE, sync_item = NULL WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(drop)
        .map_err(db_err)
}

async fn update(conn: &mut PgConnection, id: i64, r: &DirectoryRecord) -> StoreResult<()> {
    let changed = sqlx::query(
        "UPDATE users SET directory_id = $2, username = $3, given_name = $4, surname = $5,
             email = $6, phone = $7, mobile = $8, extension = $9, language = $10,
             sync_item = $11, enabled = $12
         WHERE id = $1",
    )
    .bind(id)
    .bind(&r.directory_id)
    .bind(crate::normalise_username(&r.username))
    .bind(&r.given_name)
    .bind(&r.surname)
    .bind(&r.email)
    .bind(&r.phone)
    .bind(&r.mobile)
    .bind(&r.extension)
    .bind(&r.language)
    .bind(&r.sync_item)
    .bind(r.enabled)
    .execute(conn)
    .await;
    match changed {
        Ok(done) if done.rows_affected() == 0 => Err(user_not_found(id)),
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(user_taken(&r.username, Some(&r.directory_id))),
        Err(e) => Err(db_err(e)),
    }
}

fn count(value: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is out of range")))
}

pub(super) async fn state(conn: &mut PgConnection) -> StoreResult<SyncState> {
    let row = sqlx::query(
        "SELECT last_run, last_summary, pending_count, pending_reason, approved_count,
             pending_phones
         FROM directory_sync WHERE id = 1",
    )
    .fetch_one(conn)
    .await
    .map_err(db_err)?;
    let pending: i64 = get(&row, 2)?;
    let approved: Option<i64> = get(&row, 4)?;
    let phones: String = get(&row, 5)?;
    Ok(SyncState {
        last_run: get(&row, 0)?,
        last_summary: get(&row, 1)?,
        pending_count: count(pending, "pending count")?,
        pending_reason: get(&row, 3)?,
        approved_count: approved.map(|a| count(a, "approved count")).transpose()?,
        pending_phones: pending_phones::decode(&phones)?,
    })
}

pub(super) async fn put_state(conn: &mut PgConnection, s: &SyncState) -> StoreResult<()> {
    sqlx::query(
        "UPDATE directory_sync SET last_run = $1, last_summary = $2, pending_count = $3,
             pending_reason = $4, approved_count = $5, pending_phones = $6
         WHERE id = 1",
    )
    .bind(s.last_run)
    .bind(&s.last_summary)
    .bind(i64::from(s.pending_count))
    .bind(&s.pending_reason)
    .bind(s.approved_count.map(i64::from))
    .bind(pending_phones::encode(&s.pending_phones)?)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// One conditional update decides: free, expired, or ours. PostgreSQL re-checks the
/// WHERE clause on the newest row after waiting for a concurrent writer, so of several
/// nodes exactly one gets the lock.
pub(super) async fn acquire_lock(
    conn: &mut PgConnection,
    holder: &str,
    now: i64,
    until: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE directory_sync SET lock_holder = $1, lock_until = $3
         WHERE id = 1 AND (lock_holder IS NULL OR lock_until <= $2 OR lock_holder = $1)",
    )
    .bind(holder)
    .bind(now)
    .bind(until)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn release_lock(conn: &mut PgConnection, holder: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE directory_sync SET lock_holder = NULL, lock_until = NULL
         WHERE id = 1 AND lock_holder = $1",
    )
    .bind(holder)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl DirectoryStore for PgStore {
    async fn apply_directory_sync(&self, changes: &DirectorySync, now: i64) -> StoreResult<()> {
        // A sync plan runs as long as it needs, like a bulk load: the deadline is for
        // requests.
        let mut conn = self.conn().await?;
        let result = apply(&mut conn.0, changes, now).await;
        conn.done(result)
    }

    async fn sync_state(&self) -> StoreResult<SyncState> {
        on_conn!(self, |c| state(c))
    }

    async fn put_sync_state(&self, state: &SyncState) -> StoreResult<()> {
        on_conn!(self, |c| put_state(c, state))
    }

    async fn acquire_sync_lock(&self, holder: &str, now: i64, until: i64) -> StoreResult<bool> {
        on_conn!(self, |c| acquire_lock(c, holder, now, until))
    }

    async fn release_sync_lock(&self, holder: &str) -> StoreResult<()> {
        on_conn!(self, |c| release_lock(c, holder))
    }
}
