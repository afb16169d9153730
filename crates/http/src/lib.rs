//! mfad-http: the HTTP front-end. Several listeners, each serving the surfaces the
//! operator lists (`[[http.listeners]] serve = [...]`), so what phones and users reach can
//! face the internet while the console and the APIs stay inside. Every listener answers
//! `/healthz` and `/readyz`.
//!
//! Handlers only do transport: they extract, call the engine, and map its answer to a
//! reply. The rules are the core's.

pub mod config;
pub mod error;
pub mod extract;
pub mod health;
pub mod hooks;
pub mod listener;
pub mod metrics;
pub mod tls;

pub use config::{HttpConfig, ListenerConfig, Surface};
pub use error::HttpError;
pub use listener::{Limits, Listener};

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use mfad_core::engine::Engine;
use mfad_core::store::Store;
use mfad_notify::{LiveSms, LiveVoice};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// What the surfaces serve from.
#[derive(Clone)]
pub struct App {
    pub engine: Arc<Engine>,
    pub store: Arc<dyn Store>,
    /// The voice gateway whose webhooks are served; `None` when calls are off.
    pub voice: Option<Arc<LiveVoice>>,
    /// The SMS gateway whose reply webhooks are served; `None` unless two-way SMS is on.
    pub sms: Option<Arc<LiveSms>>,
    /// What `/metrics` renders; `None`: no `/metrics`.
    pub metrics: Option<PrometheusHandle>,
}

impl App {
    /// The routes of `surfaces`, with `/healthz` and `/readyz`.
    pub fn router(&self, surfaces: &[Surface]) -> Router {
        let mut router = health::router(self.store.clone());
        for surface in surfaces {
            router = match surface {
                Surface::Webhooks => router.merge(hooks::router(self)),
                Surface::Metrics => match &self.metrics {
                    Some(handle) => router.merge(metrics::router(handle.clone())),
                    None => router,
                },
                // Served by later parts of the front-end; listed already so that an
                // operator's configuration stays valid.
                Surface::Portal
                | Surface::App
                | Surface::Validate
                | Surface::Api
                | Surface::Console => router,
            };
        }
        router
    }
}

/// Every configured listener, bound.
pub struct HttpServer {
    listeners: Vec<Listener>,
    app: App,
}

impl HttpServer {
    /// Binds every listener of `config` (the default one when none is configured).
    /// A listener without a certificate gets the one generated under `data_dir`. Logs
    /// `http listening on ADDR serving SURFACES` for each, and tells the gateways the URL
    /// their webhooks are reached at: `[http] public_url`, else the first listener that
    /// serves `webhooks`.
    pub async fn bind(config: &HttpConfig, data_dir: &Path, app: App) -> Result<Self, HttpError> {
        config.validate().map_err(HttpError::Config)?;
        let limits = Limits::from_config(config);
        let mut listeners = Vec::new();
        for listener in config.effective_listeners() {
            listener.validate().map_err(HttpError::Config)?;
            let tls = if !listener.tls {
                None
            } else if listener.tls_cert_file.as_os_str().is_empty() {
                let names = certificate_names(config, &listener);
                Some(tls::generated(data_dir, &names)?)
            } else {
                Some(tls::with_certificate(
                    &listener.tls_cert_file,
                    &listener.tls_key_file,
                )?)
            };
            let bound = Listener::bind(&listener, tls, limits.clone()).await?;
            let served: Vec<&str> = bound.surfaces().iter().map(|s| s.name()).collect();
            tracing::info!(
                "http listening on {} serving {}",
                bound.local_addr(),
                served.join(", ")
            );
            match bound.tls() {
                Some(tls) if tls.generated => tracing::info!(
                    "http listener {} uses the generated certificate {} (SHA-256 fingerprint {}); set tls_cert_file and tls_key_file for one that browsers and phones trust",
                    bound.local_addr(),
                    tls.cert_file.display(),
                    tls.fingerprint
                ),
                Some(tls) => tracing::info!(
                    "http listener {} uses the certificate {} (SHA-256 fingerprint {})",
                    bound.local_addr(),
                    tls.cert_file.display(),
                    tls.fingerprint
                ),
                None => tracing::warn!(
                    "http listener {} uses plain HTTP (loopback only); anything beyond this host must reach it through a TLS proxy",
                    bound.local_addr()
                ),
            }
            listeners.push(bound);
        }
        let public_url = if config.public_url.is_empty() {
            let webhooks = listeners
                .iter()
                .find(|l| l.surfaces().contains(&Surface::Webhooks));
            let calls_back = app.voice.is_some() || app.sms.is_some();
            if let Some(listener) =
                webhooks.filter(|l| calls_back && !l.local_addr().ip().is_loopback())
            {
                tracing::warn!(
                    "[http] public_url is empty: the gateways are told to call back {}, which they cannot reach from outside; set it to the address they reach",
                    listener.url()
                );
            }
            webhooks.map(Listener::url)
        } else {
            Some(config.public_url.trim_end_matches('/').to_owned())
        };
        if let Some(url) = public_url {
            if let Some(voice) = &app.voice {
                voice.listening_at(&url);
            }
            if let Some(sms) = &app.sms {
                sms.listening_at(&url);
            }
        }
        Ok(Self { listeners, app })
    }

    /// Each listener's address and surfaces.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// Serves every listener until `stop` turns true.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        for listener in self.listeners {
            let router = self.app.router(listener.surfaces());
            tasks.spawn(listener.serve(router, stop.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// The names a generated certificate is made for: `localhost`, this host's name, the
/// loopback addresses, the listen address when it is a specific one, and the host of
/// `[http] public_url`.
fn certificate_names(config: &HttpConfig, listener: &ListenerConfig) -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    names.push("127.0.0.1".into());
    names.push("::1".into());
    if let Ok(addr) = listener.addr() {
        if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
            names.push(addr.ip().to_string());
        }
    }
    if let Some(host) = url_host(&config.public_url) {
        names.push(host);
    }
    names.dedup();
    names
}

/// The host of `https://HOST[:PORT][/...]`, brackets removed from an IPv6 address.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| {
        host.parse::<IpAddr>()
            .map_or(host.to_owned(), |ip| ip.to_string())
    })
}

/// The directory holding `key_file`: the data directory, where the generated
/// certificate is kept.
pub fn data_dir_of(key_file: &Path) -> PathBuf {
    match key_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}
