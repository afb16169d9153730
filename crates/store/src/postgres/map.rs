//! PostgreSQL's rows as [`Row`]s for the shared readers, and PostgreSQL errors as
//! [`StoreError`]s, in one place.

use crate::rows::Row;
use mfad_core::store::{StoreError, StoreResult};
use sqlx::error::ErrorKind;
use sqlx::postgres::PgRow;

pub(super) use crate::rows::{
    audit_from_row, client_from_row, counter, email_from_row, has_token, token_from_row,
    user_from_row,
};

pub(super) use crate::columns::{
    CLIENT_COLUMNS, TOKEN_COLUMNS, TOKEN_COLUMNS_T, TOKEN_OFFSET, USER_COLUMNS, USER_COLUMNS_U,
};

/// Reads column `idx`, turning a type mismatch into `Corrupt`.
pub(super) fn get<'r, T>(row: &'r PgRow, idx: usize) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    sqlx::Row::try_get(row, idx).map_err(db_err)
}

impl Row for PgRow {
    fn text(&self, idx: usize) -> StoreResult<String> {
        get(self, idx)
    }

    fn text_opt(&self, idx: usize) -> StoreResult<Option<String>> {
        get(self, idx)
    }

    fn int(&self, idx: usize) -> StoreResult<i64> {
        get(self, idx)
    }

    fn int_opt(&self, idx: usize) -> StoreResult<Option<i64>> {
        get(self, idx)
    }

    fn int32(&self, idx: usize) -> StoreResult<i32> {
        get(self, idx)
    }

    fn flag(&self, idx: usize) -> StoreResult<bool> {
        get(self, idx)
    }

    fn bytes(&self, idx: usize) -> StoreResult<Vec<u8>> {
        get(self, idx)
    }
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
