//! Stored settings, secret values sealed at rest, and the version every node polls.
//! A write and its version bump commit together, so a node that sees the new version
//! reads the new value.

use super::map::{db_err, get};
use super::PgStore;
use crate::crypto::Cipher;
use async_trait::async_trait;
use mfad_core::settings::Setting;
use mfad_core::store::SettingsStore;
use mfad_core::store::{StoreError, StoreResult};
use sqlx::{Connection, PgConnection};

pub(super) async fn list(conn: &mut PgConnection, cipher: &Cipher) -> StoreResult<Vec<Setting>> {
    let rows = sqlx::query(
        "SELECT key, value, secret, updated_at FROM settings ORDER BY key COLLATE \"C\"",
    )
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|row| {
            let key: String = get(row, 0)?;
            let stored: String = get(row, 1)?;
            let secret: bool = get(row, 2)?;
            let value = if secret {
                crate::sealed::open_setting(cipher, &key, &stored)?
            } else {
                stored
            };
            Ok(Setting {
                key,
                value,
                secret,
                updated_at: get(row, 3)?,
            })
        })
        .collect()
}

/// `stored` is the value as it goes into the table (sealed already when `secret`).
pub(super) async fn put(
    conn: &mut PgConnection,
    key: &str,
    stored: &str,
    secret: bool,
    now: i64,
) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    sqlx::query(
        "INSERT INTO settings (key, value, secret, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, secret = excluded.secret,
             updated_at = excluded.updated_at",
    )
    .bind(key)
    .bind(stored)
    .bind(secret)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    bump(&mut tx).await?;
    tx.commit().await.map_err(db_err)
}

pub(super) async fn delete(conn: &mut PgConnection, key: &str) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    let done = sqlx::query("DELETE FROM settings WHERE key = $1")
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("setting '{key}'")));
    }
    bump(&mut tx).await?;
    tx.commit().await.map_err(db_err)
}

pub(super) async fn version(conn: &mut PgConnection) -> StoreResult<i64> {
    let row = sqlx::query("SELECT version FROM settings_version WHERE id = 1")
        .fetch_one(conn)
        .await
        .map_err(db_err)?;
    get(&row, 0)
}

pub(super) async fn bump(conn: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("UPDATE settings_version SET version = version + 1 WHERE id = 1")
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl SettingsStore for PgStore {
    async fn list_settings(&self) -> StoreResult<Vec<Setting>> {
        on_conn!(self, |c| list(c, &self.cipher))
    }

    async fn put_setting(&self, key: &str, value: &str, secret: bool, now: i64) -> StoreResult<()> {
        let stored = crate::sealed::setting(&self.cipher, key, value, secret)?;
        on_conn!(self, |c| put(c, key, &stored, secret, now))
    }

    async fn delete_setting(&self, key: &str) -> StoreResult<()> {
        on_conn!(self, |c| delete(c, key))
    }

    async fn settings_version(&self) -> StoreResult<i64> {
        on_conn!(self, |c| version(c))
    }
}
