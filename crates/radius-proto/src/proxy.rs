//! Proxy-State (RFC 2865 §5.33): what a proxy adds to a request it forwards and takes back out of the reply.

use crate::attr;
use crate::packet::Packet;

/// Appends the proxy's own Proxy-State to a request it forwards. RFC 2865 §5.33: the
/// ones already there belong to proxies before it and stay unmodified and in order;
/// the server echoes all of them.
pub fn add_proxy_state(request: &mut Packet, own: &[u8]) {
    request.add(attr::PROXY_STATE, own);
}

/// Checks that `reply` echoes the proxy's own Proxy-State as its last one and removes
/// it, leaving the ones of proxies before it for the reply further down the chain.
/// `false` (and `reply` unchanged) when it is missing: the reply does not answer the
/// request this proxy sent.
pub fn take_proxy_state(reply: &mut Packet, own: &[u8]) -> bool {
    let last = reply
        .attributes
        .iter()
        .rposition(|a| a.typ == attr::PROXY_STATE);
    match last {
        Some(at) if reply.attributes.get(at).is_some_and(|a| a.value == own) => {
            reply.attributes.remove(at);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[test]
    fn the_proxy_state_of_this_proxy_is_added_last_and_taken_back() {
        let mut request = Packet::new(Code::AccessRequest, 1, [0; 16]);
        request.add(attr::PROXY_STATE, "nas-proxy");
        add_proxy_state(&mut request, b"ours");
        let states: Vec<&[u8]> = request.get_all(attr::PROXY_STATE).collect();
        assert_eq!(states, [&b"nas-proxy"[..], b"ours"]);

        // The server echoes them in order (RFC 2865 §5.33).
        let mut reply = Packet::new(Code::AccessAccept, 1, [0; 16]);
        reply.add(attr::PROXY_STATE, "nas-proxy");
        reply.add(attr::CLASS, "c");
        reply.add(attr::PROXY_STATE, "ours");
        assert!(take_proxy_state(&mut reply, b"ours"));
        let states: Vec<&[u8]> = reply.get_all(attr::PROXY_STATE).collect();
        assert_eq!(states, [&b"nas-proxy"[..]]);
        assert!(!take_proxy_state(&mut reply, b"ours"), "taken once");

        let mut foreign = Packet::new(Code::AccessAccept, 1, [0; 16]);
        foreign.add(attr::PROXY_STATE, "other");
        assert!(!take_proxy_state(&mut foreign, b"ours"));
        assert_eq!(foreign.attributes.len(), 1);
    }
}
