//! Conformance cases for the e-mail outbox: queueing, claims, retries and sealed bodies.

use super::{ensure, ensure_eq, ensure_err, given_user, Backend, CaseResult, NOW};
use mfad_core::outbox::{Attempt, EmailKind, EmailStatus, NewEmail};
use mfad_core::store::Store;
use std::sync::Arc;
use zeroize::Zeroizing;

fn mail(user_id: Option<i64>, to: &str, once_key: Option<&str>) -> NewEmail {
    NewEmail {
        user_id,
        recipient: to.to_owned(),
        kind: EmailKind::Welcome,
        subject: format!("Welcome {to}"),
        body: Zeroizing::new(format!("Hello {to}, your PIN is 2468")),
        once_key: once_key.map(str::to_owned),
    }
}

pub async fn queued_email_is_claimed_once_and_erased_when_sent(
    store: Arc<dyn Store>,
) -> CaseResult {
    let user = given_user(&*store, "olga").await?;
    let queued = store
        .queue_email(&mail(Some(user.id), "olga@example.org", None), NOW)
        .await?
        .ok_or_else(|| super::Failure::new("a mail without a key is always queued"))?;
    ensure_eq!(queued.status, EmailStatus::Queued);

    let claimed = store.claim_emails(NOW, NOW + 60, 10).await?;
    ensure_eq!(claimed.len(), 1);
    let first = claimed
        .first()
        .ok_or_else(|| super::Failure::new("one claimed mail"))?;
    ensure_eq!(first.id, queued.id);
    ensure_eq!(first.attempts, 1, "the claim counts the attempt");
    ensure_eq!(
        first.body.as_str(),
        "Hello olga@example.org, your PIN is 2468"
    );
    ensure_eq!(first.subject, "Welcome olga@example.org");
    ensure_eq!(first.user_id, Some(user.id));
    ensure!(
        store
            .claim_emails(NOW + 59, NOW + 120, 10)
            .await?
            .is_empty(),
        "a claimed mail is not handed out again while the claim holds"
    );

    store
        .finish_email(queued.id, &Attempt::Sent { at: NOW + 1 })
        .await?;
    let listed = store.list_emails(10).await?;
    ensure_eq!(listed.len(), 1);
    let sent = listed
        .first()
        .ok_or_else(|| super::Failure::new("one listed mail"))?;
    ensure_eq!(sent.status, EmailStatus::Sent);
    ensure_eq!(sent.sent_at, Some(NOW + 1));
    ensure!(sent.body.is_empty(), "listing never carries bodies");
    ensure!(
        store
            .claim_emails(NOW + 1000, NOW + 1060, 10)
            .await?
            .is_empty(),
        "a sent mail is never claimed again"
    );
    ensure_err!(
        store
            .finish_email(queued.id + 1000, &Attempt::Sent { at: NOW })
            .await,
        NotFound
    );
    Ok(())
}

pub async fn once_key_queues_a_mail_only_once(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "pavel").await?;
    let key = format!("welcome:{}", user.id);
    let first = store
        .queue_email(&mail(Some(user.id), "p@example.org", Some(&key)), NOW)
        .await?;
    ensure!(first.is_some(), "the first mail with a key is queued");
    let again = store
        .queue_email(&mail(Some(user.id), "p@example.org", Some(&key)), NOW + 5)
        .await?;
    ensure_eq!(again, None, "a second mail with the same key is not");
    let unkeyed = store
        .queue_email(&mail(Some(user.id), "p@example.org", None), NOW + 5)
        .await?;
    ensure!(unkeyed.is_some(), "mails without a key are not limited");
    ensure_eq!(store.list_emails(10).await?.len(), 2);
    Ok(())
}

pub async fn failed_attempts_wait_for_their_retry_time(store: Arc<dyn Store>) -> CaseResult {
    let queued = store
        .queue_email(&mail(None, "q@example.org", None), NOW)
        .await?
        .ok_or_else(|| super::Failure::new("queued"))?;
    ensure_eq!(store.claim_emails(NOW, NOW + 60, 10).await?.len(), 1);
    store
        .finish_email(
            queued.id,
            &Attempt::Retry {
                at: NOW + 30,
                error: "connection refused".into(),
            },
        )
        .await?;
    ensure!(
        store.claim_emails(NOW + 29, NOW + 90, 10).await?.is_empty(),
        "not before its retry time"
    );
    let retried = store.claim_emails(NOW + 30, NOW + 90, 10).await?;
    let retried = retried
        .first()
        .ok_or_else(|| super::Failure::new("claimed at its retry time"))?;
    ensure_eq!(retried.attempts, 2);
    ensure_eq!(retried.last_error.as_deref(), Some("connection refused"));
    store
        .finish_email(
            queued.id,
            &Attempt::Failed {
                error: "gave up".into(),
            },
        )
        .await?;
    ensure!(
        store
            .claim_emails(NOW + 10_000, NOW + 10_060, 10)
            .await?
            .is_empty(),
        "a failed mail is not retried"
    );
    let listed = store.list_emails(1).await?;
    let failed = listed
        .first()
        .ok_or_else(|| super::Failure::new("listed"))?;
    ensure_eq!(failed.status, EmailStatus::Failed);
    ensure_eq!(failed.last_error.as_deref(), Some("gave up"));
    Ok(())
}

pub async fn lapsed_claims_are_claimed_again(store: Arc<dyn Store>) -> CaseResult {
    store
        .queue_email(&mail(None, "r@example.org", None), NOW)
        .await?;
    ensure_eq!(store.claim_emails(NOW, NOW + 60, 10).await?.len(), 1);
    // The sender died without finishing: once its claim lapses another one sends.
    let again = store.claim_emails(NOW + 60, NOW + 120, 10).await?;
    ensure_eq!(again.len(), 1);
    ensure_eq!(again.first().map(|e| e.attempts), Some(2));
    Ok(())
}

pub async fn concurrent_claims_hand_out_each_mail_once(store: Arc<dyn Store>) -> CaseResult {
    for n in 0..30 {
        store
            .queue_email(&mail(None, &format!("m{n}@example.org"), None), NOW)
            .await?;
    }
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.claim_emails(NOW, NOW + 60, 7).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await??.into_iter().map(|e| e.id));
    }
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    ensure_eq!(total, 30, "every due mail is claimed");
    ensure_eq!(ids.len(), 30, "and none twice");
    Ok(())
}

pub async fn emails_are_listed_newest_first(store: Arc<dyn Store>) -> CaseResult {
    for n in 0..3 {
        store
            .queue_email(&mail(None, &format!("n{n}@example.org"), None), NOW + n)
            .await?;
    }
    let listed: Vec<String> = store
        .list_emails(2)
        .await?
        .into_iter()
        .map(|e| e.recipient)
        .collect();
    ensure_eq!(listed, ["n2@example.org", "n1@example.org"]);
    Ok(())
}

pub async fn email_bodies_are_not_stored_in_plaintext(backend: &mut dyn Backend) -> CaseResult {
    let store = backend.store();
    let mut new = mail(None, "secret@example.org", None);
    new.body = Zeroizing::new("initial PIN 8 4 1 9: INITIAL-PIN-93c1".into());
    store.queue_email(&new, NOW).await?;
    store.flush().await?;
    let raw = backend.raw_bytes()?;
    ensure!(
        super::contains(&raw, b"secret@example.org"),
        "the dump holds the data (recipient found)"
    );
    ensure!(
        !super::contains(&raw, b"INITIAL-PIN-93c1"),
        "the body of a queued mail is sealed"
    );
    Ok(())
}
