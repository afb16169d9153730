//! Directory integration rules: the [`Directory`] trait the engine checks passwords
//! through, attribute mapping ([`mapping`]) and sync planning ([`sync`]).
//!
//! Nothing here speaks LDAP: the `mfad-directory` crate does, and hands this module
//! plain entries. That keeps every rule a pure function with unit tests.

pub mod mapping;
pub mod sync;

use async_trait::async_trait;

pub use mapping::{AttributeMap, Entry, Preset};
pub use sync::{
    initial_pin, pending_phones, plan, InitialPin, RemovedUsers, SyncItem, SyncOptions, SyncPlan,
};

/// A directory user, mapped from an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectoryUser {
    /// objectGUID (as a canonical GUID string) or entryUUID: stable across renames and moves.
    pub unique_id: String,
    pub dn: String,
    pub username: String,
    pub given_name: String,
    pub surname: String,
    pub email: String,
    pub phone: String,
    pub mobile: String,
    pub extension: String,
    pub language: String,
    /// False when the directory marks the account disabled (AD userAccountControl bit 2).
    pub enabled: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// No server answered, or none within the timeout.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The service account's bind or a search failed.
    #[error("directory error: {0}")]
    Failed(String),
}

/// What the engine needs from a directory for the first factor.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Finds the user by the name they log in with, using the service account. The name
    /// is a value, never filter syntax: implementations escape it (RFC 4515 §3).
    async fn find_user(&self, username: &str) -> Result<Option<DirectoryUser>, DirectoryError>;
    /// Binds as `dn` with `password`: `Ok(false)` for wrong credentials. An empty
    /// password is always `Ok(false)`: RFC 4513 §5.1.2 makes such a bind unauthenticated,
    /// which servers report as success.
    async fn check_password(&self, dn: &str, password: &str) -> Result<bool, DirectoryError>;
}
