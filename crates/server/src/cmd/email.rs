//! `mfad email ...`, and queuing the mails other commands send (welcome, update).

use super::Ctx;
use crate::cli::{EmailCommand, OutputFormat};
use crate::output;
use mfad_core::model::User;
use mfad_core::outbox::{Email, EmailKind};
use mfad_notify::compose::MailSettings;
use mfad_notify::{compose, Mailer, Outbox};

pub async fn run(ctx: &Ctx, cmd: EmailCommand) -> anyhow::Result<()> {
    match cmd {
        EmailCommand::Send { user } => {
            let user = ctx.user(&user).await?;
            send(ctx, &user, EmailKind::Welcome, None, false).await
        }
        EmailCommand::Status { limit, format } => status(ctx, limit, format.format).await,
    }
}

/// Renders and queues a mail for `user`, then tries to deliver it at once. A failed
/// delivery is not an error of the command: the mail stays queued for `mfad serve`.
/// With `once`, a mail of this kind already queued for the user is not queued again.
pub async fn send(
    ctx: &Ctx,
    user: &User,
    kind: EmailKind,
    pin: Option<&str>,
    once: bool,
) -> anyhow::Result<()> {
    if !ctx.config.smtp.enabled() {
        anyhow::bail!(
            "e-mail is not configured; set smtp.host and smtp.from in the [smtp] section"
        );
    }
    let templates = super::templates(ctx)?;
    let settings = MailSettings {
        language: ctx.config.email.language.clone(),
        portal_url: ctx.config.portal.url.clone(),
    };
    let mail = compose(&templates, &settings, user, kind, pin, once)?;
    let Some(queued) = ctx.store.queue_email(&mail, ctx.now()).await? else {
        println!(
            "{kind} e-mail for {} was sent before; use 'mfad email send' to send it again",
            user.username
        );
        return Ok(());
    };
    let mailer = Mailer::new(&ctx.config.smtp)?;
    let outbox = Outbox::new(
        ctx.store.clone(),
        mailer,
        ctx.clock.clone(),
        ctx.config.email.retry.clone(),
    );
    if let Err(err) = outbox.deliver_due().await {
        tracing::warn!("e-mail delivery pass failed: {err}");
    }
    let state = ctx
        .store
        .list_emails(200)
        .await?
        .into_iter()
        .find(|e| e.id == queued.id);
    match state {
        Some(e) if e.status == mfad_core::outbox::EmailStatus::Sent => {
            println!("sent the {kind} e-mail to {}", mail.recipient);
        }
        Some(e) => println!(
            "queued the {kind} e-mail to {}; delivery failed ({}); mfad serve retries it, see 'mfad email status'",
            mail.recipient,
            e.last_error.unwrap_or_default()
        ),
        None => println!("queued the {kind} e-mail to {}", mail.recipient),
    }
    Ok(())
}

pub fn dir_option(path: &std::path::Path) -> Option<&std::path::Path> {
    (!path.as_os_str().is_empty()).then_some(path)
}

/// Queues the welcome mail for each of `users` that has an address (once per user, like
/// `mfad user add`), then tries to deliver them in one pass; `mfad serve` retries the
/// rest. Returns how many were queued.
pub async fn queue_welcome(ctx: &Ctx, users: &[User]) -> anyhow::Result<usize> {
    let templates = super::templates(ctx)?;
    let settings = MailSettings {
        language: ctx.config.email.language.clone(),
        portal_url: ctx.config.portal.url.clone(),
    };
    let mut queued = 0;
    for user in users.iter().filter(|u| !u.email.is_empty()) {
        let mail = compose(&templates, &settings, user, EmailKind::Welcome, None, true)?;
        if ctx.store.queue_email(&mail, ctx.now()).await?.is_some() {
            queued += 1;
        }
    }
    if queued > 0 {
        let outbox = Outbox::new(
            ctx.store.clone(),
            Mailer::new(&ctx.config.smtp)?,
            ctx.clock.clone(),
            ctx.config.email.retry.clone(),
        );
        if let Err(err) = outbox.deliver_due().await {
            tracing::warn!("e-mail delivery pass failed: {err}");
        }
    }
    Ok(queued)
}

const HEADERS: [&str; 8] = [
    "id",
    "created",
    "recipient",
    "kind",
    "status",
    "attempts",
    "next_attempt",
    "last_error",
];

fn row(e: &Email) -> Vec<String> {
    vec![
        e.id.to_string(),
        output::time(Some(e.created_at)),
        e.recipient.clone(),
        e.kind.to_string(),
        e.status.to_string(),
        e.attempts.to_string(),
        if e.status == mfad_core::outbox::EmailStatus::Queued {
            output::time(Some(e.next_attempt_at))
        } else {
            "-".into()
        },
        e.last_error.clone().unwrap_or_default(),
    ]
}

async fn status(ctx: &Ctx, limit: usize, format: OutputFormat) -> anyhow::Result<()> {
    let mails = ctx.store.list_emails(limit).await?;
    let rows = mails.iter().map(row).collect();
    output::print(format, &mails, &HEADERS, rows)
}
