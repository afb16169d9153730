//! The behaviours every [`Store`] backend must show, written once and run against each.
//!
//! A case is a `pub async fn` that takes the store (or, for durability and at-rest
//! checks, the [`Backend`]) and returns [`CaseResult`]. A backend's test file defines
//! how to make a fresh, empty store and calls [`conformance_tests!`](crate::conformance_tests),
//! which turns every case into a `#[tokio::test]`:
//!
//! ```text
//! async fn fresh() -> Result<MyBackend, Failure> { ... }
//! mfad_store::conformance_tests!(fresh);
//! ```
//!
//! Cases report failures as values instead of panicking, so this module follows the
//! same lints as the rest of the library.

mod at_rest;
mod audit;
mod auth;
mod clients;
mod directory;
mod outbox;
mod settings;
mod snapshot;
mod tokens;
mod transactions;
mod users;

pub use at_rest::*;
pub use audit::*;
pub use auth::*;
pub use clients::*;
pub use directory::*;
pub use outbox::*;
pub use settings::*;
pub use snapshot::*;
pub use tokens::*;
pub use transactions::*;
pub use users::*;

use async_trait::async_trait;
use mfad_core::audit::{AuditRecord, AuditResult};
use mfad_core::model::{Method, NewClient, NewToken, NewUser, PinMode, Secret, UserId};
use mfad_core::otp::{Algorithm, OtpKind};
use mfad_core::store::{Store, StoreError};
use std::fmt;
use std::panic::Location;
use std::sync::Arc;

/// What a backend's test harness provides beyond the store itself.
#[async_trait]
pub trait Backend: Send {
    /// The store under test.
    fn store(&self) -> Arc<dyn Store>;
    /// Lets go of the current store and opens the same database again, as a restarted
    /// server would. Callers drop their own handles first.
    async fn reopen(&mut self) -> Result<Arc<dyn Store>, Failure>;
    /// Everything the backend keeps at rest (files, or a dump of every table), to check
    /// that secrets do not appear in it.
    fn raw_bytes(&self) -> Result<Vec<u8>, Failure>;
    /// A second, empty store of the same backend with the same key, kept (and cleaned
    /// up) with this one: the target of a copy.
    async fn another(&mut self) -> Result<Arc<dyn Store>, Failure>;
}

/// A case that did not hold: what was expected, and where in the suite.
pub struct Failure {
    message: String,
    location: &'static Location<'static>,
}

impl Failure {
    #[track_caller]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            location: Location::caller(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at {})", self.message, self.location)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Failure {}

impl From<StoreError> for Failure {
    #[track_caller]
    fn from(e: StoreError) -> Self {
        Self::new(format!("store error: {e}"))
    }
}

impl From<tokio::task::JoinError> for Failure {
    #[track_caller]
    fn from(e: tokio::task::JoinError) -> Self {
        Self::new(format!("a concurrent task failed: {e}"))
    }
}

impl From<&'static str> for Failure {
    #[track_caller]
    fn from(message: &'static str) -> Self {
        Self::new(message)
    }
}

impl From<std::io::Error> for Failure {
    #[track_caller]
    fn from(e: std::io::Error) -> Self {
        Self::new(format!("I/O error: {e}"))
    }
}

pub type CaseResult = Result<(), Failure>;

/// Fails the case with a message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::conformance::Failure::new(format!($($msg)+)));
        }
    };
}

/// Fails the case unless both sides are equal, showing both.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        ensure_eq!($left, $right, "")
    };
    ($left:expr, $right:expr, $($msg:tt)+) => {
        match (&$left, &$right) {
            (left, right) => {
                if left != right {
                    return Err($crate::conformance::Failure::new(format!(
                        "expected {} == {}: {:?} != {:?} {}",
                        stringify!($left),
                        stringify!($right),
                        left,
                        right,
                        format!($($msg)+)
                    )));
                }
            }
        }
    };
}

/// Fails the case unless the result is the given error variant.
macro_rules! ensure_err {
    ($result:expr, $variant:ident) => {
        match $result {
            Err(mfad_core::store::StoreError::$variant(_)) => {}
            other => {
                return Err($crate::conformance::Failure::new(format!(
                    "expected {} to fail with {}, got {:?}",
                    stringify!($result),
                    stringify!($variant),
                    other
                )))
            }
        }
    };
}

