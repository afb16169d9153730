//! The PostgreSQL store, for several mfad nodes on one database: a connection pool,
//! schema migrations run at start-up, and the same sealed-secret format as SQLite.
//!
//! Every rule that must hold across nodes is one statement that commits before the
//! caller hears back (replay, lockout, single-use challenges and bypasses), so nodes
//! hold no state of their own beyond a queue of audit records. Each call has a deadline
//! ([`PgOptions::timeout`]): with the database away, a request gets an error and the
//! engine answers Reject, well inside a RADIUS client's timeout, never Accept.

mod advance;
mod attempt;
mod audit;
mod batch;
mod clients;
mod directory;
mod map;
mod outbox;
mod schema;
mod sessions;
mod settings;
mod snapshot;
mod tokens;
mod users;

pub use schema::{MIGRATION_LOCK, SCHEMA_VERSION};

use crate::crypto::{client_aad, Cipher};
use advance::{Advance, AdvanceJob};
use async_trait::async_trait;
use batch::Batcher;
use mfad_core::audit::{AuditQuery, AuditRecord};
use mfad_core::model::{
    Challenge, Client, NewClient, NewToken, NewUser, Token, TokenId, User, UserId,
};
use mfad_core::outbox::{Attempt, Email, EmailId, NewEmail};
use mfad_core::settings::Setting;
use mfad_core::snapshot::Snapshot;
use mfad_core::store::{
    CodeAttempt, Decision, DirectorySync, FailureState, PendingTxn, Store, StoreError, StoreResult,
    SyncState, UserUpdate,
};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokens::SealedToken;
use tokio::sync::{mpsc, oneshot};

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

