//! SQLite's rows as [`Row`]s for the shared readers, and SQLite errors as
//! [`StoreError`]s, in one place.

use crate::rows::Row;
use mfad_core::store::{StoreError, StoreResult};
use rusqlite::ffi;

pub(super) use crate::columns::{
    CLIENT_COLUMNS, TOKEN_COLUMNS, TOKEN_COLUMNS_T, TOKEN_OFFSET, USER_COLUMNS, USER_COLUMNS_U,
};

pub(super) use crate::rows::{
    audit_from_row, client_from_row, counter, email_from_row, has_token, token_from_row,
    user_from_row,
};

impl Row for rusqlite::Row<'_> {
    fn text(&self, idx: usize) -> StoreResult<String> {
        self.get(idx).map_err(db_err)
    }

    fn text_opt(&self, idx: usize) -> StoreResult<Option<String>> {
        self.get(idx).map_err(db_err)
    }

    fn int(&self, idx: usize) -> StoreResult<i64> {
        self.get(idx).map_err(db_err)
    }

    fn int_opt(&self, idx: usize) -> StoreResult<Option<i64>> {
        self.get(idx).map_err(db_err)
    }

    fn int32(&self, idx: usize) -> StoreResult<i32> {
        self.get(idx).map_err(db_err)
    }

    fn flag(&self, idx: usize) -> StoreResult<bool> {
        self.get(idx).map_err(db_err)
    }

    fn bytes(&self, idx: usize) -> StoreResult<Vec<u8>> {
        self.get(idx).map_err(db_err)
    }
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
