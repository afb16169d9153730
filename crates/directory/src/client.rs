//! The LDAP connections: failover across servers, TLS, the service account, paged
//! searches, user binds for the first factor, and the step-by-step connection test.

use crate::config::DirectoryConfig;
use crate::Error;
use async_trait::async_trait;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, SearchOptions};
use mfad_core::directory::mapping::{AttributeMap, Entry};
use mfad_core::directory::sync::normalise_dn;
use mfad_core::directory::{Directory, DirectoryError, DirectoryUser};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use zeroize::Zeroizing;

/// RFC 4511 §4.1.9 resultCode invalidCredentials (49).
const INVALID_CREDENTIALS: u32 = 49;
/// RFC 4511 §4.1.9 sizeLimitExceeded (4).
const SIZE_LIMIT_EXCEEDED: u32 = 4;
/// Connections kept for user binds.
const BIND_POOL: usize = 8;

/// The directory as mfad uses it. Cheap to share: hold it in an `Arc`.
pub struct LdapDirectory {
    config: DirectoryConfig,
    map: AttributeMap,
    filter: String,
    bind_password: Zeroizing<String>,
    tls: Arc<rustls::ClientConfig>,
    /// The service account's connection, reused: ldap3 multiplexes operations on it.
    service: tokio::sync::Mutex<Option<Ldap>>,
    /// Connections for user binds, reused: a bind replaces the connection's identity
    /// (RFC 4511 §4.2.1), so one connection serves one bind at a time.
    binders: Mutex<Vec<Ldap>>,
    /// The server that answered last: new connections start there, so a dead or hung
    /// primary costs one timeout, not one per connection.
    preferred: AtomicUsize,
}

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("servers", &self.config.servers)
            .finish_non_exhaustive()
    }
}

