//! Every row of a store as plain records, for `mfad store copy`, `backup` and `restore`.
//!
//! Secrets stay sealed (`v1:<key id>:<data>`, bound to their serial or client name), so
//! a snapshot moves between backends without the key ever opening them, and a backup
//! file is no more sensitive than the database it came from.

use crate::audit::AuditRecord;
use crate::model::{ChallengeKind, Method, PinMode, User};
use serde::{Deserialize, Serialize};

/// A user row with every column, the PIN hash and history included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub given_name: String,
    pub surname: String,
    pub email: String,
    pub phone: String,
    pub enabled: bool,
    pub blocked_until: Option<i64>,
    pub block_reason: Option<String>,
    pub locked_until: Option<i64>,
    pub failures: u32,
    pub pin_mode: PinMode,
    pub pin_hash: Option<String>,
    pub pin_change_required: bool,
    pub pin_history: Vec<String>,
    pub bypass_until: Option<i64>,
    pub created_at: i64,
    // Columns added after the first snapshot format: a backup written before them reads
    // with the defaults the schema migration gave existing rows.
    #[serde(default)]
    pub mobile: String,
    #[serde(default)]
    pub extension: String,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub directory_id: Option<String>,
    #[serde(default)]
    pub sync_item: Option<String>,
    #[serde(default)]
    pub method: Method,
    #[serde(default)]
    pub backup_phone: String,
}

impl From<User> for UserRow {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            given_name: u.given_name,
            surname: u.surname,
            email: u.email,
            phone: u.phone,
            enabled: u.enabled,
            blocked_until: u.blocked_until,
            block_reason: u.block_reason,
            locked_until: u.locked_until,
            failures: u.failures,
            pin_mode: u.pin_mode,
            pin_hash: u.pin_hash,
            pin_change_required: u.pin_change_required,
            pin_history: u.pin_history,
            bypass_until: u.bypass_until,
            created_at: u.created_at,
            mobile: u.mobile,
            extension: u.extension,
            language: u.language,
            directory_id: u.directory_id,
            sync_item: u.sync_item,
            method: u.method,
            backup_phone: u.backup_phone,
        }
    }
}

/// A token row; `secret` is the sealed value exactly as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: i64,
    pub serial: String,
    pub user_id: Option<i64>,
    pub kind: String,
    pub algorithm: String,
    pub digits: u32,
    pub period: i64,
    pub secret: String,
    pub next: i64,
    pub resync: Option<i64>,
    pub enabled: bool,
    pub created_at: i64,
}

/// A RADIUS client row; `secret` is the sealed shared secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRow {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub secret: String,
    pub first_factor: String,
    pub prompt: String,
    pub require_message_authenticator: bool,
    pub require_user_match: bool,
    pub created_at: i64,
    #[serde(default)]
    pub code_separator: String,
    /// Target names comma-joined, exactly as stored.
    #[serde(default)]
    pub targets: String,
}

/// An outbox row; `body` is the sealed value exactly as stored (bound to the id), or
/// empty once sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailRow {
    pub id: i64,
    pub user_id: Option<i64>,
    pub recipient: String,
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub once_key: Option<String>,
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// Uses of an abuse-limit key in its current window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitRow {
    pub key: String,
    pub window_start: i64,
    pub count: i64,
}

/// A stored setting; `value` is sealed (bound to the key) when `secret`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingRow {
    pub key: String,
    pub value: String,
    pub secret: bool,
    pub updated_at: i64,
}

/// The directory sync bookkeeping and the scheduled-sync lock (one row per store).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySyncRow {
    pub last_run: Option<i64>,
    pub last_summary: String,
    pub pending_count: u32,
    pub pending_reason: String,
    pub approved_count: Option<u32>,
    pub lock_holder: Option<String>,
    pub lock_until: Option<i64>,
    /// Absent from snapshots written before phone changes were held.
    #[serde(default)]
    pub pending_phones: Vec<crate::store::PendingPhone>,
}

/// A pending challenge; `state` in lower-case hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRow {
    pub state: String,
    pub user_id: i64,
    pub client: String,
    pub kind: ChallengeKind,
    pub expires_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedAuthRow {
    pub key: String,
    pub until: i64,
}

/// The highest id each table has ever handed out, so a restored store never hands one
/// out again (ids of deleted users may still be named by cache keys or logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdHighWater {
    pub users: i64,
    pub tokens: i64,
    pub clients: i64,
    #[serde(default)]
    pub emails: i64,
}

/// Everything a store holds, read in one consistent view. Rows are in id (audit: time)
/// order so two snapshots of the same data compare equal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub ids: IdHighWater,
    pub users: Vec<UserRow>,
    pub tokens: Vec<TokenRow>,
    pub clients: Vec<ClientRow>,
    pub challenges: Vec<ChallengeRow>,
    pub cached_auth: Vec<CachedAuthRow>,
    pub audit: Vec<AuditRecord>,
    pub emails: Vec<EmailRow>,
    pub rate_limits: Vec<RateLimitRow>,
    pub directory_sync: DirectorySyncRow,
    /// Ordered by key.
    pub settings: Vec<SettingRow>,
}

/// How many rows of each kind a snapshot or a store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    pub users: u64,
    pub tokens: u64,
    pub clients: u64,
    pub challenges: u64,
    pub cached_auth: u64,
    pub audit: u64,
    #[serde(default)]
    pub emails: u64,
    #[serde(default)]
    pub rate_limits: u64,
    #[serde(default)]
    pub settings: u64,
}

impl Snapshot {
    pub fn counts(&self) -> RowCounts {
        let n = |len: usize| u64::try_from(len).unwrap_or(u64::MAX);
        RowCounts {
            users: n(self.users.len()),
            tokens: n(self.tokens.len()),
            clients: n(self.clients.len()),
            challenges: n(self.challenges.len()),
            cached_auth: n(self.cached_auth.len()),
            audit: n(self.audit.len()),
            emails: n(self.emails.len()),
            rate_limits: n(self.rate_limits.len()),
            settings: n(self.settings.len()),
        }
    }
}
