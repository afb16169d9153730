//! Whole-store export and import for SQLite: every table read in one read transaction,
//! loaded back with the same ids inside the writer's transaction.

use super::audit::insert_audit;
use super::map::audit_from_row;
use super::map::db_err;
use super::SqliteStore;
use crate::columns::AUDIT_COLUMNS;
use crate::pending_phones;
use async_trait::async_trait;
use mfad_core::model::{Method, PinMode};
use mfad_core::snapshot::{
    CachedAuthRow, ChallengeRow, ClientRow, DirectorySyncRow, EmailRow, IdHighWater, RateLimitRow,
    SettingRow, Snapshot, TokenRow, UserRow,
};
use mfad_core::store::AuditStore;
use mfad_core::store::SnapshotStore;
use mfad_core::store::{StoreError, StoreResult};
use rusqlite::{params, Connection, Row};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn rows<T>(
    conn: &Connection,
    sql: &str,
    map: impl Fn(&Row) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare(sql).map_err(db_err)?;
    let mut rows = stmt.query([]).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(map(row)?);
    }
    Ok(out)
}

fn user_row(r: &Row) -> StoreResult<UserRow> {
    let history: String = r.get(14).map_err(db_err)?;
    let mode: String = r.get(11).map_err(db_err)?;
    Ok(UserRow {
        id: r.get(0).map_err(db_err)?,
        username: r.get(1).map_err(db_err)?,
        given_name: r.get(2).map_err(db_err)?,
        surname: r.get(3).map_err(db_err)?,
        email: r.get(4).map_err(db_err)?,
        phone: r.get(5).map_err(db_err)?,
        enabled: r.get(6).map_err(db_err)?,
        blocked_until: r.get(7).map_err(db_err)?,
        block_reason: r.get(8).map_err(db_err)?,
        locked_until: r.get(9).map_err(db_err)?,
        failures: r.get(10).map_err(db_err)?,
        pin_mode: mode
            .parse::<PinMode>()
            .map_err(|e| corrupt("PIN mode", e))?,
        pin_hash: r.get(12).map_err(db_err)?,
        pin_change_required: r.get(13).map_err(db_err)?,
        pin_history: serde_json::from_str(&history).map_err(|e| corrupt("PIN history", e))?,
        bypass_until: r.get(15).map_err(db_err)?,
        created_at: r.get(16).map_err(db_err)?,
        mobile: r.get(17).map_err(db_err)?,
        extension: r.get(18).map_err(db_err)?,
        language: r.get(19).map_err(db_err)?,
        directory_id: r.get(20).map_err(db_err)?,
        sync_item: r.get(21).map_err(db_err)?,
        method: {
            let method: String = r.get(22).map_err(db_err)?;
            method.parse::<Method>().map_err(|e| corrupt("method", e))?
        },
        backup_phone: r.get(23).map_err(db_err)?,
    })
}

fn token_row(r: &Row) -> StoreResult<TokenRow> {
    Ok(TokenRow {
        id: r.get(0).map_err(db_err)?,
        serial: r.get(1).map_err(db_err)?,
        user_id: r.get(2).map_err(db_err)?,
        kind: r.get(3).map_err(db_err)?,
        algorithm: r.get(4).map_err(db_err)?,
        digits: r.get(5).map_err(db_err)?,
        period: r.get(6).map_err(db_err)?,
        secret: r.get(7).map_err(db_err)?,
        next: r.get(8).map_err(db_err)?,
        resync: r.get(9).map_err(db_err)?,
        enabled: r.get(10).map_err(db_err)?,
        created_at: r.get(11).map_err(db_err)?,
    })
}

fn client_row(r: &Row) -> StoreResult<ClientRow> {
    Ok(ClientRow {
        id: r.get(0).map_err(db_err)?,
        name: r.get(1).map_err(db_err)?,
        address: r.get(2).map_err(db_err)?,
        secret: r.get(3).map_err(db_err)?,
        first_factor: r.get(4).map_err(db_err)?,
        prompt: r.get(5).map_err(db_err)?,
        require_message_authenticator: r.get(6).map_err(db_err)?,
        require_user_match: r.get(7).map_err(db_err)?,
        created_at: r.get(8).map_err(db_err)?,
        code_separator: r.get(9).map_err(db_err)?,
        targets: r.get(10).map_err(db_err)?,
    })
}

