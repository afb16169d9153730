//! Group commit for the replay-protecting counter update.
//!
//! Every accepted code costs one commit, and a commit waits for the WAL to reach the
//! disk. A few tasks per node gather the `advance_token` calls that arrive while their
//! previous batch commits and apply them as one conditional UPDATE in one transaction:
//! the same rule (`next <= used`, then `next = used + 1`), one WAL flush for the batch,
//! and every caller answered only after that commit. Several batches in flight keep the
//! database busy while one waits for its flush.
//!
//! A batch holds each token at most once (a second request for the same token waits for
//! the next batch, so the outcome is that of running them one after the other), and it
//! locks its rows in token-id order, so batches of different nodes never deadlock.

use super::map::db_err;
use mfad_core::model::TokenId;
use mfad_core::store::{StoreError, StoreResult};
use sqlx::PgPool;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Most token updates in one statement.
const MAX_BATCH: usize = 512;
/// Batches of one node in flight at once.
pub(super) const WORKERS: usize = 4;

pub(super) struct Request {
    pub(super) token: TokenId,
    pub(super) used: i64,
    pub(super) reply: oneshot::Sender<StoreResult<bool>>,
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

async fn apply(pool: &PgPool, batch: &[Request]) -> StoreResult<HashSet<TokenId>> {
    let ids: Vec<i64> = batch.iter().map(|r| r.token).collect();
    let used: Vec<i64> = batch.iter().map(|r| r.used).collect();
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let done = sqlx::query_scalar::<_, i64>(ADVANCE)
        .bind(ids)
        .bind(used)
        .fetch_all(&mut *conn)
        .await;
    match done {
        Ok(won) => Ok(won.into_iter().collect()),
        Err(e) => {
            // The connection may be dead (database restarted): do not reuse it.
            conn.close_on_drop();
            Err(db_err(e))
        }
    }
}

/// One of the node's batching tasks, sharing the queue with the others; ends when the
/// store is dropped.
pub(super) async fn run(
    pool: PgPool,
    queue: Arc<Mutex<mpsc::Receiver<Request>>>,
    timeout: Duration,
) {
    let mut waiting: VecDeque<Request> = VecDeque::new();
    loop {
        // An idle task waits for work holding the queue; a task with requests left over
        // from its last batch only takes more if no other task is waiting there, so
        // leftovers never wait for new arrivals.
        let guard = if waiting.is_empty() {
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(request) => waiting.push_back(request),
                None => return,
            }
            Some(queue)
        } else {
            queue.try_lock().ok()
        };
        if let Some(mut queue) = guard {
            while waiting.len() < 2 * MAX_BATCH {
                match queue.try_recv() {
                    Ok(request) => waiting.push_back(request),
                    Err(_) => break,
                }
            }
        }
        let mut tokens = HashSet::new();
        let mut batch = Vec::new();
        let mut later = VecDeque::new();
        for request in waiting.drain(..) {
            // A caller that gave up (its deadline passed) already answered Reject.
            if request.reply.is_closed() {
                continue;
            }
            if batch.len() < MAX_BATCH && tokens.insert(request.token) {
                batch.push(request);
            } else {
                later.push_back(request);
            }
        }
        waiting = later;
        if batch.is_empty() {
            continue;
        }
        batch.sort_by_key(|r| r.token);
        let outcome = match tokio::time::timeout(timeout, apply(&pool, &batch)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::Unavailable(format!(
                "the database did not commit a counter update within {} ms",
                timeout.as_millis()
            ))),
        };
        match outcome {
            Ok(won) => {
                for request in batch {
                    let _ = request.reply.send(Ok(won.contains(&request.token)));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for request in batch {
                    let _ = request
                        .reply
                        .send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}
