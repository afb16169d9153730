//! Users: records, block, bypass grants and PIN ([`UserStore`]).
//!
//! Each rule that must hold between nodes is one statement: PostgreSQL re-checks an
//! UPDATE's WHERE clause on the newest row version after waiting for a concurrent
//! writer (READ COMMITTED, "13.2.1" of the PostgreSQL docs), so counts add up and
//! single-use grants are used once.

use super::map::{db_err, get, is_unique_violation, user_from_row, USER_COLUMNS};
use super::tokens::insert_token;
use super::PgStore;
use crate::rules::{next_pin_history, user_not_found as not_found, user_taken};
use crate::sealed::SealedToken;
use async_trait::async_trait;
use mfad_core::model::{NewToken, NewUser, User, UserId};
use mfad_core::store::UserStore;
use mfad_core::store::{StoreResult, UserUpdate};
use sqlx::{Connection, PgConnection};
use std::sync::LazyLock;

static INSERT_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO users (username, given_name, surname, email, phone, pin_mode, created_at,
             mobile, extension, language, directory_id, sync_item, method, backup_phone)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {}",
        *USER_COLUMNS
    )
});
static USER_BY_NAME: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM users WHERE username = $1", *USER_COLUMNS));
static USER_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM users WHERE id = $1", *USER_COLUMNS));
static USER_BY_DIRECTORY_ID: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM users WHERE directory_id = $1",
        *USER_COLUMNS
    )
});
static LIST_USERS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM users ORDER BY username", *USER_COLUMNS));
static UPDATE_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE users SET given_name = coalesce($2, given_name), surname = coalesce($3, surname),
             email = coalesce($4, email), phone = coalesce($5, phone),
             pin_mode = coalesce($6, pin_mode), enabled = coalesce($7, enabled),
             method = coalesce($8, method), backup_phone = coalesce($9, backup_phone)
         WHERE id = $1 RETURNING {}",
        *USER_COLUMNS
    )
});

/// A new user with its username already normalised.
pub(super) async fn insert_user(
    conn: &mut PgConnection,
    user: &NewUser,
    now: i64,
) -> StoreResult<User> {
    let row = sqlx::query(&INSERT_USER)
        .bind(&user.username)
        .bind(&user.given_name)
        .bind(&user.surname)
        .bind(&user.email)
        .bind(&user.phone)
        .bind(user.pin_mode.to_string())
        .bind(now)
        .bind(&user.mobile)
        .bind(&user.extension)
        .bind(&user.language)
        .bind(&user.directory_id)
        .bind(&user.sync_item)
        .bind(user.method.as_str())
        .bind(&user.backup_phone)
        .fetch_one(&mut *conn)
        .await;
    match row {
        Ok(row) => user_from_row(&row),
        Err(e) if is_unique_violation(&e) => {
            Err(user_taken(&user.username, user.directory_id.as_deref()))
        }
        Err(e) => Err(db_err(e)),
    }
}

pub(super) async fn by_name(conn: &mut PgConnection, username: &str) -> StoreResult<Option<User>> {
    let row = sqlx::query(&USER_BY_NAME)
        .bind(username)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(user_from_row).transpose()
}

pub(super) async fn by_id(conn: &mut PgConnection, id: UserId) -> StoreResult<Option<User>> {
    let row = sqlx::query(&USER_BY_ID)
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(user_from_row).transpose()
}

pub(super) async fn by_directory_id(
    conn: &mut PgConnection,
    id: &str,
) -> StoreResult<Option<User>> {
    let row = sqlx::query(&USER_BY_DIRECTORY_ID)
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(user_from_row).transpose()
}

pub(super) async fn list(conn: &mut PgConnection) -> StoreResult<Vec<User>> {
    let rows = sqlx::query(&LIST_USERS)
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    rows.iter().map(user_from_row).collect()
}

pub(super) async fn update(
    conn: &mut PgConnection,
    id: UserId,
    u: &UserUpdate,
) -> StoreResult<User> {
    let row = sqlx::query(&UPDATE_USER)
        .bind(id)
        .bind(&u.given_name)
        .bind(&u.surname)
        .bind(&u.email)
        .bind(&u.phone)
        .bind(u.pin_mode.map(|m| m.to_string()))
        .bind(u.enabled)
        .bind(u.method.map(|m| m.as_str()))
        .bind(&u.backup_phone)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    match row {
        Some(row) => user_from_row(&row),
        None => Err(not_found(id)),
    }
}