/// One step of `mfad directory test` against one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub server: String,
    /// `tcp`, `tls`, `bind` or `search`.
    pub step: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl LdapDirectory {
    /// Checks the config, reads the service password and the CA file; connects nothing.
    pub fn new(config: DirectoryConfig) -> Result<Self, Error> {
        config.validate()?;
        let bind_password = match &config.bind_password_file {
            None => Zeroizing::new(String::new()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!(
                        "directory.bind_password_file {}: {e}; create it with the service account's password",
                        path.display()
                    ))
                })?;
                Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_string())
            }
        };
        if !config.bind_dn.is_empty() && bind_password.is_empty() {
            return Err(Error::Config(
                "directory.bind_dn is set but no password: set directory.bind_password_file to a file holding it".into(),
            ));
        }
        let tls = Arc::new(tls_config(&config)?);
        Ok(Self {
            map: config.attribute_map(),
            filter: config.filter(),
            config,
            bind_password,
            tls,
            service: tokio::sync::Mutex::new(None),
            binders: Mutex::new(Vec::new()),
            preferred: AtomicUsize::new(0),
        })
    }

    pub fn config(&self) -> &DirectoryConfig {
        &self.config
    }

    pub fn attribute_map(&self) -> &AttributeMap {
        &self.map
    }

    fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.config.connect_timeout_ms)
    }

    /// The most one `find_user` or `check_password` may take, failover included: a
    /// first-factor check answers within twice this, whatever the directory does.
    fn call_limit(&self) -> Duration {
        self.connect_timeout() + self.op_timeout()
    }

    /// TCP, TLS (ldaps or StartTLS) to one server.
    async fn open(&self, url: &str) -> Result<Ldap, String> {
        let starttls = url.starts_with("ldap://") && self.config.starttls;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.connect_timeout())
            .set_config(Arc::clone(&self.tls))
            .set_starttls(starttls);
        let opened = tokio::time::timeout(
            self.connect_timeout(),
            LdapConnAsync::with_settings(settings, url),
        )
        .await
        .map_err(|_| format!("no connection within {} ms", self.config.connect_timeout_ms))?;
        let (conn, ldap) = opened.map_err(|e| match e {
            // The only operation before the connection is handed over is StartTLS, so
            // an LDAP result here is the server's answer to it (OpenLDAP without a
            // certificate: rc=2 "unsupported extended operation").
            LdapError::LdapResult { result } if starttls => format!(
                "the server refused StartTLS (rc={} {}); use an ldaps:// URL in directory.servers (with directory.ca_file if its certificate is from a private CA), give the server a certificate, or set directory.starttls = false if the network to it is trusted",
                result.rc,
                result.text.trim()
            ),
            e => describe(&e),
        })?;
        let server = url.to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(%server, "LDAP connection closed: {e}");
            }
        });
        Ok(ldap)
    }

    async fn service_bind(&self, ldap: &mut Ldap) -> Result<(), String> {
        if self.config.bind_dn.is_empty() {
            return Ok(());
        }
        let result = ldap
            .with_timeout(self.connect_timeout())
            .simple_bind(&self.config.bind_dn, &self.bind_password)
            .await
            .map_err(|e| describe(&e))?;
        match result.rc {
            0 => Ok(()),
            INVALID_CREDENTIALS => Err(format!(
                "the service account {} was refused (invalid credentials); check directory.bind_dn and directory.bind_password_file",
                self.config.bind_dn
            )),
            _ => Err(format!("service account bind failed: {result}")),
        }
    }

    /// The first server that connects (and binds as the service account), trying them
    /// in configured order starting from the one that answered last.
    async fn connect(&self, service: bool) -> Result<Ldap, Error> {
        let servers = &self.config.servers;
        let start = self.preferred.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for k in 0..servers.len() {
            let index = (start + k) % servers.len();
            let Some(url) = servers.get(index) else {
                continue;
            };
            match self.open(url).await {
                Ok(mut ldap) => {
                    let bound = if service {
                        self.service_bind(&mut ldap).await
                    } else {
                        Ok(())
                    };
                    match bound {
                        Ok(()) => {
                            self.preferred.store(index, Ordering::Relaxed);
                            return Ok(ldap);
                        }
                        Err(e) => failures.push(format!("{url}: {e}")),
                    }
                }
                Err(e) => failures.push(format!("{url}: {e}")),
            }
            tracing::warn!(server = %url, "directory server not usable, trying the next");
        }
        Err(Error::Unavailable(failures.join("; ")))
    }

    /// Runs `op` on the service connection; on a connection-level failure it reconnects
    /// (the next server if this one is gone) and tries once more.
    async fn with_service<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        F: Fn(Ldap) -> Fut,
        Fut: Future<Output = Result<T, LdapError>>,
    {
        for attempt in 0..2 {
            let ldap = {
                let mut cached = self.service.lock().await;
                let reusable = match cached.as_mut() {
                    Some(ldap) if attempt == 0 => (!ldap.is_closed()).then(|| ldap.clone()),
                    _ => None,
                };
                match reusable {
                    Some(ldap) => ldap,
                    None => {
                        let fresh = self.connect(true).await?;
                        *cached = Some(fresh.clone());
                        fresh
                    }
                }
            };
            match op(ldap).await {
                Ok(value) => return Ok(value),
                Err(LdapError::LdapResult { result }) => {
                    return Err(Error::Ldap(format!(
                        "the directory refused a search: {result}"
                    )))
                }
                Err(e) if attempt == 0 => {
                    tracing::warn!(
                        "directory connection failed, reconnecting: {}",
                        describe(&e)
                    );
                    *self.service.lock().await = None;
                }
                Err(e) => return Err(Error::Unavailable(describe(&e))),
            }
        }
        Err(Error::Unavailable("no directory server answered".into()))
    }

    /// Entries matching the user filter whose username attribute(s) equal `username`.
    async fn search_user(&self, username: &str) -> Result<Vec<Entry>, Error> {
        // RFC 4515 §3: the value is escaped, so `*`, `(`, `)`, `\` and NUL are literal.
        let value = ldap3::ldap_escape(username).into_owned();
        let alternatives: String = self
            .map
            .username
            .iter()
            .map(|a| format!("({a}={value})"))
            .collect();
        let filter = format!("(&{}(|{alternatives}))", self.filter);
        let attrs = self.map.requested();
        let timeout = self.op_timeout();
        let base = self.config.base_dn.clone();
        self.with_service(|mut ldap| {
            let (filter, attrs, base) = (filter.clone(), attrs.clone(), base.clone());
            async move {
                let (entries, _) = ldap
                    .with_timeout(timeout)
                    .with_search_options(SearchOptions::new().sizelimit(2))
                    .search(&base, Scope::Subtree, &filter, attrs)
                    .await?
                    .non_error()?;
                Ok(entries
                    .into_iter()
                    .map(|e| entry(SearchEntry::construct(e)))
                    .collect())
            }
        })
        .await
    }

    /// Every user entry under the base DN, read with a paged search (RFC 2696) on a
    /// connection of its own. `progress` hears the count after every entry.
    pub async fn entries(&self, progress: &(dyn Fn(usize) + Sync)) -> Result<Vec<Entry>, Error> {
        let mut ldap = self.connect(true).await?;
        let attrs = self.map.requested();
        let page = i32::try_from(self.config.page_size).unwrap_or(i32::MAX);
        let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(page)),
        ];
        let mut options = SearchOptions::new();
        if self.config.size_limit > 0 {
            options = options.sizelimit(i32::try_from(self.config.size_limit).unwrap_or(i32::MAX));
        }
        let unavailable = |e: LdapError| Error::Unavailable(describe(&e));
        let mut stream = ldap
            .with_timeout(self.op_timeout())
            .with_search_options(options)
            .streaming_search_with(
                adapters,
                &self.config.base_dn,
                Scope::Subtree,
                &self.filter,
                attrs,
            )
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        while let Some(found) = stream.next().await.map_err(unavailable)? {
            out.push(entry(SearchEntry::construct(found)));
            progress(out.len());
        }
        let result = stream.finish().await;
        let _ = ldap.unbind().await;
        match result.rc {
            0 => Ok(out),
            SIZE_LIMIT_EXCEEDED => Err(Error::Ldap(format!(
                "the search returned more than directory.size_limit ({}) entries; raise the limit or narrow directory.user_filter",
                self.config.size_limit
            ))),
            _ => Err(Error::Ldap(format!("the user search failed: {result}"))),
        }
    }

    /// Normalised DNs of a group's members (`member`, `uniqueMember`).
    pub async fn group_members(&self, group_dn: &str) -> Result<HashSet<String>, Error> {
        let timeout = self.op_timeout();
        let group = group_dn.to_string();
        let entries = self
            .with_service(|mut ldap| {
                let group = group.clone();
                async move {
                    let (entries, _) = ldap
                        .with_timeout(timeout)
                        .search(
                            &group,
                            Scope::Base,
                            "(objectClass=*)",
                            vec!["member", "uniqueMember"],
                        )
                        .await?
                        .success()?;
                    Ok(entries)
                }
            })
            .await
            .map_err(|e| Error::Ldap(format!("group {group_dn}: {e}")))?;
        Ok(entries
            .into_iter()
            .map(SearchEntry::construct)
            .flat_map(|e| e.attrs.into_values().flatten())
            .map(|dn| normalise_dn(&dn))
            .collect())
    }

    /// A user-bind connection: one from the pool, or a new one.
    async fn binder(&self) -> Result<Ldap, Error> {
        let pooled = self
            .binders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        if let Some(mut ldap) = pooled {
            if !ldap.is_closed() {
                return Ok(ldap);
            }
        }
        self.connect(false).await
    }

    fn give_back(&self, ldap: Ldap) {
        let mut pool = self.binders.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < BIND_POOL {
            pool.push(ldap);
        }
    }

    async fn bind_as(&self, dn: &str, password: &str) -> Result<bool, Error> {
        for attempt in 0..2 {
            let mut ldap = self.binder().await?;
            match ldap
                .with_timeout(self.op_timeout())
                .simple_bind(dn, password)
                .await
            {
                Ok(result) => {
                    let verdict = match result.rc {
                        0 => Ok(true),
                        INVALID_CREDENTIALS => Ok(false),
                        _ => Err(Error::Ldap(format!("bind as {dn} failed: {result}"))),
                    };
                    self.give_back(ldap);
                    return verdict;
                }
                // A pooled connection the server closed: try a fresh one (maybe the next server).
                Err(e) if attempt == 0 => {
                    tracing::debug!(
                        "user bind connection failed, reconnecting: {}",
                        describe(&e)
                    );
                }
                Err(e) => return Err(Error::Unavailable(describe(&e))),
            }
        }
        Err(Error::Unavailable("no directory server answered".into()))
    }

    /// `mfad directory test`: every step against every server, in order, stopping at the
    /// first failure of each server.
    pub async fn test(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        for url in &self.config.servers {
            let mut check = |step, ok, detail: String| {
                checks.push(Check {
                    server: url.clone(),
                    step,
                    ok,
                    detail,
                });
                ok
            };
            let address = host_port(url);
            let tcp = tokio::time::timeout(
                self.connect_timeout(),
                tokio::net::TcpStream::connect(address.clone()),
            )
            .await;
            let tcp_ok = match tcp {
                Ok(Ok(_)) => check("tcp", true, format!("connected to {address}")),
                Ok(Err(e)) => check("tcp", false, format!("cannot connect to {address}: {e}")),
                Err(_) => check(
                    "tcp",
                    false,
                    format!(
                        "no answer from {address} within {} ms",
                        self.config.connect_timeout_ms
                    ),
                ),
            };
            if !tcp_ok {
                continue;
            }
            let mut ldap = match self.open(url).await {
                Ok(ldap) => {
                    let how = if url.starts_with("ldaps://") {
                        "TLS (ldaps)"
                    } else if self.config.starttls {
                        "StartTLS"
                    } else {
                        "no TLS: passwords cross the network in clear text (directory.starttls = false)"
                    };
                    check("tls", true, how.to_string());
                    ldap
                }
                Err(e) => {
                    check(
                        "tls",
                        false,
                        format!("{e}; check directory.ca_file and the server's certificate name"),
                    );
                    continue;
                }
            };
            match self.service_bind(&mut ldap).await {
                Ok(()) if self.config.bind_dn.is_empty() => {
                    check("bind", true, "anonymous (no directory.bind_dn)".into())
                }
                Ok(()) => check("bind", true, format!("bound as {}", self.config.bind_dn)),
                Err(e) => {
                    check("bind", false, e);
                    continue;
                }
            };
            let search = ldap
                .with_timeout(self.op_timeout())
                .with_search_options(SearchOptions::new().sizelimit(1))
                .search(
                    &self.config.base_dn,
                    Scope::Subtree,
                    &self.filter,
                    self.map.requested(),
                )
                .await
                .and_then(|r| r.non_error());
            match search {
                Ok((entries, _)) => match entries.into_iter().next() {
                    Some(found) => {
                        let found = entry(SearchEntry::construct(found));
                        match self.map.map(&found) {
                            Ok(user) => check("search", true, format!("found {} ({}) with ID {}", user.username, user.dn, user.unique_id)),
                            Err(why) => check("search", false, format!("found an entry but cannot map it: {why}; check [directory.attributes]")),
                        }
                    }
                    None => check("search", false, format!("no entry under {} matches {}; check directory.base_dn and directory.user_filter", self.config.base_dn, self.filter)),
                },
                Err(e) => check("search", false, format!("search under {} failed: {}", self.config.base_dn, describe(&e))),
            };
            let _ = ldap.unbind().await;
        }
        checks
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    async fn find_user(&self, username: &str) -> Result<Option<DirectoryUser>, DirectoryError> {
        let limit = self.call_limit();
        let entries = tokio::time::timeout(limit, self.search_user(username))
            .await
            .map_err(|_| {
                DirectoryError::Unavailable(format!("no answer within {} ms", limit.as_millis()))
            })?
            .map_err(into_directory_error)?;
        if entries.len() > 1 {
            tracing::warn!(user = %username, "more than one directory entry has this username; rejecting");
            return Ok(None);
        }
        Ok(entries.first().and_then(|e| self.map.map(e).ok()))
    }

    async fn check_password(&self, dn: &str, password: &str) -> Result<bool, DirectoryError> {
        if password.is_empty() || dn.is_empty() {
            return Ok(false);
        }
        let limit = self.call_limit();
        tokio::time::timeout(limit, self.bind_as(dn, password))
            .await
            .map_err(|_| {
                DirectoryError::Unavailable(format!("no answer within {} ms", limit.as_millis()))
            })?
            .map_err(into_directory_error)
    }
}

