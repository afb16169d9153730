//! OATH tokens: creation with sealed secrets, lookup and assignment ([`TokenStore`]). The
//! replay-protecting counter update is in `auth.rs`.

use super::map::{
    db_err, is_foreign_key_violation, is_unique_violation, token_from_row, TOKEN_COLUMNS,
};
use super::SqliteStore;
use crate::crypto::Cipher;
use crate::rules::token_not_found as not_found;
use crate::sealed::SealedToken;
use async_trait::async_trait;
use mfad_core::model::{NewToken, Token, TokenId, UserId};
use mfad_core::store::TokenStore;
use mfad_core::store::{StoreError, StoreResult};
use rusqlite::{params, Connection};
use std::sync::Arc;
use std::sync::LazyLock;

static TOKEN_BY_SERIAL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM tokens WHERE serial = ?1", *TOKEN_COLUMNS));
static TOKENS_FOR_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM tokens WHERE user_id = ?1 ORDER BY serial",
        *TOKEN_COLUMNS
    )
});
static LIST_TOKENS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM tokens ORDER BY serial", *TOKEN_COLUMNS));

/// Inserts every token or fails on the first problem; the caller's savepoint undoes
/// the ones already inserted. `owner` overrides each token's `user_id` (bulk load).
pub(super) fn insert_tokens(
    conn: &Connection,
    tokens: &[SealedToken],
    owner: Option<UserId>,
    now: i64,
) -> StoreResult<()> {
    let mut stmt = conn
        .prepare_cached("INSERT INTO tokens (serial, user_id, kind, algorithm, digits, period, secret, next, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
        .map_err(db_err)?;
    for t in tokens {
        let user_id = owner.or(t.user_id);
        let inserted = stmt.execute(params![
            t.serial,
            user_id,
            t.kind,
            t.algorithm,
            t.digits,
            t.period,
            t.secret,
            t.next,
            now
        ]);
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Duplicate(format!("token '{}'", t.serial)))
            }
            Err(e) if is_foreign_key_violation(&e) => {
                return Err(StoreError::NotFound(format!(
                    "user with id {} (owner of token '{}')",
                    user_id.unwrap_or_default(),
                    t.serial
                )))
            }
            Err(e) => return Err(db_err(e)),
        }
    }
    Ok(())
}

/// Inserts the tokens and returns them as stored (their secrets decrypted again, which
/// also proves the key can open what it sealed).
pub(super) fn create(
    conn: &Connection,
    cipher: &Cipher,
    tokens: &[SealedToken],
    now: i64,
) -> StoreResult<Vec<Token>> {
    insert_tokens(conn, tokens, None, now)?;
    let mut stmt = conn.prepare_cached(&TOKEN_BY_SERIAL).map_err(db_err)?;
    let mut created = Vec::with_capacity(tokens.len());
    for t in tokens {
        let mut rows = stmt.query([&t.serial]).map_err(db_err)?;
        match rows.next().map_err(db_err)? {
            Some(row) => created.push(token_from_row(row, 0, cipher)?),
            None => return Err(StoreError::Unavailable("inserted token not found".into())),
        }
    }
    Ok(created)
}

pub(super) fn by_serial(
    conn: &Connection,
    cipher: &Cipher,
    serial: &str,
) -> StoreResult<Option<Token>> {
    let mut stmt = conn.prepare_cached(&TOKEN_BY_SERIAL).map_err(db_err)?;
    let mut rows = stmt.query([serial]).map_err(db_err)?;
    rows.next()
        .map_err(db_err)?
        .map(|r| token_from_row(r, 0, cipher))
        .transpose()
}

fn collect(
    stmt: &mut rusqlite::CachedStatement<'_>,
    args: impl rusqlite::Params,
    cipher: &Cipher,
) -> StoreResult<Vec<Token>> {
    let mut rows = stmt.query(args).map_err(db_err)?;
    let mut tokens = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        tokens.push(token_from_row(row, 0, cipher)?);
    }
    Ok(tokens)
}

pub(super) fn for_user(
    conn: &Connection,
    cipher: &Cipher,
    user: UserId,
) -> StoreResult<Vec<Token>> {
    let mut stmt = conn.prepare_cached(&TOKENS_FOR_USER).map_err(db_err)?;
    collect(&mut stmt, [user], cipher)
}

pub(super) fn list(conn: &Connection, cipher: &Cipher) -> StoreResult<Vec<Token>> {
    let mut stmt = conn.prepare_cached(&LIST_TOKENS).map_err(db_err)?;
    collect(&mut stmt, [], cipher)
}

pub(super) fn assign(conn: &Connection, token: TokenId, user: Option<UserId>) -> StoreResult<()> {
    let changed = conn
        .prepare_cached("UPDATE tokens SET user_id = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![token, user]));
    match changed {
        Ok(0) => Err(not_found(token)),
        Ok(_) => Ok(()),
        Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound(format!(
            "user with id {}",
            user.unwrap_or_default()
        ))),
        Err(e) => Err(db_err(e)),
    }
}

pub(super) fn delete(conn: &Connection, token: TokenId) -> StoreResult<()> {
    let changed = conn
        .prepare_cached("DELETE FROM tokens WHERE id = ?1")
        .and_then(|mut s| s.execute([token]))
        .map_err(db_err)?;
    if changed == 0 {
        return Err(not_found(token));
    }
    Ok(())
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn create_tokens(&self, tokens: &[NewToken], now: i64) -> StoreResult<Vec<Token>> {
        let sealed = crate::sealed::tokens(&self.cipher, tokens)?;
        let cipher = Arc::clone(&self.cipher);
        self.write(move |c| create(c, &cipher, &sealed, now)).await
    }

    async fn token_by_serial(&self, serial: &str) -> StoreResult<Option<Token>> {
        let serial = serial.to_owned();
        self.read(move |c, cipher| by_serial(c, cipher, &serial))
            .await
    }

    async fn tokens_for_user(&self, id: UserId) -> StoreResult<Vec<Token>> {
        self.read(move |c, cipher| for_user(c, cipher, id)).await
    }

    async fn list_tokens(&self) -> StoreResult<Vec<Token>> {
        self.read_bulk(list).await
    }

    async fn assign_token(&self, token: TokenId, user: Option<UserId>) -> StoreResult<()> {
        self.write(move |c| assign(c, token, user)).await
    }

    async fn delete_token(&self, token: TokenId) -> StoreResult<()> {
        self.write(move |c| delete(c, token)).await
    }
}