/// Runs a change of one user row and turns "no row" into `NotFound`.
async fn changed_one(
    id: UserId,
    done: Result<sqlx::postgres::PgQueryResult, sqlx::Error>,
) -> StoreResult<()> {
    if done.map_err(db_err)?.rows_affected() == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// Tokens and challenges go with the user through `ON DELETE CASCADE`; the cached
/// successes (keyed by the engine's `u:ID`, `uc:ID:CLIENT`, `uci:ID:CLIENT:STATION`) in
/// the same transaction, matched as in the SQLite store.
pub(super) async fn delete(conn: &mut PgConnection, id: UserId) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await;
    changed_one(id, deleted).await?;
    sqlx::query("DELETE FROM cached_auth WHERE ':' || key || ':' LIKE '%:' || $1 || ':%'")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

pub(super) async fn set_block(
    conn: &mut PgConnection,
    id: UserId,
    until: Option<i64>,
    reason: Option<&str>,
) -> StoreResult<()> {
    let reason = until.and(reason);
    let done = sqlx::query("UPDATE users SET blocked_until = $2, block_reason = $3 WHERE id = $1")
        .bind(id)
        .bind(until)
        .bind(reason)
        .execute(conn)
        .await;
    changed_one(id, done).await
}

pub(super) async fn set_bypass(
    conn: &mut PgConnection,
    id: UserId,
    until: Option<i64>,
) -> StoreResult<()> {
    let done = sqlx::query("UPDATE users SET bypass_until = $2 WHERE id = $1")
        .bind(id)
        .bind(until)
        .execute(conn)
        .await;
    changed_one(id, done).await
}

/// Read-modify-write of the history under `FOR UPDATE`, so two nodes setting PINs at
/// once both land in it.
pub(super) async fn set_pin(
    conn: &mut PgConnection,
    id: UserId,
    pin_hash: Option<&str>,
    change_required: bool,
    history: usize,
) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    let row = sqlx::query("SELECT pin_history FROM users WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
    let row = row.ok_or_else(|| not_found(id))?;
    let stored: String = get(&row, 0)?;
    let hashes = next_pin_history(id, &stored, pin_hash, history)?;
    sqlx::query(
        "UPDATE users SET pin_hash = $2, pin_change_required = $3, pin_history = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(pin_hash)
    .bind(change_required)
    .bind(hashes)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

/// Users and their tokens in one transaction: all or nothing.
pub(super) async fn insert_users_with_tokens(
    conn: &mut PgConnection,
    batch: &[(NewUser, Vec<SealedToken>)],
    now: i64,
) -> StoreResult<usize> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    for (user, tokens) in batch {
        let created = insert_user(&mut tx, user, now).await?;
        for token in tokens {
            insert_token(&mut tx, token, Some(created.id), now).await?;
        }
    }
    tx.commit().await.map_err(db_err)?;
    Ok(batch.len())
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, user: &NewUser, now: i64) -> StoreResult<User> {
        let user = crate::normalised_user(user);
        on_conn!(self, |c| super::users::insert_user(c, &user, now))
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        let username = crate::normalise_username(username);
        on_conn!(self, |c| super::users::by_name(c, &username))
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        on_conn!(self, |c| super::users::by_id(c, id))
    }

    async fn user_by_directory_id(&self, directory_id: &str) -> StoreResult<Option<User>> {
        on_conn!(self, |c| super::users::by_directory_id(c, directory_id))
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        on_conn!(self, |c| super::users::list(c))
    }

    async fn update_user(&self, id: UserId, update: &UserUpdate) -> StoreResult<User> {
        on_conn!(self, |c| super::users::update(c, id, update))
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        on_conn!(self, |c| super::users::delete(c, id))
    }

    async fn set_block(
        &self,
        id: UserId,
        until: Option<i64>,
        reason: Option<&str>,
    ) -> StoreResult<()> {
        on_conn!(self, |c| super::users::set_block(c, id, until, reason))
    }

    async fn set_bypass(&self, id: UserId, until: Option<i64>) -> StoreResult<()> {
        on_conn!(self, |c| super::users::set_bypass(c, id, until))
    }

    async fn set_pin(
        &self,
        id: UserId,
        pin_hash: Option<&str>,
        change_required: bool,
        history: usize,
    ) -> StoreResult<()> {
        on_conn!(self, |c| super::users::set_pin(
            c,
            id,
            pin_hash,
            change_required,
            history
        ))
    }

    async fn create_users_with_tokens(
        &self,
        batch: &[(NewUser, Vec<NewToken>)],
        now: i64,
    ) -> StoreResult<usize> {
        let batch = crate::sealed::users_with_tokens(&self.cipher, batch)?;
        // A bulk load runs as long as it needs: the deadline is for requests.
        let mut conn = self.conn().await?;
        let result = super::users::insert_users_with_tokens(&mut conn.0, &batch, now).await;
        conn.done(result)
    }
}
