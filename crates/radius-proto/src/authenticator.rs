//! Checking a received packet's integrity: Message-Authenticator (RFC 3579 §3.2) and the accounting Request Authenticator (RFC 2866 §3).

use crate::attr;
use crate::code::Code;
use crate::packet::{frame, raw_attributes, HEADER_LEN};
use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// What [`check_message_authenticator`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageAuthenticator {
    /// The packet is well formed and carries no Message-Authenticator.
    Missing,
    /// Exactly one Message-Authenticator, and its HMAC-MD5 matches.
    Valid,
    /// A wrong HMAC, more than one Message-Authenticator, or a malformed
    /// packet. Never treat this like `Missing`: RFC 3579 §3.2 says such a
    /// packet MUST be silently discarded.
    Invalid,
}

type HmacMd5 = Hmac<Md5>;

/// HMAC-MD5 keyed with the shared secret.
///
/// RFC 2104 §2 first turns any key into one block: keys longer than the
/// 64-octet MD5 block are hashed, and the result is padded with zeros. Doing
/// that here lets us use the fixed-size constructor, which cannot fail, instead
/// of `new_from_slice`, whose error case does not exist for HMAC.
fn hmac_md5(secret: &[u8]) -> HmacMd5 {
    let mut key = Key::<HmacMd5>::default();
    if secret.len() > key.len() {
        let hashed = Md5::digest(secret);
        key.iter_mut().zip(hashed).for_each(|(k, s)| *k = s);
    } else {
        key.iter_mut().zip(secret).for_each(|(k, s)| *k = *s);
    }
    <HmacMd5 as KeyInit>::new(&key)
}

/// Where the Message-Authenticator of a framed packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Located {
    Missing,
    /// Offset of the attribute's Type octet.
    At(usize),
    /// Bad attribute framing, or more than one Message-Authenticator (RFC 3579
    /// §3.2 allows 0-1 per packet).
    Malformed,
}

pub(crate) fn locate_message_authenticator(packet: &[u8]) -> Located {
    let mut found = Located::Missing;
    for raw in raw_attributes(packet) {
        let Ok(raw) = raw else {
            return Located::Malformed;
        };
        if raw.typ == attr::MESSAGE_AUTHENTICATOR {
            if found != Located::Missing {
                return Located::Malformed;
            }
            found = Located::At(raw.offset);
        }
    }
    found
}

/// RFC 3579 §3.2: HMAC-MD5 over Type, Identifier, Length, `authenticator`
/// and the attributes, with the Message-Authenticator value (16 octets after
/// its Type and Length at `ma_offset`) taken as zeros.
pub(crate) fn compute_message_authenticator(
    packet: &[u8],
    authenticator: &[u8; 16],
    ma_offset: usize,
    secret: &[u8],
) -> [u8; 16] {
    let value = ma_offset + 2;
    let mut mac = hmac_md5(secret);
    mac.update(packet.get(..4).unwrap_or_default());
    mac.update(authenticator);
    mac.update(packet.get(HEADER_LEN..value).unwrap_or_default());
    mac.update(&[0u8; 16]);
    mac.update(packet.get(value + 16..).unwrap_or_default());
    mac.finalize().into_bytes().into()
}

/// Verifies the Message-Authenticator of a received packet (RFC 3579 §3.2).
///
/// For a request pass `None`: the packet's own authenticator field is used,
/// except for Accounting-Request, Disconnect-Request and CoA-Request, whose
/// authenticator is computed over the packet and so is taken as 16 zeros when
/// the HMAC is computed (RFC 5176 §3.5; FreeRADIUS does the same for
/// accounting). For a response pass `Some(request authenticator)` of the
/// request it answers.
///
/// Malformed input is `Invalid`, never `Missing`, so a caller that accepts
/// packets without the attribute cannot be led past the check by bad framing.
pub fn check_message_authenticator(
    raw: &[u8],
    secret: &[u8],
    request_authenticator: Option<&[u8; 16]>,
) -> MessageAuthenticator {
    let Ok(packet) = frame(raw) else {
        return MessageAuthenticator::Invalid;
    };
    let offset = match locate_message_authenticator(packet) {
        Located::Missing => return MessageAuthenticator::Missing,
        Located::Malformed => return MessageAuthenticator::Invalid,
        Located::At(offset) => offset,
    };
    let (Some(&code), Some(header_auth), Some(received)) = (
        packet.first(),
        packet.get(4..HEADER_LEN),
        packet.get(offset + 2..offset + 18),
    ) else {
        return MessageAuthenticator::Invalid;
    };
    let mut authenticator = [0u8; 16];
    match request_authenticator {
        Some(request) => authenticator = *request,
        None if Code::from(code).has_computed_request_authenticator() => {}
        None => authenticator.copy_from_slice(header_auth),
    }
    let expected = compute_message_authenticator(packet, &authenticator, offset, secret);
    if bool::from(expected.as_slice().ct_eq(received)) {
        MessageAuthenticator::Valid
    } else {
        MessageAuthenticator::Invalid
    }
}

