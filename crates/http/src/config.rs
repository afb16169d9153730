//! `[http]` and `[[http.listeners]]`: where the HTTP front-end listens, what each
//! listener serves, and the limits every connection lives under.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A group of routes a listener serves (DESIGN.md, "HTTP surfaces").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Surface {
    /// `/portal/`: end users.
    Portal,
    /// `/ttype/push`: the phone app.
    App,
    /// `/hooks/...`: Twilio and SMS gateways.
    Webhooks,
    /// `/validate/*`, `/auth`: privacyIDEA plug-ins.
    Validate,
    /// `/api/v1/`: provisioning scripts.
    Api,
    /// `/console/`: administrators.
    Console,
    /// `/metrics`: Prometheus.
    Metrics,
}

impl Surface {
    pub fn name(self) -> &'static str {
        match self {
            Surface::Portal => "portal",
            Surface::App => "app",
            Surface::Webhooks => "webhooks",
            Surface::Validate => "validate",
            Surface::Api => "api",
            Surface::Console => "console",
            Surface::Metrics => "metrics",
        }
    }
}

impl std::fmt::Display for Surface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `[http]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// The address users and phones reach (links, QR codes, the URLs Twilio calls back).
    /// Empty: the first listener serving `webhooks`, as bound.
    pub public_url: String,
    /// Peers whose `X-Forwarded-For` is believed (a reverse proxy, a load balancer).
    pub trusted_proxies: Vec<IpNet>,
    /// Connections one listener holds at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (and the TLS handshake);
    /// an idle kept-alive connection is closed after as long.
    pub header_timeout_seconds: u64,
    /// How long a request may take, its body included, before it is answered 408.
    pub request_timeout_seconds: u64,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The listeners; none: one default listener (see [`HttpConfig::effective_listeners`]).
    pub listeners: Vec<ListenerConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            public_url: String::new(),
            trusted_proxies: Vec::new(),
            max_connections: 512,
            header_timeout_seconds: 10,
            request_timeout_seconds: 30,
            max_body_bytes: 64 * 1024,
            listeners: Vec::new(),
        }
    }
}

/// The address and surfaces of the listener `mfad serve` runs when none is configured:
/// what a newcomer's first start needs (the portal, the phone app, the webhooks) over
/// TLS with a generated certificate.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8443";
pub const DEFAULT_SURFACES: [Surface; 3] = [Surface::Portal, Surface::App, Surface::Webhooks];

/// One `[[http.listeners]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `ADDRESS:PORT`; port 0 picks a free port (logged).
    pub listen: String,
    /// The surfaces served here.
    pub serve: Vec<Surface>,
    /// TLS (the default); `false` is allowed on loopback addresses only.
    #[serde(default = "yes")]
    pub tls: bool,
    /// PEM certificate chain; empty: a self-signed certificate made on first start and
    /// kept in the data directory.
    #[serde(default, skip_serializing_if = "is_empty_path")]
    pub tls_cert_file: PathBuf,
    /// PEM private key of `tls_cert_file`.
    #[serde(default, skip_serializing_if = "is_empty_path")]
    pub tls_key_file: PathBuf,
}

fn yes() -> bool {
    true
}

fn is_empty_path(path: &Path) -> bool {
    path.as_os_str().is_empty()
}

impl HttpConfig {
    /// The configured listeners, or the default one when there are none.
    pub fn effective_listeners(&self) -> Vec<ListenerConfig> {
        if !self.listeners.is_empty() {
            return self.listeners.clone();
        }
        vec![ListenerConfig {
            listen: DEFAULT_LISTEN.into(),
            serve: DEFAULT_SURFACES.to_vec(),
            tls: true,
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
        }]
    }

    /// Whether some listener serves `surface`.
    pub fn serves(&self, surface: Surface) -> bool {
        self.effective_listeners()
            .iter()
            .any(|l| l.serve.contains(&surface))
    }

    /// Checks what can be checked without binding; messages name the key.
    pub fn validate(&self) -> Result<(), String> {
        let url = &self.public_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "http.public_url '{}' must start with https:// (the address users and phones reach)",
                self.public_url
            ));
        }
        if self.max_connections == 0 {
            return Err("http.max_connections must be at least 1".into());
        }
        if self.header_timeout_seconds == 0 || self.request_timeout_seconds == 0 {
            return Err(
                "http.header_timeout_seconds and http.request_timeout_seconds must be at least 1"
                    .into(),
            );
        }
        for listener in &self.listeners {
            listener.validate()?;
        }
        Ok(())
    }
}

impl ListenerConfig {
    /// The listen address, parsed.
    pub fn addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "http.listeners: listen '{}' is not an address such as \"0.0.0.0:443\"",
                self.listen
            )
        })
    }

    pub fn validate(&self) -> Result<(), String> {
        let addr = self.addr()?;
        if self.serve.is_empty() {
            return Err(format!(
                "http.listeners: the listener on {} serves nothing; list surfaces in serve = [...] (portal, app, webhooks, validate, api, console, metrics)",
                self.listen
            ));
        }
        if !self.tls && !addr.ip().is_loopback() {
            return Err(format!(
                "http.listeners: plain HTTP (tls = false) on {} is refused; it is allowed on loopback addresses only (127.0.0.1, ::1): use TLS or put a TLS proxy in front on this host",
                self.listen
            ));
        }
        if self.tls_cert_file.as_os_str().is_empty() != self.tls_key_file.as_os_str().is_empty() {
            return Err(format!(
                "http.listeners: the listener on {} needs both tls_cert_file and tls_key_file, or neither (a generated certificate)",
                self.listen
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(listen: &str, tls: bool) -> ListenerConfig {
        ListenerConfig {
            listen: listen.into(),
            serve: vec![Surface::Webhooks],
            tls,
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
        }
    }

    #[test]
    fn plain_http_is_refused_on_a_non_loopback_address() {
        for listen in ["0.0.0.0:8080", "192.0.2.1:80", "[::]:80"] {
            let err = listener(listen, false).validate().unwrap_err();
            assert!(err.contains("loopback"), "{listen}: {err}");
        }
        for listen in ["127.0.0.1:0", "[::1]:0", "127.0.0.2:80"] {
            listener(listen, false).validate().unwrap();
        }
        listener("0.0.0.0:443", true).validate().unwrap();
    }

    #[test]
    fn no_listeners_means_one_default_listener_with_the_portal() {
        let listeners = HttpConfig::default().effective_listeners();
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].listen, DEFAULT_LISTEN);
        assert!(listeners[0].tls);
        assert!(listeners[0].serve.contains(&Surface::Portal));
        assert!(listeners[0].serve.contains(&Surface::Webhooks));
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let mut l = listener("0.0.0.0:443", true);
        l.tls_cert_file = "/etc/mfad/cert.pem".into();
        assert!(l.validate().unwrap_err().contains("tls_key_file"));
    }
}
