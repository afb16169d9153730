//! User-Password hiding (RFC 2865 §5.2): an MD5 key stream from the shared secret and the Request Authenticator.

use md5::{Digest, Md5};

/// RFC 2865 §5.2: "The String field is between 16 and 128 octets long".
pub const MAX_PASSWORD_LEN: usize = 128;

const BLOCK: usize = 16;

/// Why a User-Password cannot be hidden or revealed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("User-Password attribute has {length} octets; RFC 2865 §5.2 requires a non-zero multiple of 16 up to 128; discard the request")]
    HiddenLength { length: usize },
    #[error("password of {length} octets does not fit in User-Password, which carries at most 128 (RFC 2865 §5.2)")]
    TooLong { length: usize },
}

/// Reveals a User-Password value (RFC 2865 §5.2):
/// `p_i = c_i XOR MD5(S + c_(i-1))` with `c_0` the Request Authenticator.
///
/// The NUL padding is stripped from the end, so a password that itself ends
/// in NUL octets loses them; RFC 2865 §5.2 makes such passwords ambiguous.
pub fn decrypt_user_password(
    hidden: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, PasswordError> {
    if hidden.is_empty() || hidden.len() % BLOCK != 0 || hidden.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::HiddenLength {
            length: hidden.len(),
        });
    }
    // The secret is the same prefix of every block's hash input: hash it once.
    let keyed = Md5::new_with_prefix(secret);
    let mut out = Vec::with_capacity(hidden.len());
    let mut previous: &[u8] = request_authenticator;
    for block in hidden.chunks_exact(BLOCK) {
        let stream = keyed.clone().chain_update(previous).finalize();
        out.extend(block.iter().zip(stream).map(|(c, b)| c ^ b));
        previous = block;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Ok(out)
}

/// Hides a password for the User-Password attribute (RFC 2865 §5.2): pads it
/// with NULs to a multiple of 16 octets (16 for an empty password) and chains
/// `c_i = p_i XOR MD5(S + c_(i-1))` from the Request Authenticator.
pub fn encrypt_user_password(
    password: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, PasswordError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong {
            length: password.len(),
        });
    }
    let padded_len = password.len().div_ceil(BLOCK).max(1) * BLOCK;
    let mut out = password.to_vec();
    out.resize(padded_len, 0);
    let keyed = Md5::new_with_prefix(secret);
    let mut previous: [u8; BLOCK] = *request_authenticator;
    for block in out.chunks_exact_mut(BLOCK) {
        let stream = keyed.clone().chain_update(previous).finalize();
        block.iter_mut().zip(stream).for_each(|(p, b)| *p ^= b);
        previous.copy_from_slice(block);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC_2865_SECRET: &[u8] = b"xyzzy5461";
    const RFC_2865_7_1_AUTHENTICATOR: [u8; 16] = [
        0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb, 0x98, 0xf4, 0x22,
        0x7a,
    ];
    const RFC_2865_7_1_HIDDEN: [u8; 16] = [
        0x0d, 0xbe, 0x70, 0x8d, 0x93, 0xd4, 0x13, 0xce, 0x31, 0x96, 0xe4, 0x3f, 0x78, 0x2a, 0x0a,
        0xee,
    ];

    #[test]
    fn rfc_2865_section_7_1_password_is_arctangent() {
        let clear = decrypt_user_password(
            &RFC_2865_7_1_HIDDEN,
            RFC_2865_SECRET,
            &RFC_2865_7_1_AUTHENTICATOR,
        )
        .unwrap();
        assert_eq!(clear, b"arctangent");
        let hidden =
            encrypt_user_password(b"arctangent", RFC_2865_SECRET, &RFC_2865_7_1_AUTHENTICATOR)
                .unwrap();
        assert_eq!(hidden, RFC_2865_7_1_HIDDEN);
    }

    #[test]
    fn hidden_lengths_outside_rfc_2865_section_5_2_are_rejected() {
        for length in [0, 1, 15, 17, 31, 144, 256] {
            assert_eq!(
                decrypt_user_password(&vec![0; length], b"s", &[0; 16]),
                Err(PasswordError::HiddenLength { length }),
                "{length}"
            );
        }
        for length in [16, 32, 128] {
            assert!(decrypt_user_password(&vec![0; length], b"s", &[0; 16]).is_ok());
        }
    }

    #[test]
    fn passwords_over_128_octets_cannot_be_hidden() {
        assert_eq!(
            encrypt_user_password(&[b'a'; 129], b"s", &[0; 16]),
            Err(PasswordError::TooLong { length: 129 })
        );
        assert_eq!(
            encrypt_user_password(&[b'a'; 128], b"s", &[0; 16])
                .unwrap()
                .len(),
            128
        );
    }

    #[test]
    fn hidden_length_is_padded_to_whole_blocks() {
        let table = [(0, 16), (1, 16), (16, 16), (17, 32), (100, 112), (128, 128)];
        for (clear, hidden) in table {
            let out = encrypt_user_password(&vec![b'x'; clear], b"s", &[1; 16]).unwrap();
            assert_eq!(out.len(), hidden, "{clear}");
        }
    }

    #[test]
    fn chaining_makes_equal_blocks_hide_differently() {
        // RFC 2865 §5.2: each block is keyed by the previous ciphertext block.
        let out = encrypt_user_password(&[b'a'; 32], b"s", &[0; 16]).unwrap();
        assert_ne!(out[..16], out[16..]);
    }

    proptest! {
        #[test]
        fn decrypt_inverts_encrypt(
            password in proptest::collection::vec(any::<u8>(), 0..=128)
                .prop_filter("no trailing NUL", |p| p.last() != Some(&0)),
            secret in proptest::collection::vec(any::<u8>(), 0..80),
            auth in proptest::array::uniform16(any::<u8>()),
        ) {
            let hidden = encrypt_user_password(&password, &secret, &auth).unwrap();
            prop_assert_eq!(decrypt_user_password(&hidden, &secret, &auth).unwrap(), password);
        }

        #[test]
        fn decrypt_never_panics(
            hidden in proptest::collection::vec(any::<u8>(), 0..300),
            secret in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let _ = decrypt_user_password(&hidden, &secret, &[0; 16]);
        }
    }
}
