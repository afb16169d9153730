//! The e-mail outbox: queued mails, claims by one sender at a time, and their outcome.

use super::map::{db_err, email_from_row, is_unique_violation};
use super::SqliteStore;
use crate::columns::EMAIL_COLUMNS;
use crate::crypto::Cipher;
use crate::rows::queued_email;
use crate::rules::{email_not_found, user_not_found};
use async_trait::async_trait;
use mfad_core::outbox::{Attempt, Email, EmailId, NewEmail};
use mfad_core::store::OutboxStore;
use mfad_core::store::StoreResult;
use rusqlite::{params, Connection};
use std::sync::Arc;

/// Inserts the mail, then seals its body with the new id as associated data, so a
/// body cannot be moved to another row. `None` when `once_key` was used before.
pub(super) fn queue(
    conn: &Connection,
    cipher: &Cipher,
    email: &NewEmail,
    now: i64,
) -> StoreResult<Option<Email>> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO emails (user_id, recipient, kind, subject, body, once_key, status,
                 attempts, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, '', ?5, 'queued', 0, ?6, ?6) RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    email.user_id,
                    email.recipient,
                    email.kind.as_str(),
                    email.subject,
                    email.once_key,
                    now
                ],
                |r| r.get::<_, i64>(0),
            )
        });
    let id = match inserted {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => return Ok(None),
        Err(e) if super::map::is_foreign_key_violation(&e) => {
            return Err(user_not_found(email.user_id.unwrap_or_default()))
        }
        Err(e) => return Err(db_err(e)),
    };
    let sealed = crate::sealed::email_body(cipher, id, &email.body)?;
    conn.prepare_cached("UPDATE emails SET body = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![id, sealed]))
        .map_err(db_err)?;
    Ok(Some(queued_email(id, email, now)))
}

/// One `UPDATE ... RETURNING` both selects and leases the mails, so two senders never
/// get the same one.
pub(super) fn claim(
    conn: &Connection,
    cipher: &Cipher,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> StoreResult<Vec<Email>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = format!(
        "UPDATE emails SET attempts = attempts + 1, next_attempt_at = ?2
         WHERE id IN (SELECT id FROM emails WHERE status = 'queued' AND next_attempt_at <= ?1
                      ORDER BY next_attempt_at, id LIMIT ?3)
         RETURNING {EMAIL_COLUMNS}"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt
        .query(params![now, lease_until, limit])
        .map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(email_from_row(row, Some(cipher))?);
    }
    out.sort_by_key(|e| e.id);
    Ok(out)
}

pub(super) fn finish(conn: &Connection, id: EmailId, attempt: &Attempt) -> StoreResult<()> {
    let changed = match attempt {
        Attempt::Sent { at } => conn
            .prepare_cached(
                "UPDATE emails SET status = 'sent', sent_at = ?2, body = '', last_error = NULL
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, at])),
        Attempt::Retry { at, error } => conn
            .prepare_cached(
                "UPDATE emails SET status = 'queued', next_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, at, error])),
        Attempt::Failed { error } => conn
            .prepare_cached("UPDATE emails SET status = 'failed', last_error = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, error])),
    }
    .map_err(db_err)?;
    if changed == 0 {
        return Err(email_not_found(id));
    }
    Ok(())
}

pub(super) fn list(conn: &Connection, limit: usize) -> StoreResult<Vec<Email>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = format!("SELECT {EMAIL_COLUMNS} FROM emails ORDER BY id DESC LIMIT ?1");
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt.query([limit]).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(email_from_row(row, None)?);
    }
    Ok(out)
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn queue_email(&self, email: &NewEmail, now: i64) -> StoreResult<Option<Email>> {
        let email = email.clone();
        let cipher = Arc::clone(&self.cipher);
        self.write(move |c| queue(c, &cipher, &email, now)).await
    }

    async fn claim_emails(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Email>> {
        let cipher = Arc::clone(&self.cipher);
        self.write(move |c| claim(c, &cipher, now, lease_until, limit))
            .await
    }

    async fn finish_email(&self, id: EmailId, attempt: &Attempt) -> StoreResult<()> {
        let attempt = attempt.clone();
        self.write(move |c| finish(c, id, &attempt)).await
    }

    async fn list_emails(&self, limit: usize) -> StoreResult<Vec<Email>> {
        self.read(move |c, _| list(c, limit)).await
    }
}
