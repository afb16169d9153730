//! Signing packets for the wire and checking replies: Request and Response Authenticators (RFC 2865 §3, RFC 2866 §3) and Message-Authenticator (RFC 3579 §3.2).

use crate::authenticator::{
    check_message_authenticator, compute_message_authenticator, computed_request_authenticator,
    MessageAuthenticator,
};
use crate::code::Code;
use crate::packet::{
    encode_parts, frame, EncodeError, MessageAuthenticatorSlot, Packet,
    FIRST_MESSAGE_AUTHENTICATOR_VALUE, HEADER_LEN,
};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Copies `bytes` into `buf` at `at`. Callers only write into the fixed
/// header and the leading Message-Authenticator that `encode_parts` laid
/// out, so the range always exists.
fn put(buf: &mut [u8], at: usize, bytes: &[u8; 16]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Encodes a reply to a request whose Request Authenticator was
/// `request_authenticator`.
///
/// Any Message-Authenticator in `reply.attributes` is dropped and a fresh one
/// is written as the FIRST attribute: a forger attacking MD5 (BlastRADIUS,
/// CVE-2024-3596) then has no attacker-chosen octets before it. It is computed
/// with the Request Authenticator in the authenticator field (RFC 3579 §3.2),
/// and the Response Authenticator is then
/// MD5(Code + Identifier + Length + Request Authenticator + attributes +
/// secret) (RFC 2865 §3). `reply.authenticator` is ignored.
///
/// Accounting-Response is the exception: it gets no Message-Authenticator.
/// RFC 3579 §3.2 defines the attribute for Access-* packets only, and
/// implementations disagree on which authenticator it would cover in an
/// Accounting-Response (FreeRADIUS takes 16 zeros and discards replies
/// computed otherwise); its Response Authenticator (RFC 2866 §3) already
/// covers the whole packet.
pub fn encode_response(
    reply: &Packet,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let sign = reply.code != Code::AccountingResponse;
    let slot = if sign {
        MessageAuthenticatorSlot::First
    } else {
        MessageAuthenticatorSlot::Omit
    };
    let mut out = encode_parts(
        reply.code,
        reply.identifier,
        request_authenticator,
        slot,
        &reply.attributes,
    )?;
    if sign {
        let ma = compute_message_authenticator(&out, request_authenticator, HEADER_LEN, secret);
        put(&mut out, FIRST_MESSAGE_AUTHENTICATOR_VALUE, &ma);
    }
    // The authenticator field still holds the Request Authenticator, which is
    // exactly what RFC 2865 §3 hashes in its place.
    let response: [u8; 16] = Md5::new()
        .chain_update(&out)
        .chain_update(secret)
        .finalize()
        .into();
    put(&mut out, 4, &response);
    Ok(out)
}

/// Encodes a request, signing it as its code requires.
///
/// - Access-Request, Status-Server and other requests with a random Request
///   Authenticator (RFC 2865 §3): `packet.authenticator` is used as given; the
///   caller fills it from a CSPRNG and hides any User-Password with it first.
/// - Accounting-Request (and Disconnect-/CoA-Request, codes 40 and 43): the
///   Request Authenticator is computed (RFC 2866 §3, RFC 5176 §2.3) and
///   `packet.authenticator` is ignored.
///
/// With `with_message_authenticator`, and always for Status-Server (RFC 5997
/// §3), a Message-Authenticator is computed and written as the first attribute;
/// any in `packet.attributes` is dropped either way. Response codes are refused.
pub fn encode_request(
    packet: &Packet,
    secret: &[u8],
    with_message_authenticator: bool,
) -> Result<Vec<u8>, EncodeError> {
    if matches!(
        packet.code,
        Code::AccessAccept | Code::AccessReject | Code::AccessChallenge | Code::AccountingResponse
    ) {
        return Err(EncodeError::NotARequest { code: packet.code });
    }
    let sign = with_message_authenticator || packet.code == Code::StatusServer;
    let slot = if sign {
        MessageAuthenticatorSlot::First
    } else {
        MessageAuthenticatorSlot::Omit
    };
    let computed = packet.code.has_computed_request_authenticator();
    // RFC 5176 §3.5: with a computed Request Authenticator the
    // Message-Authenticator is taken over 16 zero octets in its place.
    let authenticator = if computed {
        [0u8; 16]
    } else {
        packet.authenticator
    };
    let mut out = encode_parts(
        packet.code,
        packet.identifier,
        &authenticator,
        slot,
        &packet.attributes,
    )?;
    if sign {
        let ma = compute_message_authenticator(&out, &authenticator, HEADER_LEN, secret);
        put(&mut out, FIRST_MESSAGE_AUTHENTICATOR_VALUE, &ma);
    }
    if computed {
        let request = computed_request_authenticator(&out, secret);
        put(&mut out, 4, &request);
    }
    Ok(out)
}

/// Verifies a reply to a request whose Request Authenticator was
/// `request_authenticator`: the Response Authenticator (RFC 2865 §3) must be
/// right, the attributes well formed, and a Message-Authenticator, if present,
/// valid (RFC 3579 §3.2). Whether one is required is the caller's policy.
pub fn verify_response(raw: &[u8], request_authenticator: &[u8; 16], secret: &[u8]) -> bool {
    let Ok(packet) = frame(raw) else {
        return false;
    };
    let (Some(head), Some(received), Some(attributes)) = (
        packet.get(..4),
        packet.get(4..HEADER_LEN),
        packet.get(HEADER_LEN..),
    ) else {
        return false;
    };
    let expected = Md5::new()
        .chain_update(head)
        .chain_update(request_authenticator)
        .chain_update(attributes)
        .chain_update(secret)
        .finalize();
    if !bool::from(expected.as_slice().ct_eq(received)) {
        return false;
    }
    check_message_authenticator(raw, secret, Some(request_authenticator))
        != MessageAuthenticator::Invalid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator::verify_accounting_request;
    use crate::packet::tests::arb_packet;
    use crate::packet::tests::hex;
    use crate::password::{decrypt_user_password, encrypt_user_password};
    use crate::{attr, DecodeError};
    use proptest::prelude::*;

    fn auth_of(raw: &[u8]) -> [u8; 16] {
        raw[4..20].try_into().unwrap()
    }

    const SECRET: &[u8] = b"xyzzy5461";

    /// RFC 2865 §7.1 "User Telnet to Specified Host": Access-Request and its
    /// Access-Accept. The reply predates Message-Authenticator, so only its
    /// Response Authenticator can be checked.
    const RFC_2865_7_1_REQUEST: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
        98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d
        93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8
        01 10 05 06 00 00 00 03";
    const RFC_2865_7_1_ACCEPT: &str = "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
        9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00
        0e 06 c0 a8 01 03";
    /// RFC 2865 §7.2 "Framed User Authenticating with CHAP": the request only
    /// (CHAP is not something this crate computes).
    const RFC_2865_7_2_REQUEST: &str = "01 01 00 47 2a ee 86 f0 8d 0d 55 96 9c a5 97 8e
        0d 33 67 a2 01 08 66 6c 6f 70 73 79 03 13 16 e9
        75 57 c3 16 18 58 95 f2 93 ff 63 44 07 72 75 04
        06 c0 a8 01 10 05 06 00 00 00 14 06 06 00 00 00
        02 07 06 00 00 00 01";

    #[test]
    fn rfc_2865_section_7_1_response_authenticator_verifies() {
        let request = hex(RFC_2865_7_1_REQUEST);
        let reply = hex(RFC_2865_7_1_ACCEPT);
        let request_auth = auth_of(&request);
        assert!(verify_response(&reply, &request_auth, SECRET));
        assert!(!verify_response(&reply, &request_auth, b"xyzzy5462"));
        let mut other_auth = request_auth;
        other_auth[0] ^= 1;
        assert!(!verify_response(&reply, &other_auth, SECRET));
        // Rebuilding the reply with encode_response gives the same attributes
        // after the leading Message-Authenticator.
        let accept = Packet::decode(&reply).unwrap();
        let ours =
            Packet::decode(&encode_response(&accept, &request_auth, SECRET).unwrap()).unwrap();
        assert_eq!(ours.attributes[1..], accept.attributes[..]);
    }

    #[test]
    fn rfc_2865_section_7_2_request_decodes_and_reencodes() {
        let raw = hex(RFC_2865_7_2_REQUEST);
        let p = Packet::decode(&raw).unwrap();
        assert_eq!((p.code, p.identifier), (Code::AccessRequest, 1));
        assert_eq!(p.get(attr::USER_NAME), Some(&b"flopsy"[..]));
        assert_eq!(p.get(attr::CHAP_PASSWORD).map(<[u8]>::len), Some(17));
        assert_eq!(p.get(attr::NAS_PORT), Some(&20u32.to_be_bytes()[..]));
        assert_eq!(p.encode().unwrap(), raw);
    }

    #[test]
    fn rfc_2865_section_7_1_request_is_rebuilt_octet_for_octet() {
        let want = hex(RFC_2865_7_1_REQUEST);
        let auth = auth_of(&want);
        let mut p = Packet::new(Code::AccessRequest, 0, auth);
        p.add(attr::USER_NAME, "nemo");
        p.add(
            attr::USER_PASSWORD,
            encrypt_user_password(b"arctangent", SECRET, &auth).unwrap(),
        );
        p.add(attr::NAS_IP_ADDRESS, [192, 168, 1, 16]);
        p.add(attr::NAS_PORT, 3u32.to_be_bytes());
        assert_eq!(encode_request(&p, SECRET, false).unwrap(), want);
        let decoded = Packet::decode(&want).unwrap();
        assert_eq!(decoded, p);
        let hidden = decoded.get(attr::USER_PASSWORD).unwrap();
        assert_eq!(
            decrypt_user_password(hidden, SECRET, &auth).unwrap(),
            b"arctangent"
        );
    }

    #[test]
    fn response_has_message_authenticator_first_and_verifies() {
        let request_auth = [0x5a; 16];
        let mut reply = Packet::new(Code::AccessChallenge, 9, [0xEE; 16]);
        reply.add(attr::STATE, "s-1");
        // A stale or forged Message-Authenticator later in the list is replaced.
        reply.add(attr::MESSAGE_AUTHENTICATOR, [0xAB; 16]);
        reply.add(attr::REPLY_MESSAGE, "Enter code");
        let raw = encode_response(&reply, &request_auth, b"secret").unwrap();
        let decoded = Packet::decode(&raw).unwrap();
        assert_eq!(decoded.attributes[0].typ, attr::MESSAGE_AUTHENTICATOR);
        assert_eq!(decoded.get_all(attr::MESSAGE_AUTHENTICATOR).count(), 1);
        let others: Vec<u8> = decoded.attributes[1..].iter().map(|a| a.typ).collect();
        assert_eq!(others, [attr::STATE, attr::REPLY_MESSAGE]);
        assert!(verify_response(&raw, &request_auth, b"secret"));
        assert_eq!(
            check_message_authenticator(&raw, b"secret", Some(&request_auth)),
            MessageAuthenticator::Valid
        );
    }

    #[test]
    fn accounting_response_carries_no_message_authenticator() {
        // RFC 3579 §3.2 covers Access-* only; see encode_response.
        let request_auth = [6; 16];
        let mut reply = Packet::new(Code::AccountingResponse, 4, [0; 16]);
        reply.add(attr::PROXY_STATE, b"p");
        reply.add(attr::MESSAGE_AUTHENTICATOR, [0; 16]);
        let raw = encode_response(&reply, &request_auth, b"acct").unwrap();
        let decoded = Packet::decode(&raw).unwrap();
        assert_eq!(decoded.attributes.len(), 1);
        assert_eq!(decoded.get(attr::PROXY_STATE), Some(&b"p"[..]));
        assert!(verify_response(&raw, &request_auth, b"acct"));
    }

    #[test]
    fn tampered_responses_fail_verification() {
        let request_auth = [1; 16];
        let mut reply = Packet::new(Code::AccessReject, 3, [0; 16]);
        reply.add(attr::REPLY_MESSAGE, "no");
        let raw = encode_response(&reply, &request_auth, b"secret").unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x80;
            assert!(
                !verify_response(&bad, &request_auth, b"secret"),
                "octet {i}"
            );
        }
        assert!(!verify_response(&raw[..19], &request_auth, b"secret"));
    }

    #[test]
    fn response_with_wrong_message_authenticator_fails_even_with_right_response_authenticator() {
        // Forge: valid Response Authenticator over a bogus Message-Authenticator.
        let request_auth = [4; 16];
        let mut p = Packet::new(Code::AccessAccept, 1, request_auth);
        p.add(attr::MESSAGE_AUTHENTICATOR, [0x11; 16]);
        let mut raw = p.encode().unwrap();
        let ra: [u8; 16] = Md5::new()
            .chain_update(&raw)
            .chain_update(b"secret")
            .finalize()
            .into();
        raw[4..20].copy_from_slice(&ra);
        assert!(!verify_response(&raw, &request_auth, b"secret"));
    }

    #[test]
    fn access_request_with_message_authenticator_verifies_as_a_request() {
        let mut p = Packet::new(Code::AccessRequest, 77, [0x33; 16]);
        p.add(attr::USER_NAME, "alice");
        let signed = encode_request(&p, b"secret", true).unwrap();
        assert_eq!(signed[20], attr::MESSAGE_AUTHENTICATOR);
        assert_eq!(auth_of(&signed), [0x33; 16]);
        assert_eq!(
            check_message_authenticator(&signed, b"secret", None),
            MessageAuthenticator::Valid
        );
        let unsigned = encode_request(&p, b"secret", false).unwrap();
        assert_eq!(
            check_message_authenticator(&unsigned, b"secret", None),
            MessageAuthenticator::Missing
        );
    }

    #[test]
    fn status_server_always_carries_a_message_authenticator() {
        // RFC 5997 §3: Status-Server packets MUST include Message-Authenticator.
        let p = Packet::new(Code::StatusServer, 1, [2; 16]);
        let raw = encode_request(&p, b"secret", false).unwrap();
        assert_eq!(raw.len(), 38);
        assert_eq!(
            check_message_authenticator(&raw, b"secret", None),
            MessageAuthenticator::Valid
        );
    }

    #[test]
    fn accounting_request_gets_a_computed_request_authenticator() {
        // RFC 2866 §3; the caller's authenticator is ignored.
        let mut p = Packet::new(Code::AccountingRequest, 8, [0x77; 16]);
        p.add(attr::ACCT_STATUS_TYPE, 1u32.to_be_bytes());
        for with_ma in [false, true] {
            let raw = encode_request(&p, b"acct", with_ma).unwrap();
            assert!(verify_accounting_request(&raw, b"acct"), "{with_ma}");
            assert!(!verify_accounting_request(&raw, b"acct2"), "{with_ma}");
            let want = if with_ma {
                MessageAuthenticator::Valid
            } else {
                MessageAuthenticator::Missing
            };
            assert_eq!(check_message_authenticator(&raw, b"acct", None), want);
        }
    }

    #[test]
    fn responses_cannot_be_encoded_as_requests() {
        for code in [
            Code::AccessAccept,
            Code::AccessReject,
            Code::AccessChallenge,
            Code::AccountingResponse,
        ] {
            let p = Packet::new(code, 1, [0; 16]);
            assert_eq!(
                encode_request(&p, b"s", true),
                Err(EncodeError::NotARequest { code })
            );
        }
    }

    #[test]
    fn encode_errors_propagate() {
        let mut reply = Packet::new(Code::AccessAccept, 1, [0; 16]);
        reply.add(attr::REPLY_MESSAGE, [0u8; 254]);
        assert_eq!(
            encode_response(&reply, &[0; 16], b"s"),
            Err(EncodeError::AttributeTooLong {
                typ: attr::REPLY_MESSAGE,
                length: 254
            })
        );
        // The leading Message-Authenticator counts towards the 4096 limit.
        let mut reply = Packet::new(Code::AccessAccept, 1, [0; 16]);
        for _ in 0..15 {
            reply.add(attr::CLASS, [0u8; 253]);
        }
        reply.add(attr::CLASS, vec![0u8; 4096 - 20 - 15 * 255 - 2]);
        assert!(reply.encode().is_ok());
        assert_eq!(
            encode_response(&reply, &[0; 16], b"s"),
            Err(EncodeError::PacketTooLong { length: 4096 + 18 })
        );
    }

    #[test]
    fn malformed_responses_do_not_verify() {
        let cases: [&[u8]; 3] = [&[], &[2, 0, 0, 20], &[2, 0, 0, 21, 0, 0]];
        for raw in cases {
            assert!(!verify_response(raw, &[0; 16], b"s"));
        }
        assert!(matches!(
            Packet::decode(&[2, 0, 0, 20]),
            Err(DecodeError::TooShort { .. })
        ));
    }

    proptest! {
        #[test]
        fn encode_response_output_verifies_and_has_message_authenticator_first(
            p in arb_packet(),
            request_auth in proptest::array::uniform16(any::<u8>()),
            secret in proptest::collection::vec(any::<u8>(), 1..80),
        ) {
            // arb_packet stays under 4096 octets even with the extra 18.
            let raw = encode_response(&p, &request_auth, &secret).unwrap();
            prop_assert!(verify_response(&raw, &request_auth, &secret));
            let decoded = Packet::decode(&raw).unwrap();
            let kept: Vec<_> = p.attributes.iter()
                .filter(|a| a.typ != attr::MESSAGE_AUTHENTICATOR).collect();
            let signed = p.code != Code::AccountingResponse;
            let want = if signed { MessageAuthenticator::Valid } else { MessageAuthenticator::Missing };
            prop_assert_eq!(check_message_authenticator(&raw, &secret, Some(&request_auth)), want);
            let rest = if signed {
                prop_assert_eq!(decoded.attributes[0].typ, attr::MESSAGE_AUTHENTICATOR);
                &decoded.attributes[1..]
            } else {
                &decoded.attributes[..]
            };
            prop_assert_eq!(rest.iter().collect::<Vec<_>>(), kept);
        }

        #[test]
        fn signed_requests_verify(
            p in arb_packet(),
            secret in proptest::collection::vec(any::<u8>(), 1..80),
        ) {
            prop_assume!(encode_request(&p, &secret, true).is_ok());
            let raw = encode_request(&p, &secret, true).unwrap();
            prop_assert_eq!(
                check_message_authenticator(&raw, &secret, None),
                MessageAuthenticator::Valid
            );
            if p.code.has_computed_request_authenticator() {
                prop_assert!(verify_accounting_request(&raw, &secret));
            }
        }

        #[test]
        fn verify_response_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = verify_response(&bytes, &[0; 16], b"s");
        }
    }
}
