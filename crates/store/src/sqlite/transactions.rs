//! Transactions between requests ([`TransactionStore`]): single-use challenges and
//! pending out-of-band logins.

use super::audit::insert_audit;
use super::map::db_err;
use super::SqliteStore;
use crate::pending_txns;
use crate::rules::{kind_from_json, kind_to_json};
use async_trait::async_trait;
use mfad_core::model::Challenge;
use mfad_core::store::{Decision, PendingTxn, TransactionStore};
use mfad_core::store::{StoreError, StoreResult};
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
    let kind = kind_from_json(&kind)?;
    Ok(Some(Challenge {
        state: state.to_vec(),
        user_id,
        client,
        kind,
        expires_at,
    }))
}

// --- pending out-of-band logins ---------------------------------------------------

pub(super) fn put_pending(
    conn: &Connection,
    txn: &[u8],
    body: &str,
    expires_at: i64,
    now: i64,
) -> StoreResult<()> {
    sweep_pending(conn, now)?;
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

/// [`TransactionStore::sweep_pending`]: the expired rows taken, their records written.
pub(super) fn sweep_pending(conn: &Connection, now: i64) -> StoreResult<u64> {
    let rows = conn
        .prepare_cached(
            "DELETE FROM pending_txns WHERE expires_at <= ?1
             RETURNING txn, body, decision, expires_at",
        )
        .and_then(|mut s| {
            s.query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(db_err)?;
    let swept = rows.len() as u64;
    for record in pending_txns::unfinished_records(rows) {
        insert_audit(conn, &record)?;
    }
    Ok(swept)
}

pub(super) fn pending(conn: &Connection, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>> {
    pending_row(
        conn,
        "SELECT body, decision, expires_at FROM pending_txns
         WHERE txn = ?1 AND expires_at > ?2",
        txn,
        now,
    )
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
    pending_row(
        conn,
        "DELETE FROM pending_txns
         WHERE txn = ?1 AND decision IS NOT NULL AND expires_at > ?2
         RETURNING body, decision, expires_at",
        txn,
        now,
    )
}

/// The one pending login `sql` (with `?1` the id, `?2` the time) reads or takes.
fn pending_row(
    conn: &Connection,
    sql: &str,
    txn: &[u8],
    now: i64,
) -> StoreResult<Option<PendingTxn>> {
    let row: Option<(String, Option<String>, i64)> = conn
        .prepare_cached(sql)
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

#[async_trait]
impl TransactionStore for SqliteStore {
    async fn put_challenge(&self, challenge: &Challenge) -> StoreResult<()> {
        let kind = kind_to_json(&challenge.kind)?;
        let challenge = challenge.clone();
        self.write(move |c| put_challenge(c, &challenge, &kind))
            .await
    }

    async fn take_challenge(&self, state: &[u8], now: i64) -> StoreResult<Option<Challenge>> {
        let state = state.to_vec();
        self.write(move |c| take_challenge(c, &state, now)).await
    }

    fn code_mac(&self) -> &mfad_core::code_mac::CodeMac {
        self.cipher.code_mac()
    }

    // Through the writer, reads included: a poll sees every decision applied before it.

    async fn put_pending(&self, pending: &PendingTxn, now: i64) -> StoreResult<()> {
        let body = crate::pending_txns::encode_body(pending)?;
        let (txn, expires_at) = (pending.txn.clone(), pending.expires_at);
        self.write(move |c| put_pending(c, &txn, &body, expires_at, now))
            .await
    }

    async fn sweep_pending(&self, now: i64) -> StoreResult<u64> {
        self.write(move |c| sweep_pending(c, now)).await
    }

    async fn pending(&self, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>> {
        let txn = txn.to_vec();
        self.write(move |c| pending(c, &txn, now)).await
    }

    async fn decide_pending(&self, txn: &[u8], decision: &Decision, now: i64) -> StoreResult<bool> {
        let decision = crate::pending_txns::encode_decision(decision)?;
        let txn = txn.to_vec();
        self.write(move |c| decide_pending(c, &txn, &decision, now))
            .await
    }

    async fn take_decided(&self, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>> {
        let txn = txn.to_vec();
        self.write(move |c| take_decided(c, &txn, now)).await
    }

    async fn delete_pending(&self, txn: &[u8]) -> StoreResult<()> {
        let txn = txn.to_vec();
        self.write(move |c| delete_pending(c, &txn)).await
    }
}
