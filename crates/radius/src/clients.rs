//! The RADIUS client table: which NAS a source address belongs to and the secret it shares with us.

use ipnet::IpNet;
use mfad_core::engine::ClientInfo;
use mfad_core::model::Client;
use mfad_core::store::StoreResult;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use zeroize::Zeroizing;

/// RFC 6614 §2.3 and the BlastRADIUS guidance: secrets shorter than this are
/// within reach of offline guessing from a single captured exchange.
pub const MIN_SECRET_LEN: usize = 16;

/// One RADIUS client as the transport needs it.
pub struct RadiusClient {
    pub network: IpNet,
    pub secret: Zeroizing<Vec<u8>>,
    pub require_message_authenticator: bool,
    /// With `first_factor = radius`: the target names to forward to, in order; empty: all.
    pub targets: Vec<String>,
    /// What the engine is told about the client on every request.
    pub info: ClientInfo,
}

impl std::fmt::Debug for RadiusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadiusClient")
            .field("name", &self.info.name)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// An immutable snapshot of the clients; replaced whole on every refresh so a
/// request sees one consistent table.
#[derive(Debug, Default)]
pub struct ClientTable {
    /// Longest prefix first, so the first network that contains an address is
    /// the most specific one.
    clients: Vec<Arc<RadiusClient>>,
}

impl ClientTable {
    /// Builds the table from the store's clients. Clients without a secret are
    /// left out: RFC 2865 §3 requires one to sign and check every packet.
    pub fn new(clients: Vec<Client>) -> Self {
        let mut clients: Vec<Arc<RadiusClient>> = clients
            .into_iter()
            .filter(|c| !c.secret.is_empty())
            .map(|c| {
                Arc::new(RadiusClient {
                    network: c.address.trunc(),
                    secret: Zeroizing::new(c.secret.as_bytes().to_vec()),
                    require_message_authenticator: c.require_message_authenticator,
                    targets: c.targets,
                    info: ClientInfo {
                        name: c.name,
                        first_factor: c.first_factor,
                        prompt: c.prompt,
                        require_user_match: c.require_user_match,
                        code_separator: c.code_separator,
                    },
                })
            })
            .collect();
        // Stable: among equal prefixes the store's order (by name) decides.
        clients.sort_by_key(|c| std::cmp::Reverse(c.network.prefix_len()));
        ClientTable { clients }
    }

