//! The storage interface the engine and the CLI use; SQLite and PostgreSQL implement it.
//!
//! Every rule that must hold across channels, nodes and restarts is a single
//! conditional statement here (replay, lockout, single-use challenges and
//! bypasses), never process memory.

use crate::audit::{AuditQuery, AuditRecord, AuditResult};
use crate::code_mac::CodeMac;
use crate::engine::Prompt;
use crate::model::{
    Challenge, Client, Method, NewClient, NewToken, NewUser, PinMode, Token, TokenId, User, UserId,
};
use crate::outbox::{Attempt, Email, EmailId, NewEmail};
use crate::settings::Setting;
use crate::snapshot::Snapshot;
use async_trait::async_trait;

#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// What was looked for, e.g. `user 'alice'`.
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} already exists")]
    Duplicate(String),
    /// The database cannot be reached or answered with an error.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A value could not be decrypted or decoded.
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Operator-editable user fields; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserUpdate {
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub pin_mode: Option<PinMode>,
    pub method: Option<Method>,
    pub backup_phone: Option<String>,
    pub enabled: Option<bool>,
}

/// Everything a directory sync decides about one user; the store writes all of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectoryRecord {
    pub directory_id: String,
    pub username: String,
    pub given_name: String,
    pub surname: String,
    pub email: String,
    pub phone: String,
    pub mobile: String,
    pub extension: String,
    pub language: String,
    pub sync_item: String,
    pub enabled: bool,
}

/// One directory sync's changes, applied by [`Store::apply_directory_sync`] all or nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectorySync {
    /// New users; each carries `directory_id` and `sync_item`.
    pub add: Vec<NewUser>,
    /// Existing users (renamed, moved, changed, or linked to an entry for the first time).
    pub update: Vec<(UserId, DirectoryRecord)>,
    /// Users that left every sync item: `enabled = false`, `sync_item = NULL`.
    pub disable: Vec<UserId>,
    /// Users that left every sync item, deleted like [`Store::delete_user`].
    pub remove: Vec<UserId>,
}

/// A phone change a directory sync found for a user whose phone is their second factor
/// (SMS or call), held until the operator approves it: the directory attribute it comes
/// from may be one that every user can write on their own entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingPhone {
    pub user_id: UserId,
    pub username: String,
    /// The e-mail address on record when the change was held, which the notice goes to
    /// (not one the same directory change may have brought).
    pub email: String,
    /// The number mfad uses now.
    pub old_phone: String,
    /// The number the directory holds.
    pub new_phone: String,
    /// When a sync first held this change (Unix time).
    pub since: i64,
}

/// Directory sync bookkeeping shared by every node (one row per store).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncState {
    /// When the last sync finished (Unix time), and its one-line summary.
    pub last_run: Option<i64>,
    pub last_summary: String,
    /// Disables or removals the mass-change safeguard held back (0: none pending).
    pub pending_count: u32,
    /// Why they were held, for `mfad directory status`.
    pub pending_reason: String,
    /// `mfad directory approve`: the next sync may disable or remove up to this many.
    pub approved_count: Option<u32>,
    /// Phone changes held for approval (`mfad directory approve-phone`), by username.
    pub pending_phones: Vec<PendingPhone>,
}

/// The failure counter after [`Store::take_attempt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureState {
    /// Consecutive failures (0 right after a lock was set).
    pub failures: u32,
    /// Set when this failure locked the user.
    pub locked_until: Option<i64>,
}

/// What [`Store::attempt_code`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeAttempt {
    /// The user is locked: nothing was changed.
    Locked,
    /// The code was fresh: its token moved past it and the failure count was cleared.
    Accepted,
    /// The attempt counted as a failure. `replayed`: the code matched a fresh counter
    /// value when it was checked, but another request used that value first.
    Failed { replayed: bool, state: FailureState },
}

/// A pending out-of-band login (a call ringing, a two-way SMS waiting for its reply),
/// kept in the store so that any node can poll it and finish it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingTxn {
    pub txn: Vec<u8>,
    /// The attempt's audit record so far; the decision completes it.
    pub draft: AuditRecord,
    /// What the user is asked to do meanwhile.
    pub prompt: Prompt,
    /// How it ended, once a webhook (or the timeout) decided it.
    pub decision: Option<Decision>,
    pub expires_at: i64,
}

