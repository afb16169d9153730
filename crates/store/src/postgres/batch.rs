//! Batching of the hot path's statements.
//!
//! Under load, most of a database's work per request is the statement itself (a round
//! trip, a wake-up of the backend, executor start-up and, for a write, a commit that
//! waits for the WAL to reach the disk), not the few index pages it touches. A few tasks
//! per node gather the calls of one kind that arrive while their previous batch runs and
//! put them in one statement; every caller is answered only after that statement
//! finished (for a write: committed). Several batches in flight keep the database busy
//! while one waits.
//!
//! A batch holds each key at most once (a second call with the same key waits for the
//! next batch, so its outcome is that of running the two one after the other), sorted by
//! key, so that batches that lock rows lock them in the same order on every node and
//! never deadlock.

use async_trait::async_trait;
use mfad_core::store::{StoreError, StoreResult};
use sqlx::PgPool;
use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Calls that may wait for a batch before a caller has to wait to join the queue.
const QUEUE: usize = 16_384;
/// Batches of one kind in flight at once, per node.
const WORKERS: usize = 4;

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

    fn key(item: &Self::Item) -> Self::Key;

    /// Runs the batch (sorted by key) as one statement: one answer per item, in order.
    async fn apply(&self, pool: &PgPool, items: Vec<&Self::Item>)
        -> StoreResult<Vec<Self::Answer>>;
}

struct Call<J: Job> {
    item: J::Item,
    reply: oneshot::Sender<StoreResult<J::Answer>>,
}

/// The queue of one kind of call, served by [`WORKERS`] tasks.
pub(super) struct Batcher<J: Job> {
    queue: mpsc::Sender<Call<J>>,
}

impl<J: Job> Batcher<J> {
    /// Starts the workers; they end when the batcher is dropped.
    pub(super) fn start(job: J, pool: PgPool, timeout: Duration) -> Self {
        let (queue, calls) = mpsc::channel(QUEUE);
        let calls = Arc::new(Mutex::new(calls));
        let job = Arc::new(job);
        for _ in 0..WORKERS {
            tokio::spawn(run(
                Arc::clone(&job),
                pool.clone(),
                Arc::clone(&calls),
                timeout,
            ));
        }
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

/// One worker, sharing the queue with the others.
async fn run<J: Job>(
    job: Arc<J>,
    pool: PgPool,
    queue: Arc<Mutex<mpsc::Receiver<Call<J>>>>,
    timeout: Duration,
) {
    let mut waiting: VecDeque<Call<J>> = VecDeque::new();
    loop {
        // An idle worker waits for work holding the queue; a worker with calls left over
        // from its last batch only takes more if no other worker is waiting there, so
        // leftovers never wait for new arrivals.
        let guard = if waiting.is_empty() {
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(call) => waiting.push_back(call),
                None => return,
            }
            Some(queue)
        } else {
            queue.try_lock().ok()
        };
        if let Some(mut queue) = guard {
            while waiting.len() < 2 * J::MAX_BATCH {
                match queue.try_recv() {
                    Ok(call) => waiting.push_back(call),
                    Err(_) => break,
                }
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
            if batch.len() < J::MAX_BATCH && keys.insert(J::key(&call.item)) {
                batch.push(call);
            } else {
                later.push_back(call);
            }
        }
        waiting = later;
        if batch.is_empty() {
            continue;
        }
        batch.sort_by_key(|call| J::key(&call.item));
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
