//! The client's address: the socket's peer, or, when the peer is one of
//! `[http] trusted_proxies`, the address that proxy put in `X-Forwarded-For`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// What the listener knows of a connection; put in every request's extensions.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub trusted_proxies: Arc<[IpNet]>,
}

/// The address of the client that made a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<Peer>()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(ClientAddr(client_addr(
            peer.addr.ip(),
            &peer.trusted_proxies,
            &parts.headers,
        )))
    }
}

/// `peer` unless it is a trusted proxy; then the last address in `X-Forwarded-For` that
/// is not a trusted proxy itself (each proxy appends the address it was reached from, so
/// only the entries trusted proxies added are reliable; the ones to their left are
/// whatever the client sent).
pub fn client_addr(peer: IpAddr, trusted: &[IpNet], headers: &HeaderMap) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = parse(entry) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]` or either with a port.
fn parse(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&["198.51.100.7"]);
        assert_eq!(
            client_addr(ip("10.1.2.3"), &trusted, &h),
            ip("198.51.100.7")
        );
        assert_eq!(client_addr(ip("192.0.2.9"), &trusted, &h), ip("192.0.2.9"));
        assert_eq!(client_addr(ip("10.1.2.3"), &[], &h), ip("10.1.2.3"));
    }

    #[test]
    fn a_spoofed_entry_left_of_the_proxies_is_ignored() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // The client sent "1.1.1.1" itself; the outer proxy appended the real address, an
        // inner trusted proxy appended the outer one.
        let h = headers(&["1.1.1.1, 203.0.113.5", "10.0.0.2"]);
        assert_eq!(client_addr(ip("10.0.0.1"), &trusted, &h), ip("203.0.113.5"));
        let h = headers(&["[2001:db8::5]:4711, garbage, 10.0.0.9"]);
        assert_eq!(client_addr(ip("10.0.0.1"), &trusted, &h), ip("10.0.0.9"));
        let h = headers(&["[2001:db8::5]:4711"]);
        assert_eq!(client_addr(ip("10.0.0.1"), &trusted, &h), ip("2001:db8::5"));
    }
}
