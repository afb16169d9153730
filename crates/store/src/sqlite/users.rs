//! Users: records, block, bypass, failure counter and PIN, plus the hot-path read.
//!
//! Every function here runs on one connection, inside the writer's transaction for
//! writes; each rule that must hold between concurrent requests is one conditional
//! statement, so it also holds against a second process writing the same file.

use super::map::{
    db_err, is_unique_violation, token_from_row, user_from_row, TOKEN_COLUMNS_T, TOKEN_OFFSET,
    USER_COLUMNS, USER_COLUMNS_U,
};
use super::tokens::{insert_tokens, SealedToken};
use crate::crypto::Cipher;
use mfad_core::model::{NewUser, Token, User, UserId};
use mfad_core::store::{FailureState, StoreError, StoreResult, UserUpdate};
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
/// One indexed lookup of the user and, through `tokens_user`, their enabled tokens.
static AUTH_SUBJECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {} FROM users u
         LEFT JOIN tokens t ON t.user_id = u.id AND t.enabled = 1
         WHERE u.username = ?1",
        *USER_COLUMNS_U, *TOKEN_COLUMNS_T
    )
});

pub(super) fn not_found(id: UserId) -> StoreError {
    StoreError::NotFound(format!("user with id {id}"))
}

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
        Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate(match &user.directory_id {
            Some(id) => format!("user '{}' or directory ID {id}", user.username),
            None => format!("user '{}'", user.username),
        })),
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
fn update_one(
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

/// Whether a bypass is valid at `now`: a read that lets the common case (no bypass)
/// skip the writer; [`consume_bypass`] still decides.
pub(super) fn has_bypass(conn: &Connection, id: UserId, now: i64) -> StoreResult<bool> {
    conn.prepare_cached("SELECT 1 FROM users WHERE id = ?1 AND bypass_until > ?2")
        .and_then(|mut s| s.exists(params![id, now]))
        .map_err(db_err)
}

/// Single use: only the statement that finds the bypass still valid clears it.
pub(super) fn consume_bypass(conn: &Connection, id: UserId, now: i64) -> StoreResult<bool> {
    let changed = conn
        .prepare_cached("UPDATE users SET bypass_until = NULL WHERE id = ?1 AND bypass_until > ?2")
        .and_then(|mut s| s.execute(params![id, now]))
        .map_err(db_err)?;
    Ok(changed == 1)
}

/// One statement: the right-hand sides see the row before the update, so the count and
/// the lock are decided together; `failures = 0` in the result means this call locked.
/// No row updated: the user is locked (`None`) or does not exist (`NotFound`).
pub(super) fn take_attempt(
    conn: &Connection,
    id: UserId,
    now: i64,
    max_failures: u32,
    lockout_seconds: i64,
) -> StoreResult<Option<FailureState>> {
    let row: Option<(u32, Option<i64>)> = conn
        .prepare_cached(
            "UPDATE users SET
                 failures = CASE WHEN failures + 1 >= ?2 THEN 0 ELSE failures + 1 END,
                 locked_until = CASE WHEN failures + 1 >= ?2 THEN ?3 + ?4 ELSE locked_until END
             WHERE id = ?1 AND (locked_until IS NULL OR locked_until <= ?3)
             RETURNING failures, CASE WHEN failures = 0 THEN locked_until END",
        )
        .and_then(|mut s| {
            s.query_row(params![id, max_failures, now, lockout_seconds], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
        .map_err(db_err)?;
    match row {
        Some((failures, locked_until)) => Ok(Some(FailureState {
            failures,
            locked_until,
        })),
        None if exists(conn, id)? => Ok(None),
        None => Err(not_found(id)),
    }
}

/// The failure count and lock of a user (`NotFound` when there is none).
pub(super) fn failure_state(conn: &Connection, id: UserId) -> StoreResult<(u32, Option<i64>)> {
    conn.prepare_cached("SELECT failures, locked_until FROM users WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(db_err)?
        .ok_or_else(|| not_found(id))
}

fn exists(conn: &Connection, id: UserId) -> StoreResult<bool> {
    conn.prepare_cached("SELECT 1 FROM users WHERE id = ?1")
        .and_then(|mut s| s.exists([id]))
        .map_err(db_err)
}

pub(super) fn release_attempt(conn: &Connection, id: UserId) -> StoreResult<()> {
    let changed = conn
        .prepare_cached("UPDATE users SET failures = failures - 1 WHERE id = ?1 AND failures > 0")
        .and_then(|mut s| s.execute([id]))
        .map_err(db_err)?;
    if changed == 0 && !exists(conn, id)? {
        return Err(not_found(id));
    }
    Ok(())
}

pub(super) fn clear_failures(conn: &Connection, id: UserId) -> StoreResult<()> {
    update_one(
        conn,
        id,
        "UPDATE users SET failures = 0, locked_until = NULL WHERE id = ?1",
        [id],
    )
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
    let mut hashes: Vec<String> = serde_json::from_str(&stored)
        .map_err(|e| StoreError::Corrupt(format!("PIN history of user with id {id}: {e}")))?;
    if let Some(hash) = pin_hash {
        hashes.insert(0, hash.to_owned());
    }
    hashes.truncate(history);
    let hashes = serde_json::to_string(&hashes)
        .map_err(|e| StoreError::Corrupt(format!("PIN history: {e}")))?;
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

/// The hot path: one cached statement, one row per enabled token (or one with NULL
/// token columns for a user without tokens).
pub(super) fn auth_subject(
    conn: &Connection,
    cipher: &Cipher,
    username: &str,
) -> StoreResult<Option<(User, Vec<Token>)>> {
    let mut stmt = conn.prepare_cached(&AUTH_SUBJECT).map_err(db_err)?;
    let mut rows = stmt.query([username]).map_err(db_err)?;
    let mut subject: Option<(User, Vec<Token>)> = None;
    while let Some(row) = rows.next().map_err(db_err)? {
        let (_, tokens) = match &mut subject {
            Some(s) => s,
            None => subject.insert((user_from_row(row)?, Vec::new())),
        };
        let token_id: Option<i64> = row.get(TOKEN_OFFSET).map_err(db_err)?;
        if token_id.is_some() {
            tokens.push(token_from_row(row, TOKEN_OFFSET, cipher)?);
        }
    }
    // Sorted here rather than by SQL: a user has a token or two, and an ORDER BY
    // would build a temporary sorter on every authentication.
    if let Some((_, tokens)) = &mut subject {
        tokens.sort_by(|a, b| a.serial.cmp(&b.serial));
    }
    Ok(subject)
}
