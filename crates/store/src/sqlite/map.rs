//! Rows to model records and SQLite errors to [`StoreError`]s, in one place.

use crate::crypto::Cipher;
use mfad_core::model::{Client, Secret, Token, User};
use mfad_core::store::StoreError;
use rusqlite::ffi;
use rusqlite::Row;
use std::str::FromStr;

pub(super) use crate::columns::{
    CLIENT_COLUMNS, TOKEN_COLUMNS, TOKEN_COLUMNS_T, TOKEN_OFFSET, USER_COLUMNS, USER_COLUMNS_U,
};

pub(super) use crate::crypto::{client_aad, email_aad, token_aad};

fn parsed<T: FromStr<Err = String>>(row: &Row, idx: usize, what: &str) -> Result<T, StoreError> {
    let text: String = row.get(idx).map_err(db_err)?;
    text.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(super) fn user_from_row(row: &Row) -> Result<User, StoreError> {
    let history: String = row.get(14).map_err(db_err)?;
    let pin_history = serde_json::from_str(&history)
        .map_err(|e| StoreError::Corrupt(format!("PIN history: {e}")))?;
    Ok(User {
        id: row.get(0).map_err(db_err)?,
        username: row.get(1).map_err(db_err)?,
        given_name: row.get(2).map_err(db_err)?,
        surname: row.get(3).map_err(db_err)?,
        email: row.get(4).map_err(db_err)?,
        phone: row.get(5).map_err(db_err)?,
        enabled: row.get(6).map_err(db_err)?,
        blocked_until: row.get(7).map_err(db_err)?,
        block_reason: row.get(8).map_err(db_err)?,
        locked_until: row.get(9).map_err(db_err)?,
        failures: row.get(10).map_err(db_err)?,
        pin_mode: parsed(row, 11, "PIN mode")?,
        pin_hash: row.get(12).map_err(db_err)?,
        pin_change_required: row.get(13).map_err(db_err)?,
        pin_history,
        bypass_until: row.get(15).map_err(db_err)?,
        created_at: row.get(16).map_err(db_err)?,
        mobile: row.get(17).map_err(db_err)?,
        extension: row.get(18).map_err(db_err)?,
        language: row.get(19).map_err(db_err)?,
        directory_id: row.get(20).map_err(db_err)?,
        sync_item: row.get(21).map_err(db_err)?,
        method: parsed(row, 22, "method")?,
        backup_phone: row.get(23).map_err(db_err)?,
    })
}

/// Reads a token whose columns start at `at`, decrypting its secret.
pub(super) fn token_from_row(row: &Row, at: usize, cipher: &Cipher) -> Result<Token, StoreError> {
    let serial: String = row.get(at + 1).map_err(db_err)?;
    let sealed: String = row.get(at + 7).map_err(db_err)?;
    let secret = cipher
        .decrypt(&sealed, &token_aad(&serial))
        .map_err(|e| StoreError::Corrupt(format!("secret of token '{serial}': {e}")))?;
    Ok(Token {
        id: row.get(at).map_err(db_err)?,
        user_id: row.get(at + 2).map_err(db_err)?,
        kind: parsed(row, at + 3, "token type")?,
        algorithm: parsed(row, at + 4, "token algorithm")?,
        digits: row.get(at + 5).map_err(db_err)?,
        period: row.get(at + 6).map_err(db_err)?,
        secret: Secret(secret),
        next: row.get(at + 8).map_err(db_err)?,
        resync: row.get(at + 9).map_err(db_err)?,
        enabled: row.get(at + 10).map_err(db_err)?,
        created_at: row.get(at + 11).map_err(db_err)?,
        serial,
    })
}

pub(super) fn client_from_row(row: &Row, cipher: &Cipher) -> Result<Client, StoreError> {
    let name: String = row.get(1).map_err(db_err)?;
    let address: String = row.get(2).map_err(db_err)?;
    let sealed: String = row.get(3).map_err(db_err)?;
    let secret = cipher
        .decrypt(&sealed, &client_aad(&name))
        .map_err(|e| StoreError::Corrupt(format!("secret of client '{name}': {e}")))?;
    let secret = String::from_utf8(secret.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("secret of client '{name}' is not UTF-8")))?;
    Ok(Client {
        id: row.get(0).map_err(db_err)?,
        address: address
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("address of client '{name}': {e}")))?,
        secret,
        first_factor: parsed(row, 4, "first factor")?,
        prompt: parsed(row, 5, "prompt mode")?,
        require_message_authenticator: row.get(6).map_err(db_err)?,
        require_user_match: row.get(7).map_err(db_err)?,
        created_at: row.get(8).map_err(db_err)?,
        code_separator: row.get(9).map_err(db_err)?,
        targets: {
            let joined: String = row.get(10).map_err(db_err)?;
            joined
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        },
        name,
    })
}

/// The general mapping; callers that expect a constraint violation check for it first.
pub(super) fn db_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(format!(
                "the database stayed locked by another writer past the busy timeout ({e})"
            ))
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

pub(super) fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

/// A `u64` counter as SQLite's signed 64-bit integer.
pub(super) fn counter(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Corrupt(format!(
            "counter {value} is beyond the range the database can hold"
        ))
    })
}
