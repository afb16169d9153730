//! RADIUS packet and attribute framing (RFC 2865 §3 and §5): decode, encode, attribute access.

use crate::attr;
use crate::code::Code;

/// Code + Identifier + Length + Authenticator (RFC 2865 §3).
pub const HEADER_LEN: usize = 20;
/// RFC 2865 §3: "The maximum length is 4096."
pub const MAX_PACKET_LEN: usize = 4096;
/// An attribute's Length octet covers Type and Length, so 255 - 2 (RFC 2865 §5).
pub const MAX_ATTRIBUTE_VALUE_LEN: usize = 253;
/// Type 80 carries a 16-octet HMAC-MD5, 18 octets in all (RFC 3579 §3.2).
pub(crate) const MESSAGE_AUTHENTICATOR_LEN: usize = 18;

/// One attribute: a type and its raw value (without the Type and Length octets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub typ: u8,
    pub value: Vec<u8>,
}

/// A decoded RADIUS packet. Attribute order is preserved (RFC 2865 §5: order
/// of same-type attributes is significant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub code: Code,
    pub identifier: u8,
    pub authenticator: [u8; 16],
    pub attributes: Vec<Attribute>,
}

/// Why bytes are not a well-formed RADIUS packet. RFC 2865 §3 says such
/// packets are silently discarded; the message is for the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("packet of {received} octets is shorter than the 20-octet RADIUS header; discard it")]
    TooShort { received: usize },
    #[error("packet length field {length} is outside the 20..=4096 octets allowed by RFC 2865 §3; discard the packet")]
    LengthOutOfRange { length: usize },
    #[error("packet length field {length} exceeds the {received} octets received; the datagram was truncated, discard it")]
    LengthExceedsReceived { length: usize, received: usize },
    #[error("attribute type {typ} at offset {offset} has length {length}, below the 2-octet minimum (RFC 2865 §5); discard the packet")]
    AttributeTooShort {
        typ: u8,
        offset: usize,
        length: usize,
    },
    #[error("attribute type {typ} at offset {offset} has length {length} but only {remaining} octets remain before the packet length; discard the packet")]
    AttributeOverrun {
        typ: u8,
        offset: usize,
        length: usize,
        remaining: usize,
    },
    #[error("a lone octet at offset {offset} ends the attribute list; an attribute needs at least Type and Length; discard the packet")]
    TruncatedAttribute { offset: usize },
    #[error("Message-Authenticator attribute has length {length}; RFC 3579 §3.2 requires exactly 18; discard the packet")]
    MessageAuthenticatorLength { length: usize },
}

/// Why a packet cannot be put on the wire.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("attribute type {typ} has a {length}-octet value; the maximum is 253 (RFC 2865 §5), split it with Packet::add_string_split")]
    AttributeTooLong { typ: u8, length: usize },
    #[error("encoded packet would be {length} octets; RADIUS allows at most 4096 (RFC 2865 §3), send fewer or shorter attributes")]
    PacketTooLong { length: usize },
    #[error("Message-Authenticator attribute has a {length}-octet value; RFC 3579 §3.2 requires 16, leave it to encode_request or encode_response to compute")]
    MessageAuthenticatorLength { length: usize },
    #[error("{code} is a response, not a request; encode it with encode_response")]
    NotARequest { code: Code },
}

/// An attribute seen in place inside a raw packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawAttribute<'a> {
    /// Offset of the Type octet from the start of the packet.
    pub offset: usize,
    pub typ: u8,
    pub value: &'a [u8],
}

/// Checks the header of `buf` (RFC 2865 §3) and returns the packet proper:
/// exactly Length octets, the trailing padding dropped.
pub(crate) fn frame(buf: &[u8]) -> Result<&[u8], DecodeError> {
    let (Some(&hi), Some(&lo)) = (buf.get(2), buf.get(3)) else {
        return Err(DecodeError::TooShort {
            received: buf.len(),
        });
    };
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::TooShort {
            received: buf.len(),
        });
    }
    let length = usize::from(u16::from_be_bytes([hi, lo]));
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&length) {
        return Err(DecodeError::LengthOutOfRange { length });
    }
    // RFC 2865 §3: octets outside the range of the Length field MUST be
    // treated as padding and ignored; fewer octets than Length is an error.
    buf.get(..length).ok_or(DecodeError::LengthExceedsReceived {
        length,
        received: buf.len(),
    })
}