/// How a pending out-of-band login ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    pub result: AuditResult,
    /// The reject reason, or what the audit log says of an accept.
    pub reason: String,
    /// The challenge that follows an accepted answer (a new PIN is due): its id and prompt.
    pub challenge: Option<(Vec<u8>, Prompt)>,
    /// The phone that answered, for the audit log.
    pub device: String,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- users ---------------------------------------------------------------
    /// Fails with `Duplicate` when the username (case-insensitive) exists.
    async fn create_user(&self, user: &NewUser, now: i64) -> StoreResult<User>;
    /// Exact match on the stored (lower-case) username.
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    /// The user imported from the directory entry with this unique ID (objectGUID,
    /// entryUUID), whatever name they are stored under.
    async fn user_by_directory_id(&self, directory_id: &str) -> StoreResult<Option<User>>;
    /// Ordered by username.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn update_user(&self, id: UserId, update: &UserUpdate) -> StoreResult<User>;
    /// Deletes the user, their tokens, challenges and cached authentications.
    async fn delete_user(&self, id: UserId) -> StoreResult<()>;
    /// Blocks until `until` with a reason, or unblocks with `None`.
    async fn set_block(
        &self,
        id: UserId,
        until: Option<i64>,
        reason: Option<&str>,
    ) -> StoreResult<()>;
    /// Grants (or with `None` revokes) a one-time bypass valid until `until`.
    async fn set_bypass(&self, id: UserId, until: Option<i64>) -> StoreResult<()>;
    /// Uses the bypass if one is valid at `now`: true exactly once per grant.
    async fn consume_bypass(&self, id: UserId, now: i64) -> StoreResult<bool>;
    /// Takes one attempt's slot in the lockout budget, before a secret is checked: one
    /// conditional write, so that however many attempts race (on one node or several),
    /// at most `max_failures` are granted per lockout period. `None`, changing nothing,
    /// while the user is locked at `now`. Otherwise the attempt counts as a failure until
    /// [`Store::clear_failures`] (success) or [`Store::release_attempt`] says otherwise;
    /// on reaching `max_failures` this sets `locked_until = now + lockout_seconds` and
    /// resets the count.
    async fn take_attempt(
        &self,
        id: UserId,
        now: i64,
        max_failures: u32,
        lockout_seconds: i64,
    ) -> StoreResult<Option<FailureState>>;
    /// One attempt at a one-time code: its slot and its outcome in one step. Refused
    /// (`Locked`) while the user is locked; otherwise a slot is taken as by
    /// [`Store::take_attempt`], and then `fresh` (the token and the counter value the code
    /// matched, if it matched one not yet used) advances the token as by
    /// [`Store::advance_token`] and clears the failure count. The code is compared before
    /// the call, but what it matched decides nothing unless the slot is granted here, so
    /// a burst of guesses learns no more than `max_failures` outcomes per lockout period.
    ///
    /// `accepted`: the attempt's final audit record should the code be accepted; it is
    /// then written as by [`Store::append_audit`], durable with the accepted code before
    /// the answer (SQLite: in the same transaction, so an Accept costs one commit).
    /// Otherwise backends may answer before the change is durable (SQLite answers once
    /// the writer applied it): the caller makes the outcome durable with the attempt's
    /// [`Store::append_audit`], which is committed with it or after it.
    async fn attempt_code(
        &self,
        user: UserId,
        fresh: Option<(TokenId, u64)>,
        now: i64,
        max_failures: u32,
        lockout_seconds: i64,
        accepted: Option<AuditRecord>,
    ) -> StoreResult<CodeAttempt> {
        let Some(state) = self
            .take_attempt(user, now, max_failures, lockout_seconds)
            .await?
        else {
            return Ok(CodeAttempt::Locked);
        };
        let Some((token, used)) = fresh else {
            return Ok(CodeAttempt::Failed {
                replayed: false,
                state,
            });
        };
        if self.advance_token(token, used).await? {
            self.clear_failures(user).await?;
            if let Some(record) = accepted {
                self.append_audit(record).await?;
            }
            return Ok(CodeAttempt::Accepted);
        }
        Ok(CodeAttempt::Failed {
            replayed: true,
            state,
        })
    }
    /// Gives back a slot whose attempt proved nothing either way (a first factor that
    /// passed before a challenge, a directory that did not answer): one failure less, never
    /// below zero. A lock already set stays.
    async fn release_attempt(&self, id: UserId) -> StoreResult<()>;
    /// Clears the failure count and any lock (success, or `mfad user unlock`).
    async fn clear_failures(&self, id: UserId) -> StoreResult<()>;
    /// Sets the PIN hash (or removes it with `None`) and the "change required" flag.
    /// A new hash is put first in the history, which keeps at most `history` entries.
    async fn set_pin(
        &self,
        id: UserId,
        pin_hash: Option<&str>,
        change_required: bool,
        history: usize,
    ) -> StoreResult<()>;

    /// Bulk load for imports and benchmarks: users and their tokens in one transaction,
    /// all or nothing. Returns how many users were created.
    async fn create_users_with_tokens(
        &self,
        batch: &[(NewUser, Vec<NewToken>)],
        now: i64,
    ) -> StoreResult<usize>;

    // --- directory sync --------------------------------------------------------
    /// Applies a sync plan in one transaction: all of it or, on any error (e.g. a
    /// `directory_id` or username that is already taken: `Duplicate`), none of it.
    /// Updates go before additions, so a rename frees its old name for a new entry in
    /// the same call. Usernames are stored lower-case, as by [`Store::create_user`].
    async fn apply_directory_sync(&self, changes: &DirectorySync, now: i64) -> StoreResult<()>;
    /// The sync bookkeeping; the default (nothing run yet) when never written.
    async fn sync_state(&self) -> StoreResult<SyncState>;
    /// Replaces the sync bookkeeping (not the lock).
    async fn put_sync_state(&self, state: &SyncState) -> StoreResult<()>;
    /// Takes the scheduled-sync lock for `holder` until `until` if it is free, expired at
    /// `now`, or already `holder`'s (which extends it). One conditional write, so of
    /// several nodes exactly one gets it.
    async fn acquire_sync_lock(&self, holder: &str, now: i64, until: i64) -> StoreResult<bool>;
    /// Lets go of the lock if `holder` has it.
    async fn release_sync_lock(&self, holder: &str) -> StoreResult<()>;

    // --- tokens --------------------------------------------------------------
    /// All or nothing: a duplicate serial (stored or within `tokens`) fails the whole call.
    async fn create_tokens(&self, tokens: &[NewToken], now: i64) -> StoreResult<Vec<Token>>;
    async fn token_by_serial(&self, serial: &str) -> StoreResult<Option<Token>>;
    async fn tokens_for_user(&self, id: UserId) -> StoreResult<Vec<Token>>;
    /// Ordered by serial.
    async fn list_tokens(&self) -> StoreResult<Vec<Token>>;
    async fn assign_token(&self, token: TokenId, user: Option<UserId>) -> StoreResult<()>;
    async fn delete_token(&self, token: TokenId) -> StoreResult<()>;
    /// Replay protection: `SET next = used + 1 WHERE id = ? AND next <= used`, and clears
    /// any pending resync. True when this call moved the counter (the code is fresh);
    /// false when another request used `used` or a later value first.
    async fn advance_token(&self, token: TokenId, used: u64) -> StoreResult<bool>;
    /// Remembers (or forgets) the first code of an HOTP resynchronisation.
    async fn set_token_resync(&self, token: TokenId, resync: Option<u64>) -> StoreResult<()>;

    // --- the hot path ----------------------------------------------------------
    /// The user and their enabled tokens, in one read.
    async fn auth_subject(&self, username: &str) -> StoreResult<Option<(User, Vec<Token>)>>;

    // --- challenges and cache --------------------------------------------------
    async fn put_challenge(&self, challenge: &Challenge) -> StoreResult<()>;
    /// Removes and returns the challenge if it exists and has not expired at `now`
    /// (single use: a second call for the same state returns `None`).
    async fn take_challenge(&self, state: &[u8], now: i64) -> StoreResult<Option<Challenge>>;
    /// The keyed hash for the short codes a challenge keeps (an SMS code), keyed from the
    /// store's key file: reading the database does not give a way to test codes.
    fn code_mac(&self) -> &CodeMac;
    /// Records a successful authentication under `key` until `until`.
    async fn put_cached_auth(&self, key: &str, until: i64) -> StoreResult<()>;
    async fn cached_auth(&self, key: &str, now: i64) -> StoreResult<bool>;

    // --- pending out-of-band transactions --------------------------------------
    // Any node polls a pending login and any node finishes it; each rule is one
    // conditional statement, so racing nodes agree.
    /// Stores a new, undecided transaction, and sweeps those expired at `now`.
    /// `Duplicate` when its id exists.
    async fn put_pending(&self, pending: &PendingTxn, now: i64) -> StoreResult<()>;
    /// The transaction as stored, decided or not; `None` when unknown or expired at `now`.
    async fn pending(&self, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>>;
    /// Records the decision of an undecided transaction: true when this call decided it;
    /// false, changing nothing, when it is decided already, unknown, or expired at `now`.
    async fn decide_pending(&self, txn: &[u8], decision: &Decision, now: i64) -> StoreResult<bool>;
    /// Removes and returns a decided transaction; `None` when it is undecided, unknown
    /// or expired at `now`. Of racing calls on any nodes exactly one gets it: the one
    /// that writes the attempt's final audit record.
    async fn take_decided(&self, txn: &[u8], now: i64) -> StoreResult<Option<PendingTxn>>;
    /// Removes the transaction whatever its state (its call or SMS could not be sent).
    async fn delete_pending(&self, txn: &[u8]) -> StoreResult<()>;

    // --- RADIUS clients --------------------------------------------------------
    /// Fails with `Duplicate` when the name exists.
    async fn create_client(&self, client: &NewClient, now: i64) -> StoreResult<Client>;
    /// Ordered by name.
    async fn list_clients(&self) -> StoreResult<Vec<Client>>;
    async fn delete_client(&self, name: &str) -> StoreResult<()>;

    // --- audit log -------------------------------------------------------------
    /// Writes an attempt's record and answers once it is durable, together with every
    /// write the caller made before it (which is how the outcome of
    /// [`Store::attempt_code`] becomes durable before its reply leaves). On an error the
    /// record is not kept: the caller decides what to record instead
    /// ([`Store::queue_audit`]).
    async fn append_audit(&self, record: AuditRecord) -> StoreResult<()>;
    /// Queues the record without waiting; it is durable after the next group commit or
    /// [`Store::flush`], and kept for a retry while the database does not take it (the
    /// rejects of an outage reach the log once it is back).
    async fn queue_audit(&self, record: AuditRecord) -> StoreResult<()>;
    /// Newest first.
    async fn query_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;
    /// Deletes records older than `before_ms`; returns how many.
    async fn purge_audit(&self, before_ms: i64) -> StoreResult<u64>;
    /// Waits until every queued write is durable.
    async fn flush(&self) -> StoreResult<()>;

    // --- e-mail outbox ---------------------------------------------------------
    /// Queues a mail for delivery at `now`. Returns `None`, queuing nothing, when
    /// `once_key` is set and a mail with that key was queued before (whatever became of it).
    async fn queue_email(&self, email: &NewEmail, now: i64) -> StoreResult<Option<Email>>;
    /// Claims up to `limit` queued mails due at `now` (oldest first) for one sender:
    /// atomically counts the attempt and moves their next attempt to `lease_until`, so no
    /// other node or process sends them meanwhile. A sender that dies leaves them to be
    /// claimed again once the lease lapses.
    async fn claim_emails(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Email>>;
    /// Records how a claimed attempt ended. `Sent` also erases the body (it may hold
    /// an initial PIN). Fails with `NotFound` for an unknown id.
    async fn finish_email(&self, id: EmailId, attempt: &Attempt) -> StoreResult<()>;
    /// The newest `limit` mails, newest first, bodies left empty.
    async fn list_emails(&self, limit: usize) -> StoreResult<Vec<Email>>;

    // --- abuse limits ----------------------------------------------------------
    /// Counts one use of `key` (e.g. `sms:user:7`) and says whether it is within `limit`
    /// uses per window. A window starts at the first use after the previous one ended
    /// and lasts `window_seconds`. A refused use does not count. Atomic across nodes.
    async fn take_rate(
        &self,
        key: &str,
        now: i64,
        window_seconds: i64,
        limit: u32,
    ) -> StoreResult<bool>;

    // --- stored settings -------------------------------------------------------
    /// Every setting, ordered by key, secret values opened.
    async fn list_settings(&self) -> StoreResult<Vec<Setting>>;
    /// Creates or replaces the setting `key` (a secret value is sealed, bound to its key)
    /// and moves [`Store::settings_version`] on.
    async fn put_setting(&self, key: &str, value: &str, secret: bool, now: i64) -> StoreResult<()>;
    /// Removes the setting; `NotFound` when it is not set.
    async fn delete_setting(&self, key: &str) -> StoreResult<()>;
    /// A number that changes with every put or delete of a setting, so each node can
    /// poll it cheaply and reread the settings only after a change.
    async fn settings_version(&self) -> StoreResult<i64>;

    // --- whole-store copy --------------------------------------------------------
    /// Every row, read in one consistent view (queued audit records are flushed
    /// first), secrets still sealed.
    async fn export_snapshot(&self) -> StoreResult<Snapshot>;
    /// Loads a snapshot into this store in one transaction, keeping ids, and moves the
    /// id sequences past [`Snapshot::ids`]. Fails with `Duplicate` unless the store is
    /// empty, so a copy never merges into or overwrites live data.
    async fn import_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()>;
}