const EMAIL_COLUMNS: &str = "id, user_id, recipient, kind, subject, body, once_key, status, \
     attempts, next_attempt_at, last_error, created_at, sent_at";
const DIRECTORY_SYNC_COLUMNS: &str = "last_run, last_summary, pending_count, pending_reason, \
     approved_count, lock_holder, lock_until, pending_phones";

fn email_row(r: &Row) -> StoreResult<EmailRow> {
    Ok(EmailRow {
        id: r.get(0).map_err(db_err)?,
        user_id: r.get(1).map_err(db_err)?,
        recipient: r.get(2).map_err(db_err)?,
        kind: r.get(3).map_err(db_err)?,
        subject: r.get(4).map_err(db_err)?,
        body: r.get(5).map_err(db_err)?,
        once_key: r.get(6).map_err(db_err)?,
        status: r.get(7).map_err(db_err)?,
        attempts: r.get(8).map_err(db_err)?,
        next_attempt_at: r.get(9).map_err(db_err)?,
        last_error: r.get(10).map_err(db_err)?,
        created_at: r.get(11).map_err(db_err)?,
        sent_at: r.get(12).map_err(db_err)?,
    })
}

fn directory_sync_row(r: &Row) -> StoreResult<DirectorySyncRow> {
    Ok(DirectorySyncRow {
        last_run: r.get(0).map_err(db_err)?,
        last_summary: r.get(1).map_err(db_err)?,
        pending_count: r.get(2).map_err(db_err)?,
        pending_reason: r.get(3).map_err(db_err)?,
        approved_count: r.get(4).map_err(db_err)?,
        lock_holder: r.get(5).map_err(db_err)?,
        lock_until: r.get(6).map_err(db_err)?,
        pending_phones: pending_phones::decode(&r.get::<_, String>(7).map_err(db_err)?)?,
    })
}

fn challenge_row(r: &Row) -> StoreResult<ChallengeRow> {
    let state: Vec<u8> = r.get(0).map_err(db_err)?;
    let kind: String = r.get(3).map_err(db_err)?;
    Ok(ChallengeRow {
        state: data_encoding::HEXLOWER.encode(&state),
        user_id: r.get(1).map_err(db_err)?,
        client: r.get(2).map_err(db_err)?,
        kind: crate::rules::kind_from_json(&kind)?,
        expires_at: r.get(4).map_err(db_err)?,
    })
}

/// Reads every table inside one read transaction, so the rows agree with each other
/// even while the writer keeps committing.
pub(super) fn export(conn: &Connection) -> StoreResult<Snapshot> {
    conn.execute_batch("BEGIN DEFERRED").map_err(db_err)?;
    let read = export_in_transaction(conn);
    // A read transaction has nothing to keep; ending it releases the WAL snapshot.
    let ended = conn.execute_batch("COMMIT").map_err(db_err);
    let snapshot = read?;
    ended?;
    Ok(snapshot)
}