/// Iterates the attributes of a framed packet, validating each length
/// (RFC 2865 §5) and the Message-Authenticator length (RFC 3579 §3.2).
pub(crate) fn raw_attributes(packet: &[u8]) -> RawAttributes<'_> {
    RawAttributes {
        packet,
        offset: HEADER_LEN,
        failed: false,
    }
}

pub(crate) struct RawAttributes<'a> {
    packet: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> RawAttributes<'a> {
    fn step(&mut self) -> Option<Result<RawAttribute<'a>, DecodeError>> {
        let offset = self.offset;
        let rest = self.packet.get(offset..)?;
        let (typ, length) = match rest {
            [] => return None,
            [_] => return Some(Err(DecodeError::TruncatedAttribute { offset })),
            [typ, length, ..] => (*typ, usize::from(*length)),
        };
        if length < 2 {
            return Some(Err(DecodeError::AttributeTooShort {
                typ,
                offset,
                length,
            }));
        }
        let Some(value) = rest.get(2..length) else {
            return Some(Err(DecodeError::AttributeOverrun {
                typ,
                offset,
                length,
                remaining: rest.len(),
            }));
        };
        if typ == attr::MESSAGE_AUTHENTICATOR && length != MESSAGE_AUTHENTICATOR_LEN {
            return Some(Err(DecodeError::MessageAuthenticatorLength { length }));
        }
        self.offset = offset + length;
        Some(Ok(RawAttribute { offset, typ, value }))
    }
}

impl<'a> Iterator for RawAttributes<'a> {
    type Item = Result<RawAttribute<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.step();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

impl Packet {
    /// An empty packet. For requests, `authenticator` is the caller's random
    /// Request Authenticator (RFC 2865 §3); for responses it is overwritten by
    /// [`crate::encode_response`].
    pub fn new(code: Code, identifier: u8, authenticator: [u8; 16]) -> Self {
        Packet {
            code,
            identifier,
            authenticator,
            attributes: Vec::new(),
        }
    }

    /// Parses a datagram. Checks the Length field (20..=4096 and no more than
    /// received; octets beyond it are padding), every attribute length, and
    /// that any Message-Authenticator is 18 octets. Authenticators are not
    /// verified here: see [`crate::check_message_authenticator`]. Codes this
    /// crate has no name for decode as [`Code::Other`], so a server can log
    /// what it drops (RFC 2865 §3: unknown codes are silently discarded).
    pub fn decode(buf: &[u8]) -> Result<Packet, DecodeError> {
        let packet = frame(buf)?;
        let (Some(&code), Some(&identifier), Some(auth)) =
            (packet.first(), packet.get(1), packet.get(4..HEADER_LEN))
        else {
            return Err(DecodeError::TooShort {
                received: buf.len(),
            });
        };
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(auth);
        let mut attributes = Vec::with_capacity(8);
        for raw in raw_attributes(packet) {
            let raw = raw?;
            attributes.push(Attribute {
                typ: raw.typ,
                value: raw.value.to_vec(),
            });
        }
        Ok(Packet {
            code: Code::from(code),
            identifier,
            authenticator,
            attributes,
        })
    }

