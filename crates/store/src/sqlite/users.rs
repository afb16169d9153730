//! Users: records, block, bypass grants and PIN ([`UserStore`]).
//!
//! Every function here runs on one connection, inside the writer's transaction for
//! writes; each rule that must hold between concurrent requests is one conditional
//! statement, so it also holds against a second process writing the same file.

use super::map::{db_err, is_unique_violation, user_from_row, USER_COLUMNS};
use super::tokens::insert_tokens;
use super::SqliteStore;
use crate::rules::{next_pin_history, user_not_found as not_found, user_taken};
use crate::sealed::SealedToken;
use async_trait::async_trait;
use mfad_core::model::{NewToken, NewUser, User, UserId};
use mfad_core::store::UserStore;
use mfad_core::store::{StoreError, StoreResult, UserUpdate};
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::LazyLock;

static INSERT_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO users (username, given_name, surname, email, phone, pin_mode, created_at,
             mobile, extension, language, directory_id, sync_item, method, backup_phone)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) RETURNING {}",
        *USER_COLUMNS
    )
});
static USER_BY_NAME: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM users WHERE username = ?1", *USER_COLUMNS));
static USER_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM users WHERE id = ?1", *USER_COLUMNS));
static USER_BY_DIRECTORY_ID: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM users WHERE directory_id = ?1",
        *USER_COLUMNS
    )
});
static LIST_USERS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM users ORDER BY username", *USER_COLUMNS));
static UPDATE_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE users SET given_name = coalesce(?2, given_name), surname = coalesce(?3, surname),
             email = coalesce(?4, email), phone = coalesce(?5, phone),
             pin_mode = coalesce(?6, pin_mode), enabled = coalesce(?7, enabled),
             method = coalesce(?8, method), backup_phone = coalesce(?9, backup_phone)
         WHERE id = ?1 RETURNING {}",
        *USER_COLUMNS
    )
});

/// A new user with its username already normalised.
pub(super) fn insert_user(conn: &Connection, user: &NewUser, now: i64) -> StoreResult<User> {
    let mut stmt = conn.prepare_cached(&INSERT_USER).map_err(db_err)?;
    let mut rows = stmt
        .query(params![
            user.username,
            user.given_name,
            user.surname,
            user.email,
            user.phone,
            user.pin_mode.to_string(),
            now,
            user.mobile,
            user.extension,
            user.language,
            user.directory_id,
            user.sync_item,
            user.method.as_str(),
            user.backup_phone
        ])
        .map_err(db_err)?;
    match rows.next() {
        Ok(Some(row)) => user_from_row(row),
        Ok(None) => Err(StoreError::Unavailable("insert returned no row".into())),
        Err(e) if is_unique_violation(&e) => {
            Err(user_taken(&user.username, user.directory_id.as_deref()))
        }
        Err(e) => Err(db_err(e)),
    }
}

/// The one user `sql` selects by `key`, if any.
fn one(conn: &Connection, sql: &str, key: impl rusqlite::ToSql) -> StoreResult<Option<User>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = stmt.query([key]).map_err(db_err)?;
    rows.next().map_err(db_err)?.map(user_from_row).transpose()
}

pub(super) fn by_name(conn: &Connection, username: &str) -> StoreResult<Option<User>> {
    one(conn, &USER_BY_NAME, username)
}

pub(super) fn by_id(conn: &Connection, id: UserId) -> StoreResult<Option<User>> {
    one(conn, &USER_BY_ID, id)
}

pub(super) fn by_directory_id(conn: &Connection, id: &str) -> StoreResult<Option<User>> {
    one(conn, &USER_BY_DIRECTORY_ID, id)
}

pub(super) fn list(conn: &Connection) -> StoreResult<Vec<User>> {
    let mut stmt = conn.prepare_cached(&LIST_USERS).map_err(db_err)?;
    let mut rows = stmt.query([]).map_err(db_err)?;
    let mut users = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        users.push(user_from_row(row)?);
    }
    Ok(users)
}

pub(super) fn update(conn: &Connection, id: UserId, u: &UserUpdate) -> StoreResult<User> {
    let mut stmt = conn.prepare_cached(&UPDATE_USER).map_err(db_err)?;
    let mut rows = stmt
        .query(params![
            id,
            u.given_name,
            u.surname,
            u.email,
            u.phone,
            u.pin_mode.map(|m| m.to_string()),
            u.enabled,
            u.method.map(|m| m.as_str()),
            u.backup_phone
        ])
        .map_err(db_err)?;
    match rows.next().map_err(db_err)? {
        Some(row) => user_from_row(row),
        None => Err(not_found(id)),
    }
}