fn export_in_transaction(conn: &Connection) -> StoreResult<Snapshot> {
    let mut ids = IdHighWater::default();
    for (name, seq) in rows(conn, "SELECT name, seq FROM sqlite_sequence", |r| {
        Ok((
            r.get::<_, String>(0).map_err(db_err)?,
            r.get::<_, i64>(1).map_err(db_err)?,
        ))
    })? {
        match name.as_str() {
            "users" => ids.users = seq,
            "tokens" => ids.tokens = seq,
            "clients" => ids.clients = seq,
            "emails" => ids.emails = seq,
            _ => {}
        }
    }
    Ok(Snapshot {
        ids,
        users: rows(
            conn,
            &format!(
                "SELECT {} FROM users ORDER BY id",
                *super::map::USER_COLUMNS
            ),
            user_row,
        )?,
        tokens: rows(
            conn,
            &format!(
                "SELECT {} FROM tokens ORDER BY id",
                *super::map::TOKEN_COLUMNS
            ),
            token_row,
        )?,
        clients: rows(
            conn,
            &format!(
                "SELECT {} FROM clients ORDER BY id",
                *super::map::CLIENT_COLUMNS
            ),
            client_row,
        )?,
        challenges: rows(
            conn,
            "SELECT state, user_id, client, kind, expires_at FROM challenges ORDER BY state",
            challenge_row,
        )?,
        cached_auth: rows(
            conn,
            "SELECT key, until FROM cached_auth ORDER BY key",
            |r| {
                Ok(CachedAuthRow {
                    key: r.get(0).map_err(db_err)?,
                    until: r.get(1).map_err(db_err)?,
                })
            },
        )?,
        audit: rows(
            conn,
            &format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY time_ms, seq"),
            |r| audit_from_row(r),
        )?,
        emails: rows(
            conn,
            &format!("SELECT {EMAIL_COLUMNS} FROM emails ORDER BY id"),
            email_row,
        )?,
        rate_limits: rows(
            conn,
            "SELECT key, window_start, count FROM rate_limits ORDER BY key",
            |r| {
                Ok(RateLimitRow {
                    key: r.get(0).map_err(db_err)?,
                    window_start: r.get(1).map_err(db_err)?,
                    count: r.get(2).map_err(db_err)?,
                })
            },
        )?,
        directory_sync: rows(
            conn,
            &format!("SELECT {DIRECTORY_SYNC_COLUMNS} FROM directory_sync WHERE id = 1"),
            directory_sync_row,
        )?
        .pop()
        .unwrap_or_default(),
        settings: rows(
            conn,
            "SELECT key, value, secret, updated_at FROM settings ORDER BY key",
            |r| {
                Ok(SettingRow {
                    key: r.get(0).map_err(db_err)?,
                    value: r.get(1).map_err(db_err)?,
                    secret: r.get(2).map_err(db_err)?,
                    updated_at: r.get(3).map_err(db_err)?,
                })
            },
        )?,
    })
}

/// Fails with `Duplicate` when any table holds a row (`directory_sync` always holds
/// its one row, which the import overwrites).
fn ensure_empty(conn: &Connection) -> StoreResult<()> {
    for table in [
        "users",
        "tokens",
        "clients",
        "challenges",
        "cached_auth",
        "audit",
        "emails",
        "rate_limits",
        "settings",
    ] {
        let found = conn
            .prepare(&format!("SELECT 1 FROM {table} LIMIT 1"))
            .and_then(|mut s| s.exists([]))
            .map_err(db_err)?;
        if found {
            return Err(StoreError::Duplicate(format!(
                "data (table {table} is not empty)"
            )));
        }
    }
    Ok(())
}

