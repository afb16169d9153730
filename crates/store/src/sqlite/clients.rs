//! RADIUS clients, with their shared secrets sealed at rest.

use super::map::{client_from_row, db_err, is_unique_violation, CLIENT_COLUMNS};
use super::SqliteStore;
use crate::crypto::Cipher;
use async_trait::async_trait;
use mfad_core::model::{Client, NewClient};
use mfad_core::store::ClientStore;
use mfad_core::store::{StoreError, StoreResult};
use rusqlite::{params, Connection};
use std::sync::Arc;
use std::sync::LazyLock;

static INSERT_CLIENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO clients (name, address, secret, first_factor, prompt,
             require_message_authenticator, require_user_match, created_at, code_separator,
             targets)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING {}",
        *CLIENT_COLUMNS
    )
});
static LIST_CLIENTS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM clients ORDER BY name", *CLIENT_COLUMNS));

pub(super) fn create(
    conn: &Connection,
    cipher: &Cipher,
    client: &NewClient,
    sealed_secret: &str,
    now: i64,
) -> StoreResult<Client> {
    let mut stmt = conn.prepare_cached(&INSERT_CLIENT).map_err(db_err)?;
    let mut rows = stmt
        .query(params![
            client.name,
            client.address.to_string(),
            sealed_secret,
            client.first_factor.to_string(),
            client.prompt.to_string(),
            client.require_message_authenticator,
            client.require_user_match,
            now,
            client.code_separator,
            client.targets.join(",")
        ])
        .map_err(db_err)?;
    match rows.next() {
        Ok(Some(row)) => client_from_row(row, cipher),
        Ok(None) => Err(StoreError::Unavailable("insert returned no row".into())),
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Duplicate(format!("client '{}'", client.name)))
        }
        Err(e) => Err(db_err(e)),
    }
}

pub(super) fn list(conn: &Connection, cipher: &Cipher) -> StoreResult<Vec<Client>> {
    let mut stmt = conn.prepare_cached(&LIST_CLIENTS).map_err(db_err)?;
    let mut rows = stmt.query([]).map_err(db_err)?;
    let mut clients = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        clients.push(client_from_row(row, cipher)?);
    }
    Ok(clients)
}

pub(super) fn delete(conn: &Connection, name: &str) -> StoreResult<()> {
    let changed = conn
        .prepare_cached("DELETE FROM clients WHERE name = ?1")
        .and_then(|mut s| s.execute([name]))
        .map_err(db_err)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("client '{name}'")));
    }
    Ok(())
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn create_client(&self, client: &NewClient, now: i64) -> StoreResult<Client> {
        let sealed = crate::sealed::client_secret(&self.cipher, client)?;
        let client = client.clone();
        let cipher = Arc::clone(&self.cipher);
        self.write(move |c| create(c, &cipher, &client, &sealed, now))
            .await
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        self.read(list).await
    }

    async fn delete_client(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |c| delete(c, &name)).await
    }
}