/// Tokens and challenges go with the user through `ON DELETE CASCADE`.
pub(super) fn delete(conn: &Connection, id: UserId) -> StoreResult<()> {
    update_one(conn, id, "DELETE FROM users WHERE id = ?1", [id])?;
    // Cache keys are the engine's (`u:ID`, `uc:ID:CLIENT`, `uci:ID:CLIENT:STATION`) and
    // name the user by id as one `:`-separated field. Matching that field may also drop
    // another user's entry (a client named like the id), which only costs them one full
    // authentication; ids are never reused, so a missed entry could not apply anyway.
    conn.prepare_cached("DELETE FROM cached_auth WHERE ':' || key || ':' LIKE '%:' || ?1 || ':%'")
        .and_then(|mut s| s.execute([id]))
        .map_err(db_err)?;
    Ok(())
}

/// Runs a change of one user row and turns "no row" into `NotFound`.
pub(super) fn update_one(
    conn: &Connection,
    id: UserId,
    sql: &str,
    args: impl rusqlite::Params,
) -> StoreResult<()> {
    let changed = conn
        .prepare_cached(sql)
        .and_then(|mut s| s.execute(args))
        .map_err(db_err)?;
    if changed == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

pub(super) fn set_block(
    conn: &Connection,
    id: UserId,
    until: Option<i64>,
    reason: Option<&str>,
) -> StoreResult<()> {
    let reason = until.and(reason);
    update_one(
        conn,
        id,
        "UPDATE users SET blocked_until = ?2, block_reason = ?3 WHERE id = ?1",
        params![id, until, reason],
    )
}

pub(super) fn set_bypass(conn: &Connection, id: UserId, until: Option<i64>) -> StoreResult<()> {
    update_one(
        conn,
        id,
        "UPDATE users SET bypass_until = ?2 WHERE id = ?1",
        params![id, until],
    )
}

pub(super) fn exists(conn: &Connection, id: UserId) -> StoreResult<bool> {
    conn.prepare_cached("SELECT 1 FROM users WHERE id = ?1")
        .and_then(|mut s| s.exists([id]))
        .map_err(db_err)
}

/// Read-modify-write of the history; safe because the writer holds the write lock.
pub(super) fn set_pin(
    conn: &Connection,
    id: UserId,
    pin_hash: Option<&str>,
    change_required: bool,
    history: usize,
) -> StoreResult<()> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT pin_history FROM users WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(db_err)?;
    let stored = stored.ok_or_else(|| not_found(id))?;
    let hashes = next_pin_history(id, &stored, pin_hash, history)?;
    update_one(
        conn,
        id,
        "UPDATE users SET pin_hash = ?2, pin_change_required = ?3, pin_history = ?4 WHERE id = ?1",
        params![id, pin_hash, change_required, hashes],
    )
}

/// Users and their tokens; the caller's savepoint makes it all or nothing.
pub(super) fn insert_users_with_tokens(
    conn: &Connection,
    batch: &[(NewUser, Vec<SealedToken>)],
    now: i64,
) -> StoreResult<usize> {
    for (user, tokens) in batch {
        let created = insert_user(conn, user, now)?;
        insert_tokens(conn, tokens, Some(created.id), now)?;
    }
    Ok(batch.len())
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: &NewUser, now: i64) -> StoreResult<User> {
        let user = crate::normalised_user(user);
        self.write(move |c| insert_user(c, &user, now)).await
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        let username = crate::normalise_username(username);
        self.read(move |c, _| by_name(c, &username)).await
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        self.read(move |c, _| by_id(c, id)).await
    }

    async fn user_by_directory_id(&self, directory_id: &str) -> StoreResult<Option<User>> {
        let directory_id = directory_id.to_owned();
        self.read(move |c, _| by_directory_id(c, &directory_id))
            .await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.read_bulk(|c, _| list(c)).await
    }

    async fn update_user(&self, id: UserId, update: &UserUpdate) -> StoreResult<User> {
        let update = update.clone();
        self.write(move |c| self::update(c, id, &update)).await
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        self.write(move |c| delete(c, id)).await
    }

    async fn set_block(
        &self,
        id: UserId,
        until: Option<i64>,
        reason: Option<&str>,
    ) -> StoreResult<()> {
        let reason = reason.map(str::to_owned);
        self.write(move |c| set_block(c, id, until, reason.as_deref()))
            .await
    }

    async fn set_bypass(&self, id: UserId, until: Option<i64>) -> StoreResult<()> {
        self.write(move |c| set_bypass(c, id, until)).await
    }

    async fn set_pin(
        &self,
        id: UserId,
        pin_hash: Option<&str>,
        change_required: bool,
        history: usize,
    ) -> StoreResult<()> {
        let pin_hash = pin_hash.map(str::to_owned);
        self.write(move |c| set_pin(c, id, pin_hash.as_deref(), change_required, history))
            .await
    }

    async fn create_users_with_tokens(
        &self,
        batch: &[(NewUser, Vec<NewToken>)],
        now: i64,
    ) -> StoreResult<usize> {
        let batch = crate::sealed::users_with_tokens(&self.cipher, batch)?;
        self.write(move |c| insert_users_with_tokens(c, &batch, now))
            .await
    }
}