/// Inserts every row with its id; the writer's savepoint makes it all or nothing.
pub(super) fn import(conn: &Connection, s: &Snapshot) -> StoreResult<()> {
    ensure_empty(conn)?;
    let mut users = conn
        .prepare(
            "INSERT INTO users (id, username, given_name, surname, email, phone, enabled,
                 blocked_until, block_reason, locked_until, failures, pin_mode, pin_hash,
                 pin_change_required, pin_history, bypass_until, created_at, mobile, extension,
                 language, directory_id, sync_item, method, backup_phone)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
        )
        .map_err(db_err)?;
    for u in &s.users {
        let history =
            serde_json::to_string(&u.pin_history).map_err(|e| corrupt("PIN history", e))?;
        users
            .execute(params![
                u.id,
                u.username,
                u.given_name,
                u.surname,
                u.email,
                u.phone,
                u.enabled,
                u.blocked_until,
                u.block_reason,
                u.locked_until,
                u.failures,
                u.pin_mode.to_string(),
                u.pin_hash,
                u.pin_change_required,
                history,
                u.bypass_until,
                u.created_at,
                u.mobile,
                u.extension,
                u.language,
                u.directory_id,
                u.sync_item,
                u.method.as_str(),
                u.backup_phone
            ])
            .map_err(db_err)?;
    }
    let mut tokens = conn
        .prepare(
            "INSERT INTO tokens (id, serial, user_id, kind, algorithm, digits, period, secret,
                 next, resync, enabled, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(db_err)?;
    for t in &s.tokens {
        tokens
            .execute(params![
                t.id,
                t.serial,
                t.user_id,
                t.kind,
                t.algorithm,
                t.digits,
                t.period,
                t.secret,
                t.next,
                t.resync,
                t.enabled,
                t.created_at
            ])
            .map_err(db_err)?;
    }
    let mut clients = conn
        .prepare(
            "INSERT INTO clients (id, name, address, secret, first_factor, prompt,
                 require_message_authenticator, require_user_match, created_at, code_separator,
                 targets)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(db_err)?;
    for c in &s.clients {
        clients
            .execute(params![
                c.id,
                c.name,
                c.address,
                c.secret,
                c.first_factor,
                c.prompt,
                c.require_message_authenticator,
                c.require_user_match,
                c.created_at,
                c.code_separator,
                c.targets
            ])
            .map_err(db_err)?;
    }
    let mut challenges = conn
        .prepare(
            "INSERT INTO challenges (state, user_id, client, kind, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(db_err)?;
    for c in &s.challenges {
        let state = data_encoding::HEXLOWER_PERMISSIVE
            .decode(c.state.as_bytes())
            .map_err(|e| corrupt("challenge state", e))?;
        let kind = crate::rules::kind_to_json(&c.kind)?;
        challenges
            .execute(params![state, c.user_id, c.client, kind, c.expires_at])
            .map_err(db_err)?;
    }
    let mut cached = conn
        .prepare("INSERT INTO cached_auth (key, until) VALUES (?1, ?2)")
        .map_err(db_err)?;
    for c in &s.cached_auth {
        cached.execute(params![c.key, c.until]).map_err(db_err)?;
    }
    for record in &s.audit {
        insert_audit(conn, record)?;
    }
    let mut emails = conn
        .prepare(&format!(
            "INSERT INTO emails ({EMAIL_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ))
        .map_err(db_err)?;
    for e in &s.emails {
        emails
            .execute(params![
                e.id,
                e.user_id,
                e.recipient,
                e.kind,
                e.subject,
                e.body,
                e.once_key,
                e.status,
                e.attempts,
                e.next_attempt_at,
                e.last_error,
                e.created_at,
                e.sent_at
            ])
            .map_err(db_err)?;
    }
    let mut rates = conn
        .prepare("INSERT INTO rate_limits (key, window_start, count) VALUES (?1, ?2, ?3)")
        .map_err(db_err)?;
    for r in &s.rate_limits {
        rates
            .execute(params![r.key, r.window_start, r.count])
            .map_err(db_err)?;
    }
    let d = &s.directory_sync;
    conn.execute(
        "UPDATE directory_sync SET last_run = ?1, last_summary = ?2, pending_count = ?3,
             pending_reason = ?4, approved_count = ?5, lock_holder = ?6, lock_until = ?7,
             pending_phones = ?8
         WHERE id = 1",
        params![
            d.last_run,
            d.last_summary,
            d.pending_count,
            d.pending_reason,
            d.approved_count,
            d.lock_holder,
            d.lock_until,
            pending_phones::encode(&d.pending_phones)?
        ],
    )
    .map_err(db_err)?;
    let mut settings = conn
        .prepare("INSERT INTO settings (key, value, secret, updated_at) VALUES (?1, ?2, ?3, ?4)")
        .map_err(db_err)?;
    for r in &s.settings {
        settings
            .execute(params![r.key, r.value, r.secret, r.updated_at])
            .map_err(db_err)?;
    }
    // Nodes polling the version reread the settings the copy brought.
    conn.execute(
        "UPDATE settings_version SET version = version + 1 WHERE id = 1",
        [],
    )
    .map_err(db_err)?;
    // AUTOINCREMENT hands out max(seq, max(id)) + 1, so raising seq keeps the source's
    // never-reuse promise for ids it had already given to rows since deleted.
    for (table, high) in [
        ("users", s.ids.users),
        ("tokens", s.ids.tokens),
        ("clients", s.ids.clients),
        ("emails", s.ids.emails),
    ] {
        let updated = conn
            .execute(
                "UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1",
                params![table, high],
            )
            .map_err(db_err)?;
        if updated == 0 && high > 0 {
            conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
                params![table, high],
            )
            .map_err(db_err)?;
        }
    }
    Ok(())
}

#[async_trait]
impl SnapshotStore for SqliteStore {
    async fn export_snapshot(&self) -> StoreResult<Snapshot> {
        self.flush().await?;
        self.read(|c, _| export(c)).await
    }

    async fn import_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()> {
        let snapshot = snapshot.clone();
        self.write(move |c| import(c, &snapshot)).await
    }
}
