//! The replay-protecting counter update, batched (see [`super::batch`]).
//!
//! Every accepted code costs one commit, and a commit waits for the WAL to reach the
//! disk; a batch is one conditional UPDATE in one transaction: the same rule
//! (`next <= used`, then `next = used + 1`) for every token in it, one WAL flush for the
//! batch. Its rows are locked in token-id order, so batches of different nodes never
//! deadlock.

use super::batch::{fetch_rows, Job};
use super::map::get;
use async_trait::async_trait;
use mfad_core::model::TokenId;
use mfad_core::store::StoreResult;
use sqlx::PgPool;
use std::collections::HashSet;

/// One counter update: the token and the counter value its accepted code used.
pub(super) struct Advance {
    pub(super) token: TokenId,
    pub(super) used: i64,
}

/// The rows to lock, in id order, then the update of those still below `used`.
/// READ COMMITTED re-checks `next <= used` on the newest row version after a wait, so a
/// concurrent batch on another node that moved the counter first makes this one miss.
const ADVANCE: &str = "
    WITH v AS (
        SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS v(id, used)
    ), locked AS (
        SELECT t.id FROM tokens t JOIN v ON v.id = t.id
        WHERE t.next <= v.used
        ORDER BY t.id
        FOR UPDATE OF t
    )
    UPDATE tokens t SET next = v.used + 1, resync = NULL
    FROM v
    WHERE t.id = v.id AND t.id IN (SELECT id FROM locked) AND t.next <= v.used
    RETURNING t.id";

pub(super) struct AdvanceJob;

#[async_trait]
impl Job for AdvanceJob {
    type Item = Advance;
    /// Whether this call moved the counter (its code had not been used).
    type Answer = bool;
    type Key = TokenId;
    const MAX_BATCH: usize = 512;
    const WHAT: &'static str = "a counter update";
    const LABEL: &'static str = "advance";

    fn key(item: &Advance) -> &TokenId {
        &item.token
    }

    async fn apply(&self, pool: &PgPool, items: Vec<&Advance>) -> StoreResult<Vec<bool>> {
        let ids: Vec<i64> = items.iter().map(|a| a.token).collect();
        let used: Vec<i64> = items.iter().map(|a| a.used).collect();
        let statement = sqlx::query(ADVANCE).bind(&ids).bind(used);
        let won = fetch_rows(pool, statement)
            .await?
            .iter()
            .map(|row| get(row, 0))
            .collect::<StoreResult<HashSet<TokenId>>>()?;
        Ok(ids.iter().map(|id| won.contains(id)).collect())
    }
}
