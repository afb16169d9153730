//! Users: records, block, bypass, failure counter and PIN, plus the hot-path read.
//!
//! Each rule that must hold between nodes is one statement: PostgreSQL re-checks an
//! UPDATE's WHERE clause on the newest row version after waiting for a concurrent
//! writer (READ COMMITTED, "13.2.1" of the PostgreSQL docs), so counts add up and
//! single-use grants are used once.

use super::batch::{fetch_rows, Job};
use super::map::{
    db_err, get, is_unique_violation, token_from_row, user_from_row, TOKEN_COLUMNS_T, TOKEN_OFFSET,
    USER_COLUMNS, USER_COLUMNS_U,
};
use super::tokens::{insert_token, SealedToken};
use crate::crypto::Cipher;
use async_trait::async_trait;
use mfad_core::model::{NewUser, Token, User, UserId};
use mfad_core::store::{FailureState, StoreError, StoreResult, UserUpdate};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, PgPool, Row};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

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
/// Indexed lookups of the users and, through `tokens_user`, their enabled tokens.
static AUTH_SUBJECTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {} FROM users u
         LEFT JOIN tokens t ON t.user_id = u.id AND t.enabled
         WHERE u.username = ANY($1) ORDER BY u.id, t.serial",
        *USER_COLUMNS_U, *TOKEN_COLUMNS_T
    )
});

pub(super) fn not_found(id: UserId) -> StoreError {
    StoreError::NotFound(format!("user with id {id}"))
}

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
        Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate(match &user.directory_id {
            Some(id) => format!("user '{}' or directory ID {id}", user.username),
            None => format!("user '{}'", user.username),
        })),
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

/// Single use: only the statement that finds the bypass still valid clears it.
pub(super) async fn consume_bypass(
    conn: &mut PgConnection,
    id: UserId,
    now: i64,
) -> StoreResult<bool> {
    let done =
        sqlx::query("UPDATE users SET bypass_until = NULL WHERE id = $1 AND bypass_until > $2")
            .bind(id)
            .bind(now)
            .execute(conn)
            .await
            .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

/// A change of a user's failure counter: one more failed attempt under the lockout rule
/// in force, or a success that clears the count and any lock.
/// What one call does to a user's failure count.
#[derive(Clone, Copy)]
enum FailureOp {
    /// [`mfad_core::store::Store::take_attempt`].
    Take = 0,
    /// [`mfad_core::store::Store::clear_failures`].
    Clear = 1,
    /// [`mfad_core::store::Store::release_attempt`].
    Release = 2,
}

pub(super) struct FailureUpdate {
    id: UserId,
    op: FailureOp,
    max_failures: u32,
    now: i64,
    lockout_seconds: i64,
}

impl FailureUpdate {
    pub(super) fn take(id: UserId, now: i64, max_failures: u32, lockout_seconds: i64) -> Self {
        Self {
            id,
            op: FailureOp::Take,
            max_failures,
            now,
            lockout_seconds,
        }
    }

    fn other(id: UserId, op: FailureOp) -> Self {
        Self {
            id,
            op,
            max_failures: 0,
            now: 0,
            lockout_seconds: 0,
        }
    }

    pub(super) fn clear(id: UserId) -> Self {
        Self::other(id, FailureOp::Clear)
    }

    pub(super) fn release(id: UserId) -> Self {
        Self::other(id, FailureOp::Release)
    }
}

/// The failure counters of a batch's users, batched (see [`super::batch`]): each one
/// cleared, given a slot back, or given an attempt's slot (refused while locked), counted
/// up or reset with the user locked when it reaches the limit, in one transaction with
/// the rows locked in id order. `l` holds the locked rows as they are once locked, so
/// the refusal, the count and the lock are decided together; `failures = 0` with a lock
/// in the result means this call locked.
const UPDATE_FAILURES: &str = "
    WITH v AS (
        SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::bigint[],
            $5::bigint[]) AS v(id, op, max_failures, now, lockout)
    ), l AS (
        SELECT u.id, v.op = 0 AND COALESCE(u.locked_until > v.now, false) AS refused,
            v.op = 0 AND u.failures + 1 >= v.max_failures AS locks
        FROM users u JOIN v ON v.id = u.id ORDER BY u.id FOR UPDATE OF u
    )
    UPDATE users u SET
        failures = CASE WHEN l.refused THEN u.failures
            WHEN v.op = 1 OR l.locks THEN 0
            WHEN v.op = 2 THEN GREATEST(u.failures - 1, 0)
            ELSE u.failures + 1 END,
        locked_until = CASE WHEN l.refused OR v.op = 2 THEN u.locked_until
            WHEN v.op = 1 THEN NULL
            WHEN l.locks THEN v.now + v.lockout
            ELSE u.locked_until END
    FROM v JOIN l ON l.id = v.id
    WHERE u.id = v.id
    RETURNING u.id, l.refused, u.failures, CASE WHEN l.locks THEN u.locked_until END";