pub(crate) use {ensure, ensure_eq, ensure_err};

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The time every case runs at, in Unix seconds.
pub const NOW: i64 = 1_700_000_000;

/// A user with every field filled in.
pub fn new_user(username: &str) -> NewUser {
    NewUser {
        username: username.to_owned(),
        given_name: format!("Given {username}"),
        surname: format!("Surname {username}"),
        email: format!("{}@example.org", username.to_lowercase()),
        phone: "+15555550100".to_owned(),
        pin_mode: PinMode::Standard,
        mobile: "+15555550101".to_owned(),
        extension: "4711".to_owned(),
        language: "de".to_owned(),
        directory_id: None,
        sync_item: None,
        method: Method::App,
        backup_phone: String::new(),
    }
}

/// An HOTP token whose secret is derived from the serial, so each one differs.
pub fn new_token(serial: &str, user_id: Option<UserId>) -> NewToken {
    NewToken {
        serial: serial.to_owned(),
        user_id,
        kind: OtpKind::Hotp,
        algorithm: Algorithm::Sha256,
        digits: 6,
        period: 30,
        secret: Secret::new(format!("seed of {serial}: 0123456789").into_bytes()),
        next: 0,
    }
}

pub fn new_client(name: &str, address: &str) -> Result<NewClient, Failure> {
    Ok(NewClient {
        name: name.to_owned(),
        address: address
            .parse()
            .map_err(|e| Failure::new(format!("bad test address {address}: {e}")))?,
        secret: format!("shared secret of {name}"),
        first_factor: Default::default(),
        prompt: Default::default(),
        require_message_authenticator: true,
        require_user_match: false,
        code_separator: ",".to_owned(),
        targets: Vec::new(),
    })
}

/// An audit record with every field set, distinct per `n`.
pub fn audit_record(n: u32, username: &str, time_ms: i64) -> AuditRecord {
    AuditRecord {
        id: format!("{n:032x}"),
        time_ms,
        username: username.to_owned(),
        given_name: "Given".to_owned(),
        surname: "Surname".to_owned(),
        email: "user@example.org".to_owned(),
        phone: "+15555550100".to_owned(),
        device: format!("T{n}"),
        method: "hotp".to_owned(),
        mode: "standard".to_owned(),
        result: Some(if n % 2 == 1 {
            AuditResult::Reject
        } else {
            AuditResult::Accept
        }),
        reason: if n % 2 == 1 {
            "wrong_code".to_owned()
        } else {
            "ok".to_owned()
        },
        server_name: "mfa1".to_owned(),
        server_ip: "192.0.2.1".to_owned(),
        client_name: "vpn".to_owned(),
        client_ip: "192.0.2.10".to_owned(),
        channel: "radius".to_owned(),
        calling_station: String::new(),
    }
}

/// Creates a user, failing the case if that does not work.
pub async fn given_user(
    store: &dyn Store,
    username: &str,
) -> Result<mfad_core::model::User, Failure> {
    Ok(store.create_user(&new_user(username), NOW).await?)
}

/// Creates one token for the user and returns it.
pub async fn given_token(
    store: &dyn Store,
    serial: &str,
    user_id: Option<UserId>,
) -> Result<mfad_core::model::Token, Failure> {
    let mut created = store
        .create_tokens(&[new_token(serial, user_id)], NOW)
        .await?;
    created
        .pop()
        .ok_or_else(|| Failure::new("create_tokens returned no token"))
}