    /// The client whose network is the longest prefix containing `source`.
    /// An IPv4 client also matches its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`),
    /// which is how a dual-stack socket reports IPv4 peers.
    pub fn find(&self, source: IpAddr) -> Option<&Arc<RadiusClient>> {
        let source = source.to_canonical();
        self.clients.iter().find(|c| c.network.contains(&source))
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// Remembers which clients were already warned about, so that a refresh every
/// few seconds does not repeat the same warning.
#[derive(Debug, Default)]
pub struct SecretWarnings {
    warned: HashSet<String>,
}

impl SecretWarnings {
    /// Logs, once per client name, the clients that cannot be used or should
    /// not be. Returns the names warned about in this call.
    pub fn check(&mut self, clients: &[Client]) -> Vec<String> {
        let mut now_warned = Vec::new();
        for c in clients {
            if c.secret.len() >= MIN_SECRET_LEN || self.warned.contains(&c.name) {
                continue;
            }
            if c.secret.is_empty() {
                tracing::error!(
                    "client {} has no shared secret configured and is ignored; set one with 'mfad client add'",
                    c.name
                );
            } else {
                tracing::warn!(
                    "client {} has a shared secret of {} bytes; use at least 16 (RFC 6614 §2.3 / BlastRADIUS guidance)",
                    c.name,
                    c.secret.len()
                );
            }
            self.warned.insert(c.name.clone());
            now_warned.push(c.name.clone());
        }
        now_warned
    }
}

/// The table in use, swapped whole when the store's client list is reloaded.
#[derive(Debug, Default)]
pub struct LiveClients {
    table: RwLock<Arc<ClientTable>>,
    warnings: Mutex<SecretWarnings>,
}

impl LiveClients {
    /// The current table; cheap (one `Arc` clone), so taken per datagram.
    pub fn current(&self) -> Arc<ClientTable> {
        Arc::clone(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Installs the result of `Store::list_clients`. On an error the table in
    /// use stays: a store outage must not turn every NAS into an unknown
    /// source, nor must it let anything new in.
    pub fn apply(&self, listed: StoreResult<Vec<Client>>) {
        let clients = match listed {
            Ok(clients) => clients,
            Err(err) => {
                tracing::warn!(
                    "cannot reload RADIUS clients, keeping the {} loaded: {err}",
                    self.current().len()
                );
                return;
            }
        };
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(&clients);
        let table = ClientTable::new(clients);
        let before = self.current().len();
        if table.len() != before {
            tracing::info!("radius clients: {}", table.len());
        }
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfad_core::model::{FirstFactor, Prompt};

    fn client(name: &str, address: &str, secret: &str) -> Client {
        Client {
            id: 0,
            name: name.into(),
            address: address.parse().unwrap(),
            secret: secret.into(),
            first_factor: FirstFactor::None,
            prompt: Prompt::Auto,
            require_message_authenticator: true,
            require_user_match: true,
            code_separator: String::new(),
            targets: Vec::new(),
            created_at: 0,
        }
    }

    fn name_for(table: &ClientTable, ip: &str) -> Option<String> {
        table.find(ip.parse().unwrap()).map(|c| c.info.name.clone())
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        let table = ClientTable::new(vec![
            client("any-v4", "0.0.0.0/0", "s"),
            client("site", "10.1.0.0/16", "s"),
            client("vpn", "10.1.2.3/32", "s"),
            client("lan", "10.0.0.0/8", "s"),
            client("v6", "2001:db8::/32", "s"),
        ]);
        let table_cases = [
            ("10.1.2.3", Some("vpn")),
            ("10.1.2.4", Some("site")),
            ("10.2.0.1", Some("lan")),
            ("192.0.2.1", Some("any-v4")),
            ("2001:db8::7", Some("v6")),
            ("2001:db9::7", None),
        ];
        for (ip, want) in table_cases {
            assert_eq!(name_for(&table, ip).as_deref(), want, "{ip}");
        }
    }

    #[test]
    fn ipv4_mapped_sources_match_ipv4_clients() {
        let table = ClientTable::new(vec![client("vpn", "192.0.2.0/24", "s")]);
        assert_eq!(name_for(&table, "::ffff:192.0.2.9").as_deref(), Some("vpn"));
        assert_eq!(name_for(&table, "::ffff:198.51.100.1"), None);
    }

    #[test]
    fn host_bits_in_the_configured_address_are_ignored() {
        // 10.1.2.3/8 means the network 10.0.0.0/8.
        let table = ClientTable::new(vec![client("lan", "10.1.2.3/8", "s")]);
        assert_eq!(name_for(&table, "10.200.0.1").as_deref(), Some("lan"));
    }

    #[test]
    fn equal_prefixes_keep_the_store_order() {
        let table = ClientTable::new(vec![
            client("a", "10.0.0.0/8", "s"),
            client("b", "10.0.0.0/8", "s"),
        ]);
        assert_eq!(name_for(&table, "10.0.0.1").as_deref(), Some("a"));
    }

    #[test]
    fn clients_without_a_secret_are_left_out() {
        let table = ClientTable::new(vec![client("blank", "10.0.0.0/8", "")]);
        assert!(table.is_empty());
        assert_eq!(name_for(&table, "10.0.0.1"), None);
    }

    #[test]
    fn a_failed_reload_keeps_the_clients_in_use() {
        let live = LiveClients::default();
        live.apply(Ok(vec![client("vpn", "10.0.0.0/8", "s")]));
        assert_eq!(live.current().len(), 1);
        live.apply(Err(mfad_core::store::StoreError::Unavailable(
            "database is locked".into(),
        )));
        assert_eq!(
            name_for(&live.current(), "10.0.0.1").as_deref(),
            Some("vpn")
        );
        live.apply(Ok(vec![]));
        assert!(live.current().is_empty(), "an empty list is a real answer");
    }

    #[test]
    fn short_secrets_are_reported_once_per_client() {
        let mut warnings = SecretWarnings::default();
        let clients = vec![
            client("short", "10.0.0.1/32", "tooshort"),
            client("blank", "10.0.0.2/32", ""),
            client("long", "10.0.0.3/32", "0123456789abcdef"),
        ];
        assert_eq!(warnings.check(&clients), ["short", "blank"]);
        assert!(warnings.check(&clients).is_empty());
        let more = vec![client("new", "10.0.0.4/32", "x")];
        assert_eq!(warnings.check(&more), ["new"]);
    }
}
