//! MS-MPPE-Send-Key and MS-MPPE-Recv-Key (RFC 2548 §2.4.2 and §2.4.3): keys hidden with the shared secret, the Request Authenticator and a salt.
//!
//! A proxy cannot pass these attributes on as they are: they are hidden with the
//! secret it shares with the server that answered and the authenticator of the
//! request it sent there. It reveals them with [`decrypt_mppe_key`] and hides them
//! again for its own client with [`encrypt_mppe_key`].

use crate::attr;
use crate::packet::Packet;
use crate::vendor::{vendor_attributes, VendorAttribute};
use md5::{Digest, Md5};
use zeroize::Zeroizing;

const BLOCK: usize = 16;
const SALT_LEN: usize = 2;

/// Why an MPPE key attribute cannot be revealed or hidden.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MppeError {
    #[error("MPPE key attribute of {length} octets; RFC 2548 §2.4.2 requires a 2-octet salt and a non-zero multiple of 16; discard the reply")]
    Length { length: usize },
    #[error("MPPE key attribute with a salt whose high bit is clear (RFC 2548 §2.4.2); discard the reply")]
    Salt,
    #[error("MPPE key attribute whose key length {key_len} exceeds the {available} octets it carries; check the shared secret")]
    KeyLength { key_len: usize, available: usize },
    #[error("MPPE key of {length} octets does not fit in one attribute (at most 239)")]
    TooLong { length: usize },
}

/// The key stream block `MD5(S + prev)`, where `prev` is `R + A` for the first block.
fn stream(secret: &[u8], prev: &[&[u8]]) -> [u8; BLOCK] {
    let mut md5 = Md5::new_with_prefix(secret);
    for part in prev {
        md5.update(part);
    }
    md5.finalize().into()
}

/// Reveals the key in an MS-MPPE-Send-Key or -Recv-Key value (Salt + String) of a reply
/// to a request with `request_authenticator`, sent with `secret` (RFC 2548 §2.4.2:
/// `p(i) = c(i) XOR MD5(S + c(i-1))`, with `MD5(S + R + A)` for the first block).
pub fn decrypt_mppe_key(
    value: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Zeroizing<Vec<u8>>, MppeError> {
    let length = value.len();
    let Some((salt, hidden)) = value.split_first_chunk::<SALT_LEN>() else {
        return Err(MppeError::Length { length });
    };
    if hidden.is_empty() || hidden.len() % BLOCK != 0 {
        return Err(MppeError::Length { length });
    }
    if salt[0] & 0x80 == 0 {
        return Err(MppeError::Salt);
    }
    let mut plain = Zeroizing::new(Vec::with_capacity(hidden.len()));
    let mut b = stream(secret, &[request_authenticator, salt]);
    for block in hidden.chunks_exact(BLOCK) {
        plain.extend(block.iter().zip(b).map(|(c, k)| c ^ k));
        b = stream(secret, &[block]);
    }
    let key_len = usize::from(plain.first().copied().unwrap_or(0));
    let available = plain.len() - 1;
    match plain.get(1..=key_len) {
        Some(key) if key_len <= available => Ok(Zeroizing::new(key.to_vec())),
        _ => Err(MppeError::KeyLength { key_len, available }),
    }
}

/// Hides `key` for an MS-MPPE-Send-Key or -Recv-Key value in a reply to a request with
/// `request_authenticator` (RFC 2548 §2.4.2): the key length octet, the key and zero
/// padding to a multiple of 16, chained from `MD5(S + R + A)`. The high bit of `salt` is
/// set here; the salts of one packet's attributes come from one [`mppe_salts`].
pub fn encrypt_mppe_key(
    key: &[u8],
    salt: [u8; 2],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, MppeError> {
    // 253 - 6 (vendor header) - 2 (salt) = 245 octets, in blocks of 16 with the length octet.
    let Ok(key_len) = u8::try_from(key.len()) else {
        return Err(MppeError::TooLong { length: key.len() });
    };
    let padded = (key.len() + 1).div_ceil(BLOCK) * BLOCK;
    if padded + SALT_LEN + 6 > crate::MAX_ATTRIBUTE_VALUE_LEN {
        return Err(MppeError::TooLong { length: key.len() });
    }
    let salt = [salt[0] | 0x80, salt[1]];
    let mut out = Vec::with_capacity(SALT_LEN + padded);
    out.extend_from_slice(&salt);
    let mut plain = Zeroizing::new(Vec::with_capacity(padded));
    plain.push(key_len);
    plain.extend_from_slice(key);
    plain.resize(padded, 0);
    let mut b = stream(secret, &[request_authenticator, &salt]);
    for block in plain.chunks_exact(BLOCK) {
        let start = out.len();
        out.extend(block.iter().zip(b).map(|(p, k)| p ^ k));
        b = stream(secret, &[out.get(start..).unwrap_or_default()]);
    }
    Ok(out)
}

/// The salts for the MPPE key attributes of one packet, drawn from one `random` value:
/// the first is `random` with its high bit set, each next one counts up in the 15 low
/// bits. RFC 2548 §2.4.2: the high bit of a salt must be set and the salts of the
/// attributes in one packet must differ; two equal salts hide both keys with one key
/// stream, which leaks their XOR. Drawing each salt at random makes that a matter of
/// luck (once in 32,768 packets); deriving them makes it impossible: the 32,768 salts
/// this yields are all different.
pub fn mppe_salts(random: [u8; 2]) -> impl Iterator<Item = [u8; 2]> {
    let first = u16::from_be_bytes(random);
    (0..0x8000u16).map(move |i| (0x8000 | (first.wrapping_add(i) & 0x7fff)).to_be_bytes())
}

/// An MPPE key taken out of a reply: which of the two, and the key in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct MppeKey {
    /// [`attr::ms::MPPE_SEND_KEY`] or [`attr::ms::MPPE_RECV_KEY`].
    pub typ: u8,
    pub key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for MppeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MppeKey")
            .field("typ", &self.typ)
            .finish_non_exhaustive()
    }
}

