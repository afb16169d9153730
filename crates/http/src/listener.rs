//! One listener: accept, TLS, HTTP/1.1 framing, and the limits that keep a slow or
//! half-open client from holding the server: at most `max_connections` connections
//! (more wait in the kernel's backlog, costing no descriptor), headers and the TLS
//! handshake within `header_timeout_seconds` (an idle kept-alive connection is closed
//! after as long), each request within `request_timeout_seconds`, a bounded body.
//! Every reply carries the security headers.

use crate::config::{HttpConfig, ListenerConfig, Surface};
use crate::error::HttpError;
use crate::extract::Peer;
use crate::tls::Tls;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// How long open connections may finish their requests after the stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Largest request head (request line and headers) hyper buffers.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The limits every connection of a listener lives under.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub trusted_proxies: Arc<[IpNet]>,
}

impl Limits {
    pub fn from_config(config: &HttpConfig) -> Self {
        Self {
            max_connections: config.max_connections.max(1),
            header_timeout: Duration::from_secs(config.header_timeout_seconds.max(1)),
            request_timeout: Duration::from_secs(config.request_timeout_seconds.max(1)),
            max_body_bytes: config.max_body_bytes,
            trusted_proxies: config.trusted_proxies.clone().into(),
        }
    }
}

/// A bound listener, not serving yet.
pub struct Listener {
    tcp: TcpListener,
    addr: SocketAddr,
    tls: Option<Tls>,
    surfaces: Vec<Surface>,
    limits: Limits,
}

impl Listener {
    /// Binds `config`'s address with `tls` (required unless the address is loopback).
    pub async fn bind(
        config: &ListenerConfig,
        tls: Option<Tls>,
        limits: Limits,
    ) -> Result<Self, HttpError> {
        config.validate().map_err(HttpError::Config)?;
        let addr = config.addr().map_err(HttpError::Config)?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })?;
        let addr = tcp
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        Ok(Self {
            tcp,
            addr,
            tls,
            surfaces: config.serve.clone(),
            limits,
        })
    }

    /// The address bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn surfaces(&self) -> &[Surface] {
        &self.surfaces
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The certificate this listener presents, when it uses TLS.
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// `https://ADDR` or `http://ADDR`: how this listener is reached when nothing else
    /// was configured.
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Serves `router` (with the limits and security headers laid over it) until `stop`
    /// turns true, then lets open requests finish for a few seconds.
    pub async fn serve(self, router: Router, mut stop: watch::Receiver<bool>) {
        let Listener {
            tcp,
            addr,
            tls,
            limits,
            ..
        } = self;
        let guard = Guard {
            request_timeout: limits.request_timeout,
            tls: tls.is_some(),
        };
        let router = router
            .layer(axum::middleware::from_fn_with_state(guard, guard_layer))
            .layer(DefaultBodyLimit::max(limits.max_body_bytes));
        let acceptor = tls.map(|t| t.acceptor);
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let mut connections = JoinSet::new();
        loop {
            // A slot first: at the limit, connections wait in the kernel's backlog and
            // hold no descriptor of ours.
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot,
                _ = stopped(&mut stop) => break,
            };
            let Ok(slot) = slot else { break };
            let accepted = tokio::select! {
                accepted = tcp.accept() => accepted,
                _ = stopped(&mut stop) => break,
            };
            while connections.try_join_next().is_some() {}
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors or memory: wait a little instead of spinning.
                    tracing::warn!("http listener {addr}: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let connection = Connection {
                peer: Peer {
                    addr: peer,
                    trusted_proxies: limits.trusted_proxies.clone(),
                },
                router: router.clone(),
                header_timeout: limits.header_timeout,
                stop: stop.clone(),
            };
            let acceptor = acceptor.clone();
            connections.spawn(async move {
                let _slot = slot;
                connection.run(stream, acceptor).await;
            });
        }
        drop(tcp);
        let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!(
                "http listener {addr}: connections still open after {SHUTDOWN_GRACE:?} closed"
            );
            connections.abort_all();
        }
    }
}

struct Connection {
    peer: Peer,
    router: Router,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, stream: TcpStream, acceptor: Option<tokio_rustls::TlsAcceptor>) {
        let _ = stream.set_nodelay(true);
        match acceptor {
            None => self.http(TokioIo::new(stream)).await,
            Some(acceptor) => {
                // The handshake is held to the header time limit too: a client that opens
                // a connection and sends nothing is cut off either way.
                match tokio::time::timeout(self.header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => self.http(TokioIo::new(stream)).await,
                    Ok(Err(err)) => {
                        tracing::debug!("TLS handshake with {} failed: {err}", self.peer.addr)
                    }
                    Err(_) => tracing::debug!("TLS handshake with {} timed out", self.peer.addr),
                }
            }
        }
    }

    async fn http<I>(self, io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let Connection {
            peer,
            router,
            header_timeout,
            mut stop,
        } = self;
        let service = hyper::service::service_fn(move |mut request: Request<_>| {
            request.extensions_mut().insert(peer.clone());
            tower::ServiceExt::oneshot(router.clone(), request)
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(io, service);
        tokio::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => {}
            _ = stopped(&mut stop) => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Guard {
    request_timeout: Duration,
    tls: bool,
}

/// The request time limit and the security headers of every reply.
async fn guard_layer(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let mut response = match tokio::time::timeout(guard.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            "request took too long\n",
        )
            .into_response(),
    };
    let headers = response.headers_mut();
    // Pages are served from mfad itself, never framed, never with inline script.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if guard.tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    response
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