/// The PostgreSQL implementation of [`Store`].
pub struct PgStore {
    pool: PgPool,
    cipher: Arc<Cipher>,
    audit: mpsc::Sender<audit::Command>,
    advances: Batcher<AdvanceJob>,
    attempts: Batcher<attempt::AttemptJob>,
    subjects: Batcher<users::SubjectJob>,
    failures: Batcher<users::FailureJob>,
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
            users::SubjectJob {
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
        let failures = Batcher::start(users::FailureJob, counters, options.timeout);
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

    fn seal_tokens(&self, tokens: &[NewToken]) -> StoreResult<Vec<SealedToken>> {
        tokens
            .iter()
            .map(|t| SealedToken::seal(t, &self.cipher))
            .collect()
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

#[async_trait]
impl Store for PgStore {
    async fn create_user(&self, user: &NewUser, now: i64) -> StoreResult<User> {
        let user = NewUser {
            username: crate::normalise_username(&user.username),
            ..user.clone()
        };
        on_conn!(self, |c| users::insert_user(c, &user, now))
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        let username = crate::normalise_username(username);
        on_conn!(self, |c| users::by_name(c, &username))
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        on_conn!(self, |c| users::by_id(c, id))
    }

    async fn user_by_directory_id(&self, directory_id: &str) -> StoreResult<Option<User>> {
        on_conn!(self, |c| users::by_directory_id(c, directory_id))
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        on_conn!(self, |c| users::list(c))
    }

    async fn update_user(&self, id: UserId, update: &UserUpdate) -> StoreResult<User> {
        on_conn!(self, |c| users::update(c, id, update))
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        on_conn!(self, |c| users::delete(c, id))
    }

    async fn set_block(
        &self,
        id: UserId,
        until: Option<i64>,
        reason: Option<&str>,
    ) -> StoreResult<()> {
        on_conn!(self, |c| users::set_block(c, id, until, reason))
    }

    async fn set_bypass(&self, id: UserId, until: Option<i64>) -> StoreResult<()> {
        on_conn!(self, |c| users::set_bypass(c, id, until))
    }

    async fn consume_bypass(&self, id: UserId, now: i64) -> StoreResult<bool> {
        on_conn!(self, |c| users::consume_bypass(c, id, now))
    }

    async fn take_attempt(
        &self,
        id: UserId,
        now: i64,
        max_failures: u32,
        lockout_seconds: i64,
    ) -> StoreResult<Option<FailureState>> {
        let take = users::FailureUpdate::take(id, now, max_failures, lockout_seconds);
        self.bounded(self.failures.call(take))
            .await?
            .ok_or_else(|| users::not_found(id))
    }

    async fn attempt_code(
        &self,
        user: UserId,
        fresh: Option<(TokenId, u64)>,
        now: i64,
        max_failures: u32,
        lockout_seconds: i64,
        accepted: Option<AuditRecord>,
    ) -> StoreResult<CodeAttempt> {
        let fresh = match fresh {
            Some((token, used)) => {
                let used = map::counter(used)?;
                if used == i64::MAX {
                    return Err(StoreError::Corrupt(format!(
                        "counter {used} cannot be advanced"
                    )));
                }
                Some((token, used))
            }
            None => None,
        };
        let attempt = attempt::Attempt {
            user,
            fresh,
            now,
            max_failures: i64::from(max_failures),
            lockout_seconds,
        };
        let outcome = self
            .bounded(self.attempts.call(attempt))
            .await?
            .ok_or_else(|| users::not_found(user))?;
        if let (CodeAttempt::Accepted, Some(record)) = (&outcome, accepted) {
            self.append_audit(record).await?;
        }
        Ok(outcome)
    }

    async fn release_attempt(&self, id: UserId) -> StoreResult<()> {
        self.bounded(self.failures.call(users::FailureUpdate::release(id)))
            .await?
            .map(drop)
            .ok_or_else(|| users::not_found(id))
    }

    async fn clear_failures(&self, id: UserId) -> StoreResult<()> {
        self.bounded(self.failures.call(users::FailureUpdate::clear(id)))
            .await?
            .map(drop)
            .ok_or_else(|| users::not_found(id))
    }

    async fn set_pin(
        &self,
        id: UserId,
        pin_hash: Option<&str>,
        change_required: bool,
        history: usize,
    ) -> StoreResult<()> {
        on_conn!(self, |c| users::set_pin(
            c,
            id,
            pin_hash,
            change_required,
            history
        ))
    }

    async fn create_users_with_tokens(
        &self,
        batch: &[(NewUser, Vec<NewToken>)],
        now: i64,
    ) -> StoreResult<usize> {
        let batch = batch
            .iter()
            .map(|(user, tokens)| {
                let user = NewUser {
                    username: crate::normalise_username(&user.username),
                    ..user.clone()
                };
                Ok((user, self.seal_tokens(tokens)?))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        // A bulk load runs as long as it needs: the deadline is for requests.
        let mut conn = self.conn().await?;
        let result = users::insert_users_with_tokens(&mut conn.0, &batch, now).await;
        conn.done(result)
    }

    async fn apply_directory_sync(&self, changes: &DirectorySync, now: i64) -> StoreResult<()> {
        // A sync plan runs as long as it needs, like a bulk load: the deadline is for
        // requests.
        let mut conn = self.conn().await?;
        let result = directory::apply(&mut conn.0, changes, now).await;
        conn.done(result)
    }

    async fn sync_state(&self) -> StoreResult<SyncState> {
        on_conn!(self, |c| directory::state(c))
    }

    async fn put_sync_state(&self, state: &SyncState) -> StoreResult<()> {
        on_conn!(self, |c| directory::put_state(c, state))
    }

    async fn acquire_sync_lock(&self, holder: &str, now: i64, until: i64) -> StoreResult<bool> {
        on_conn!(self, |c| directory::acquire_lock(c, holder, now, until))
    }

    async fn release_sync_lock(&self, holder: &str) -> StoreResult<()> {
        on_conn!(self, |c| directory::release_lock(c, holder))
    }

    async fn create_tokens(&self, tokens: &[NewToken], now: i64) -> StoreResult<Vec<Token>> {
        let sealed = self.seal_tokens(tokens)?;
        on_conn!(self, |c| tokens::create(c, &self.cipher, &sealed, now))
    }

    async fn token_by_serial(&self, serial: &str) -> StoreResult<Option<Token>> {
        on_conn!(self, |c| tokens::by_serial(c, &self.cipher, serial))
    }

    async fn tokens_for_user(&self, id: UserId) -> StoreResult<Vec<Token>> {
        on_conn!(self, |c| tokens::for_user(c, &self.cipher, id))
    }

    async fn list_tokens(&self) -> StoreResult<Vec<Token>> {
        on_conn!(self, |c| tokens::list(c, &self.cipher))
    }

    async fn assign_token(&self, token: TokenId, user: Option<UserId>) -> StoreResult<()> {
        on_conn!(self, |c| tokens::assign(c, token, user))
    }

    async fn delete_token(&self, token: TokenId) -> StoreResult<()> {
        on_conn!(self, |c| tokens::delete(c, token))
    }

    async fn advance_token(&self, token: TokenId, used: u64) -> StoreResult<bool> {
        let used = map::counter(used)?;
        if used == i64::MAX {
            return Err(StoreError::Corrupt(format!(
                "counter {used} cannot be advanced"
            )));
        }
        self.bounded(self.advances.call(Advance { token, used }))
            .await
    }

    async fn set_token_resync(&self, token: TokenId, resync: Option<u64>) -> StoreResult<()> {
        on_conn!(self, |c| tokens::set_resync(c, token, resync))
    }

    async fn auth_subject(&self, username: &str) -> StoreResult<Option<(User, Vec<Token>)>> {
        let username = crate::normalise_username(username);
        self.bounded(self.subjects.call(username)).await?
    }

    async fn put_challenge(&self, challenge: &Challenge) -> StoreResult<()> {
        let kind = sessions::kind_to_json(&challenge.kind)?;
        on_conn!(self, |c| sessions::put_challenge(c, challenge, &kind))
    }

    async fn take_challenge(&self, state: &[u8], now: i64) -> StoreResult<Option<Challenge>> {
        on_conn!(self, |c| sessions::take_challenge(c, state, now))
    }

    fn code_mac(&self) -> &mfad_core::code_mac::CodeMac {
        self.cipher.code_mac()
    }

    async fn put_cached_auth(&self, key: &str, until: i64) -> StoreResult<()> {
        on_conn!(self, |c| sessions::put_cached_auth(c, key, until))
    }

    async fn cached_auth(&self, key: &str, now: i64) -> StoreResult<bool> {
        on_conn!(self, |c| sessions::cached_auth(c, key, now))
    }

    // --- pending out-of-band transactions ------------------------------------------

    async fn put_pending(&self, pending: &PendingTxn, now: i64) -> StoreResult<()> {
        let body = crate::pending_txns::encode_body(pending)?;
        on_conn!(self, |c| sessions::put_pending(
            c,
            &pending.txn,
            &body,
            pending.expires_at,
            now
        ))
    }

    async fn pending(&self, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>> {
        on_conn!(self, |c| sessions::pending(c, txn, now))
    }

    async fn decide_pending(&self, txn: &[u8], decision: &Decision, now: i64) -> StoreResult<bool> {
        let decision = crate::pending_txns::encode_decision(decision)?;
        on_conn!(self, |c| sessions::decide_pending(c, txn, &decision, now))
    }

    async fn take_decided(&self, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>> {
        on_conn!(self, |c| sessions::take_decided(c, txn, now))
    }

    async fn delete_pending(&self, txn: &[u8]) -> StoreResult<()> {
        on_conn!(self, |c| sessions::delete_pending(c, txn))
    }

    async fn create_client(&self, client: &NewClient, now: i64) -> StoreResult<Client> {
        let sealed = self
            .cipher
            .encrypt(client.secret.as_bytes(), &client_aad(&client.name))
            .map_err(|e| StoreError::Unavailable(format!("cannot encrypt a client secret: {e}")))?;
        on_conn!(self, |c| clients::create(
            c,
            &self.cipher,
            client,
            &sealed,
            now
        ))
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        on_conn!(self, |c| clients::list(c, &self.cipher))
    }

    async fn delete_client(&self, name: &str) -> StoreResult<()> {
        on_conn!(self, |c| clients::delete(c, name))
    }

    async fn append_audit(&self, record: AuditRecord) -> StoreResult<()> {
        let (reply, done) = oneshot::channel();
        self.audit
            .send(audit::Command::Record(Box::new(record), Some(reply)))
            .await
            .map_err(|_| audit_gone())?;
        self.bounded(async { done.await.unwrap_or_else(|_| Err(audit_gone())) })
            .await
    }

    async fn queue_audit(&self, record: AuditRecord) -> StoreResult<()> {
        self.audit
            .send(audit::Command::Record(Box::new(record), None))
            .await
            .map_err(|_| audit_gone())
    }

    async fn query_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        on_conn!(self, |c| audit::query(c, query))
    }

    async fn purge_audit(&self, before_ms: i64) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let deleted = on_conn!(self, |c| audit::purge_chunk(c, before_ms))?;
            total += deleted;
            if deleted < audit::PURGE_CHUNK.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    async fn flush(&self) -> StoreResult<()> {
        let (reply, done) = oneshot::channel();
        self.audit
            .send(audit::Command::Flush(reply))
            .await
            .map_err(|_| audit_gone())?;
        done.await.unwrap_or_else(|_| Err(audit_gone()))
    }

    async fn queue_email(&self, email: &NewEmail, now: i64) -> StoreResult<Option<Email>> {
        on_conn!(self, |c| outbox::queue(c, &self.cipher, email, now))
    }

    async fn claim_emails(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Email>> {
        on_conn!(self, |c| outbox::claim(
            c,
            &self.cipher,
            now,
            lease_until,
            limit
        ))
    }

    async fn finish_email(&self, id: EmailId, attempt: &Attempt) -> StoreResult<()> {
        on_conn!(self, |c| outbox::finish(c, id, attempt))
    }

    async fn list_emails(&self, limit: usize) -> StoreResult<Vec<Email>> {
        on_conn!(self, |c| outbox::list(c, limit))
    }

    async fn take_rate(
        &self,
        key: &str,
        now: i64,
        window_seconds: i64,
        limit: u32,
    ) -> StoreResult<bool> {
        on_conn!(self, |c| sessions::take_rate(
            c,
            key,
            now,
            window_seconds,
            limit
        ))
    }

    async fn list_settings(&self) -> StoreResult<Vec<Setting>> {
        on_conn!(self, |c| settings::list(c, &self.cipher))
    }

    async fn put_setting(&self, key: &str, value: &str, secret: bool, now: i64) -> StoreResult<()> {
        let stored = crate::settings::seal(&self.cipher, key, value, secret)?;
        on_conn!(self, |c| settings::put(c, key, &stored, secret, now))
    }

    async fn delete_setting(&self, key: &str) -> StoreResult<()> {
        on_conn!(self, |c| settings::delete(c, key))
    }

    async fn settings_version(&self) -> StoreResult<i64> {
        on_conn!(self, |c| settings::version(c))
    }

    async fn export_snapshot(&self) -> StoreResult<Snapshot> {
        self.flush().await?;
        // A snapshot takes as long as the data needs; no request deadline.
        let mut conn = self.conn().await?;
        let result = snapshot::export(&mut conn.0).await;
        conn.done(result)
    }

    async fn import_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let result = snapshot::import(&mut conn.0, snapshot).await;
        conn.done(result)
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