pub(super) struct FailureJob;

#[async_trait]
impl Job for FailureJob {
    type Item = FailureUpdate;
    /// The user's state after the change, `None` when a slot was refused; no answer for
    /// a user that does not exist.
    type Answer = Option<Option<FailureState>>;
    type Key = UserId;
    const MAX_BATCH: usize = 512;
    const WHAT: &'static str = "a failure count";
    const LABEL: &'static str = "failure";

    fn key(item: &FailureUpdate) -> &UserId {
        &item.id
    }

    async fn apply(
        &self,
        pool: &PgPool,
        items: Vec<&FailureUpdate>,
    ) -> StoreResult<Vec<Self::Answer>> {
        let statement = sqlx::query(UPDATE_FAILURES)
            .bind(items.iter().map(|f| f.id).collect::<Vec<_>>())
            .bind(items.iter().map(|f| f.op as i16).collect::<Vec<_>>())
            .bind(
                items
                    .iter()
                    .map(|f| i64::from(f.max_failures))
                    .collect::<Vec<_>>(),
            )
            .bind(items.iter().map(|f| f.now).collect::<Vec<_>>())
            .bind(items.iter().map(|f| f.lockout_seconds).collect::<Vec<_>>());
        let mut states = HashMap::new();
        for row in &fetch_rows(pool, statement).await? {
            let id: UserId = get(row, 0)?;
            let refused: bool = get(row, 1)?;
            let failures: i32 = get(row, 2)?;
            let state = FailureState {
                failures: u32::try_from(failures).unwrap_or_default(),
                locked_until: get(row, 3)?,
            };
            states.insert(id, (!refused).then_some(state));
        }
        Ok(items.iter().map(|f| states.remove(&f.id)).collect())
    }
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
    let mut hashes: Vec<String> = serde_json::from_str(&stored)
        .map_err(|e| StoreError::Corrupt(format!("PIN history of user with id {id}: {e}")))?;
    if let Some(hash) = pin_hash {
        hashes.insert(0, hash.to_owned());
    }
    hashes.truncate(history);
    let hashes = serde_json::to_string(&hashes)
        .map_err(|e| StoreError::Corrupt(format!("PIN history: {e}")))?;
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

/// The hot path's read, batched (see [`super::batch`]): the users a batch names and
/// their enabled tokens, in one indexed statement.
pub(super) struct SubjectJob {
    pub(super) cipher: Arc<Cipher>,
}

#[async_trait]
impl Job for SubjectJob {
    /// A normalised username.
    type Item = String;
    /// One user's answer: a row that cannot be read fails that user's call alone.
    type Answer = StoreResult<Option<(User, Vec<Token>)>>;
    type Key = String;
    const MAX_BATCH: usize = 256;
    const WHAT: &'static str = "a user lookup";
    const LABEL: &'static str = "lookup";

    fn key(username: &String) -> &String {
        username
    }

    async fn apply(
        &self,
        pool: &PgPool,
        usernames: Vec<&String>,
    ) -> StoreResult<Vec<Self::Answer>> {
        let rows = fetch_rows(pool, sqlx::query(&AUTH_SUBJECTS).bind(&usernames)).await?;
        // One row per enabled token (or one with NULL token columns for a user without
        // tokens), a user's rows together.
        let mut found: HashMap<String, Vec<PgRow>> = HashMap::new();
        for row in rows {
            let username: String = row.try_get("username").map_err(db_err)?;
            found.entry(username).or_default().push(row);
        }
        let subject = |rows: Vec<PgRow>| -> StoreResult<Option<(User, Vec<Token>)>> {
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            let user = user_from_row(first)?;
            let mut tokens = Vec::new();
            for row in &rows {
                let token_id: Option<i64> = get(row, TOKEN_OFFSET)?;
                if token_id.is_some() {
                    tokens.push(token_from_row(row, TOKEN_OFFSET, &self.cipher)?);
                }
            }
            Ok(Some((user, tokens)))
        };
        Ok(usernames
            .into_iter()
            .map(|u| subject(found.remove(u).unwrap_or_default()))
            .collect())
    }
}
