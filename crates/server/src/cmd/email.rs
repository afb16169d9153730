//! `mfad email ...`, and queuing the mails other commands and the directory sync send
//! (welcome, update).

use super::Ctx;
use crate::cli::{EmailCommand, OutputFormat};
use crate::output;
use mfad_core::model::User;
use mfad_core::outbox::{Email, EmailKind};
use mfad_core::service::mail::Welcomed;
use mfad_core::store::PendingPhone;
use mfad_notify::compose::{MailSettings, TemplateComposer};
use mfad_notify::{Mailer, Outbox};

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
    let mails = ctx.mails();
    mails.rules().ensure_configured()?;
    let composer = composer(ctx)?;
    let Some((mail, queued)) = mails.queue(&composer, user, kind, pin, once).await? else {
        outln!(
            "{kind} e-mail for {} was sent before; use 'mfad email send' to send it again",
            user.username
        );
        return Ok(());
    };
    deliver_now(ctx).await?;
    let state = mails.status(queued.id).await?;
    match state {
        Some(e) if e.status == mfad_core::outbox::EmailStatus::Sent => {
            outln!("sent the {kind} e-mail to {}", mail.recipient);
        }
        Some(e) => outln!(
            "queued the {kind} e-mail to {}; delivery failed ({}); mfad serve retries it, see 'mfad email status'",
            mail.recipient,
            e.last_error.unwrap_or_default()
        ),
        None => outln!("queued the {kind} e-mail to {}", mail.recipient),
    }
    Ok(())
}

pub fn dir_option(path: &std::path::Path) -> Option<&std::path::Path> {
    (!path.as_os_str().is_empty()).then_some(path)
}

/// Welcomes the users a directory import or sync added (`added_ids`: their directory
/// IDs): with `[email] send_to_users` each with an address gets the welcome mail for
/// their method once, as with `mfad user add`; with `[directory] generate_pins` each PIN
/// user it reaches gets a generated initial PIN in it, marked "change required". Then
/// one delivery pass; `mfad serve` retries the rest. `mfad directory import|sync` and
/// the scheduled sync of `mfad serve` both come here.
pub async fn welcome_added(ctx: &Ctx, added_ids: &[String]) -> anyhow::Result<Welcomed> {
    let mails = ctx.mails();
    let rules = *mails.rules();
    let composer = if rules.send_to_users && !added_ids.is_empty() {
        Some(composer(ctx)?)
    } else {
        None
    };
    let composer = composer
        .as_ref()
        .map(|c| c as &dyn mfad_core::service::Composer);
    let welcomed = mails
        .welcome_added(added_ids, &ctx.pins(), composer)
        .await?;
    if welcomed.queued > 0 {
        deliver_now(ctx).await?;
    }
    Ok(welcomed)
}

/// Tells each user whose phone change a directory sync holds, at the address on record,
/// that their number is about to change and to call the help desk if they did not do
/// it: once per user and new number, whichever node or command asks first. A security
/// notice, so it goes whenever `[smtp]` is configured. Returns how many were queued.
pub async fn notify_phone_changes(ctx: &Ctx, held: &[PendingPhone]) -> anyhow::Result<usize> {
    let mails = ctx.mails();
    if held.is_empty() || !mails.rules().tells_phone_changes() {
        return Ok(0);
    }
    let queued = mails.notify_phone_changes(held, &composer(ctx)?).await?;
    if queued > 0 {
        deliver_now(ctx).await?;
    }
    Ok(queued)
}

/// The templates and mail settings in force.
fn composer(ctx: &Ctx) -> anyhow::Result<TemplateComposer> {
    Ok(TemplateComposer {
        templates: super::templates(ctx)?,
        settings: mail_settings(ctx),
    })
}

/// The mail settings of the configuration in force.
fn mail_settings(ctx: &Ctx) -> MailSettings {
    MailSettings {
        language: ctx.config.email.language.clone(),
        portal_url: ctx.config.portal.url.clone(),
    }
}

/// One delivery pass over the outbox, so mails just queued go out before the command
/// ends; what fails stays queued for `mfad serve` to retry.
async fn deliver_now(ctx: &Ctx) -> anyhow::Result<()> {
    let outbox = Outbox::new(
        ctx.store.clone(),
        Mailer::new(&ctx.config.smtp)?,
        ctx.clock.clone(),
        ctx.config.email.retry.clone(),
    );
    if let Err(err) = outbox.deliver_due().await {
        tracing::warn!("e-mail delivery pass failed: {err}");
    }
    Ok(())
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
    let mails = ctx.mails().list(limit).await?;
    let rows = mails.iter().map(row).collect();
    output::print(format, &mails, &HEADERS, rows)
}
