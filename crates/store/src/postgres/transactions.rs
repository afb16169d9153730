//! Transactions between requests ([`TransactionStore`]): single-use challenges and
//! pending out-of-band logins.
//!
//! They live in the database, so a transaction started on one node is finished on another.

use super::audit::insert_batch;
use super::map::{db_err, get, is_foreign_key_violation, is_unique_violation};
use super::PgStore;
use crate::pending_txns;
use crate::rules::{kind_from_json, kind_to_json};
use async_trait::async_trait;
use mfad_core::model::Challenge;
use mfad_core::store::{Decision, PendingTxn, TransactionStore};
use mfad_core::store::{StoreError, StoreResult};
use sqlx::{Connection, PgConnection};

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

// --- pending out-of-band logins ---------------------------------------------------

/// Inserts the transaction, in one transaction with a sweep of the expired ones.
pub(super) async fn put_pending(
    conn: &mut PgConnection,
    txn: &[u8],
    body: &str,
    expires_at: i64,
    now: i64,
) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    sweep(&mut tx, now).await?;
    let inserted = sqlx::query(
        "INSERT INTO pending_txns (txn, body, decision, expires_at) VALUES ($1, $2, NULL, $3)",
    )
    .bind(txn)
    .bind(body)
    .bind(expires_at)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => tx.commit().await.map_err(db_err),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate(
            "pending transaction with this id".into(),
        )),
        Err(e) => Err(db_err(e)),
    }
}

/// [`TransactionStore::sweep_pending`] in a transaction of its own.
pub(super) async fn sweep_pending(conn: &mut PgConnection, now: i64) -> StoreResult<u64> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    let swept = sweep(&mut tx, now).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(swept)
}

/// Takes the rows expired at `now` and writes their records, in the caller's
/// transaction. Of nodes sweeping at once, each row's `DELETE` is one node's.
async fn sweep(conn: &mut PgConnection, now: i64) -> StoreResult<u64> {
    let rows = sqlx::query(
        "DELETE FROM pending_txns WHERE expires_at <= $1
         RETURNING txn, body, decision, expires_at",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let swept = rows.len() as u64;
    let rows = rows
        .iter()
        .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?, get(r, 3)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    insert_batch(conn, &pending_txns::unfinished_records(rows)).await?;
    Ok(swept)
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

#[async_trait]
impl TransactionStore for PgStore {
    async fn put_challenge(&self, challenge: &Challenge) -> StoreResult<()> {
        let kind = kind_to_json(&challenge.kind)?;
        on_conn!(self, |c| put_challenge(c, challenge, &kind))
    }

    async fn take_challenge(&self, state: &[u8], now: i64) -> StoreResult<Option<Challenge>> {
        on_conn!(self, |c| take_challenge(c, state, now))
    }

    fn code_mac(&self) -> &mfad_core::code_mac::CodeMac {
        self.cipher.code_mac()
    }

    async fn put_pending(&self, pending: &PendingTxn, now: i64) -> StoreResult<()> {
        let body = crate::pending_txns::encode_body(pending)?;
        on_conn!(self, |c| put_pending(
            c,
            &pending.txn,
            &body,
            pending.expires_at,
            now
        ))
    }

    async fn sweep_pending(&self, now: i64) -> StoreResult<u64> {
        on_conn!(self, |c| sweep_pending(c, now))
    }

    async fn pending(&self, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>> {
        on_conn!(self, |c| pending(c, txn, now))
    }

    async fn decide_pending(&self, txn: &[u8], decision: &Decision, now: i64) -> StoreResult<bool> {
        let decision = crate::pending_txns::encode_decision(decision)?;
        on_conn!(self, |c| decide_pending(c, txn, &decision, now))
    }

    async fn take_decided(&self, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>> {
        on_conn!(self, |c| take_decided(c, txn, now))
    }

    async fn delete_pending(&self, txn: &[u8]) -> StoreResult<()> {
        on_conn!(self, |c| delete_pending(c, txn))
    }
}
