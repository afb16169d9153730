//! RADIUS clients (VPNs, gateways, PAM hosts): the rules for adding and removing them.

use super::{Error, Result};
use crate::clock::Clock;
use crate::model::{Client, FirstFactor, NewClient};
use crate::store::{Store, StoreError};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

/// Shared secrets shorter than this draw a warning (BlastRADIUS, CVE-2024-3596).
pub const MIN_SECRET_LEN: usize = 16;

/// Something the operator should know about a client that can be added as given.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientNotice {
    /// The shared secret has `len` bytes, fewer than [`MIN_SECRET_LEN`].
    ShortSecret { client: String, len: usize },
    /// The client forwards to target RADIUS servers, and none is configured.
    NoTargets { client: String },
    /// The client checks passwords against the directory, and none is configured.
    NoDirectory { client: String },
}

impl ClientNotice {
    /// A stable word for the notice, as [`super::Error::code`] is for errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ShortSecret { .. } => "client.short_secret",
            Self::NoTargets { .. } => "client.no_targets",
            Self::NoDirectory { .. } => "client.no_directory",
        }
    }
}

impl std::fmt::Display for ClientNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ShortSecret { client, len } => write!(
                f,
                "the shared secret of client {client} has {len} bytes; use at least {MIN_SECRET_LEN} random bytes (BlastRADIUS, CVE-2024-3596)"
            ),
            Self::NoTargets { client } => write!(
                f,
                "client {client} forwards to target RADIUS servers, but the config has no [[radius.targets]]; its users are rejected until one is added"
            ),
            Self::NoDirectory { client } => write!(
                f,
                "client {client} checks passwords against the directory, but the config has no [directory] section; its users are rejected until one is added"
            ),
        }
    }
}

/// An IP address or CIDR network, as a client's `--address` is written.
pub fn parse_address(address: &str) -> Result<IpNet> {
    address
        .parse()
        .or_else(|_| address.parse::<IpAddr>().map(IpNet::from))
        .map_err(|err| Error::InvalidAddress {
            address: address.into(),
            reason: err.to_string(),
        })
}

/// The client service.
pub struct Clients {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// The names of the configured target RADIUS servers (`[[radius.targets]]`).
    targets: Vec<String>,
    /// Whether a directory is configured (`[directory]`).
    directory: bool,
}

impl Clients {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        targets: Vec<String>,
        directory: bool,
    ) -> Self {
        Self {
            store,
            clock,
            targets,
            directory,
        }
    }

    /// Checks a client against the rules without adding it: an error for what cannot be
    /// added, notices for what can but will not work as the operator may expect.
    pub fn check(&self, client: &NewClient) -> Result<Vec<ClientNotice>> {
        let mut notices = Vec::new();
        if client.secret.is_empty() {
            return Err(Error::EmptySecret);
        }
        if client.secret.len() < MIN_SECRET_LEN {
            notices.push(ClientNotice::ShortSecret {
                client: client.name.clone(),
                len: client.secret.len(),
            });
        }
        // A `radius` client names configured targets; other clients name none.
        if client.first_factor == FirstFactor::Radius {
            if let Some(name) = client
                .targets
                .iter()
                .find(|name| !self.targets.contains(name))
            {
                return Err(Error::UnknownTarget(name.clone()));
            }
            if self.targets.is_empty() {
                notices.push(ClientNotice::NoTargets {
                    client: client.name.clone(),
                });
            }
        } else if !client.targets.is_empty() {
            return Err(Error::TargetsWithoutRadius);
        }
        if client.first_factor == FirstFactor::Directory && !self.directory {
            notices.push(ClientNotice::NoDirectory {
                client: client.name.clone(),
            });
        }
        Ok(notices)
    }

    /// Adds a client that passes [`Clients::check`]; mfad answers it within seconds.
    pub async fn add(&self, client: &NewClient) -> Result<Client> {
        self.check(client)?;
        match self.store.create_client(client, self.clock.now()).await {
            Err(StoreError::Duplicate(_)) => Err(Error::ClientExists(client.name.clone())),
            other => Ok(other?),
        }
    }

    /// Every client, ordered by name.
    pub async fn list(&self) -> Result<Vec<Client>> {
        Ok(self.store.list_clients().await?)
    }

    /// Removes the client `name`.
    pub async fn remove(&self, name: &str) -> Result<()> {
        match self.store.delete_client(name).await {
            Err(StoreError::NotFound(_)) => Err(Error::ClientNotFound(name.into())),
            other => Ok(other?),
        }
    }
}
