//! OATH tokens: creation with sealed secrets, lookup and assignment ([`TokenStore`]). The
//! replay-protecting counter update is batched in `advance.rs`.

use super::map::{
    db_err, is_foreign_key_violation, is_unique_violation, token_from_row, TOKEN_COLUMNS,
};
use super::PgStore;
use crate::crypto::Cipher;
use crate::rules::token_not_found as not_found;
use crate::sealed::SealedToken;
use async_trait::async_trait;
use mfad_core::model::{NewToken, Token, TokenId, UserId};
use mfad_core::store::TokenStore;
use mfad_core::store::{StoreError, StoreResult};
use sqlx::{Connection, PgConnection};
use std::sync::LazyLock;

static INSERT_TOKEN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO tokens (serial, user_id, kind, algorithm, digits, period, secret, next, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {}",
        *TOKEN_COLUMNS
    )
});
static TOKEN_BY_SERIAL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM tokens WHERE serial = $1", *TOKEN_COLUMNS));
static TOKENS_FOR_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM tokens WHERE user_id = $1 ORDER BY serial",
        *TOKEN_COLUMNS
    )
});
static LIST_TOKENS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM tokens ORDER BY serial", *TOKEN_COLUMNS));

/// Inserts one token; `owner` overrides its `user_id` (bulk load). Returns the stored row.
pub(super) async fn insert_token(
    conn: &mut PgConnection,
    t: &SealedToken,
    owner: Option<UserId>,
    now: i64,
) -> StoreResult<sqlx::postgres::PgRow> {
    let user_id = owner.or(t.user_id);
    let digits =
        i32::try_from(t.digits).map_err(|_| StoreError::Corrupt(format!("{} digits", t.digits)))?;
    let inserted = sqlx::query(&INSERT_TOKEN)
        .bind(&t.serial)
        .bind(user_id)
        .bind(t.kind)
        .bind(t.algorithm)
        .bind(digits)
        .bind(t.period)
        .bind(&t.secret)
        .bind(t.next)
        .bind(now)
        .fetch_one(conn)
        .await;
    match inserted {
        Ok(row) => Ok(row),
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Duplicate(format!("token '{}'", t.serial)))
        }
        Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound(format!(
            "user with id {} (owner of token '{}')",
            user_id.unwrap_or_default(),
            t.serial
        ))),
        Err(e) => Err(db_err(e)),
    }
}

/// Inserts the tokens in one transaction and returns them as stored (their secrets
/// decrypted again, which also proves the key can open what it sealed).
pub(super) async fn create(
    conn: &mut PgConnection,
    cipher: &Cipher,
    tokens: &[SealedToken],
    now: i64,
) -> StoreResult<Vec<Token>> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    let mut created = Vec::with_capacity(tokens.len());
    for t in tokens {
        let row = insert_token(&mut tx, t, None, now).await?;
        created.push(token_from_row(&row, 0, cipher)?);
    }
    tx.commit().await.map_err(db_err)?;
    Ok(created)
}

pub(super) async fn by_serial(
    conn: &mut PgConnection,
    cipher: &Cipher,
    serial: &str,
) -> StoreResult<Option<Token>> {
    let row = sqlx::query(&TOKEN_BY_SERIAL)
        .bind(serial)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    row.map(|r| token_from_row(&r, 0, cipher)).transpose()
}

pub(super) async fn for_user(
    conn: &mut PgConnection,
    cipher: &Cipher,
    user: UserId,
) -> StoreResult<Vec<Token>> {
    let rows = sqlx::query(&TOKENS_FOR_USER)
        .bind(user)
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    rows.iter().map(|r| token_from_row(r, 0, cipher)).collect()
}

pub(super) async fn list(conn: &mut PgConnection, cipher: &Cipher) -> StoreResult<Vec<Token>> {
    let rows = sqlx::query(&LIST_TOKENS)
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    rows.iter().map(|r| token_from_row(r, 0, cipher)).collect()
}

pub(super) async fn assign(
    conn: &mut PgConnection,
    token: TokenId,
    user: Option<UserId>,
) -> StoreResult<()> {
    let changed = sqlx::query("UPDATE tokens SET user_id = $2 WHERE id = $1")
        .bind(token)
        .bind(user)
        .execute(conn)
        .await;
    match changed {
        Ok(done) if done.rows_affected() == 0 => Err(not_found(token)),
        Ok(_) => Ok(()),
        Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound(format!(
            "user with id {}",
            user.unwrap_or_default()
        ))),
        Err(e) => Err(db_err(e)),
    }
}

pub(super) async fn delete(conn: &mut PgConnection, token: TokenId) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM tokens WHERE id = $1")
        .bind(token)
        .execute(conn)
        .await
        .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(not_found(token));
    }
    Ok(())
}

#[async_trait]
impl TokenStore for PgStore {
    async fn create_tokens(&self, tokens: &[NewToken], now: i64) -> StoreResult<Vec<Token>> {
        let sealed = crate::sealed::tokens(&self.cipher, tokens)?;
        on_conn!(self, |c| create(c, &self.cipher, &sealed, now))
    }

    async fn token_by_serial(&self, serial: &str) -> StoreResult<Option<Token>> {
        on_conn!(self, |c| by_serial(c, &self.cipher, serial))
    }

    async fn tokens_for_user(&self, id: UserId) -> StoreResult<Vec<Token>> {
        on_conn!(self, |c| for_user(c, &self.cipher, id))
    }

    async fn list_tokens(&self) -> StoreResult<Vec<Token>> {
        on_conn!(self, |c| list(c, &self.cipher))
    }

    async fn assign_token(&self, token: TokenId, user: Option<UserId>) -> StoreResult<()> {
        on_conn!(self, |c| assign(c, token, user))
    }

    async fn delete_token(&self, token: TokenId) -> StoreResult<()> {
        on_conn!(self, |c| delete(c, token))
    }
}
