//! The e-mail outbox: queued mails, claims by one sender at a time, and their outcome.

use super::map::{db_err, email_from_row, is_foreign_key_violation, is_unique_violation};
use super::PgStore;
use crate::columns::EMAIL_COLUMNS;
use crate::crypto::Cipher;
use crate::rows::queued_email;
use crate::rules::{email_not_found, user_not_found};
use async_trait::async_trait;
use mfad_core::outbox::{Attempt, Email, EmailId, NewEmail};
use mfad_core::store::OutboxStore;
use mfad_core::store::StoreResult;
use sqlx::{Connection, PgConnection};

/// Inserts the mail, then seals its body with the new id as associated data, so a body
/// cannot be moved to another row; both in one transaction, so no node ever sees a
/// queued mail without its body. `None` when `once_key` was used before.
pub(super) async fn queue(
    conn: &mut PgConnection,
    cipher: &Cipher,
    email: &NewEmail,
    now: i64,
) -> StoreResult<Option<Email>> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    let inserted = sqlx::query_scalar::<_, i64>(
        "INSERT INTO emails (user_id, recipient, kind, subject, body, once_key, status,
             attempts, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, '', $5, 'queued', 0, $6, $6)
         ON CONFLICT (once_key) DO NOTHING
         RETURNING id",
    )
    .bind(email.user_id)
    .bind(&email.recipient)
    .bind(email.kind.as_str())
    .bind(&email.subject)
    .bind(&email.once_key)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await;
    let id = match inserted {
        Ok(Some(id)) => id,
        // The once-key was used before (ON CONFLICT DO NOTHING returns no row).
        Ok(None) => return Ok(None),
        Err(e) if is_unique_violation(&e) => return Ok(None),
        Err(e) if is_foreign_key_violation(&e) => {
            return Err(user_not_found(email.user_id.unwrap_or_default()))
        }
        Err(e) => return Err(db_err(e)),
    };
    let sealed = crate::sealed::email_body(cipher, id, &email.body)?;
    sqlx::query("UPDATE emails SET body = $2 WHERE id = $1")
        .bind(id)
        .bind(sealed)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(Some(queued_email(id, email, now)))
}

/// One `UPDATE ... RETURNING` both selects and leases the mails. `FOR UPDATE SKIP
/// LOCKED` in the subquery makes a second node pass over rows the first is claiming
/// instead of claiming them after it, so two nodes never get the same mail.
pub(super) async fn claim(
    conn: &mut PgConnection,
    cipher: &Cipher,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> StoreResult<Vec<Email>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = format!(
        "UPDATE emails SET attempts = attempts + 1, next_attempt_at = $2
         WHERE id IN (SELECT id FROM emails WHERE status = 'queued' AND next_attempt_at <= $1
                      ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING {EMAIL_COLUMNS}"
    );
    let rows = sqlx::query(&sql)
        .bind(now)
        .bind(lease_until)
        .bind(limit)
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    let mut out = rows
        .iter()
        .map(|row| email_from_row(row, Some(cipher)))
        .collect::<StoreResult<Vec<_>>>()?;
    out.sort_by_key(|e| e.id);
    Ok(out)
}

pub(super) async fn finish(
    conn: &mut PgConnection,
    id: EmailId,
    attempt: &Attempt,
) -> StoreResult<()> {
    let done = match attempt {
        Attempt::Sent { at } => {
            sqlx::query(
                "UPDATE emails SET status = 'sent', sent_at = $2, body = '', last_error = NULL
             WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .execute(conn)
            .await
        }
        Attempt::Retry { at, error } => {
            sqlx::query(
                "UPDATE emails SET status = 'queued', next_attempt_at = $2, last_error = $3
             WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(error)
            .execute(conn)
            .await
        }
        Attempt::Failed { error } => {
            sqlx::query("UPDATE emails SET status = 'failed', last_error = $2 WHERE id = $1")
                .bind(id)
                .bind(error)
                .execute(conn)
                .await
        }
    }
    .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(email_not_found(id));
    }
    Ok(())
}

pub(super) async fn list(conn: &mut PgConnection, limit: usize) -> StoreResult<Vec<Email>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = format!("SELECT {EMAIL_COLUMNS} FROM emails ORDER BY id DESC LIMIT $1");
    let rows = sqlx::query(&sql)
        .bind(limit)
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    rows.iter().map(|row| email_from_row(row, None)).collect()
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn queue_email(&self, email: &NewEmail, now: i64) -> StoreResult<Option<Email>> {
        on_conn!(self, |c| queue(c, &self.cipher, email, now))
    }

    async fn claim_emails(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Email>> {
        on_conn!(self, |c| claim(c, &self.cipher, now, lease_until, limit))
    }

    async fn finish_email(&self, id: EmailId, attempt: &Attempt) -> StoreResult<()> {
        on_conn!(self, |c| finish(c, id, attempt))
    }

    async fn list_emails(&self, limit: usize) -> StoreResult<Vec<Email>> {
        on_conn!(self, |c| list(c, limit))
    }
}