    /// Serialises the packet as is, authenticator field included; no
    /// authenticator is computed (see [`crate::encode_request`] and
    /// [`crate::encode_response`]).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_parts(
            self.code,
            self.identifier,
            &self.authenticator,
            MessageAuthenticatorSlot::AsGiven,
            &self.attributes,
        )
    }

    /// The value of the first attribute of type `typ`.
    pub fn get(&self, typ: u8) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|a| a.typ == typ)
            .map(|a| a.value.as_slice())
    }

    /// The values of every attribute of type `typ`, in packet order.
    pub fn get_all(&self, typ: u8) -> impl Iterator<Item = &[u8]> + '_ {
        self.attributes
            .iter()
            .filter(move |a| a.typ == typ)
            .map(|a| a.value.as_slice())
    }

    /// Concatenates every attribute of type `typ` in order, e.g. to reassemble
    /// an EAP packet split over several EAP-Message attributes (RFC 3579 §3.1).
    pub fn get_concat(&self, typ: u8) -> Option<Vec<u8>> {
        let mut values = self.get_all(typ).peekable();
        values.peek()?;
        Some(values.flatten().copied().collect())
    }

    /// Appends one attribute. Values over 253 octets are rejected later by
    /// `encode`; use [`Packet::add_string_split`] for long values.
    pub fn add(&mut self, typ: u8, value: impl AsRef<[u8]>) {
        self.attributes.push(Attribute {
            typ,
            value: value.as_ref().to_vec(),
        });
    }

    /// Appends `value` as consecutive attributes of at most 253 octets each,
    /// as RFC 2865 §5.18 (Reply-Message) and RFC 3579 §3.1 (EAP-Message)
    /// prescribe for long values. An empty value adds one empty attribute
    /// (RFC 3579 §3.1: an empty EAP-Message is EAP-Start).
    pub fn add_string_split(&mut self, typ: u8, value: &[u8]) {
        if value.is_empty() {
            self.add(typ, b"");
            return;
        }
        for chunk in value.chunks(MAX_ATTRIBUTE_VALUE_LEN) {
            self.add(typ, chunk);
        }
    }

    /// Removes every attribute of type `typ`.
    pub fn remove_all(&mut self, typ: u8) {
        self.attributes.retain(|a| a.typ != typ);
    }
}

/// Where [`encode_parts`] puts the Message-Authenticator attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MessageAuthenticatorSlot {
    /// Attributes are written as given; a Message-Authenticator among them
    /// must hold 16 octets so that the output decodes (RFC 3579 §3.2).
    AsGiven,
    /// Any given Message-Authenticator is dropped and an all-zero one is
    /// written as the first attribute, ready to be computed in place
    /// (BlastRADIUS mitigation, CVE-2024-3596).
    First,
    /// Any given Message-Authenticator is dropped.
    Omit,
}

/// Offset of the Message-Authenticator value when it is the first attribute.
pub(crate) const FIRST_MESSAGE_AUTHENTICATOR_VALUE: usize = HEADER_LEN + 2;

