//! The hot path: the subject lookup, lockout slots, replay protection, bypasses, the
//! cache of recent successes and abuse limits.
//!
//! The writer runs one operation at a time, so a rule written as a read and a write
//! inside one operation is as atomic as one statement; each rule that must also hold
//! against a second process writing the same file is one conditional statement.

use super::audit::insert_audit;
use super::map::{
    counter, db_err, has_token, token_from_row, user_from_row, TOKEN_COLUMNS_T, TOKEN_OFFSET,
    USER_COLUMNS_U,
};
use super::users::{exists, update_one};
use super::writer::{self, Command, Heard};
use super::{writer_gone, SqliteStore};
use crate::crypto::Cipher;
use crate::rules::{token_not_found, user_not_found as not_found};
use async_trait::async_trait;
use mfad_core::audit::AuditRecord;
use mfad_core::model::{Token, TokenId, User, UserId};
use mfad_core::store::{AuthStore, CodeAttempt, FailureState, StoreError, StoreResult};
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::LazyLock;

/// One indexed lookup of the user and, through `tokens_user`, their enabled tokens.
static AUTH_SUBJECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {} FROM users u
         LEFT JOIN tokens t ON t.user_id = u.id AND t.enabled = 1
         WHERE u.username = ?1",
        *USER_COLUMNS_U, *TOKEN_COLUMNS_T
    )
});

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
        if has_token(row, TOKEN_OFFSET)? {
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

/// One statement, so concurrent uses from any process are counted exactly. The count
/// stops at `limit + 1`: a refused use does not count, and the answer is whether the
/// count after this use is within the limit.
pub(super) fn take_rate(
    conn: &Connection,
    key: &str,
    now: i64,
    window: i64,
    limit: u32,
) -> StoreResult<bool> {
    let count: i64 = conn
        .prepare_cached(
            "INSERT INTO rate_limits (key, window_start, count) VALUES (?1, ?2, 1)
             ON CONFLICT (key) DO UPDATE SET
                 window_start = CASE WHEN window_start + ?3 <= ?2 THEN ?2 ELSE window_start END,
                 count = CASE WHEN window_start + ?3 <= ?2 THEN 1
                              WHEN count <= ?4 THEN count + 1 ELSE count END
             RETURNING count",
        )
        .and_then(|mut s| s.query_row(params![key, now, window, limit], |r| r.get(0)))
        .map_err(db_err)?;
    Ok(count <= i64::from(limit))
}

pub(super) fn put_cached_auth(conn: &Connection, key: &str, until: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO cached_auth (key, until) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET until = excluded.until",
    )
    .and_then(|mut s| s.execute(params![key, until]))
    .map(drop)
    .map_err(db_err)
}

pub(super) fn cached_auth(conn: &Connection, key: &str, now: i64) -> StoreResult<bool> {
    conn.prepare_cached("SELECT 1 FROM cached_auth WHERE key = ?1 AND until > ?2")
        .and_then(|mut s| s.exists(params![key, now]))
        .map_err(db_err)
}

/// Replay protection (DESIGN.md): the conditional update is the whole decision, so two
/// requests with the same code, on any node or process, cannot both see `true`.
pub(super) fn advance(conn: &Connection, token: TokenId, used: u64) -> StoreResult<bool> {
    let (used, next) = step(used)?;
    let changed = conn
        .prepare_cached("UPDATE tokens SET next = ?3, resync = NULL WHERE id = ?1 AND next <= ?2")
        .and_then(|mut s| s.execute(params![token, used, next]))
        .map_err(db_err)?;
    Ok(changed == 1)
}

/// [`advance`] while `user` has no failure counted and no lock, expired or not: an
/// accepted code's common case in one statement, with nothing to clear. False when the
/// code was used or the user has either.
fn advance_clean(conn: &Connection, user: UserId, token: TokenId, used: u64) -> StoreResult<bool> {
    let (used, next) = step(used)?;
    let changed = conn
        .prepare_cached(
            "UPDATE tokens SET next = ?3, resync = NULL WHERE id = ?1 AND next <= ?2
             AND EXISTS (SELECT 1 FROM users
                 WHERE id = ?4 AND failures = 0 AND locked_until IS NULL)",
        )
        .and_then(|mut s| s.execute(params![token, used, next, user]))
        .map_err(db_err)?;
    Ok(changed == 1)
}

/// A used counter value and the next one, as stored.
fn step(used: u64) -> StoreResult<(i64, i64)> {
    let used = counter(used)?;
    let next = used
        .checked_add(1)
        .ok_or_else(|| StoreError::Corrupt(format!("counter {used} cannot be advanced")))?;
    Ok((used, next))
}

