//! The PostgreSQL store, for several mfad nodes on one database: a connection pool,
//! schema migrations run at start-up, and the same sealed-secret format as SQLite.
//!
//! Every rule that must hold across nodes is one statement that commits before the
//! caller hears back (replay, lockout, single-use challenges and bypasses), so nodes
//! hold no state of their own beyond a queue of audit records. Each call has a deadline
//! ([`PgOptions::timeout`]): with the database away, a request gets an error and the
//! engine answers Reject, well inside a RADIUS client's timeout, never Accept.

/// One store call on a pooled connection, under the call deadline.
macro_rules! on_conn {
    ($store:expr, |$c:ident| $body:expr) => {
        $store
            .bounded(async {
                let mut conn = $store.conn().await?;
                let result = {
                    let $c: &mut sqlx::PgConnection = &mut conn.0;
                    $body.await
                };
                conn.done(result)
            })
            .await
    };
}

mod advance;
mod attempt;
mod audit;
mod auth;
mod batch;
mod clients;
mod directory;
mod map;
mod outbox;
mod schema;
mod settings;
mod snapshot;
mod tokens;
mod transactions;
mod users;

pub use schema::{MIGRATION_LOCK, SCHEMA_VERSION};

use crate::crypto::Cipher;
use advance::AdvanceJob;
use batch::Batcher;
use mfad_core::store::{StoreError, StoreResult};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Audit records that may wait for the writer task before `append_audit` has to wait.
const AUDIT_QUEUE: usize = 16_384;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgOptions {
    /// Most connections this node opens.
    pub pool_size: u32,
    /// Deadline of one store call, connecting included.
    pub timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            timeout: Duration::from_secs(2),
        }
    }
}

/// The PostgreSQL implementation of [`Store`](mfad_core::store::Store): each capability
/// trait is implemented in the file of its concern.
pub struct PgStore {
    pool: PgPool,
    cipher: Arc<Cipher>,
    audit: mpsc::Sender<audit::Command>,
    advances: Batcher<AdvanceJob>,
    attempts: Batcher<attempt::AttemptJob>,
    subjects: Batcher<auth::SubjectJob>,
    failures: Batcher<auth::FailureJob>,
    timeout: Duration,
    /// The URL with any password hidden, for messages.
    label: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.label)
            .finish_non_exhaustive()
    }
}

/// A pooled connection that is closed instead of reused when a call on it failed:
/// after a database restart every pooled connection is dead, and the pool must not hand
/// them out again. (Testing each connection before use would cost a round trip per
/// call on the hot path.)
struct Conn(PoolConnection<Postgres>);

impl Conn {
    fn done<T>(mut self, result: StoreResult<T>) -> StoreResult<T> {
        if matches!(result, Err(StoreError::Unavailable(_))) {
            self.0.close_on_drop();
        }
        result
    }
}

impl PgStore {
    /// Connects to the database `url` names (`postgres://` or `postgresql://`, with
    /// `sslmode` and the other libpq parameters) and brings its schema up to date.
    pub async fn open(url: &str, cipher: Cipher, options: PgOptions) -> StoreResult<Self> {
        let label = crate::redact(url);
        let connect = parse_url(url)?
            .application_name("mfad")
            // Notices ("relation already exists, skipping") are not worth a log line.
            .options([("client_min_messages", "warning")])
            // Statements are logged by PostgreSQL if the operator wants them; at debug
            // level here they would flood the node's log.
            .disable_statement_logging();
        let pool = lazy_pool(connect.clone(), options.pool_size, options.timeout);
        let mut conn =
            tokio::time::timeout(options.timeout.max(Duration::from_secs(5)), pool.acquire())
                .await
                .map_err(|_| {
                    StoreError::Unavailable(format!("cannot connect to {label}: timed out"))
                })?
                .map_err(|e| StoreError::Unavailable(format!("cannot connect to {label}: {e}")))?;
        schema::migrate(&mut conn, &label).await?;
        warn_on_other_key(&mut conn, &cipher, &label).await;
        drop(conn);

        let (tx, rx) = mpsc::channel(AUDIT_QUEUE);
        tokio::spawn(audit::run_writer(pool.clone(), rx));
        let cipher = Arc::new(cipher);
        let advances = Batcher::start(AdvanceJob, pool.clone(), options.timeout);
        let attempts = Batcher::start(attempt::AttemptJob, pool.clone(), options.timeout);
        let subjects = Batcher::start(
            auth::SubjectJob {
                cipher: Arc::clone(&cipher),
            },
            pool.clone(),
            options.timeout,
        );
        // Failure counts commit without waiting for the WAL flush: other nodes see a
        // slot as soon as it is taken, and what a crash of the database could lose is a
        // few counts (never an accepted code, never an audit record), while a flush per
        // slot would put a second disk wait on every authentication.
        let counters = lazy_pool(
            connect.options([("synchronous_commit", "off")]),
            2,
            options.timeout,
        );
        let failures = Batcher::start(auth::FailureJob, counters, options.timeout);
        Ok(Self {
            pool,
            cipher,
            audit: tx,
            advances,
            attempts,
            subjects,
            failures,
            timeout: options.timeout,
            label,
        })
    }

    /// The pool, for tools that need plain SQL on the same database (tests, locks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn conn(&self) -> StoreResult<Conn> {
        self.pool.acquire().await.map(Conn).map_err(map::db_err)
    }

    /// Runs one store call against its deadline.
    async fn bounded<T>(&self, work: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "the database {} did not answer within {} ms",
                self.label,
                self.timeout.as_millis()
            ))),
        }
    }
}

/// A pool that connects on first use.
fn lazy_pool(connect: PgConnectOptions, size: u32, timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(size.max(1))
        .min_connections(0)
        .acquire_timeout(timeout)
        .test_before_acquire(false)
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy_with(connect)
}

/// Says at start-up that the key file does not match the sealed values (see the SQLite
/// store for why this is not fatal).
async fn warn_on_other_key(conn: &mut sqlx::PgConnection, cipher: &Cipher, label: &str) {
    let sample = sqlx::query_scalar::<_, String>(
        "SELECT secret FROM tokens UNION ALL SELECT secret FROM clients LIMIT 1",
    )
    .fetch_optional(conn)
    .await;
    if let Ok(Some(sealed)) = sample {
        match Cipher::key_id_of(&sealed) {
            Some(stored) if stored != cipher.key_id() => tracing::error!(
                database = %label,
                stored_key = stored,
                loaded_key = cipher.key_id(),
                "the database's secrets were sealed with another key than the key file holds; \
                 they cannot be read until mfad runs with the key file they were written with"
            ),
            _ => {}
        }
    }
}

/// The connection options a `postgres://` URL names; an error says what is wrong with it.
fn parse_url(url: &str) -> StoreResult<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|e| {
        StoreError::Unavailable(format!(
            "store URL {} is not usable: {e}",
            crate::redact(url)
        ))
    })
}

/// Checks a `postgres://` URL without connecting, so a mistyped URL is reported at once
/// rather than retried as if the database were down.
pub fn check_url(url: &str) -> StoreResult<()> {
    parse_url(url).map(drop)
}

fn audit_gone() -> StoreError {
    StoreError::Unavailable("the audit writer task has stopped".into())
}
