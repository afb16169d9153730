//! The rows of a whole-store snapshot, read the same way from both backends: values as
//! stored (secrets still sealed), checked once; and the two values an import turns back
//! into their stored form.

use crate::rows::{pin_history, Row};
use mfad_core::model::{Method, PinMode};
use mfad_core::snapshot::{
    CachedAuthRow, ChallengeRow, ClientRow, DirectorySyncRow, EmailRow, RateLimitRow, SettingRow,
    TokenRow, UserRow,
};
use mfad_core::store::{StoreError, StoreResult};

/// Every mail column, the once-key too, in the order [`email_row`] reads them.
pub(crate) const EMAIL_COLUMNS: &str = "id, user_id, recipient, kind, subject, body, \
    once_key, status, attempts, next_attempt_at, last_error, created_at, sent_at";
/// The sync bookkeeping row, in the order [`directory_sync_row`] reads it.
pub(crate) const DIRECTORY_SYNC_COLUMNS: &str = "last_run, last_summary, pending_count, \
    pending_reason, approved_count, lock_holder, lock_until, pending_phones";

/// The tables that must be empty to take a snapshot. `directory_sync` always holds its
/// one row, which the import overwrites.
pub(crate) const DATA_TABLES: [&str; 9] = [
    "users",
    "tokens",
    "clients",
    "challenges",
    "cached_auth",
    "audit",
    "emails",
    "rate_limits",
    "settings",
];

/// Why a snapshot is refused by a store that holds data.
pub(crate) fn not_empty(table: &str) -> StoreError {
    StoreError::Duplicate(format!("data (table {table} is not empty)"))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn count(value: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| corrupt(what, format!("{value} is out of range")))
}

/// A user's PIN history as its column stores it, for a snapshot's import.
pub(crate) fn pin_history_text(history: &[String]) -> StoreResult<String> {
    serde_json::to_string(history).map_err(|e| corrupt("PIN history", e))
}

/// A challenge's state from a snapshot (hex), for its import.
pub(crate) fn challenge_state(hex: &str) -> StoreResult<Vec<u8>> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .map_err(|e| corrupt("challenge state", e))
}

/// [`crate::columns::USER_COLUMNS`].
pub(crate) fn user_row(r: &impl Row) -> StoreResult<UserRow> {
    Ok(UserRow {
        id: r.int(0)?,
        username: r.text(1)?,
        given_name: r.text(2)?,
        surname: r.text(3)?,
        email: r.text(4)?,
        phone: r.text(5)?,
        enabled: r.flag(6)?,
        blocked_until: r.int_opt(7)?,
        block_reason: r.text_opt(8)?,
        locked_until: r.int_opt(9)?,
        failures: count(i64::from(r.int32(10)?), "failure count")?,
        pin_mode: r
            .text(11)?
            .parse::<PinMode>()
            .map_err(|e| corrupt("PIN mode", e))?,
        pin_hash: r.text_opt(12)?,
        pin_change_required: r.flag(13)?,
        pin_history: pin_history(&r.text(14)?)?,
        bypass_until: r.int_opt(15)?,
        created_at: r.int(16)?,
        mobile: r.text(17)?,
        extension: r.text(18)?,
        language: r.text(19)?,
        directory_id: r.text_opt(20)?,
        sync_item: r.text_opt(21)?,
        method: r
            .text(22)?
            .parse::<Method>()
            .map_err(|e| corrupt("method", e))?,
        backup_phone: r.text(23)?,
    })
}

/// [`crate::columns::TOKEN_COLUMNS`].
pub(crate) fn token_row(r: &impl Row) -> StoreResult<TokenRow> {
    Ok(TokenRow {
        id: r.int(0)?,
        serial: r.text(1)?,
        user_id: r.int_opt(2)?,
        kind: r.text(3)?,
        algorithm: r.text(4)?,
        digits: count(i64::from(r.int32(5)?), "digits")?,
        period: r.int(6)?,
        secret: r.text(7)?,
        next: r.int(8)?,
        resync: r.int_opt(9)?,
        enabled: r.flag(10)?,
        created_at: r.int(11)?,
    })
}

/// [`crate::columns::CLIENT_COLUMNS`].
pub(crate) fn client_row(r: &impl Row) -> StoreResult<ClientRow> {
    Ok(ClientRow {
        id: r.int(0)?,
        name: r.text(1)?,
        address: r.text(2)?,
        secret: r.text(3)?,
        first_factor: r.text(4)?,
        prompt: r.text(5)?,
        require_message_authenticator: r.flag(6)?,
        require_user_match: r.flag(7)?,
        created_at: r.int(8)?,
        code_separator: r.text(9)?,
        targets: r.text(10)?,
    })
}

/// [`EMAIL_COLUMNS`].
pub(crate) fn email_row(r: &impl Row) -> StoreResult<EmailRow> {
    Ok(EmailRow {
        id: r.int(0)?,
        user_id: r.int_opt(1)?,
        recipient: r.text(2)?,
        kind: r.text(3)?,
        subject: r.text(4)?,
        body: r.text(5)?,
        once_key: r.text_opt(6)?,
        status: r.text(7)?,
        attempts: count(r.int(8)?, "e-mail attempts")?,
        next_attempt_at: r.int(9)?,
        last_error: r.text_opt(10)?,
        created_at: r.int(11)?,
        sent_at: r.int_opt(12)?,
    })
}

/// [`DIRECTORY_SYNC_COLUMNS`].
pub(crate) fn directory_sync_row(r: &impl Row) -> StoreResult<DirectorySyncRow> {
    Ok(DirectorySyncRow {
        last_run: r.int_opt(0)?,
        last_summary: r.text(1)?,
        pending_count: count(r.int(2)?, "pending count")?,
        pending_reason: r.text(3)?,
        approved_count: r
            .int_opt(4)?
            .map(|a| count(a, "approved count"))
            .transpose()?,
        lock_holder: r.text_opt(5)?,
        lock_until: r.int_opt(6)?,
        pending_phones: crate::pending_phones::decode(&r.text(7)?)?,
    })
}

/// `state, user_id, client, kind, expires_at`.
pub(crate) fn challenge_row(r: &impl Row) -> StoreResult<ChallengeRow> {
    Ok(ChallengeRow {
        state: data_encoding::HEXLOWER.encode(&r.bytes(0)?),
        user_id: r.int(1)?,
        client: r.text(2)?,
        kind: crate::rules::kind_from_json(&r.text(3)?)?,
        expires_at: r.int(4)?,
    })
}

/// `key, until`.
pub(crate) fn cached_auth_row(r: &impl Row) -> StoreResult<CachedAuthRow> {
    Ok(CachedAuthRow {
        key: r.text(0)?,
        until: r.int(1)?,
    })
}

/// `key, window_start, count`.
pub(crate) fn rate_limit_row(r: &impl Row) -> StoreResult<RateLimitRow> {
    Ok(RateLimitRow {
        key: r.text(0)?,
        window_start: r.int(1)?,
        count: r.int(2)?,
    })
}

/// `key, value, secret, updated_at`.
pub(crate) fn setting_row(r: &impl Row) -> StoreResult<SettingRow> {
    Ok(SettingRow {
        key: r.text(0)?,
        value: r.text(1)?,
        secret: r.flag(2)?,
        updated_at: r.int(3)?,
    })
}
