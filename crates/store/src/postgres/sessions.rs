//! Short-lived state between requests: single-use challenges and cached successes.
//!
//! Both live in the database, so a challenge issued by one node is answered on another.

use super::map::{db_err, get, is_foreign_key_violation, is_unique_violation};
use crate::pending_txns;
use mfad_core::model::{Challenge, ChallengeKind};
use mfad_core::store::{PendingTxn, StoreError, StoreResult};
use sqlx::PgConnection;

pub(super) fn kind_to_json(kind: &ChallengeKind) -> StoreResult<String> {
    serde_json::to_string(kind).map_err(|e| StoreError::Corrupt(format!("challenge kind: {e}")))
}

pub(super) fn kind_from_json(kind: &str) -> StoreResult<ChallengeKind> {
    serde_json::from_str(kind).map_err(|e| StoreError::Corrupt(format!("challenge kind: {e}")))
}

pub(super) async fn put_challenge(
    conn: &mut PgConnection,
    c: &Challenge,
    kind_json: &str,
) -> StoreResult<()> {
    let inserted = sqlx::query(
        "INSERT INTO challenges (state, user_id, client, kind, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&c.state)
    .bind(c.user_id)
    .bind(&c.client)
    .bind(kind_json)
    .bind(c.expires_at)
    .execute(conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Duplicate("challenge with this state".into()))
        }
        Err(e) if is_foreign_key_violation(&e) => {
            Err(StoreError::NotFound(format!("user with id {}", c.user_id)))
        }
        Err(e) => Err(db_err(e)),
    }
}

/// `DELETE ... RETURNING` is the single-use guarantee: of two concurrent takes, on any
/// nodes, only one deletes the row. The same statement sweeps expired challenges and
/// cached successes (data-modifying CTEs all run, PostgreSQL docs 7.8.4), so the sweep
/// costs no extra round trip.
pub(super) async fn take_challenge(
    conn: &mut PgConnection,
    state: &[u8],
    now: i64,
) -> StoreResult<Option<Challenge>> {
    let row = sqlx::query(
        "WITH taken AS (
             DELETE FROM challenges WHERE state = $1
             RETURNING user_id, client, kind, expires_at
         ), swept AS (
             DELETE FROM challenges WHERE expires_at <= $2 AND state <> $1
         ), cache AS (
             DELETE FROM cached_auth WHERE until <= $2
         )
         SELECT user_id, client, kind, expires_at FROM taken",
    )
    .bind(state)
    .bind(now)
    .fetch_optional(conn)
    .await
    .map_err(db_err)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let expires_at: i64 = get(&row, 3)?;
    if expires_at <= now {
        return Ok(None);
    }
    let kind: String = get(&row, 2)?;
    Ok(Some(Challenge {
        state: state.to_vec(),
        user_id: get(&row, 0)?,
        client: get(&row, 1)?,
        kind: kind_from_json(&kind)?,
        expires_at,
    }))
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

// --- pending out-of-band transactions ----------------------------------------------

/// Inserts the transaction; the same statement sweeps expired ones.
pub(super) async fn put_pending(
    conn: &mut PgConnection,
    txn: &[u8],
    body: &str,
    expires_at: i64,
    now: i64,
) -> StoreResult<()> {
    let inserted = sqlx::query(
        "WITH swept AS (
             DELETE FROM pending_txns WHERE expires_at <= $4 AND txn <> $1
         )
         INSERT INTO pending_txns (txn, body, decision, expires_at)
         VALUES ($1, $2, NULL, $3)",
    )
    .bind(txn)
    .bind(body)
    .bind(expires_at)
    .bind(now)
    .execute(conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate(
            "pending transaction with this id".into(),
        )),
        Err(e) => Err(db_err(e)),
    }
}

fn pending_row(txn: &[u8], row: &sqlx::postgres::PgRow) -> StoreResult<PendingTxn> {
    let body: String = get(row, 0)?;
    let decision: Option<String> = get(row, 1)?;
    let expires_at: i64 = get(row, 2)?;
    pending_txns::decode(txn, &body, decision.as_deref(), expires_at)
}

pub(super) async fn pending(
    conn: &mut PgConnection,
    txn: &[u8],
    now: i64,
) -> StoreResult<Option<PendingTxn>> {
    let row = sqlx::query(
        "SELECT body, decision, expires_at FROM pending_txns
         WHERE txn = $1 AND expires_at > $2",
    )
    .bind(txn)
    .bind(now)
    .fetch_optional(conn)
    .await
    .map_err(db_err)?;
    row.map(|row| pending_row(txn, &row)).transpose()
}

/// `decision IS NULL` in the condition: of racing deciders on any nodes, one changes
/// the row.
pub(super) async fn decide_pending(
    conn: &mut PgConnection,
    txn: &[u8],
    decision: &str,
    now: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE pending_txns SET decision = $2
         WHERE txn = $1 AND decision IS NULL AND expires_at > $3",
    )
    .bind(txn)
    .bind(decision)
    .bind(now)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

/// `DELETE ... RETURNING`: of racing takes on any nodes, one removes the row and gets it.
pub(super) async fn take_decided(
    conn: &mut PgConnection,
    txn: &[u8],
    now: i64,
) -> StoreResult<Option<PendingTxn>> {
    let row = sqlx::query(
        "DELETE FROM pending_txns
         WHERE txn = $1 AND decision IS NOT NULL AND expires_at > $2
         RETURNING body, decision, expires_at",
    )
    .bind(txn)
    .bind(now)
    .fetch_optional(conn)
    .await
    .map_err(db_err)?;
    row.map(|row| pending_row(txn, &row)).transpose()
}

pub(super) async fn delete_pending(conn: &mut PgConnection, txn: &[u8]) -> StoreResult<()> {
    sqlx::query("DELETE FROM pending_txns WHERE txn = $1")
        .bind(txn)
        .execute(conn)
        .await
        .map(drop)
        .map_err(db_err)
}
