//! The storage interface the engine and the CLI use; SQLite and PostgreSQL implement it.
//!
//! The interface is a set of capability traits, one per concern ([`AuthStore`] for the
//! hot path, [`TransactionStore`], [`UserStore`], [`TokenStore`], [`ClientStore`],
//! [`AuditStore`], [`OutboxStore`], [`SettingsStore`], [`DirectoryStore`],
//! [`SnapshotStore`]). [`Store`] is all of them together: the one object the engine and
//! the server hold (`Arc<dyn Store>`), on which every capability's methods are called;
//! code that holds a backend itself imports the capability traits it calls.
//!
//! Every rule that must hold across channels, nodes and restarts is a single
//! conditional statement here (replay, lockout, single-use challenges and
//! bypasses), never process memory.

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

pub use audit::AuditStore;
pub use auth::{AuthStore, CodeAttempt, FailureState};
pub use clients::ClientStore;
pub use directory::{DirectoryRecord, DirectoryStore, DirectorySync, PendingPhone, SyncState};
pub use outbox::OutboxStore;
pub use settings::SettingsStore;
pub use snapshot::SnapshotStore;
pub use tokens::TokenStore;
pub use transactions::{Decision, PendingTxn, TransactionStore};
pub use users::{UserStore, UserUpdate};

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

/// Every capability of a store: what a backend implements, and what the engine, the
/// front-ends and the CLI hold.
pub trait Store:
    AuthStore
    + TransactionStore
    + UserStore
    + TokenStore
    + ClientStore
    + AuditStore
    + OutboxStore
    + SettingsStore
    + DirectoryStore
    + SnapshotStore
    + 'static
{
}

impl<T> Store for T where
    T: AuthStore
        + TransactionStore
        + UserStore
        + TokenStore
        + ClientStore
        + AuditStore
        + OutboxStore
        + SettingsStore
        + DirectoryStore
        + SnapshotStore
        + 'static
{
}
