//! Batching of the hot path's statements.
//!
//! Under load, most of a database's work per request is the statement itself (a round
//! trip, a wake-up of the backend, executor start-up and, for a write, a commit that
//! waits for the WAL to reach the disk), not the few index pages it touches. One task
//! per node and kind of call runs one batch at a time: the calls that arrive while a
//! batch runs form the next one, in one statement, and every caller is answered only
//! after that statement finished (for a write: committed). The busier the node, the
//! larger the batches; an idle node runs each call at once. One batch is in flight per
//! kind, because fewer, larger batches cost the database less.
//!
//! A batch holds each key at most once (a second call with the same key waits for the
//! next batch, so its outcome is that of running the two one after the other), sorted by
//! key, so that batches that lock rows lock them in the same order on every node and
//! never deadlock.

use super::map::db_err;
use super::Conn;
use async_trait::async_trait;
use mfad_core::store::{StoreError, StoreResult};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres};
use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Calls that may wait for a batch before a caller has to wait to join the queue.
const QUEUE: usize = 16_384;

/// One kind of batched statement.
#[async_trait]
pub(super) trait Job: Send + Sync + 'static {
    /// What one call asks.
    type Item: Send + 'static;
    /// What one call is answered.
    type Answer: Send + 'static;
    /// Calls with the same key never share a batch; batches are sorted by key.
    type Key: Ord + Hash + Clone + Send;
    /// Most calls in one statement.
    const MAX_BATCH: usize;
    /// What the statement does, for the message when it misses its deadline.
    const WHAT: &'static str;
    /// Its `kind` label in `mfad_store_batch_size`.
    const LABEL: &'static str;

    fn key(item: &Self::Item) -> &Self::Key;

    /// Runs the batch (sorted by key) as one statement: one answer per item, in order.
    async fn apply(&self, pool: &PgPool, items: Vec<&Self::Item>)
        -> StoreResult<Vec<Self::Answer>>;
}

/// Runs a batch's statement on a pooled connection (closed if the statement failed:
/// see [`Conn`]) and returns its rows.
pub(super) async fn fetch_rows(
    pool: &PgPool,
    statement: Query<'_, Postgres, PgArguments>,
) -> StoreResult<Vec<PgRow>> {
    let mut conn = Conn(pool.acquire().await.map_err(db_err)?);
    let rows = statement.fetch_all(&mut *conn.0).await.map_err(db_err);
    conn.done(rows)
}

struct Call<J: Job> {
    item: J::Item,
    reply: oneshot::Sender<StoreResult<J::Answer>>,
}

/// The queue of one kind of call and the task that serves it.
pub(super) struct Batcher<J: Job> {
    queue: mpsc::Sender<Call<J>>,
}

impl<J: Job> Batcher<J> {
    /// Starts the task; it ends when the batcher is dropped.
    pub(super) fn start(job: J, pool: PgPool, timeout: Duration) -> Self {
        let (queue, calls) = mpsc::channel(QUEUE);
        tokio::spawn(run(job, pool, calls, timeout));
        Self { queue }
    }

    /// Queues `item` and waits for its batch. The caller bounds the wait.
    pub(super) async fn call(&self, item: J::Item) -> StoreResult<J::Answer> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Call { item, reply })
            .await
            .map_err(|_| gone::<J>())?;
        answer.await.unwrap_or_else(|_| Err(gone::<J>()))
    }
}

fn gone<J: Job>() -> StoreError {
    StoreError::Unavailable(format!("the store's task for {} has stopped", J::WHAT))
}

/// The task: one batch at a time, of the calls that arrived while the last one ran.
async fn run<J: Job>(job: J, pool: PgPool, mut calls: mpsc::Receiver<Call<J>>, timeout: Duration) {
    let mut waiting: VecDeque<Call<J>> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match calls.recv().await {
                Some(call) => waiting.push_back(call),
                None => return,
            }
        }
        while waiting.len() < 2 * J::MAX_BATCH {
            match calls.try_recv() {
                Ok(call) => waiting.push_back(call),
                Err(_) => break,
            }
        }
        let mut keys = HashSet::new();
        let mut batch = Vec::new();
        let mut later = VecDeque::new();
        for call in waiting.drain(..) {
            // A caller that gave up (its deadline passed) already answered Reject.
            if call.reply.is_closed() {
                continue;
            }
            if batch.len() < J::MAX_BATCH && keys.insert(J::key(&call.item).clone()) {
                batch.push(call);
            } else {
                later.push_back(call);
            }
        }
        waiting = later;
        if batch.is_empty() {
            continue;
        }
        batch.sort_by(|a, b| J::key(&a.item).cmp(J::key(&b.item)));
        metrics::histogram!("mfad_store_batch_size", "store" => "postgres", "kind" => J::LABEL)
            .record(batch.len() as f64);
        let items = batch.iter().map(|call| &call.item).collect();
        let outcome = match tokio::time::timeout(timeout, job.apply(&pool, items)).await {
            Ok(Ok(answers)) if answers.len() == batch.len() => Ok(answers),
            Ok(Ok(_)) => Err(StoreError::Corrupt(format!(
                "{} answered a different number of calls than it was given",
                J::WHAT
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the database did not finish {} within {} ms",
                J::WHAT,
                timeout.as_millis()
            ))),
        };
        match outcome {
            Ok(answers) => {
                for (call, answer) in batch.into_iter().zip(answers) {
                    let _ = call.reply.send(Ok(answer));
                }
            }
            Err(e) => {
                for call in batch {
                    let _ = call.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
