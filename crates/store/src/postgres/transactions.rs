//! Challenges between requests, single use ([`TransactionStore`]).
//!
//! They live in the database, so a challenge issued by one node is answered on another.

use super::map::{db_err, get, is_foreign_key_violation, is_unique_violation};
use super::PgStore;
use crate::rules::{kind_from_json, kind_to_json};
use async_trait::async_trait;
use mfad_core::model::Challenge;
use mfad_core::store::TransactionStore;
use mfad_core::store::{StoreError, StoreResult};
use sqlx::PgConnection;

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
}
