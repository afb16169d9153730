//! Whole-store export and import for PostgreSQL: every table read in one REPEATABLE
//! READ transaction (one consistent view while the nodes keep writing), loaded back
//! with the same ids in one transaction.

use super::audit::insert_batch;
use super::map::audit_from_row;
use super::map::{db_err, get, CLIENT_COLUMNS, TOKEN_COLUMNS, USER_COLUMNS};
use super::PgStore;
use crate::columns::AUDIT_COLUMNS;
use crate::pending_phones;
use crate::rules::kind_to_json;
use crate::snapshot_rows::{
    cached_auth_row, challenge_row, challenge_state, client_row, directory_sync_row, email_row,
    not_empty, pin_history_text, rate_limit_row, setting_row, token_row, user_row, DATA_TABLES,
    DIRECTORY_SYNC_COLUMNS, EMAIL_COLUMNS,
};
use async_trait::async_trait;
use mfad_core::snapshot::{IdHighWater, Snapshot};
use mfad_core::store::StoreResult;
use mfad_core::store::{AuditStore, SnapshotStore};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection};

/// The tables whose ids come from an identity sequence.
const SEQUENCED: [&str; 4] = ["users", "tokens", "clients", "emails"];

async fn rows<T>(
    conn: &mut PgConnection,
    sql: &str,
    map: impl Fn(&PgRow) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let rows = sqlx::query(sql).fetch_all(conn).await.map_err(db_err)?;
    rows.iter().map(map).collect()
}

pub(super) async fn export(conn: &mut PgConnection) -> StoreResult<Snapshot> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    let mut high = [0i64; 4];
    for (slot, table) in high.iter_mut().zip(SEQUENCED) {
        let row = sqlx::query(
            "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence($1, 'id')::regclass), 0)",
        )
        .bind(table)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        *slot = get(&row, 0)?;
    }
    let [users, tokens, clients, emails] = high;
    let snapshot = Snapshot {
        ids: IdHighWater {
            users,
            tokens,
            clients,
            emails,
        },
        users: rows(
            &mut tx,
            &format!("SELECT {} FROM users ORDER BY id", *USER_COLUMNS),
            user_row,
        )
        .await?,
        tokens: rows(
            &mut tx,
            &format!("SELECT {} FROM tokens ORDER BY id", *TOKEN_COLUMNS),
            token_row,
        )
        .await?,
        clients: rows(
            &mut tx,
            &format!("SELECT {} FROM clients ORDER BY id", *CLIENT_COLUMNS),
            client_row,
        )
        .await?,
        challenges: rows(
            &mut tx,
            "SELECT state, user_id, client, kind, expires_at FROM challenges ORDER BY state",
            challenge_row,
        )
        .await?,
        cached_auth: rows(
            &mut tx,
            "SELECT key, until FROM cached_auth ORDER BY key COLLATE \"C\"",
            cached_auth_row,
        )
        .await?,
        audit: rows(
            &mut tx,
            &format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY time_ms, seq"),
            audit_from_row,
        )
        .await?,
        emails: rows(
            &mut tx,
            &format!("SELECT {EMAIL_COLUMNS} FROM emails ORDER BY id"),
            email_row,
        )
        .await?,
        rate_limits: rows(
            &mut tx,
            "SELECT key, window_start, count FROM rate_limits ORDER BY key COLLATE \"C\"",
            rate_limit_row,
        )
        .await?,
        directory_sync: rows(
            &mut tx,
            &format!("SELECT {DIRECTORY_SYNC_COLUMNS} FROM directory_sync WHERE id = 1"),
            directory_sync_row,
        )
        .await?
        .pop()
        .unwrap_or_default(),
        settings: rows(
            &mut tx,
            "SELECT key, value, secret, updated_at FROM settings ORDER BY key COLLATE \"C\"",
            setting_row,
        )
        .await?,
    };
    tx.commit().await.map_err(db_err)?;
    Ok(snapshot)
}

