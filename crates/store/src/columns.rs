//! The column lists both backends select, in the order the row readers of
//! [`crate::rows`] expect, so the SQLite and PostgreSQL schemas cannot drift apart in
//! what a record holds.

use std::sync::LazyLock;

const USER_FIELDS: &[&str] = &[
    "id",
    "username",
    "given_name",
    "surname",
    "email",
    "phone",
    "enabled",
    "blocked_until",
    "block_reason",
    "locked_until",
    "failures",
    "pin_mode",
    "pin_hash",
    "pin_change_required",
    "pin_history",
    "bypass_until",
    "created_at",
    "mobile",
    "extension",
    "language",
    "directory_id",
    "sync_item",
    "method",
    "backup_phone",
];

const TOKEN_FIELDS: &[&str] = &[
    "id",
    "serial",
    "user_id",
    "kind",
    "algorithm",
    "digits",
    "period",
    "secret",
    "next",
    "resync",
    "enabled",
    "created_at",
];

const CLIENT_FIELDS: &[&str] = &[
    "id",
    "name",
    "address",
    "secret",
    "first_factor",
    "prompt",
    "require_message_authenticator",
    "require_user_match",
    "created_at",
    "code_separator",
    "targets",
];

fn columns(prefix: &str, fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| format!("{prefix}{f}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `id, username, ...` in the order [`crate::rows::user_from_row`] reads them.
pub(crate) static USER_COLUMNS: LazyLock<String> = LazyLock::new(|| columns("", USER_FIELDS));
/// The same, qualified with the alias `u.` for joins.
pub(crate) static USER_COLUMNS_U: LazyLock<String> = LazyLock::new(|| columns("u.", USER_FIELDS));
pub(crate) static TOKEN_COLUMNS: LazyLock<String> = LazyLock::new(|| columns("", TOKEN_FIELDS));
pub(crate) static TOKEN_COLUMNS_T: LazyLock<String> = LazyLock::new(|| columns("t.", TOKEN_FIELDS));
pub(crate) static CLIENT_COLUMNS: LazyLock<String> = LazyLock::new(|| columns("", CLIENT_FIELDS));
/// Where a joined row's token columns start.
pub(crate) const TOKEN_OFFSET: usize = USER_FIELDS.len();

/// The audit columns, in the order [`crate::rows::audit_from_row`] reads them.
pub(crate) const AUDIT_COLUMNS: &str = "id, time_ms, username, given_name, surname, email, \
    phone, device, method, mode, result, reason, server_name, server_ip, client_name, \
    client_ip, channel, calling_station";

/// The outbox columns, in the order [`crate::rows::email_from_row`] reads them.
pub(crate) const EMAIL_COLUMNS: &str = "id, user_id, recipient, kind, subject, body, status, \
    attempts, next_attempt_at, last_error, created_at, sent_at";
