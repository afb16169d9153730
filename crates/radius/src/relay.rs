//! What a target's Access-Accept adds to the client's, and where it waits while mfad asks for the code.
//!
//! The target's attributes are passed on as they are, but for those hidden with the
//! target's secret: the MPPE keys are hidden again with the client's secret and the
//! authenticator of the request being accepted (RFC 2548 §2.4.2 and §2.4.3).

use crate::upstream::{random, Answer, Forward};
use mfad_core::engine::Outcome;
use mfad_radius_proto::{
    add_mppe_key, attr, mppe_salts, vendor_attributes, Attribute, MppeKey, Packet,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a target's Access-Accept adds to the client's: its attributes, and its MPPE keys
/// in clear until they are hidden for the client.
#[derive(Debug, Default)]
pub(crate) struct Relay {
    attributes: Vec<Attribute>,
    keys: Vec<MppeKey>,
}

impl Relay {
    pub fn from_accept(answer: Answer) -> Relay {
        let attributes = answer
            .packet
            .attributes
            .into_iter()
            .filter(relayable)
            .collect();
        Relay {
            attributes,
            keys: answer.keys,
        }
    }

    /// Adds the target's attributes to the client's reply, the MPPE keys hidden with the
    /// client's secret and the Request Authenticator of the request being answered.
    pub fn apply(&self, reply: &mut Packet, secret: &[u8], request_authenticator: &[u8; 16]) {
        if self.keys.is_empty() {
            reply.attributes.extend(self.attributes.iter().cloned());
            return;
        }
        match random::<2>() {
            Ok(salt) => self.apply_salted(reply, salt, secret, request_authenticator),
            Err(err) => {
                reply.attributes.extend(self.attributes.iter().cloned());
                tracing::warn!("the MPPE keys of the target are not passed on: {err}");
            }
        }
    }

    /// [`Relay::apply`] with the salts of the keys derived from `salt`: RFC 2548 §2.4.2
    /// wants them different, so they come from one [`mppe_salts`], never drawn apart.
    fn apply_salted(
        &self,
        reply: &mut Packet,
        salt: [u8; 2],
        secret: &[u8],
        request_authenticator: &[u8; 16],
    ) {
        reply.attributes.extend(self.attributes.iter().cloned());
        for (key, salt) in self.keys.iter().zip(mppe_salts(salt)) {
            if let Err(err) = add_mppe_key(reply, key, salt, secret, request_authenticator) {
                tracing::warn!("an MPPE key of the target is not passed on: {err}");
            }
        }
    }
}

/// Attributes of a target's Accept that go to the client unchanged. Those the proxy
/// answers for itself (Message-Authenticator, Proxy-State) stay out, and so do the
/// ones hidden with the target's secret that mfad does not re-hide: Tunnel-Password
/// (RFC 2868 §3.5) and MS-CHAP-MPPE-Keys (MS-CHAP v1, RFC 2548 §2.4.1).
fn relayable(a: &Attribute) -> bool {
    match a.typ {
        attr::MESSAGE_AUTHENTICATOR | attr::PROXY_STATE | attr::TUNNEL_PASSWORD => false,
        attr::VENDOR_SPECIFIC => !vendor_attributes(&a.value).is_some_and(|subs| {
            subs.iter()
                .any(|s| s.vendor == attr::ms::VENDOR_ID && s.typ == attr::ms::CHAP_MPPE_KEYS)
        }),
        _ => true,
    }
}

/// MPPE keys and attributes of a target's Accept, kept between the request the target
/// accepted and the request that answers mfad's challenge for the code, by the State
/// of that challenge. In memory: the keys never reach the store.
#[derive(Debug, Default)]
pub(crate) struct Relays {
    by_state: HashMap<Vec<u8>, (Relay, Instant)>,
}

/// Most relays kept at once, so a flood of half-finished logins cannot grow memory.
const MAX_RELAYS: usize = 100_000;

impl Relays {
    pub fn put(&mut self, state: Vec<u8>, relay: Relay, until: Instant) {
        let now = Instant::now();
        if self.by_state.len() >= MAX_RELAYS {
            self.by_state.retain(|_, (_, t)| *t > now);
        }
        if self.by_state.len() >= MAX_RELAYS {
            tracing::warn!("too many logins waiting for a code; the target's reply attributes of this one are not kept");
            return;
        }
        self.by_state.insert(state, (relay, until));
    }

    pub fn take(&mut self, state: &[u8]) -> Option<Relay> {
        let (relay, until) = self.by_state.remove(state)?;
        (until > Instant::now()).then_some(relay)
    }

    /// Carries the target's Accept (from this request, or kept for the State it
    /// answers) to where the outcome needs it: into the client's Access-Accept, or kept
    /// for the State of the challenge that asks for the code.
    pub fn settle(
        &mut self,
        forward: &Forward,
        outcome: &Outcome,
        reply: &mut Packet,
        keep_for: Duration,
    ) {
        // The State of the client's request is mfad's, the one a relay was kept under.
        let answered = forward.request().get(attr::STATE);
        let relay = forward
            .take_accepted()
            .or_else(|| answered.and_then(|s| self.take(s)));
        let Some(relay) = relay else {
            return;
        };
        match outcome {
            Outcome::Accept => relay.apply(
                reply,
                forward.client_secret(),
                &forward.request().authenticator,
            ),
            Outcome::Challenge { txn, .. } => {
                self.put(txn.as_bytes().to_vec(), relay, Instant::now() + keep_for)
            }
            Outcome::Reject(_) | Outcome::Pending { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfad_radius_proto::Code;

    #[test]
    fn relayed_attributes_leave_out_what_the_proxy_answers_for_and_cannot_rehide() {
        let mut p = Packet::new(Code::AccessAccept, 1, [0; 16]);
        p.add(attr::CLASS, "c");
        p.add(attr::MESSAGE_AUTHENTICATOR, [0u8; 16]);
        p.add(attr::PROXY_STATE, "x");
        p.add(attr::TUNNEL_PASSWORD, [0u8; 19]);
        p.add(attr::VENDOR_SPECIFIC, b"\x00\x00\x01\x37\x0c\x04ab");
        p.add(attr::VENDOR_SPECIFIC, b"\x00\x00\x01\x37\x1a\x05\x01ok");
        let kept: Vec<Attribute> = p.attributes.into_iter().filter(relayable).collect();
        let types: Vec<u8> = kept.iter().map(|a| a.typ).collect();
        assert_eq!(types, [attr::CLASS, attr::VENDOR_SPECIFIC]);
        assert_eq!(kept[1].value[4], attr::ms::CHAP2_SUCCESS);
    }

    /// RFC 2548 §2.4.2: the Send-Key and Recv-Key of one reply never share a salt (and
    /// so a key stream), whatever the random value drawn for the reply.
    #[test]
    fn the_mppe_keys_of_one_reply_never_share_a_salt() {
        let key = |typ, byte| MppeKey {
            typ,
            key: zeroize::Zeroizing::new(vec![byte; 16]),
        };
        let relay = Relay {
            attributes: Vec::new(),
            keys: vec![
                key(attr::ms::MPPE_SEND_KEY, 1),
                key(attr::ms::MPPE_RECV_KEY, 2),
            ],
        };
        for random in 0..=u16::MAX {
            let mut reply = Packet::new(Code::AccessAccept, 1, [0; 16]);
            relay.apply_salted(&mut reply, random.to_be_bytes(), b"s", &[3; 16]);
            let salts: Vec<Vec<u8>> = reply
                .attributes
                .iter()
                .filter_map(|a| vendor_attributes(&a.value))
                .flatten()
                .map(|v| v.value[..2].to_vec())
                .collect();
            assert_eq!(salts.len(), 2, "{random}");
            assert_ne!(salts[0], salts[1], "{random}");
            assert!(salts.iter().all(|s| s[0] & 0x80 != 0), "{random}");
        }
    }

    #[test]
    fn a_relay_is_taken_once_and_not_after_it_expired() {
        let mut relays = Relays::default();
        let later = Instant::now() + Duration::from_secs(60);
        relays.put(b"s1".to_vec(), Relay::default(), later);
        assert!(relays.take(b"s1").is_some());
        assert!(relays.take(b"s1").is_none());
        relays.put(b"s2".to_vec(), Relay::default(), Instant::now());
        assert!(relays.take(b"s2").is_none());
    }
}
