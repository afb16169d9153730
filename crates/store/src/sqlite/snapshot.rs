//! Whole-store export and import for SQLite: every table read in one read transaction,
//! loaded back with the same ids inside the writer's transaction.

use super::audit::insert_audit;
use super::map::audit_from_row;
use super::map::db_err;
use super::SqliteStore;
use crate::columns::AUDIT_COLUMNS;
use crate::pending_phones;
use crate::snapshot_rows::{
    cached_auth_row, challenge_row, challenge_state, client_row, directory_sync_row, email_row,
    not_empty, pin_history_text, rate_limit_row, setting_row, token_row, user_row, DATA_TABLES,
    DIRECTORY_SYNC_COLUMNS, EMAIL_COLUMNS,
};
use async_trait::async_trait;
use mfad_core::snapshot::{IdHighWater, Snapshot};
use mfad_core::store::AuditStore;
use mfad_core::store::SnapshotStore;
use mfad_core::store::StoreResult;
use rusqlite::{params, Connection, Row};

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
            |r| user_row(r),
        )?,
        tokens: rows(
            conn,
            &format!(
                "SELECT {} FROM tokens ORDER BY id",
                *super::map::TOKEN_COLUMNS
            ),
            |r| token_row(r),
        )?,
        clients: rows(
            conn,
            &format!(
                "SELECT {} FROM clients ORDER BY id",
                *super::map::CLIENT_COLUMNS
            ),
            |r| client_row(r),
        )?,
        challenges: rows(
            conn,
            "SELECT state, user_id, client, kind, expires_at FROM challenges ORDER BY state",
            |r| challenge_row(r),
        )?,
        cached_auth: rows(
            conn,
            "SELECT key, until FROM cached_auth ORDER BY key",
            |r| cached_auth_row(r),
        )?,
        audit: rows(
            conn,
            &format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY time_ms, seq"),
            |r| audit_from_row(r),
        )?,
        emails: rows(
            conn,
            &format!("SELECT {EMAIL_COLUMNS} FROM emails ORDER BY id"),
            |r| email_row(r),
        )?,
        rate_limits: rows(
            conn,
            "SELECT key, window_start, count FROM rate_limits ORDER BY key",
            |r| rate_limit_row(r),
        )?,
        directory_sync: rows(
            conn,
            &format!("SELECT {DIRECTORY_SYNC_COLUMNS} FROM directory_sync WHERE id = 1"),
            |r| directory_sync_row(r),
        )?
        .pop()
        .unwrap_or_default(),
        settings: rows(
            conn,
            "SELECT key, value, secret, updated_at FROM settings ORDER BY key",
            |r| setting_row(r),
        )?,
    })
}

/// Fails with `Duplicate` when any table holds a row (`directory_sync` always holds
/// its one row, which the import overwrites).
fn ensure_empty(conn: &Connection) -> StoreResult<()> {
    for table in DATA_TABLES {
        let found = conn
            .prepare(&format!("SELECT 1 FROM {table} LIMIT 1"))
            .and_then(|mut s| s.exists([]))
            .map_err(db_err)?;
        if found {
            return Err(not_empty(table));
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
        let history = pin_history_text(&u.pin_history)?;
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
        let state = challenge_state(&c.state)?;
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
