//! Stored settings, secret values sealed at rest, and the version nodes poll.

use super::map::db_err;
use super::SqliteStore;
use crate::crypto::Cipher;
use async_trait::async_trait;
use mfad_core::settings::Setting;
use mfad_core::store::SettingsStore;
use mfad_core::store::{StoreError, StoreResult};
use rusqlite::{params, Connection};

pub(super) fn list(conn: &Connection, cipher: &Cipher) -> StoreResult<Vec<Setting>> {
    let mut stmt = conn
        .prepare_cached("SELECT key, value, secret, updated_at FROM settings ORDER BY key")
        .map_err(db_err)?;
    let mut rows = stmt.query([]).map_err(db_err)?;
    let mut settings = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        let key: String = row.get(0).map_err(db_err)?;
        let stored: String = row.get(1).map_err(db_err)?;
        let secret: bool = row.get(2).map_err(db_err)?;
        let value = if secret {
            crate::sealed::open_setting(cipher, &key, &stored)?
        } else {
            stored
        };
        settings.push(Setting {
            key,
            value,
            secret,
            updated_at: row.get(3).map_err(db_err)?,
        });
    }
    Ok(settings)
}

/// `stored` is the value as it goes into the table (sealed already when `secret`).
pub(super) fn put(
    conn: &Connection,
    key: &str,
    stored: &str,
    secret: bool,
    now: i64,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO settings (key, value, secret, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, secret = excluded.secret,
             updated_at = excluded.updated_at",
    )
    .and_then(|mut s| s.execute(params![key, stored, secret, now]))
    .map_err(db_err)?;
    bump(conn)
}

pub(super) fn delete(conn: &Connection, key: &str) -> StoreResult<()> {
    let changed = conn
        .prepare_cached("DELETE FROM settings WHERE key = ?1")
        .and_then(|mut s| s.execute([key]))
        .map_err(db_err)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("setting '{key}'")));
    }
    bump(conn)
}

pub(super) fn version(conn: &Connection) -> StoreResult<i64> {
    conn.prepare_cached("SELECT version FROM settings_version WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db_err)
}

fn bump(conn: &Connection) -> StoreResult<()> {
    conn.prepare_cached("UPDATE settings_version SET version = version + 1 WHERE id = 1")
        .and_then(|mut s| s.execute([]))
        .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn list_settings(&self) -> StoreResult<Vec<Setting>> {
        self.read(list).await
    }

    async fn put_setting(&self, key: &str, value: &str, secret: bool, now: i64) -> StoreResult<()> {
        let stored = crate::sealed::setting(&self.cipher, key, value, secret)?;
        let key = key.to_owned();
        self.write(move |c| put(c, &key, &stored, secret, now))
            .await
    }

    async fn delete_setting(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.write(move |c| delete(c, &key)).await
    }

    async fn settings_version(&self) -> StoreResult<i64> {
        self.read(|c, _| version(c)).await
    }
}
