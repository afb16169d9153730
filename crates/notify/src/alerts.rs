//! Fraud alerts to the operators, queued in the e-mail outbox like every other mail.

use crate::templates::{method_name, MailContext, Templates};
use async_trait::async_trait;
use mfad_core::delivery::FraudAlerts;
use mfad_core::model::{Method, User};
use mfad_core::outbox::{EmailKind, NewEmail};
use mfad_core::store::Store;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Mails `recipients` (`[email] fraud_alerts_to`) about every fraud report.
pub struct MailAlerts {
    store: Arc<dyn Store>,
    templates: Templates,
    language: String,
    recipients: Vec<String>,
    blocks: bool,
}

impl MailAlerts {
    /// `blocks`: whether a report blocks the user (`policy.fraud.block_user`), which the
    /// mail says.
    pub fn new(
        store: Arc<dyn Store>,
        templates: Templates,
        language: String,
        recipients: Vec<String>,
        blocks: bool,
    ) -> Self {
        Self {
            store,
            templates,
            language,
            recipients,
            blocks,
        }
    }
}

fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string())
}

#[async_trait]
impl FraudAlerts for MailAlerts {
    async fn fraud_reported(&self, user: &User, method: &str, at: i64) {
        let method = method.parse::<Method>().unwrap_or(user.method);
        let context = MailContext {
            username: user.username.clone(),
            given_name: user.given_name.clone(),
            surname: user.surname.clone(),
            email: user.email.clone(),
            phone: user.phone.clone(),
            method: method.as_str().into(),
            method_name: method_name(method).into(),
            time: rfc3339(at),
            blocked: self.blocks,
            ..MailContext::default()
        };
        let rendered =
            match self
                .templates
                .render(EmailKind::FraudAlert, method, &self.language, &context)
            {
                Ok(rendered) => rendered,
                Err(err) => {
                    tracing::error!("fraud alert not sent: {err}");
                    return;
                }
            };
        for recipient in &self.recipients {
            let mail = NewEmail {
                // Not tied to the user: the alert stays even if the user is deleted.
                user_id: None,
                recipient: recipient.clone(),
                kind: EmailKind::FraudAlert,
                subject: rendered.subject.clone(),
                body: Zeroizing::new(rendered.body.clone()),
                once_key: None,
            };
            if let Err(err) = self.store.queue_email(&mail, at).await {
                tracing::error!(to = %recipient, "fraud alert not queued: {err}");
            }
        }
    }
}
