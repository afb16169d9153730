//! One reader of each row kind for both backends: a backend gives typed access to a
//! row's columns ([`Row`]), and the records are built here, in the column order of
//! [`crate::columns`], with one set of checks and one set of messages.

use crate::crypto::{client_aad, email_aad, token_aad, Cipher};
use mfad_core::audit::{AuditRecord, AuditResult};
use mfad_core::model::{Client, Secret, Token, User};
use mfad_core::outbox::{Email, EmailStatus, NewEmail};
use mfad_core::store::{StoreError, StoreResult};
use std::str::FromStr;
use zeroize::Zeroizing;

/// A result row of either backend, read by column index. A value the column type does
/// not hold is `Corrupt`, a failing connection `Unavailable`, as each backend maps them.
pub(crate) trait Row {
    fn text(&self, idx: usize) -> StoreResult<String>;
    fn text_opt(&self, idx: usize) -> StoreResult<Option<String>>;
    /// A 64-bit integer column (SQLite INTEGER, PostgreSQL BIGINT).
    fn int(&self, idx: usize) -> StoreResult<i64>;
    fn int_opt(&self, idx: usize) -> StoreResult<Option<i64>>;
    /// A 32-bit integer column (PostgreSQL INTEGER; SQLite has one integer type).
    fn int32(&self, idx: usize) -> StoreResult<i32>;
    fn flag(&self, idx: usize) -> StoreResult<bool>;
    fn bytes(&self, idx: usize) -> StoreResult<Vec<u8>>;
}

fn parsed<T: FromStr<Err = String>>(row: &impl Row, idx: usize, what: &str) -> StoreResult<T> {
    row.text(idx)?
        .parse()
        .map_err(|e: String| StoreError::Corrupt(format!("{what}: {e}")))
}

fn unsigned<T: TryFrom<i64>>(value: i64, what: &str) -> StoreResult<T> {
    T::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is out of range")))
}

/// The list a PIN history column holds (JSON, newest first).
pub(crate) fn pin_history(text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("PIN history: {e}")))
}

/// A user, from the columns of [`crate::columns::USER_COLUMNS`].
pub(crate) fn user_from_row(row: &impl Row) -> StoreResult<User> {
    Ok(User {
        id: row.int(0)?,
        username: row.text(1)?,
        given_name: row.text(2)?,
        surname: row.text(3)?,
        email: row.text(4)?,
        phone: row.text(5)?,
        enabled: row.flag(6)?,
        blocked_until: row.int_opt(7)?,
        block_reason: row.text_opt(8)?,
        locked_until: row.int_opt(9)?,
        failures: unsigned(i64::from(row.int32(10)?), "failure count")?,
        pin_mode: parsed(row, 11, "PIN mode")?,
        pin_hash: row.text_opt(12)?,
        pin_change_required: row.flag(13)?,
        pin_history: pin_history(&row.text(14)?)?,
        bypass_until: row.int_opt(15)?,
        created_at: row.int(16)?,
        mobile: row.text(17)?,
        extension: row.text(18)?,
        language: row.text(19)?,
        directory_id: row.text_opt(20)?,
        sync_item: row.text_opt(21)?,
        method: parsed(row, 22, "method")?,
        backup_phone: row.text(23)?,
    })
}

/// Whether the token columns starting at `at` hold a token (a user joined with no
/// enabled token has them all NULL).
pub(crate) fn has_token(row: &impl Row, at: usize) -> StoreResult<bool> {
    Ok(row.int_opt(at)?.is_some())
}

/// A token whose columns ([`crate::columns::TOKEN_COLUMNS`]) start at `at`, its secret
/// opened.
pub(crate) fn token_from_row(row: &impl Row, at: usize, cipher: &Cipher) -> StoreResult<Token> {
    let serial = row.text(at + 1)?;
    let sealed = row.text(at + 7)?;
    let secret = cipher
        .decrypt(&sealed, &token_aad(&serial))
        .map_err(|e| StoreError::Corrupt(format!("secret of token '{serial}': {e}")))?;
    Ok(Token {
        id: row.int(at)?,
        user_id: row.int_opt(at + 2)?,
        kind: parsed(row, at + 3, "token type")?,
        algorithm: parsed(row, at + 4, "token algorithm")?,
        digits: unsigned(i64::from(row.int32(at + 5)?), "digits")?,
        period: unsigned(row.int(at + 6)?, "period")?,
        secret: Secret(secret),
        next: unsigned(row.int(at + 8)?, "counter")?,
        resync: row
            .int_opt(at + 9)?
            .map(|r| unsigned(r, "resync counter"))
            .transpose()?,
        enabled: row.flag(at + 10)?,
        created_at: row.int(at + 11)?,
        serial,
    })
}

