//! The hot path: the subject lookup, lockout slots, replay protection, bypasses, the
//! cache of recent successes and abuse limits.
//!
//! Each rule that must hold between nodes is one statement: PostgreSQL re-checks an
//! UPDATE's WHERE clause on the newest row version after waiting for a concurrent
//! writer (READ COMMITTED, "13.2.1" of the PostgreSQL docs), so counts add up and
//! single-use grants are used once. The hottest statements are batched (see
//! [`super::batch`]).

use super::advance::Advance;
use super::batch::{fetch_rows, Job};
use super::map::{
    self, db_err, get, has_token, token_from_row, user_from_row, TOKEN_COLUMNS_T, TOKEN_OFFSET,
    USER_COLUMNS_U,
};
use super::{attempt, PgStore};
use crate::crypto::Cipher;
use crate::rules::{token_not_found, user_not_found as not_found};
use async_trait::async_trait;
use mfad_core::audit::AuditRecord;
use mfad_core::model::{Token, TokenId, User, UserId};
use mfad_core::store::{AuthStore, CodeAttempt, FailureState, StoreError, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// Indexed lookups of the users and, through `tokens_user`, their enabled tokens.
static AUTH_SUBJECTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {} FROM users u
         LEFT JOIN tokens t ON t.user_id = u.id AND t.enabled
         WHERE u.username = ANY($1) ORDER BY u.id, t.serial",
        *USER_COLUMNS_U, *TOKEN_COLUMNS_T
    )
});

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
    /// [`mfad_core::store::AuthStore::take_attempt`].
    Take = 0,
    /// [`mfad_core::store::AuthStore::clear_failures`].
    Clear = 1,
    /// [`mfad_core::store::AuthStore::release_attempt`].
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
                if has_token(row, TOKEN_OFFSET)? {
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

pub(super) async fn put_cached_auth(
    conn: &mut PgConnection,
    key: &str,
    until: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO cached_auth (key, until) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET until = excluded.until",
    )
    .bind(key)
    .bind(until)
    .execute(conn)
    .await
    .map(drop)
    .map_err(db_err)
}

pub(super) async fn cached_auth(conn: &mut PgConnection, key: &str, now: i64) -> StoreResult<bool> {
    let row = sqlx::query("SELECT 1 FROM cached_auth WHERE key = $1 AND until > $2")
        .bind(key)
        .bind(now)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    Ok(row.is_some())
}

/// One upsert decides, as in SQLite: a lapsed window restarts at 1, a use within the
/// limit counts, a refused one does not (the count stops at `limit + 1`). The row lock
/// the upsert takes serialises nodes counting the same key.
pub(super) async fn take_rate(
    conn: &mut PgConnection,
    key: &str,
    now: i64,
    window: i64,
    limit: u32,
) -> StoreResult<bool> {
    let count: i64 = sqlx::query_scalar(
        "INSERT INTO rate_limits AS r (key, window_start, count) VALUES ($1, $2, 1)
         ON CONFLICT (key) DO UPDATE SET
             window_start = CASE WHEN r.window_start + $3 <= $2 THEN $2 ELSE r.window_start END,
             count = CASE WHEN r.window_start + $3 <= $2 THEN 1
                          WHEN r.count <= $4 THEN r.count + 1 ELSE r.count END
         RETURNING count",
    )
    .bind(key)
    .bind(now)
    .bind(window)
    .bind(i64::from(limit))
    .fetch_one(conn)
    .await
    .map_err(db_err)?;
    Ok(count <= i64::from(limit))
}

pub(super) async fn set_resync(
    conn: &mut PgConnection,
    token: TokenId,
    resync: Option<u64>,
) -> StoreResult<()> {
    let resync = resync.map(map::counter).transpose()?;
    let done = sqlx::query("UPDATE tokens SET resync = $2 WHERE id = $1")
        .bind(token)
        .bind(resync)
        .execute(conn)
        .await
        .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(token_not_found(token));
    }
    Ok(())
}

#[async_trait]
impl AuthStore for PgStore {
    async fn auth_subject(&self, username: &str) -> StoreResult<Option<(User, Vec<Token>)>> {
        let username = crate::normalise_username(username);
        self.bounded(self.subjects.call(username)).await?
    }

    async fn take_attempt(
        &self,
        id: UserId,
        now: i64,
        max_failures: u32,
        lockout_seconds: i64,
    ) -> StoreResult<Option<FailureState>> {
        let take = FailureUpdate::take(id, now, max_failures, lockout_seconds);
        self.bounded(self.failures.call(take))
            .await?
            .ok_or_else(|| not_found(id))
    }

    async fn attempt_code(
        &self,
        user: UserId,
        fresh: Option<(TokenId, u64)>,
        now: i64,
        max_failures: u32,
        lockout_seconds: i64,
        accepted: Option<AuditRecord>,
    ) -> StoreResult<CodeAttempt> {
        let fresh = match fresh {
            Some((token, used)) => {
                let used = map::counter(used)?;
                if used == i64::MAX {
                    return Err(StoreError::Corrupt(format!(
                        "counter {used} cannot be advanced"
                    )));
                }
                Some((token, used))
            }
            None => None,
        };
        let attempt = attempt::Attempt {
            user,
            fresh,
            now,
            max_failures: i64::from(max_failures),
            lockout_seconds,
            accepted,
        };
        self.bounded(self.attempts.call(attempt))
            .await?
            .ok_or_else(|| not_found(user))
    }

    async fn release_attempt(&self, id: UserId) -> StoreResult<()> {
        self.bounded(self.failures.call(FailureUpdate::release(id)))
            .await?
            .map(drop)
            .ok_or_else(|| not_found(id))
    }

    async fn clear_failures(&self, id: UserId) -> StoreResult<()> {
        self.bounded(self.failures.call(FailureUpdate::clear(id)))
            .await?
            .map(drop)
            .ok_or_else(|| not_found(id))
    }

    async fn advance_token(&self, token: TokenId, used: u64) -> StoreResult<bool> {
        let used = map::counter(used)?;
        if used == i64::MAX {
            return Err(StoreError::Corrupt(format!(
                "counter {used} cannot be advanced"
            )));
        }
        self.bounded(self.advances.call(Advance { token, used }))
            .await
    }

    async fn set_token_resync(&self, token: TokenId, resync: Option<u64>) -> StoreResult<()> {
        on_conn!(self, |c| set_resync(c, token, resync))
    }

    async fn consume_bypass(&self, id: UserId, now: i64) -> StoreResult<bool> {
        on_conn!(self, |c| consume_bypass(c, id, now))
    }

    async fn put_cached_auth(&self, key: &str, until: i64) -> StoreResult<()> {
        on_conn!(self, |c| put_cached_auth(c, key, until))
    }

    async fn cached_auth(&self, key: &str, now: i64) -> StoreResult<bool> {
        on_conn!(self, |c| cached_auth(c, key, now))
    }

    async fn take_rate(
        &self,
        key: &str,
        now: i64,
        window_seconds: i64,
        limit: u32,
    ) -> StoreResult<bool> {
        on_conn!(self, |c| take_rate(c, key, now, window_seconds, limit))
    }
}
