//! mfad-directory: the LDAP / Active Directory client. It imports and syncs users
//! ([`sync`]), checks first-factor passwords with a bind as the user (the
//! [`mfad_core::directory::Directory`] trait) and tests a configuration step by step.
//!
//! Rules (mapping, sync planning, the mass-change safeguard) live in
//! [`mfad_core::directory`]; this crate only speaks LDAP (ldap3 over rustls).

pub mod client;
pub mod config;
pub mod sync;

pub use client::{Check, LdapDirectory};
pub use config::{DirectoryConfig, SyncItemConfig};
pub use sync::{approve_phones, run_sync, SyncReport};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work; the message says which key and what to do.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No server could be used; one reason per server tried.
    #[error("no directory server could be used: {0}")]
    Unavailable(String),
    /// A server answered with an error to the service account's bind or a search.
    #[error("{0}")]
    Ldap(String),
    #[error(transparent)]
    Store(#[from] mfad_core::store::StoreError),
}
