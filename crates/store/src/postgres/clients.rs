//! RADIUS clients, with their shared secrets sealed at rest. Every node reloads the
//! list every few seconds, so a client added on one node is served by all.

use super::map::{client_from_row, db_err, is_unique_violation, CLIENT_COLUMNS};
use super::PgStore;
use crate::crypto::Cipher;
use async_trait::async_trait;
use mfad_core::model::{Client, NewClient};
use mfad_core::store::ClientStore;
use mfad_core::store::{StoreError, StoreResult};
use sqlx::PgConnection;
use std::sync::LazyLock;

static INSERT_CLIENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO clients (name, address, secret, first_factor, prompt,
             require_message_authenticator, require_user_match, created_at, code_separator,
             targets)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {}",
        *CLIENT_COLUMNS
    )
});
static LIST_CLIENTS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM clients ORDER BY name", *CLIENT_COLUMNS));

pub(super) async fn create(
    conn: &mut PgConnection,
    cipher: &Cipher,
    client: &NewClient,
    sealed_secret: &str,
    now: i64,
) -> StoreResult<Client> {
    let row = sqlx::query(&INSERT_CLIENT)
        .bind(&client.name)
        .bind(client.address.to_string())
        .bind(sealed_secret)
        .bind(client.first_factor.to_string())
        .bind(client.prompt.to_string())
        .bind(client.require_message_authenticator)
        .bind(client.require_user_match)
        .bind(now)
        .bind(&client.code_separator)
        .bind(client.targets.join(","))
        .fetch_one(conn)
        .await;
    match row {
        Ok(row) => client_from_row(&row, cipher),
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Duplicate(format!("client '{}'", client.name)))
        }
        Err(e) => Err(db_err(e)),
    }
}

pub(super) async fn list(conn: &mut PgConnection, cipher: &Cipher) -> StoreResult<Vec<Client>> {
    let rows = sqlx::query(&LIST_CLIENTS)
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    rows.iter().map(|r| client_from_row(r, cipher)).collect()
}

pub(super) async fn delete(conn: &mut PgConnection, name: &str) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM clients WHERE name = $1")
        .bind(name)
        .execute(conn)
        .await
        .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("client '{name}'")));
    }
    Ok(())
}

#[async_trait]
impl ClientStore for PgStore {
    async fn create_client(&self, client: &NewClient, now: i64) -> StoreResult<Client> {
        let sealed = crate::sealed::client_secret(&self.cipher, client)?;
        on_conn!(self, |c| create(c, &self.cipher, client, &sealed, now))
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        on_conn!(self, |c| list(c, &self.cipher))
    }

    async fn delete_client(&self, name: &str) -> StoreResult<()> {
        on_conn!(self, |c| delete(c, name))
    }
}
