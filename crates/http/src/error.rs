//! Why the HTTP front-end could not start. Messages are one line and say what to do.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The configuration cannot work; the text names the key.
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen for HTTP on {addr}; is another server using it? ({source})")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A certificate or key that cannot be read or used.
    #[error("{0}")]
    Tls(String),
}