/// RFC 2866 §3: MD5 over Code, Identifier, Length, 16 zero octets, the
/// attributes and the secret. The same formula covers Disconnect- and
/// CoA-Request (RFC 5176 §2.3).
pub(crate) fn computed_request_authenticator(packet: &[u8], secret: &[u8]) -> [u8; 16] {
    Md5::new()
        .chain_update(packet.get(..4).unwrap_or_default())
        .chain_update([0u8; 16])
        .chain_update(packet.get(HEADER_LEN..).unwrap_or_default())
        .chain_update(secret)
        .finalize()
        .into()
}

/// Verifies the Request Authenticator of an Accounting-Request (RFC 2866 §3).
/// False for a malformed packet. A Message-Authenticator, if present, is
/// checked separately with [`check_message_authenticator`].
pub fn verify_accounting_request(raw: &[u8], secret: &[u8]) -> bool {
    let Ok(packet) = frame(raw) else {
        return false;
    };
    if locate_message_authenticator(packet) == Located::Malformed {
        return false;
    }
    let Some(received) = packet.get(4..HEADER_LEN) else {
        return false;
    };
    let expected = computed_request_authenticator(packet, secret);
    bool::from(expected.as_slice().ct_eq(received))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tests::hex;
    use crate::packet::Packet;
    use proptest::prelude::*;

    #[test]
    fn hmac_md5_matches_rfc_2202_vectors() {
        // RFC 2202 §2, test cases 1, 2, 3, 6 and 7 (6 and 7 use an 80-octet
        // key, longer than the block, which must be hashed first).
        let table: [(Vec<u8>, Vec<u8>, &str); 5] = [
            (
                vec![0x0b; 16],
                b"Hi There".to_vec(),
                "9294727a3638bb1c13f48ef8158bfc9d",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "750c783e6ab0b503eaa86e310a5db738",
            ),
            (
                vec![0xaa; 16],
                vec![0xdd; 50],
                "56be34521d144c88dbb8c733f0e8b3f6",
            ),
            (
                vec![0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
            ),
            (
                vec![0xaa; 80],
                b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"
                    .to_vec(),
                "6f630fad67cda0ee1fb1f562db3aa53e",
            ),
        ];
        for (key, data, want) in table {
            let mut mac = hmac_md5(&key);
            mac.update(&data);
            assert_eq!(mac.finalize().into_bytes().to_vec(), hex(want));
        }
    }

    // An Access-Request (id 7, Request Authenticator 00..0f) with User-Name
    // "alice" and a Message-Authenticator first, secret "testing123". The MA
    // was computed independently with Python's hmac module:
    // hmac.new(b"testing123", packet_with_zero_ma, "md5").
    const SIGNED_REQUEST: &str = "01 07 00 2d 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f
        50 12 98 17 c8 25 6e 86 b8 4a a3 12 6d 98 95 4e 19 92
        01 07 61 6c 69 63 65";

    #[test]
    fn message_authenticator_matches_an_independent_computation() {
        let raw = hex(SIGNED_REQUEST);
        assert_eq!(
            check_message_authenticator(&raw, b"testing123", None),
            MessageAuthenticator::Valid
        );
        assert_eq!(
            check_message_authenticator(&raw, b"testing124", None),
            MessageAuthenticator::Invalid
        );
    }

    #[test]
    fn every_flipped_bit_invalidates_the_message_authenticator() {
        let raw = hex(SIGNED_REQUEST);
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut bad = raw.clone();
                bad[i] ^= 1 << bit;
                assert_ne!(
                    check_message_authenticator(&bad, b"testing123", None),
                    MessageAuthenticator::Valid,
                    "octet {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn padding_after_length_does_not_affect_the_message_authenticator() {
        // RFC 2865 §3: octets beyond Length are padding, outside the HMAC.
        let mut raw = hex(SIGNED_REQUEST);
        raw.extend_from_slice(&[0xEE; 7]);
        assert_eq!(
            check_message_authenticator(&raw, b"testing123", None),
            MessageAuthenticator::Valid
        );
    }

    #[test]
    fn missing_and_malformed_are_told_apart() {
        let mut p = Packet::new(Code::AccessRequest, 1, [3; 16]);
        p.add(attr::USER_NAME, "bob");
        let raw = p.encode().unwrap();
        assert_eq!(
            check_message_authenticator(&raw, b"s", None),
            MessageAuthenticator::Missing
        );
        // Truncated header, overrunning attribute, MA of the wrong length.
        let cases: Vec<Vec<u8>> = vec![
            raw[..10].to_vec(),
            {
                let mut r = raw.clone();
                r[21] = 40;
                r
            },
            {
                let mut r = hex(SIGNED_REQUEST);
                r[21] = 10;
                r
            },
        ];
        for bad in cases {
            assert_eq!(
                check_message_authenticator(&bad, b"s", None),
                MessageAuthenticator::Invalid
            );
        }
    }

    #[test]
    fn two_message_authenticators_are_invalid_even_if_one_is_right() {
        // RFC 3579 §3.2 table: 0-1 Message-Authenticator per packet.
        let raw = hex(SIGNED_REQUEST);
        let mut p = Packet::decode(&raw).unwrap();
        p.add(attr::MESSAGE_AUTHENTICATOR, [0u8; 16]);
        let doubled = p.encode().unwrap();
        assert_eq!(
            check_message_authenticator(&doubled, b"testing123", None),
            MessageAuthenticator::Invalid
        );
    }

    #[test]
    fn response_message_authenticator_uses_the_request_authenticator() {
        // RFC 3579 §3.2: for a response the HMAC covers the Request
        // Authenticator, not the Response Authenticator in the header.
        let request_auth = [9u8; 16];
        let mut p = Packet::new(Code::AccessAccept, 1, [0xFF; 16]);
        p.add(attr::MESSAGE_AUTHENTICATOR, [0u8; 16]);
        let mut raw = p.encode().unwrap();
        let ma = compute_message_authenticator(&raw, &request_auth, HEADER_LEN, b"k");
        raw[22..38].copy_from_slice(&ma);
        assert_eq!(
            check_message_authenticator(&raw, b"k", Some(&request_auth)),
            MessageAuthenticator::Valid
        );
        assert_eq!(
            check_message_authenticator(&raw, b"k", Some(&[8u8; 16])),
            MessageAuthenticator::Invalid
        );
        assert_eq!(
            check_message_authenticator(&raw, b"k", None),
            MessageAuthenticator::Invalid
        );
    }

    #[test]
    fn accounting_request_authenticator_is_checked() {
        // RFC 2866 §3.
        let mut p = Packet::new(Code::AccountingRequest, 5, [0; 16]);
        p.add(attr::ACCT_STATUS_TYPE, 1u32.to_be_bytes());
        p.add(attr::ACCT_SESSION_ID, "s1");
        let mut raw = p.encode().unwrap();
        let ra = computed_request_authenticator(&raw, b"acct");
        raw[4..20].copy_from_slice(&ra);
        assert!(verify_accounting_request(&raw, b"acct"));
        assert!(!verify_accounting_request(&raw, b"acc"));
        let mut tampered = raw.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(!verify_accounting_request(&tampered, b"acct"));
        assert!(!verify_accounting_request(&raw[..19], b"acct"));
    }

    proptest! {
        #[test]
        fn block_key_normalisation_equals_the_general_constructor(
            key in proptest::collection::vec(any::<u8>(), 0..200),
            data in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut ours = hmac_md5(&key);
            ours.update(&data);
            let mut general = <HmacMd5 as Mac>::new_from_slice(&key).unwrap();
            general.update(&data);
            prop_assert_eq!(ours.finalize().into_bytes(), general.finalize().into_bytes());
        }

        #[test]
        fn random_bytes_never_panic_and_never_verify(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            auth in proptest::option::of(proptest::array::uniform16(any::<u8>())),
        ) {
            prop_assert_ne!(
                check_message_authenticator(&bytes, b"secret", auth.as_ref()),
                MessageAuthenticator::Valid
            );
            prop_assert!(!verify_accounting_request(&bytes, b"secret"));
            prop_assert!(!crate::exchange::verify_response(&bytes, &auth.unwrap_or_default(), b"secret"));
        }

        /// Well framed, so every check reaches its MD5 or HMAC comparison, with a
        /// Message-Authenticator and a header authenticator that are random: nothing
        /// verifies (a forgery by chance is 2^-128).
        #[test]
        fn random_well_framed_packets_never_verify(
            code in any::<u8>(),
            identifier in any::<u8>(),
            header_auth in any::<[u8; 16]>(),
            request_auth in any::<[u8; 16]>(),
            mac in any::<[u8; 16]>(),
            others in proptest::collection::vec(
                ((1u8..=255).prop_filter("not Message-Authenticator", |t| *t != attr::MESSAGE_AUTHENTICATOR),
                 proptest::collection::vec(any::<u8>(), 0..40)),
                0..6,
            ),
            at in any::<proptest::sample::Index>(),
        ) {
            let mut p = Packet::new(Code::from(code), identifier, header_auth);
            let position = at.index(others.len() + 1);
            for (i, (typ, value)) in others.iter().enumerate() {
                if i == position {
                    p.add(attr::MESSAGE_AUTHENTICATOR, mac);
                }
                p.add(*typ, value);
            }
            if position == others.len() {
                p.add(attr::MESSAGE_AUTHENTICATOR, mac);
            }
            let raw = p.encode().unwrap();
            for secret in [&b"secret"[..], b""] {
                prop_assert_eq!(
                    check_message_authenticator(&raw, secret, None),
                    MessageAuthenticator::Invalid
                );
                prop_assert_eq!(
                    check_message_authenticator(&raw, secret, Some(&request_auth)),
                    MessageAuthenticator::Invalid
                );
                prop_assert!(!verify_accounting_request(&raw, secret));
                prop_assert!(!crate::exchange::verify_response(&raw, &request_auth, secret));
            }
        }
    }
}
