//! What both backends share about stored settings: sealing and opening secret values.

use crate::crypto::{setting_aad, Cipher};
use mfad_core::store::{StoreError, StoreResult};

/// The value as stored: sealed and bound to `key` when `secret`, else as given.
pub(crate) fn seal(cipher: &Cipher, key: &str, value: &str, secret: bool) -> StoreResult<String> {
    if !secret {
        return Ok(value.to_owned());
    }
    cipher
        .encrypt(value.as_bytes(), &setting_aad(key))
        .map_err(|e| StoreError::Unavailable(format!("cannot encrypt setting '{key}': {e}")))
}

/// Opens a sealed setting value.
pub(crate) fn open(cipher: &Cipher, key: &str, stored: &str) -> StoreResult<String> {
    let plain = cipher
        .decrypt(stored, &setting_aad(key))
        .map_err(|e| StoreError::Corrupt(format!("setting '{key}': {e}")))?;
    String::from_utf8(plain.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("setting '{key}' is not UTF-8 text")))
}