fn is_mppe_key(v: &VendorAttribute) -> bool {
    v.vendor == attr::ms::VENDOR_ID
        && matches!(v.typ, attr::ms::MPPE_SEND_KEY | attr::ms::MPPE_RECV_KEY)
}

/// Removes the MPPE keys from `reply`, a reply to a request with `request_authenticator`
/// sent with `secret`, and returns them in clear. Other sub-attributes of a
/// Vendor-Specific attribute that held a key stay in the reply.
pub fn take_mppe_keys(
    reply: &mut Packet,
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<MppeKey>, MppeError> {
    let mut keys = Vec::new();
    let mut kept = Vec::with_capacity(reply.attributes.len());
    for a in std::mem::take(&mut reply.attributes) {
        let subs = (a.typ == attr::VENDOR_SPECIFIC)
            .then(|| vendor_attributes(&a.value))
            .flatten();
        let Some(subs) = subs.filter(|s| s.iter().any(is_mppe_key)) else {
            kept.push(a);
            continue;
        };
        for sub in subs {
            if is_mppe_key(&sub) {
                let key = decrypt_mppe_key(&sub.value, secret, request_authenticator)?;
                keys.push(MppeKey { typ: sub.typ, key });
            } else if let Some(other) = sub.to_attribute() {
                kept.push(other);
            }
        }
    }
    reply.attributes = kept;
    Ok(keys)
}

/// Adds `key` to `reply`, hidden for a request with `request_authenticator` and `secret`.
pub fn add_mppe_key(
    reply: &mut Packet,
    key: &MppeKey,
    salt: [u8; 2],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<(), MppeError> {
    let value = encrypt_mppe_key(&key.key, salt, secret, request_authenticator)?;
    let vsa = VendorAttribute {
        vendor: attr::ms::VENDOR_ID,
        typ: key.typ,
        value,
    };
    let attribute = vsa.to_attribute().ok_or(MppeError::TooLong {
        length: key.key.len(),
    })?;
    reply.attributes.push(attribute);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tests::hex;
    use crate::Code;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"a-target-secret";

    /// RFC 2548 §2.4.2 written out once more, block by block, for a 16-octet key (two
    /// blocks with the length octet): the implementation must match this reading.
    #[test]
    fn encryption_follows_rfc_2548_section_2_4_2_block_by_block() {
        let key = hex("d5f0e9521e3ea9581e3ea9581e3ea958");
        let request_auth: [u8; 16] = hex("0102030405060708090a0b0c0d0e0f10").try_into().unwrap();
        let salt = [0x80, 0x01];
        let mut p = vec![16u8];
        p.extend_from_slice(&key);
        p.resize(32, 0);
        let b1: Vec<u8> = Md5::new()
            .chain_update(SECRET)
            .chain_update(request_auth)
            .chain_update(salt)
            .finalize()
            .to_vec();
        let c1: Vec<u8> = p[..16].iter().zip(&b1).map(|(a, b)| a ^ b).collect();
        let b2: Vec<u8> = Md5::new()
            .chain_update(SECRET)
            .chain_update(&c1)
            .finalize()
            .to_vec();
        let c2: Vec<u8> = p[16..].iter().zip(&b2).map(|(a, b)| a ^ b).collect();
        let want = [&salt[..], &c1, &c2].concat();
        assert_eq!(
            encrypt_mppe_key(&key, salt, SECRET, &request_auth).unwrap(),
            want
        );
        assert_eq!(
            *decrypt_mppe_key(&want, SECRET, &request_auth).unwrap(),
            key
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        let auth = [9u8; 16];
        assert_eq!(
            decrypt_mppe_key(&[0x80], SECRET, &auth),
            Err(MppeError::Length { length: 1 })
        );
        assert_eq!(
            decrypt_mppe_key(&[0x80, 0, 1, 2], SECRET, &auth),
            Err(MppeError::Length { length: 4 })
        );
        assert_eq!(
            decrypt_mppe_key(&[0x00; 18], SECRET, &auth),
            Err(MppeError::Salt)
        );
        // A wrong secret yields a random length octet, almost always too large.
        let hidden = encrypt_mppe_key(&[7; 16], [1, 2], SECRET, &auth).unwrap();
        let wrong = (0..=255u8)
            .map(|i| decrypt_mppe_key(&hidden, &[i], &auth))
            .filter(Result::is_err)
            .count();
        assert!(wrong > 200, "{wrong}");
    }

    #[test]
    fn a_proxy_reveals_keys_and_hides_them_again_for_its_client() {
        let (upstream_auth, client_auth) = ([1u8; 16], [2u8; 16]);
        let send = MppeKey {
            typ: attr::ms::MPPE_SEND_KEY,
            key: Zeroizing::new(vec![0x11; 16]),
        };
        let recv = MppeKey {
            typ: attr::ms::MPPE_RECV_KEY,
            key: Zeroizing::new(vec![0x22; 16]),
        };
        let mut reply = Packet::new(Code::AccessAccept, 1, [0; 16]);
        reply.add(attr::CLASS, "c");
        add_mppe_key(&mut reply, &send, [1, 1], SECRET, &upstream_auth).unwrap();
        add_mppe_key(&mut reply, &recv, [1, 2], SECRET, &upstream_auth).unwrap();
        let keys = take_mppe_keys(&mut reply, SECRET, &upstream_auth).unwrap();
        assert_eq!(keys, [send.clone(), recv.clone()]);
        assert_eq!(reply.attributes.len(), 1, "only Class is left");
        for k in &keys {
            add_mppe_key(&mut reply, k, [3, 3], b"client-secret", &client_auth).unwrap();
        }
        let again = take_mppe_keys(&mut reply, b"client-secret", &client_auth).unwrap();
        assert_eq!(again, [send, recv]);
    }

    /// RFC 2548 §2.4.2: for every random value, the salts of one packet differ (also
    /// once their high bit is set, which the salts drawn apart did not ensure) and each
    /// has the high bit set.
    #[test]
    fn the_salts_of_one_packet_always_differ_and_have_the_high_bit_set() {
        for random in 0..=u16::MAX {
            let salts: Vec<[u8; 2]> = mppe_salts(random.to_be_bytes()).take(2).collect();
            assert_eq!(salts.len(), 2);
            assert!(
                salts.iter().all(|s| s[0] & 0x80 == 0x80),
                "{random}: {salts:?}"
            );
            assert_ne!(salts[0], salts[1], "{random}");
        }
        let all: std::collections::HashSet<[u8; 2]> = mppe_salts([0x12, 0x34]).collect();
        assert_eq!(all.len(), 0x8000, "every salt of one packet is different");
    }

    proptest! {
        #[test]
        fn decrypt_inverts_encrypt(
            key in proptest::collection::vec(any::<u8>(), 0..=200),
            salt in any::<[u8; 2]>(),
            secret in proptest::collection::vec(any::<u8>(), 1..40),
            auth in any::<[u8; 16]>(),
        ) {
            let hidden = encrypt_mppe_key(&key, salt, &secret, &auth).unwrap();
            prop_assert_eq!(hidden[0] & 0x80, 0x80);
            prop_assert_eq!((hidden.len() - 2) % 16, 0);
            prop_assert_eq!(&*decrypt_mppe_key(&hidden, &secret, &auth).unwrap(), &key);
        }

        #[test]
        fn decrypt_never_panics(value in proptest::collection::vec(any::<u8>(), 0..80), auth in any::<[u8; 16]>()) {
            let _ = decrypt_mppe_key(&value, SECRET, &auth);
        }
    }
}
