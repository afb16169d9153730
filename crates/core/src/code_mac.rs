//! The keyed hash of short codes kept in the store (SMS codes, two-way SMS reply codes).
//!
//! A 6-digit code has a million values: a plain salted hash of it is reversed by trying
//! them all in well under a second, so anyone who can read the database (a read-only
//! role, a replica, a dump, a backup taken during a login) would learn a live code.
//! The hash is therefore an HMAC-SHA256 keyed with a key derived from the store's key
//! file, which is kept outside the database like the key that seals the token seeds.

use data_encoding::HEXLOWER;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Separates this key from every other use of the key file (the AES-256-GCM key of the
/// sealed secrets is the key file's key itself).
const LABEL: &[u8] = b"mfad short code mac v1";

/// HMAC-SHA256 of short codes with a key derived from the key file.
#[derive(Clone)]
pub struct CodeMac {
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for CodeMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeMac").finish_non_exhaustive()
    }
}

impl CodeMac {
    /// Derives the code key from the key file's key: `HMAC-SHA256(key file key, LABEL)`.
    pub fn derive(key_file_key: &[u8; 32]) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&mac(key_file_key, &[LABEL]));
        Self { key }
    }

    /// The hex HMAC of `code` with its random `salt`, as the store keeps it.
    pub fn digest(&self, salt: &str, code: &str) -> String {
        let tag = mac(&*self.key, &[salt.as_bytes(), b"\0", code.as_bytes()]);
        HEXLOWER.encode(&tag)
    }

    /// Whether `code` is the one `expected` (a [`CodeMac::digest`]) was made of; compared
    /// in constant time.
    pub fn matches(&self, salt: &str, code: &str, expected: &str) -> bool {
        bool::from(
            self.digest(salt, code)
                .as_bytes()
                .ct_eq(expected.as_bytes()),
        )
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length; this cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    /// The hash the store kept before: SHA-256 of the salt and the code, no key.
    fn unkeyed(salt: &str, code: &str) -> String {
        let mut h = Sha256::new();
        h.update(salt.as_bytes());
        h.update(b"\0");
        h.update(code.as_bytes());
        HEXLOWER.encode(&h.finalize())
    }

    #[test]
    fn the_code_key_is_an_hmac_of_the_key_file_key_with_its_own_label() {
        let file_key = [7u8; 32];
        let mac = CodeMac::derive(&file_key);
        let derived = HmacSha256::new_from_slice(&file_key)
            .unwrap()
            .chain_update(b"mfad short code mac v1")
            .finalize()
            .into_bytes();
        assert_eq!(&mac.key[..], &derived[..]);
        assert_ne!(&mac.key[..], &file_key[..]);
        let want = HmacSha256::new_from_slice(&derived)
            .unwrap()
            .chain_update(b"0011\x00123456")
            .finalize()
            .into_bytes();
        assert_eq!(mac.digest("0011", "123456"), HEXLOWER.encode(&want));
    }

    #[test]
    fn a_stored_code_cannot_be_found_without_the_key() {
        let mac = CodeMac::derive(&[42u8; 32]);
        let (salt, code) = ("8c1f0e", "493021");
        let stored = mac.digest(salt, code);
        assert!(mac.matches(salt, code, &stored));
        assert!(!mac.matches(salt, "493022", &stored));
        assert_ne!(stored, unkeyed(salt, code));
        let found = (0..1_000_000)
            .map(|n| format!("{n:06}"))
            .find(|guess| unkeyed(salt, guess) == stored);
        assert_eq!(found, None, "the unkeyed hash of some code matches");
        // Another key file gives another hash.
        assert_ne!(CodeMac::derive(&[43u8; 32]).digest(salt, code), stored);
    }
}