/// Defines one `#[tokio::test]` per conformance case, each on a fresh store made by
/// `$fresh().await`, which returns `Result<impl Backend, Failure>`.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@store $fresh;
            // auth: the hot path
            bypass_is_used_exactly_once_among_concurrent_calls,
            expired_or_revoked_bypass_is_not_used,
            attempt_at_the_limit_locks_and_resets_the_count,
            racing_attempts_get_at_most_the_limit_of_slots,
            a_released_slot_no_longer_counts,
            a_code_attempt_takes_its_slot_and_its_outcome_together,
            an_accepted_code_writes_the_record_it_was_given_and_only_then,
            accepted_codes_at_once_each_write_their_own_record,
            racing_code_attempts_decide_at_most_the_limit,
            clear_failures_resets_count_and_lock,
            auth_subject_returns_the_user_with_their_tokens,
            advance_token_accepts_each_counter_once,
            concurrent_advances_with_the_same_counter_succeed_once,
            advance_token_never_moves_backward,
            resync_is_remembered_and_cleared_by_an_advance,
            cached_auth_holds_until_its_time,
            rate_limit_allows_the_limit_per_window_then_refuses,
            concurrent_uses_never_exceed_the_rate_limit,
            // transactions
            challenge_is_taken_once_among_concurrent_calls,
            expired_challenge_is_not_returned_and_is_removed,
            challenges_keep_their_kind_and_binding,
            // users
            created_user_reads_back_by_name_and_id,
            usernames_are_stored_lower_case,
            duplicate_username_in_another_case_is_rejected,
            users_are_listed_by_username,
            update_changes_only_the_given_fields,
            deleting_a_user_removes_their_tokens_challenges_and_cache,
            ids_of_deleted_users_and_tokens_are_never_reused,
            operations_on_a_missing_user_are_not_found,
            block_lasts_until_its_time_and_can_be_lifted,
            pin_history_keeps_the_newest_hashes_first,
            bulk_load_creates_users_with_their_tokens,
            bulk_load_is_all_or_nothing,
            user_method_is_stored_and_updated,
            // tokens
            tokens_are_found_by_serial_owner_and_in_the_list,
            token_secrets_round_trip,
            duplicate_serial_fails_the_whole_call,
            token_for_a_missing_user_is_rejected,
            tokens_can_be_reassigned_and_deleted,
            // clients
            clients_are_created_listed_and_deleted,
            duplicate_client_name_is_rejected,
            // pending out-of-band transactions
            pending_transaction_reads_back_and_is_decided_once,
            racing_decisions_and_takes_succeed_once,
            expired_pending_transaction_is_not_read_decided_or_taken,
            expired_pending_logins_are_swept_with_one_record_each,
            duplicate_pending_id_is_rejected_and_delete_removes_it,
            // audit
            audit_records_round_trip_after_flush,
            audit_query_filters_by_user_time_and_limit,
            purge_removes_only_older_records,
            purge_of_many_records_removes_them_all,
            // directory state
            directory_sync_adds_updates_disables_and_removes_together,
            directory_ids_are_unique_and_a_clash_applies_nothing,
            local_users_keep_no_directory_id,
            sync_state_starts_empty_and_round_trips,
            held_phone_changes_round_trip_with_the_sync_state,
            sync_lock_has_one_holder_until_it_expires,
            // e-mail outbox
            queued_email_is_claimed_once_and_erased_when_sent,
            once_key_queues_a_mail_only_once,
            failed_attempts_wait_for_their_retry_time,
            lapsed_claims_are_claimed_again,
            concurrent_claims_hand_out_each_mail_once,
            emails_are_listed_newest_first,
            // stored settings
            settings_are_put_listed_by_key_replaced_and_deleted,
            settings_version_moves_on_every_change,
        );
        $crate::conformance_tests!(@backend $fresh;
            secrets_are_not_stored_in_plaintext,
            data_survives_reopening,
            email_bodies_are_not_stored_in_plaintext,
            snapshot_copies_every_row_into_an_empty_store,
            snapshot_is_refused_by_a_store_that_holds_data,
            secret_settings_are_sealed_at_rest,
        );
    };
    (@store $fresh:path; $($case:ident),* $(,)?) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() -> ::core::result::Result<(), $crate::conformance::Failure> {
            let backend = $fresh().await?;
            let store = $crate::conformance::Backend::store(&backend);
            $crate::conformance::$case(store).await
        }
    )*};
    (@backend $fresh:path; $($case:ident),* $(,)?) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() -> ::core::result::Result<(), $crate::conformance::Failure> {
            let mut backend = $fresh().await?;
            $crate::conformance::$case(&mut backend).await
        }
    )*};
}