/// Loads every row with its id in one transaction; the identity sequences move past the
/// highest id the source ever handed out.
pub(super) async fn import(conn: &mut PgConnection, s: &Snapshot) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    // Nodes may be running: lock the tables so none writes between the emptiness check
    // and the load.
    sqlx::query(
        "LOCK TABLE users, tokens, clients, challenges, cached_auth, audit, emails, rate_limits,
             directory_sync, settings, settings_version IN EXCLUSIVE MODE",
    )
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    for table in DATA_TABLES {
        let sql = format!("SELECT 1 FROM {table} LIMIT 1");
        let found = sqlx::query(&sql)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if found.is_some() {
            return Err(not_empty(table));
        }
    }
    for u in &s.users {
        let history = pin_history_text(&u.pin_history)?;
        sqlx::query(
            "INSERT INTO users (id, username, given_name, surname, email, phone, enabled,
                 blocked_until, block_reason, locked_until, failures, pin_mode, pin_hash,
                 pin_change_required, pin_history, bypass_until, created_at, mobile, extension,
                 language, directory_id, sync_item, method, backup_phone)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19, $20, $21, $22, $23, $24)",
        )
        .bind(u.id)
        .bind(u.username.clone())
        .bind(u.given_name.clone())
        .bind(u.surname.clone())
        .bind(u.email.clone())
        .bind(u.phone.clone())
        .bind(u.enabled)
        .bind(u.blocked_until)
        .bind(u.block_reason.clone())
        .bind(u.locked_until)
        .bind(i32::try_from(u.failures).unwrap_or(i32::MAX))
        .bind(u.pin_mode.to_string())
        .bind(u.pin_hash.clone())
        .bind(u.pin_change_required)
        .bind(history)
        .bind(u.bypass_until)
        .bind(u.created_at)
        .bind(u.mobile.clone())
        .bind(u.extension.clone())
        .bind(u.language.clone())
        .bind(u.directory_id.clone())
        .bind(u.sync_item.clone())
        .bind(u.method.as_str())
        .bind(u.backup_phone.clone())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    for t in &s.tokens {
        sqlx::query(
            "INSERT INTO tokens (id, serial, user_id, kind, algorithm, digits, period, secret,
                 next, resync, enabled, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(t.id)
        .bind(t.serial.clone())
        .bind(t.user_id)
        .bind(t.kind.clone())
        .bind(t.algorithm.clone())
        .bind(i32::try_from(t.digits).unwrap_or(i32::MAX))
        .bind(t.period)
        .bind(t.secret.clone())
        .bind(t.next)
        .bind(t.resync)
        .bind(t.enabled)
        .bind(t.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    for c in &s.clients {
        sqlx::query(
            "INSERT INTO clients (id, name, address, secret, first_factor, prompt,
                 require_message_authenticator, require_user_match, created_at, code_separator,
                 targets)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(c.id)
        .bind(c.name.clone())
        .bind(c.address.clone())
        .bind(c.secret.clone())
        .bind(c.first_factor.clone())
        .bind(c.prompt.clone())
        .bind(c.require_message_authenticator)
        .bind(c.require_user_match)
        .bind(c.created_at)
        .bind(c.code_separator.clone())
        .bind(c.targets.clone())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    for c in &s.challenges {
        let state = challenge_state(&c.state)?;
        sqlx::query(
            "INSERT INTO challenges (state, user_id, client, kind, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(state)
        .bind(c.user_id)
        .bind(c.client.clone())
        .bind(kind_to_json(&c.kind)?)
        .bind(c.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    for c in &s.cached_auth {
        sqlx::query("INSERT INTO cached_auth (key, until) VALUES ($1, $2)")
            .bind(c.key.clone())
            .bind(c.until)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    for chunk in s.audit.chunks(2_000) {
        insert_batch(&mut tx, chunk).await?;
    }
    for e in &s.emails {
        sqlx::query(&format!(
            "INSERT INTO emails ({EMAIL_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(e.id)
        .bind(e.user_id)
        .bind(e.recipient.clone())
        .bind(e.kind.clone())
        .bind(e.subject.clone())
        .bind(e.body.clone())
        .bind(e.once_key.clone())
        .bind(e.status.clone())
        .bind(i64::from(e.attempts))
        .bind(e.next_attempt_at)
        .bind(e.last_error.clone())
        .bind(e.created_at)
        .bind(e.sent_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    for r in &s.rate_limits {
        sqlx::query("INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, $3)")
            .bind(r.key.clone())
            .bind(r.window_start)
            .bind(r.count)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    for r in &s.settings {
        sqlx::query(
            "INSERT INTO settings (key, value, secret, updated_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(r.key.clone())
        .bind(r.value.clone())
        .bind(r.secret)
        .bind(r.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    // Nodes polling the version reread the settings the copy brought.
    super::settings::bump(&mut tx).await?;
    let d = &s.directory_sync;
    sqlx::query(
        "UPDATE directory_sync SET last_run = $1, last_summary = $2, pending_count = $3,
             pending_reason = $4, approved_count = $5, lock_holder = $6, lock_until = $7,
             pending_phones = $8
         WHERE id = 1",
    )
    .bind(d.last_run)
    .bind(d.last_summary.clone())
    .bind(i64::from(d.pending_count))
    .bind(d.pending_reason.clone())
    .bind(d.approved_count.map(i64::from))
    .bind(d.lock_holder.clone())
    .bind(d.lock_until)
    .bind(pending_phones::encode(&d.pending_phones)?)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    for (table, high) in
        SEQUENCED
            .into_iter()
            .zip([s.ids.users, s.ids.tokens, s.ids.clients, s.ids.emails])
    {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), greatest($1, max(id)))
             FROM {table} HAVING greatest($1, max(id)) > 0"
        );
        sqlx::query(&sql)
            .bind(high)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}

#[async_trait]
impl SnapshotStore for PgStore {
    async fn export_snapshot(&self) -> StoreResult<Snapshot> {
        self.flush().await?;
        // A snapshot takes as long as the data needs; no request deadline.
        let mut conn = self.conn().await?;
        let result = export(&mut conn.0).await;
        conn.done(result)
    }

    async fn import_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let result = import(&mut conn.0, snapshot).await;
        conn.done(result)
    }
}
