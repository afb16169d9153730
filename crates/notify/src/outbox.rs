//! The outbox worker: claims due mails from the store, sends them, records the outcome.
//!
//! Several nodes may run it on one database; the store's claim makes sure each mail
//! goes out through one of them at a time.

use crate::smtp::Mailer;
use mfad_core::clock::Clock;
use mfad_core::outbox::{Attempt, RetryPolicy};
use mfad_core::store::{Store, StoreError};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// The mailer an [`Outbox`] sends with, replaceable while it runs (new SMTP
/// credentials from stored settings take effect at the next mail).
pub type MailerSlot = Arc<RwLock<Arc<Mailer>>>;

/// Mails one pass claims at most.
const BATCH: usize = 20;

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

pub struct Outbox {
    store: Arc<dyn Store>,
    mailer: MailerSlot,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
}

impl Outbox {
    pub fn new(
        store: Arc<dyn Store>,
        mailer: Mailer,
        clock: Arc<dyn Clock>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            store,
            mailer: Arc::new(RwLock::new(Arc::new(mailer))),
            clock,
            retry,
        }
    }

    /// The slot holding the mailer; putting another mailer in changes how the next
    /// mail is sent.
    pub fn mailer_slot(&self) -> MailerSlot {
        Arc::clone(&self.mailer)
    }

    fn mailer(&self) -> Arc<Mailer> {
        Arc::clone(&self.mailer.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Sends every mail due now, in batches, until none is left.
    pub async fn deliver_due(&self) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        loop {
            let now = self.clock.now();
            // The claim outlives the longest send, so nobody else takes the mail meanwhile.
            let lease = i64::try_from(self.mailer().send_timeout().as_secs())
                .unwrap_or(i64::MAX)
                .saturating_add(60);
            let claimed = self
                .store
                .claim_emails(now, now.saturating_add(lease), BATCH)
                .await?;
            if claimed.is_empty() {
                return Ok(report);
            }
            #[allow(clippy::cast_precision_loss)] // a batch holds at most BATCH mails
            metrics::histogram!("mfad_outbox_batch_size").record(claimed.len() as f64);
            for mail in claimed {
                let result = self
                    .mailer()
                    .send(&mail.recipient, &mail.subject, &mail.body)
                    .await;
                let now = self.clock.now();
                let attempt = match result {
                    Ok(()) => {
                        tracing::info!(id = mail.id, kind = %mail.kind, to = %mail.recipient, "e-mail sent");
                        report.sent += 1;
                        metrics::counter!("mfad_outbox_emails_total", "result" => "sent")
                            .increment(1);
                        Attempt::Sent { at: now }
                    }
                    Err(err) => {
                        let attempt = self
                            .retry
                            .after_failure(mail.attempts, now, err.to_string());
                        match &attempt {
                            Attempt::Retry { at, .. } => {
                                report.retried += 1;
                                metrics::counter!("mfad_outbox_emails_total", "result" => "retry")
                                    .increment(1);
                                tracing::warn!(id = mail.id, to = %mail.recipient, attempt = mail.attempts,
                                    retry_in = at - now, "e-mail not delivered, will retry: {err}");
                            }
                            _ => {
                                report.failed += 1;
                                metrics::counter!("mfad_outbox_emails_total", "result" => "failed")
                                    .increment(1);
                                tracing::error!(id = mail.id, to = %mail.recipient, attempts = mail.attempts,
                                    "e-mail not delivered, giving up: {err}; see 'mfad email status'");
                            }
                        }
                        attempt
                    }
                };
                self.store.finish_email(mail.id, &attempt).await?;
            }
        }
    }

    /// Delivers due mails every `poll` until `stop` turns true. Errors are logged and the
    /// loop goes on: mail never stops the server.
    pub async fn run(self, poll: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(err) = self.deliver_due().await {
                metrics::counter!("mfad_store_errors_total", "during" => "outbox").increment(1);
                tracing::warn!("e-mail outbox pass failed, will try again: {err}");
            }
        }
    }
}
