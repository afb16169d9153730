//! What both backends seal before a value reaches the database: token secrets, client
//! shared secrets and secret settings, each bound to its record by the associated data,
//! the same in both backends, so sealed values move between them unchanged.

use crate::crypto::{client_aad, email_aad, setting_aad, token_aad, Cipher};
use crate::rows::counter;
use mfad_core::model::{NewClient, NewToken, NewUser, UserId};
use mfad_core::store::{StoreError, StoreResult};

/// A [`NewToken`] whose secret is already sealed, so the database work (SQLite's writer
/// thread, a PostgreSQL transaction) spends its time on SQL only.
pub(crate) struct SealedToken {
    pub(crate) serial: String,
    pub(crate) user_id: Option<UserId>,
    pub(crate) kind: &'static str,
    pub(crate) algorithm: &'static str,
    pub(crate) digits: u32,
    pub(crate) period: i64,
    pub(crate) secret: String,
    pub(crate) next: i64,
}

impl SealedToken {
    pub(crate) fn seal(token: &NewToken, cipher: &Cipher) -> StoreResult<Self> {
        let secret = cipher
            .encrypt(token.secret.expose(), &token_aad(&token.serial))
            .map_err(|e| StoreError::Unavailable(format!("cannot encrypt a token secret: {e}")))?;
        Ok(Self {
            serial: token.serial.clone(),
            user_id: token.user_id,
            kind: token.kind.as_str(),
            algorithm: token.algorithm.as_str(),
            digits: token.digits,
            period: counter(token.period)?,
            secret,
            next: counter(token.next)?,
        })
    }
}

/// Every token of a call sealed, or the first error.
pub(crate) fn tokens(cipher: &Cipher, tokens: &[NewToken]) -> StoreResult<Vec<SealedToken>> {
    tokens
        .iter()
        .map(|t| SealedToken::seal(t, cipher))
        .collect()
}

/// A bulk load as stored: usernames normalised, token secrets sealed.
pub(crate) fn users_with_tokens(
    cipher: &Cipher,
    batch: &[(NewUser, Vec<NewToken>)],
) -> StoreResult<Vec<(NewUser, Vec<SealedToken>)>> {
    batch
        .iter()
        .map(|(user, list)| Ok((crate::normalised_user(user), tokens(cipher, list)?)))
        .collect()
}

/// The client's shared secret as stored, bound to its name.
pub(crate) fn client_secret(cipher: &Cipher, client: &NewClient) -> StoreResult<String> {
    cipher
        .encrypt(client.secret.as_bytes(), &client_aad(&client.name))
        .map_err(|e| StoreError::Unavailable(format!("cannot encrypt a client secret: {e}")))
}

/// A mail's body as stored, bound to the mail's id (it may hold an initial PIN).
pub(crate) fn email_body(cipher: &Cipher, id: i64, body: &str) -> StoreResult<String> {
    cipher
        .encrypt(body.as_bytes(), &email_aad(id))
        .map_err(|e| StoreError::Unavailable(format!("cannot seal an e-mail body: {e}")))
}

/// A setting's value as stored: sealed and bound to `key` when `secret`, else as given.
pub(crate) fn setting(
    cipher: &Cipher,
    key: &str,
    value: &str,
    secret: bool,
) -> StoreResult<String> {
    if !secret {
        return Ok(value.to_owned());
    }
    cipher
        .encrypt(value.as_bytes(), &setting_aad(key))
        .map_err(|e| StoreError::Unavailable(format!("cannot encrypt setting '{key}': {e}")))
}

/// Opens a sealed setting value.
pub(crate) fn open_setting(cipher: &Cipher, key: &str, stored: &str) -> StoreResult<String> {
    let plain = cipher
        .decrypt(stored, &setting_aad(key))
        .map_err(|e| StoreError::Corrupt(format!("setting '{key}': {e}")))?;
    String::from_utf8(plain.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("setting '{key}' is not UTF-8 text")))
}