/// A RADIUS client ([`crate::columns::CLIENT_COLUMNS`]), its shared secret opened.
pub(crate) fn client_from_row(row: &impl Row, cipher: &Cipher) -> StoreResult<Client> {
    let name = row.text(1)?;
    let address = row.text(2)?;
    let sealed = row.text(3)?;
    let secret = cipher
        .decrypt(&sealed, &client_aad(&name))
        .map_err(|e| StoreError::Corrupt(format!("secret of client '{name}': {e}")))?;
    let secret = String::from_utf8(secret.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("secret of client '{name}' is not UTF-8")))?;
    Ok(Client {
        id: row.int(0)?,
        address: address
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("address of client '{name}': {e}")))?,
        secret,
        first_factor: parsed(row, 4, "first factor")?,
        prompt: parsed(row, 5, "prompt mode")?,
        require_message_authenticator: row.flag(6)?,
        require_user_match: row.flag(7)?,
        created_at: row.int(8)?,
        code_separator: row.text(9)?,
        // Comma-joined names in order, in both backends, so snapshots move unchanged.
        targets: row
            .text(10)?
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        name,
    })
}

/// An audit record ([`crate::columns::AUDIT_COLUMNS`]).
pub(crate) fn audit_from_row(row: &impl Row) -> StoreResult<AuditRecord> {
    let result = match row.text_opt(10)? {
        None => None,
        Some(text) => Some(AuditResult::parse(&text).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "audit result '{text}' is not accept, reject or challenge"
            ))
        })?),
    };
    Ok(AuditRecord {
        id: row.text(0)?,
        time_ms: row.int(1)?,
        username: row.text(2)?,
        given_name: row.text(3)?,
        surname: row.text(4)?,
        email: row.text(5)?,
        phone: row.text(6)?,
        device: row.text(7)?,
        method: row.text(8)?,
        mode: row.text(9)?,
        result,
        reason: row.text(11)?,
        server_name: row.text(12)?,
        server_ip: row.text(13)?,
        client_name: row.text(14)?,
        client_ip: row.text(15)?,
        channel: row.text(16)?,
        calling_station: row.text(17)?,
    })
}

/// A queued mail ([`crate::columns::EMAIL_COLUMNS`]); the body is opened only when
/// `cipher` is given.
pub(crate) fn email_from_row(row: &impl Row, cipher: Option<&Cipher>) -> StoreResult<Email> {
    let id = row.int(0)?;
    let sealed = row.text(5)?;
    let body =
        match cipher {
            Some(cipher) if !sealed.is_empty() => {
                let plain = cipher
                    .decrypt(&sealed, &email_aad(id))
                    .map_err(|e| StoreError::Corrupt(format!("body of e-mail {id}: {e}")))?;
                Zeroizing::new(String::from_utf8(plain.to_vec()).map_err(|_| {
                    StoreError::Corrupt(format!("body of e-mail {id} is not UTF-8"))
                })?)
            }
            _ => Zeroizing::new(String::new()),
        };
    let attempts = row.int(7)?;
    Ok(Email {
        id,
        user_id: row.int_opt(1)?,
        recipient: row.text(2)?,
        kind: parsed(row, 3, "e-mail")?,
        subject: row.text(4)?,
        body,
        status: parsed(row, 6, "e-mail")?,
        attempts: u32::try_from(attempts).map_err(|_| {
            StoreError::Corrupt(format!(
                "attempts {attempts} of e-mail {id} is out of range"
            ))
        })?,
        next_attempt_at: row.int(8)?,
        last_error: row.text_opt(9)?,
        created_at: row.int(10)?,
        sent_at: row.int_opt(11)?,
    })
}

/// The record of a mail just queued with `id` at `now`, as a read would return it.
pub(crate) fn queued_email(id: i64, email: &NewEmail, now: i64) -> Email {
    Email {
        id,
        user_id: email.user_id,
        recipient: email.recipient.clone(),
        kind: email.kind,
        subject: email.subject.clone(),
        body: email.body.clone(),
        status: EmailStatus::Queued,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        created_at: now,
        sent_at: None,
    }
}

/// A `u64` counter as the databases' signed 64-bit integer.
pub(crate) fn counter(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| {
        StoreError::Corrupt(format!(
            "counter {value} is beyond the range the database can hold"
        ))
    })
}
