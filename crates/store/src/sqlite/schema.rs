//! The SQLite schema as an ordered list of migrations, tracked by `PRAGMA user_version`.
//!
//! Append a migration to change the schema; never edit one that has shipped, because
//! databases in the field already ran it.

use mfad_core::store::{StoreError, StoreResult};
use rusqlite::Connection;

/// Migration `i` moves a database from `user_version = i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema. Every column a request looks rows up by has an index, so
    // the cost of an authentication does not grow with the number of users.
    // AUTOINCREMENT: an id is never handed out twice, so nothing keyed by a deleted
    // user's or token's id (a cached success, an in-flight request) can reach a new one.
    r"
    CREATE TABLE users (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        -- Stored lower-case, so UNIQUE makes names unique case-insensitively.
        username            TEXT    NOT NULL UNIQUE,
        given_name          TEXT    NOT NULL DEFAULT '',
        surname             TEXT    NOT NULL DEFAULT '',
        email               TEXT    NOT NULL DEFAULT '',
        phone               TEXT    NOT NULL DEFAULT '',
        enabled             INTEGER NOT NULL DEFAULT 1,
        blocked_until       INTEGER,
        block_reason        TEXT,
        locked_until        INTEGER,
        failures            INTEGER NOT NULL DEFAULT 0,
        pin_mode            TEXT    NOT NULL DEFAULT 'standard',
        pin_hash            TEXT,
        pin_change_required INTEGER NOT NULL DEFAULT 0,
        -- JSON array of argon2 hashes, newest first.
        pin_history         TEXT    NOT NULL DEFAULT '[]',
        bypass_until        INTEGER,
        created_at          INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE tokens (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        serial      TEXT    NOT NULL UNIQUE,
        user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
        kind        TEXT    NOT NULL,
        algorithm   TEXT    NOT NULL,
        digits      INTEGER NOT NULL,
        period      INTEGER NOT NULL,
        -- v1:<key id>:<base64>, sealed with the serial as associated data.
        secret      TEXT    NOT NULL,
        next        INTEGER NOT NULL,
        resync      INTEGER,
        enabled     INTEGER NOT NULL DEFAULT 1,
        created_at  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX tokens_user ON tokens(user_id);

    CREATE TABLE challenges (
        state       BLOB    PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        client      TEXT    NOT NULL,
        -- ChallengeKind as JSON.
        kind        TEXT    NOT NULL,
        expires_at  INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX challenges_user ON challenges(user_id);
    CREATE INDEX challenges_expiry ON challenges(expires_at);

    CREATE TABLE cached_auth (
        key         TEXT    PRIMARY KEY,
        until       INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX cached_auth_expiry ON cached_auth(until);

    CREATE TABLE clients (
        id                            INTEGER PRIMARY KEY AUTOINCREMENT,
        name                          TEXT    NOT NULL UNIQUE,
        address                       TEXT    NOT NULL,
        -- v1:<key id>:<base64>, sealed with the client name as associated data.
        secret                        TEXT    NOT NULL,
        first_factor                  TEXT    NOT NULL,
        prompt                        TEXT    NOT NULL,
        require_message_authenticator INTEGER NOT NULL,
        require_user_match            INTEGER NOT NULL,
        created_at                    INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE audit (
        seq             INTEGER PRIMARY KEY,
        id              TEXT    NOT NULL,
        time_ms         INTEGER NOT NULL,
        username        TEXT    NOT NULL,
        given_name      TEXT    NOT NULL,
        surname         TEXT    NOT NULL,
        email           TEXT    NOT NULL,
        phone           TEXT    NOT NULL,
        device          TEXT    NOT NULL,
        method          TEXT    NOT NULL,
        mode            TEXT    NOT NULL,
        result          TEXT,
        reason          TEXT    NOT NULL,
        server_name     TEXT    NOT NULL,
        server_ip       TEXT    NOT NULL,
        client_name     TEXT    NOT NULL,
        client_ip       TEXT    NOT NULL,
        channel         TEXT    NOT NULL,
        calling_station TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX audit_time ON audit(time_ms);
    CREATE INDEX audit_user_time ON audit(username, time_ms);
    ",
    // 2: directory integration. Users keep the directory's unique ID (NULL for local
    // users; a UNIQUE index allows any number of NULLs) and the sync item they came
    // through; one row holds the sync bookkeeping and the scheduled-sync lock.
    r"
    ALTER TABLE users ADD COLUMN mobile TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN extension TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN directory_id TEXT;
    ALTER TABLE users ADD COLUMN sync_item TEXT;
    CREATE UNIQUE INDEX users_directory_id ON users(directory_id);

    ALTER TABLE clients ADD COLUMN code_separator TEXT NOT NULL DEFAULT '';

    CREATE TABLE directory_sync (
        id             INTEGER PRIMARY KEY CHECK (id = 1),
        last_run       INTEGER,
        last_summary   TEXT    NOT NULL DEFAULT '',
        pending_count  INTEGER NOT NULL DEFAULT 0,
        pending_reason TEXT    NOT NULL DEFAULT '',
        approved_count INTEGER,
        lock_holder    TEXT,
        lock_until     INTEGER
    ) STRICT;
    INSERT INTO directory_sync (id) VALUES (1);
    ",
    // 3: the target servers a `first_factor = radius` client forwards to, as
    // comma-separated target names in order; empty means every configured target.
    r"
    ALTER TABLE clients ADD COLUMN targets TEXT NOT NULL DEFAULT '';
    ",
    // 4: the user's second-factor method and backup phone, and the e-mail outbox.
    r"
    ALTER TABLE users ADD COLUMN method TEXT NOT NULL DEFAULT 'app';
    ALTER TABLE users ADD COLUMN backup_phone TEXT NOT NULL DEFAULT '';

    CREATE TABLE emails (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id         INTEGER REFERENCES users(id) ON DELETE CASCADE,
        recipient       TEXT    NOT NULL,
        kind            TEXT    NOT NULL,
        subject         TEXT    NOT NULL,
        -- v1:<key id>:<base64> sealed with the id as associated data (it may hold an
        -- initial PIN); '' once the mail was sent.
        body            TEXT    NOT NULL,
        -- Set for mails sent once per key (a user's welcome mail).
        once_key        TEXT    UNIQUE,
        status          TEXT    NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        created_at      INTEGER NOT NULL,
        sent_at         INTEGER
    ) STRICT;
    CREATE INDEX emails_due ON emails(status, next_attempt_at);

    -- Abuse limits: uses of a key (SMS or calls per user or gateway) in its window.
    CREATE TABLE rate_limits (
        key          TEXT    PRIMARY KEY,
        window_start INTEGER NOT NULL,
        count        INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX emails_user ON emails(user_id);
    ",
    // 5: stored settings, an overlay on every node's config file, and a version that
    // every write moves on, so nodes notice a change with one cheap read.
    r"
    CREATE TABLE settings (
        key        TEXT    PRIMARY KEY,
        -- TOML text, or for a secret v1:<key id>:<base64> sealed with the key as
        -- associated data.
        value      TEXT    NOT NULL,
        secret     INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE settings_version (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    ) STRICT;
    INSERT INTO settings_version (id, version) VALUES (1, 0);
    ",
    // 6: no per-user audit index. Every authentication inserted into it at a random
    // place (usernames are not in time order), a page written per record; queries by
    // user scan the time index instead.
    r"
    DROP INDEX audit_user_time;
    ",
    // 7: phone changes of SMS and call users that a directory sync holds for approval,
    // as a JSON list.
    r"
    ALTER TABLE directory_sync ADD COLUMN pending_phones TEXT NOT NULL DEFAULT '[]';
    ",
    // 8: pending out-of-band logins (a call, a two-way SMS) with their draft audit
    // record, so that any node can poll one and finish it.
    r"
    CREATE TABLE pending_txns (
        txn         BLOB    PRIMARY KEY,
        -- The draft audit record and the prompt, as JSON.
        body        TEXT    NOT NULL,
        -- The decision as JSON; NULL while undecided.
        decision    TEXT,
        expires_at  INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX pending_txns_expiry ON pending_txns(expires_at);
    ",
];

/// Brings the database to the newest schema. Runs under `BEGIN IMMEDIATE`, so two
/// processes opening a new database at once migrate it once.
pub(super) fn migrate(conn: &mut Connection, path: &str) -> StoreResult<()> {
    let fail = |e: rusqlite::Error| {
        StoreError::Unavailable(format!("cannot migrate the schema of {path}: {e}"))
    };
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(fail)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(fail)?;
    let known = MIGRATIONS.len();
    let current = usize::try_from(version).unwrap_or(usize::MAX);
    if current > known {
        return Err(StoreError::Unavailable(format!(
            "database {path} has schema version {version}, newer than this build of mfad \
             knows ({known}); upgrade mfad"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql).map_err(fail)?;
        tx.pragma_update(None, "user_version", index + 1)
            .map_err(fail)?;
    }
    tx.commit().map_err(fail)
}
