//! Challenges between requests, single use ([`TransactionStore`]).

use super::map::db_err;
use super::SqliteStore;
use crate::rules::{kind_from_json, kind_to_json};
use async_trait::async_trait;
use mfad_core::model::Challenge;
use mfad_core::store::TransactionStore;
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
}