pub(super) fn set_resync(
    conn: &Connection,
    token: TokenId,
    resync: Option<u64>,
) -> StoreResult<()> {
    let resync = resync.map(counter).transpose()?;
    let changed = conn
        .prepare_cached("UPDATE tokens SET resync = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![token, resync]))
        .map_err(db_err)?;
    if changed == 0 {
        return Err(token_not_found(token));
    }
    Ok(())
}

#[async_trait]
impl AuthStore for SqliteStore {
    async fn auth_subject(&self, username: &str) -> StoreResult<Option<(User, Vec<Token>)>> {
        let username = crate::normalise_username(username);
        self.read(move |c, cipher| auth_subject(c, cipher, &username))
            .await
    }

    async fn take_attempt(
        &self,
        id: UserId,
        now: i64,
        max_failures: u32,
        lockout_seconds: i64,
    ) -> StoreResult<Option<FailureState>> {
        // Answered as soon as the writer has applied it, before the commit: every later
        // write (another attempt's slot, this attempt's outcome) goes through the same
        // writer after it, so the slot holds for them, and the outcome of the attempt
        // becomes durable in the same or a later commit. Waiting for the fsync here
        // would double the latency of every authentication.
        self.write_early(move |c| take_attempt(c, id, now, max_failures, lockout_seconds))
            .await
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
        // The trait's rule in one visit to the writer. The writer runs one op at a time,
        // so checking the lock within the op is as atomic as the trait's order, and a
        // fresh code of a user with nothing counted, the common case, costs one
        // statement (`advance_clean`). A failed attempt is answered once applied (the engine's audit record of it,
        // committed after it, makes it durable); an accepted one with its audit record
        // in the same transaction, once durable: one commit per Accept.
        let (op, done) = writer::decided(move |c| {
            if let Some((token, used)) = fresh {
                let mut advanced = advance_clean(c, user, token, used)?;
                if !advanced {
                    let (failures, locked_until) = failure_state(c, user)?;
                    if locked_until.is_some_and(|until| until > now) {
                        return Ok((CodeAttempt::Locked, Heard::Applied));
                    }
                    advanced = advance(c, token, used)?;
                    if advanced && (failures > 0 || locked_until.is_some()) {
                        clear_failures(c, user)?;
                    }
                }
                if advanced {
                    let Some(record) = accepted else {
                        return Ok((CodeAttempt::Accepted, Heard::Applied));
                    };
                    insert_audit(c, &record)?;
                    return Ok((CodeAttempt::Accepted, Heard::Durable));
                }
            }
            let attempt = match take_attempt(c, user, now, max_failures, lockout_seconds)? {
                None => CodeAttempt::Locked,
                Some(state) => CodeAttempt::Failed {
                    replayed: fresh.is_some(),
                    state,
                },
            };
            Ok((attempt, Heard::Applied))
        });
        self.send(Command::Write(op)).await?;
        done.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    async fn release_attempt(&self, id: UserId) -> StoreResult<()> {
        self.write_early(move |c| release_attempt(c, id)).await
    }

    async fn clear_failures(&self, id: UserId) -> StoreResult<()> {
        // Like a slot: every later write sees it; a crash before its commit leaves the
        // user with the count of the attempt that succeeded, which errs on the safe side.
        self.write_early(move |c| clear_failures(c, id)).await
    }

    async fn advance_token(&self, token: TokenId, used: u64) -> StoreResult<bool> {
        self.write_statement(move |c| advance(c, token, used)).await
    }

    async fn set_token_resync(&self, token: TokenId, resync: Option<u64>) -> StoreResult<()> {
        self.write(move |c| set_resync(c, token, resync)).await
    }

    async fn consume_bypass(&self, id: UserId, now: i64) -> StoreResult<bool> {
        // The engine asks on every authentication and almost nobody has a bypass: answer
        // "none" from a reader instead of waiting for a commit. Returning false when a
        // grant lands just after the read is the same as this call coming first.
        if !self.read(move |c, _| has_bypass(c, id, now)).await? {
            return Ok(false);
        }
        self.write(move |c| consume_bypass(c, id, now)).await
    }

    async fn put_cached_auth(&self, key: &str, until: i64) -> StoreResult<()> {
        let key = key.to_owned();
        self.write(move |c| put_cached_auth(c, &key, until)).await
    }

    async fn cached_auth(&self, key: &str, now: i64) -> StoreResult<bool> {
        let key = key.to_owned();
        self.read(move |c, _| cached_auth(c, &key, now)).await
    }

    async fn take_rate(
        &self,
        key: &str,
        now: i64,
        window_seconds: i64,
        limit: u32,
    ) -> StoreResult<bool> {
        let key = key.to_owned();
        self.write(move |c| take_rate(c, &key, now, window_seconds, limit))
            .await
    }
}
