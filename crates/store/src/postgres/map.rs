//! Rows to model records and PostgreSQL errors to [`StoreError`]s, in one place.

use crate::crypto::{client_aad, token_aad, Cipher};
use mfad_core::model::{Client, Secret, Token, User};
use mfad_core::store::StoreError;
use sqlx::error::ErrorKind;
use sqlx::postgres::PgRow;
use sqlx::Row;
use std::str::FromStr;

pub(super) use crate::columns::{
    CLIENT_COLUMNS, TOKEN_COLUMNS, TOKEN_COLUMNS_T, TOKEN_OFFSET, USER_COLUMNS, USER_COLUMNS_U,
};

/// Reads column `idx`, turning a type mismatch into `Corrupt`.
pub(super) fn get<'r, T>(row: &'r PgRow, idx: usize) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(idx).map_err(db_err)
}

fn parsed<T: FromStr<Err = String>>(row: &PgRow, idx: usize, what: &str) -> Result<T, StoreError> {
    let text: String = get(row, idx)?;
    text.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("{what}: {e}")))
}

fn unsigned<T: TryFrom<i64>>(value: i64, what: &str) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is out of range")))
}

pub(super) fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    let history: String = get(row, 14)?;
    let pin_history = serde_json::from_str(&history)
        .map_err(|e| StoreError::Corrupt(format!("PIN history: {e}")))?;
    let failures: i32 = get(row, 10)?;
    Ok(User {
        id: get(row, 0)?,
        username: get(row, 1)?,
        given_name: get(row, 2)?,
        surname: get(row, 3)?,
        email: get(row, 4)?,
        phone: get(row, 5)?,
        enabled: get(row, 6)?,
        blocked_until: get(row, 7)?,
        block_reason: get(row, 8)?,
        locked_until: get(row, 9)?,
        failures: unsigned(i64::from(failures), "failure count")?,
        pin_mode: parsed(row, 11, "PIN mode")?,
        pin_hash: get(row, 12)?,
        pin_change_required: get(row, 13)?,
        pin_history,
        bypass_until: get(row, 15)?,
        created_at: get(row, 16)?,
        mobile: get(row, 17)?,
        extension: get(row, 18)?,
        language: get(row, 19)?,
        directory_id: get(row, 20)?,
        sync_item: get(row, 21)?,
        method: parsed(row, 22, "method")?,
        backup_phone: get(row, 23)?,
    })
}

/// Reads a token whose columns start at `at`, decrypting its secret.
pub(super) fn token_from_row(row: &PgRow, at: usize, cipher: &Cipher) -> Result<Token, StoreError> {
    let serial: String = get(row, at + 1)?;
    let sealed: String = get(row, at + 7)?;
    let secret = cipher
        .decrypt(&sealed, &token_aad(&serial))
        .map_err(|e| StoreError::Corrupt(format!("secret of token '{serial}': {e}")))?;
    let digits: i32 = get(row, at + 5)?;
    let period: i64 = get(row, at + 6)?;
    let next: i64 = get(row, at + 8)?;
    let resync: Option<i64> = get(row, at + 9)?;
    Ok(Token {
        id: get(row, at)?,
        user_id: get(row, at + 2)?,
        kind: parsed(row, at + 3, "token type")?,
        algorithm: parsed(row, at + 4, "token algorithm")?,
        digits: unsigned(i64::from(digits), "digits")?,
        period: unsigned(period, "period")?,
        secret: Secret(secret),
        next: unsigned(next, "counter")?,
        resync: resync.map(|r| unsigned(r, "resync counter")).transpose()?,
        enabled: get(row, at + 10)?,
        created_at: get(row, at + 11)?,
        serial,
    })
}

pub(super) fn client_from_row(row: &PgRow, cipher: &Cipher) -> Result<Client, StoreError> {
    let name: String = get(row, 1)?;
    let address: String = get(row, 2)?;
    let sealed: String = get(row, 3)?;
    let secret = cipher
        .decrypt(&sealed, &client_aad(&name))
        .map_err(|e| StoreError::Corrupt(format!("secret of client '{name}': {e}")))?;
    let secret = String::from_utf8(secret.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("secret of client '{name}' is not UTF-8")))?;
    Ok(Client {
        id: get(row, 0)?,
        address: address
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("address of client '{name}': {e}")))?,
        secret,
        first_factor: parsed(row, 4, "first factor")?,
        prompt: parsed(row, 5, "prompt mode")?,
        require_message_authenticator: get(row, 6)?,
        require_user_match: get(row, 7)?,
        created_at: get(row, 8)?,
        code_separator: get(row, 9)?,
        targets: {
            // Comma-joined names, as SQLite stores them, so snapshots move unchanged.
            let joined: String = get(row, 10)?;
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
/// Everything but a decoding problem is "unavailable": the database is down, the
/// connection broke, or it refused the statement; the engine answers Reject.
pub(super) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        sqlx::Error::PoolTimedOut => StoreError::Unavailable(
            "no database connection became free in time (the database is down or overloaded)"
                .into(),
        ),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == ErrorKind::UniqueViolation)
}

pub(super) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == ErrorKind::ForeignKeyViolation)
}

/// A `u64` counter as PostgreSQL's signed 64-bit integer.
pub(super) fn counter(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Corrupt(format!(
            "counter {value} is beyond the range the database can hold"
        ))
    })
}