/// Writes header and attributes into one buffer sized up front.
pub(crate) fn encode_parts(
    code: Code,
    identifier: u8,
    authenticator: &[u8; 16],
    slot: MessageAuthenticatorSlot,
    attributes: &[Attribute],
) -> Result<Vec<u8>, EncodeError> {
    let keep = |a: &&Attribute| {
        slot == MessageAuthenticatorSlot::AsGiven || a.typ != attr::MESSAGE_AUTHENTICATOR
    };
    let mut length = HEADER_LEN;
    if slot == MessageAuthenticatorSlot::First {
        length += MESSAGE_AUTHENTICATOR_LEN;
    }
    for a in attributes.iter().filter(keep) {
        if a.value.len() > MAX_ATTRIBUTE_VALUE_LEN {
            return Err(EncodeError::AttributeTooLong {
                typ: a.typ,
                length: a.value.len(),
            });
        }
        if a.typ == attr::MESSAGE_AUTHENTICATOR && a.value.len() + 2 != MESSAGE_AUTHENTICATOR_LEN {
            return Err(EncodeError::MessageAuthenticatorLength {
                length: a.value.len(),
            });
        }
        length += 2 + a.value.len();
    }
    let wire_length = match u16::try_from(length) {
        Ok(l) if length <= MAX_PACKET_LEN => l,
        _ => return Err(EncodeError::PacketTooLong { length }),
    };
    let mut out = Vec::with_capacity(length);
    out.push(code.as_u8());
    out.push(identifier);
    out.extend_from_slice(&wire_length.to_be_bytes());
    out.extend_from_slice(authenticator);
    if slot == MessageAuthenticatorSlot::First {
        out.push(attr::MESSAGE_AUTHENTICATOR);
        out.push(MESSAGE_AUTHENTICATOR_LEN as u8);
        out.extend_from_slice(&[0u8; 16]);
    }
    for a in attributes.iter().filter(keep) {
        out.push(a.typ);
        // Bounded by MAX_ATTRIBUTE_VALUE_LEN above, so it fits in one octet.
        out.push((a.value.len() + 2) as u8);
        out.extend_from_slice(&a.value);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Octets from hex digits; anything else (spaces, newlines) is ignored, so RFC
    /// examples can be pasted as they are printed.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn header(code: u8, length: u16) -> Vec<u8> {
        let mut v = vec![code, 9];
        v.extend_from_slice(&length.to_be_bytes());
        v.extend_from_slice(&[0xAA; 16]);
        v
    }

    #[test]
    fn malformed_packets_are_rejected_with_the_rfc_2865_section_3_reason() {
        let mut short_attr = header(1, 22);
        short_attr.extend_from_slice(&[1, 1]);
        let mut overrun = header(1, 24);
        overrun.extend_from_slice(&[1, 6, b'a', b'b']);
        let mut lone = header(1, 21);
        lone.push(1);
        let mut bad_ma = header(1, 24);
        bad_ma.extend_from_slice(&[80, 4, 0, 0]);
        let table: Vec<(&str, Vec<u8>, DecodeError)> = vec![
            (
                "empty datagram",
                vec![],
                DecodeError::TooShort { received: 0 },
            ),
            (
                "19 octets",
                vec![1; 19],
                DecodeError::TooShort { received: 19 },
            ),
            (
                "length below 20",
                header(1, 19),
                DecodeError::LengthOutOfRange { length: 19 },
            ),
            (
                "length above 4096",
                header(1, 4097),
                DecodeError::LengthOutOfRange { length: 4097 },
            ),
            (
                "length beyond datagram",
                header(1, 30),
                DecodeError::LengthExceedsReceived {
                    length: 30,
                    received: 20,
                },
            ),
            (
                "attribute length 1",
                short_attr,
                DecodeError::AttributeTooShort {
                    typ: 1,
                    offset: 20,
                    length: 1,
                },
            ),
            (
                "attribute past Length",
                overrun,
                DecodeError::AttributeOverrun {
                    typ: 1,
                    offset: 20,
                    length: 6,
                    remaining: 4,
                },
            ),
            (
                "lone trailing octet",
                lone,
                DecodeError::TruncatedAttribute { offset: 20 },
            ),
            (
                "RFC 3579 §3.2: Message-Authenticator not 18 octets",
                bad_ma,
                DecodeError::MessageAuthenticatorLength { length: 4 },
            ),
        ];
        for (what, bytes, want) in table {
            assert_eq!(Packet::decode(&bytes), Err(want), "{what}");
        }
    }

    #[test]
    fn error_message_names_both_lengths() {
        let err = Packet::decode(&header(1, 30)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "packet length field 30 exceeds the 20 octets received; the datagram was truncated, discard it"
        );
    }

    #[test]
    fn octets_beyond_length_are_padding() {
        // RFC 2865 §3: octets outside the range of the Length field are ignored.
        let mut bytes = header(2, 23);
        bytes.extend_from_slice(&[18, 3, b'x', 0xFF, 0xFF, 0xFF]);
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(p.code, Code::AccessAccept);
        assert_eq!(p.get(attr::REPLY_MESSAGE), Some(&b"x"[..]));
        assert_eq!(p.encode().unwrap(), bytes[..23]);
    }

    #[test]
    fn encode_rejects_oversized_values_and_packets() {
        let mut p = Packet::new(Code::AccessAccept, 1, [0; 16]);
        p.add(attr::REPLY_MESSAGE, vec![b'a'; 254]);
        assert_eq!(
            p.encode(),
            Err(EncodeError::AttributeTooLong {
                typ: 18,
                length: 254
            })
        );
        let mut p = Packet::new(Code::AccessAccept, 1, [0; 16]);
        for _ in 0..17 {
            p.add(attr::CLASS, vec![0; 253]);
        }
        assert_eq!(p.encode(), Err(EncodeError::PacketTooLong { length: 4355 }));
        // Exactly 4096 octets is allowed (RFC 2865 §3).
        let mut p = Packet::new(Code::AccessAccept, 1, [0; 16]);
        for _ in 0..15 {
            p.add(attr::CLASS, vec![0; 253]);
        }
        p.add(attr::CLASS, vec![0; 4096 - 20 - 15 * 255 - 2]);
        assert_eq!(p.encode().unwrap().len(), 4096);
    }

    #[test]
    fn encode_refuses_a_message_authenticator_that_would_not_decode() {
        // RFC 3579 §3.2: the value is always 16 octets; decode rejects others,
        // so encode must not produce them.
        let mut p = Packet::new(Code::AccessRequest, 1, [0; 16]);
        p.add(attr::MESSAGE_AUTHENTICATOR, [0u8; 4]);
        assert_eq!(
            p.encode(),
            Err(EncodeError::MessageAuthenticatorLength { length: 4 })
        );
    }

    #[test]
    fn add_string_split_uses_253_octet_chunks() {
        let mut p = Packet::new(Code::AccessChallenge, 1, [0; 16]);
        let long: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        p.add_string_split(attr::EAP_MESSAGE, &long);
        let lens: Vec<usize> = p.get_all(attr::EAP_MESSAGE).map(<[u8]>::len).collect();
        assert_eq!(lens, [253, 253, 94]);
        assert_eq!(p.get_concat(attr::EAP_MESSAGE), Some(long));
        p.add_string_split(attr::EAP_MESSAGE, b"");
        assert_eq!(p.get_all(attr::EAP_MESSAGE).count(), 4);
        assert_eq!(p.get_concat(attr::STATE), None);
    }

    #[test]
    fn get_returns_first_and_get_all_keeps_order() {
        let mut p = Packet::new(Code::AccessRequest, 1, [0; 16]);
        p.add(attr::PROXY_STATE, b"one");
        p.add(attr::USER_NAME, "alice");
        p.add(attr::PROXY_STATE, b"two");
        assert_eq!(p.get(attr::PROXY_STATE), Some(&b"one"[..]));
        let all: Vec<&[u8]> = p.get_all(attr::PROXY_STATE).collect();
        assert_eq!(all, [&b"one"[..], &b"two"[..]]);
        p.remove_all(attr::PROXY_STATE);
        assert_eq!(p.attributes.len(), 1);
    }

    pub(crate) fn arb_attribute() -> impl Strategy<Value = Attribute> {
        prop_oneof![
            (
                any::<u8>().prop_filter("not MA", |t| *t != attr::MESSAGE_AUTHENTICATOR),
                proptest::collection::vec(any::<u8>(), 0..=253)
            )
                .prop_map(|(typ, value)| Attribute { typ, value }),
            proptest::array::uniform16(any::<u8>()).prop_map(|v| Attribute {
                typ: attr::MESSAGE_AUTHENTICATOR,
                value: v.to_vec()
            }),
        ]
    }

    pub(crate) fn arb_packet() -> impl Strategy<Value = Packet> {
        (
            any::<u8>(),
            any::<u8>(),
            proptest::array::uniform16(any::<u8>()),
            proptest::collection::vec(arb_attribute(), 0..16),
        )
            .prop_map(|(code, identifier, authenticator, attributes)| Packet {
                code: Code::from(code),
                identifier,
                authenticator,
                attributes,
            })
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(p in arb_packet()) {
            let bytes = p.encode().unwrap();
            prop_assert_eq!(usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), bytes.len());
            prop_assert_eq!(Packet::decode(&bytes).unwrap(), p);
        }

        #[test]
        fn decode_never_panics_and_reencodes_what_it_accepts(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(p) = Packet::decode(&bytes) {
                let again = p.encode().unwrap();
                prop_assert_eq!(&again[..], &bytes[..again.len()]);
            }
            prop_assert!(!verifies(&bytes));
        }

        #[test]
        fn decode_never_panics_on_plausible_headers(
            code in any::<u8>(),
            body in proptest::collection::vec(any::<u8>(), 0..300),
            slack in 0usize..4,
        ) {
            // Random bytes rarely get past the Length check; force a matching one.
            let mut bytes = header(code, (20 + body.len()) as u16);
            bytes.extend_from_slice(&body);
            bytes.truncate(bytes.len().saturating_sub(slack));
            let _ = Packet::decode(&bytes);
            prop_assert!(!verifies(&bytes));
        }
    }

    /// Whether `bytes` pass any check of a signed packet under the secret "secret".
    fn verifies(bytes: &[u8]) -> bool {
        use crate::authenticator::{
            check_message_authenticator, verify_accounting_request, MessageAuthenticator,
        };
        let request_auth = [0xAA; 16];
        check_message_authenticator(bytes, b"secret", None) == MessageAuthenticator::Valid
            || check_message_authenticator(bytes, b"secret", Some(&request_auth))
                == MessageAuthenticator::Valid
            || verify_accounting_request(bytes, b"secret")
            || crate::exchange::verify_response(bytes, &request_auth, b"secret")
    }
}