fn into_directory_error(e: Error) -> DirectoryError {
    match e {
        Error::Unavailable(why) => DirectoryError::Unavailable(why),
        other => DirectoryError::Failed(other.to_string()),
    }
}

fn entry(found: SearchEntry) -> Entry {
    let mut attrs: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for (name, values) in found.attrs {
        attrs
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values.into_iter().map(String::into_bytes));
    }
    for (name, values) in found.bin_attrs {
        attrs
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values);
    }
    Entry {
        dn: found.dn,
        attrs,
    }
}

/// ldap3's errors, in words an operator can act on.
fn describe(e: &LdapError) -> String {
    match e {
        LdapError::Timeout { .. } => "the server did not answer in time".into(),
        LdapError::Io { source } => format!("connection failed: {source}"),
        other => other.to_string(),
    }
}

/// `host:port` of an LDAP URL (389 for ldap, 636 for ldaps when none is given).
fn host_port(url: &str) -> String {
    let (rest, default) = match url.strip_prefix("ldaps://") {
        Some(rest) => (rest, 636),
        None => (url.strip_prefix("ldap://").unwrap_or(url), 389),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let has_port = match authority.rfind(':') {
        Some(colon) => {
            !authority.ends_with(']') && authority[colon + 1..].bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    };
    if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{default}")
    }
}

/// rustls with the configured CA file, else the system's trust store.
fn tls_config(config: &DirectoryConfig) -> Result<rustls::ClientConfig, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    Error::Config(format!(
                        "directory.ca_file {}: {e}; it must hold PEM certificates",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "directory.ca_file {} holds no certificate; it must hold the CA's PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    Error::Config(format!("directory.ca_file {}: {e}", path.display()))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_defaults_by_scheme() {
        assert_eq!(host_port("ldaps://dc1.example.org"), "dc1.example.org:636");
        assert_eq!(host_port("ldap://dc1.example.org/"), "dc1.example.org:389");
        assert_eq!(host_port("ldap://127.0.0.1:3890"), "127.0.0.1:3890");
        assert_eq!(host_port("ldap://[::1]:3890/"), "[::1]:3890");
    }
}
