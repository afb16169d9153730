//! Short-lived state between requests: single-use challenges, cached successes and
//! pending out-of-band transactions.

use super::map::db_err;
use crate::pending_txns;
use mfad_core::model::{Challenge, ChallengeKind};
use mfad_core::store::{PendingTxn, StoreError, StoreResult};
use rusqlite::{params, Connection, OptionalExtension};

pub(super) fn put_challenge(conn: &Connection, c: &Challenge, kind_json: &str) -> StoreResult<()> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO challenges (state, user_id, client, kind, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                c.state,
                c.user_id,
                c.client,
                kind_json,
                c.expires_at
            ])
        });
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if super::map::is_unique_violation(&e) => {
            Err(StoreError::Duplicate("challenge with this state".into()))
        }
        Err(e) if super::map::is_foreign_key_violation(&e) => {
            Err(StoreError::NotFound(format!("user with id {}", c.user_id)))
        }
        Err(e) => Err(db_err(e)),
    }
}

pub(super) fn kind_to_json(kind: &ChallengeKind) -> StoreResult<String> {
    serde_json::to_string(kind).map_err(|e| StoreError::Corrupt(format!("challenge kind: {e}")))
}

/// `DELETE ... RETURNING` is the single-use guarantee: of two concurrent takes, only
/// one deletes the row. Expired challenges are removed here too, lazily.
pub(super) fn take_challenge(
    conn: &Connection,
    state: &[u8],
    now: i64,
) -> StoreResult<Option<Challenge>> {
    let taken: Option<(i64, String, String, i64)> = conn
        .prepare_cached(
            "DELETE FROM challenges WHERE state = ?1
             RETURNING user_id, client, kind, expires_at",
        )
        .and_then(|mut s| {
            s.query_row([state], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(db_err)?;
    conn.prepare_cached("DELETE FROM challenges WHERE expires_at <= ?1")
        .and_then(|mut s| s.execute([now]))
        .map_err(db_err)?;
    // The cache has no call that carries the time except reads, so expired cached
    // successes are swept here as well.
    conn.prepare_cached("DELETE FROM cached_auth WHERE until <= ?1")
        .and_then(|mut s| s.execute([now]))
        .map_err(db_err)?;
    let Some((user_id, client, kind, expires_at)) = taken else {
        return Ok(None);
    };
    if expires_at <= now {
        return Ok(None);
    }
    let kind = serde_json::from_str(&kind)
        .map_err(|e| StoreError::Corrupt(format!("challenge kind: {e}")))?;
    Ok(Some(Challenge {
        state: state.to_vec(),
        user_id,
        client,
        kind,
        expires_at,
    }))
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

// --- pending out-of-band transactions ----------------------------------------------

pub(super) fn put_pending(
    conn: &Connection,
    txn: &[u8],
    body: &str,
    expires_at: i64,
    now: i64,
) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM pending_txns WHERE expires_at <= ?1")
        .and_then(|mut s| s.execute([now]))
        .map_err(db_err)?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO pending_txns (txn, body, decision, expires_at)
             VALUES (?1, ?2, NULL, ?3)",
        )
        .and_then(|mut s| s.execute(params![txn, body, expires_at]));
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if super::map::is_unique_violation(&e) => Err(StoreError::Duplicate(
            "pending transaction with this id".into(),
        )),
        Err(e) => Err(db_err(e)),
    }
}

pub(super) fn pending(conn: &Connection, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>> {
    let row: Option<(String, Option<String>, i64)> = conn
        .prepare_cached(
            "SELECT body, decision, expires_at FROM pending_txns
             WHERE txn = ?1 AND expires_at > ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![txn, now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(db_err)?;
    row.map(|(body, decision, expires_at)| {
        pending_txns::decode(txn, &body, decision.as_deref(), expires_at)
    })
    .transpose()
}

/// `decision IS NULL` in the condition: of racing deciders, one changes the row.
pub(super) fn decide_pending(
    conn: &Connection,
    txn: &[u8],
    decision: &str,
    now: i64,
) -> StoreResult<bool> {
    conn.prepare_cached(
        "UPDATE pending_txns SET decision = ?2
         WHERE txn = ?1 AND decision IS NULL AND expires_at > ?3",
    )
    .and_then(|mut s| s.execute(params![txn, decision, now]))
    .map(|changed| changed == 1)
    .map_err(db_err)
}

/// `DELETE ... RETURNING`: of racing takes, one removes the row and gets it.
pub(super) fn take_decided(
    conn: &Connection,
    txn: &[u8],
    now: i64,
) -> StoreResult<Option<PendingTxn>> {
    let row: Option<(String, Option<String>, i64)> = conn
        .prepare_cached(
            "DELETE FROM pending_txns
             WHERE txn = ?1 AND decision IS NOT NULL AND expires_at > ?2
             RETURNING body, decision, expires_at",
        )
        .and_then(|mut s| {
            s.query_row(params![txn, now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(db_err)?;
    row.map(|(body, decision, expires_at)| {
        pending_txns::decode(txn, &body, decision.as_deref(), expires_at)
    })
    .transpose()
}

pub(super) fn delete_pending(conn: &Connection, txn: &[u8]) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM pending_txns WHERE txn = ?1")
        .and_then(|mut s| s.execute([txn]))
        .map(drop)
        .map_err(db_err)
}
