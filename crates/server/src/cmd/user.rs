//! `mfad user ...` and `mfad bypass`.

use super::{email, Ctx};
use crate::cli::{OutputFormat, UserCommand, UserFields};
use crate::output;
use anyhow::Context;
use mfad_core::model::User;
use mfad_core::outbox::EmailKind;
use mfad_core::service::users::{self, UserState};

pub async fn run(ctx: &Ctx, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            user,
            fields,
            generate_pin,
        } => add(ctx, &user, fields, generate_pin).await,
        UserCommand::List { format } => list(ctx, format.format).await,
        UserCommand::Show { user, format } => show(ctx, &user, format.format).await,
        UserCommand::Update { user, fields } => {
            let found = ctx.user(&user).await?;
            let updated = ctx.users().update(found, fields_of(fields)).await?;
            outln!("updated user {}", updated.before.username);
            if ctx.mails().rules().tells_update(&updated) {
                email::send(ctx, &updated.after, EmailKind::Update, None, false).await?;
            }
            Ok(())
        }
        UserCommand::Disable { user } => set_enabled(ctx, &user, false).await,
        UserCommand::Enable { user } => set_enabled(ctx, &user, true).await,
        UserCommand::Delete { user } => {
            let deleted = ctx.users().delete(&user).await?;
            outln!("deleted user {} and their tokens", deleted.username);
            Ok(())
        }
        UserCommand::Unlock { user } => {
            let unlocked = ctx.access().unlock(&user).await?;
            outln!("unlocked user {}", unlocked.username);
            Ok(())
        }
        UserCommand::Block { user, reason, days } => {
            let (blocked, until) = ctx.access().block(&user, &reason, days).await?;
            outln!(
                "blocked user {} until {}",
                blocked.username,
                output::time(Some(until))
            );
            Ok(())
        }
        UserCommand::Unblock { user } => {
            let unblocked = ctx.access().unblock(&user).await?;
            outln!("unblocked user {}", unblocked.username);
            Ok(())
        }
        UserCommand::SetPin {
            user,
            pin,
            pin_file,
            generate,
            change_required,
        } => {
            let found = ctx.user(&user).await?;
            let pins = ctx.pins();
            if let Some(notice) = pins.notice(&found) {
                eprintln!("warning: {}", output::for_terminal(&notice.to_string()));
            }
            if generate {
                // A PIN someone else chose is known to them: the user must replace it.
                let pin = pins.generate(&found, true).await?;
                if ctx.mails().rules().welcomes(&found) {
                    email::send(ctx, &found, EmailKind::Welcome, Some(pin.as_str()), false).await?;
                } else {
                    outln!("{}", *pin);
                }
            } else {
                let pin = super::secret::from_args("pin", pin, pin_file.as_deref())?
                    .context("give --pin-file FILE, --pin-file - (standard input) or --generate")?;
                pins.set(&found, &pin, change_required).await?;
                outln!("set the PIN of {}", found.username);
            }
            Ok(())
        }
    }
}

async fn add(ctx: &Ctx, name: &str, fields: UserFields, generate_pin: bool) -> anyhow::Result<()> {
    let user = ctx.users().add(name, fields_of(fields)).await?;
    outln!("created user {}", user.username);
    let pin = if generate_pin {
        Some(ctx.pins().generate(&user, true).await?)
    } else {
        None
    };
    if ctx.mails().rules().welcomes(&user) {
        let pin = pin.as_ref().map(|p| p.as_str());
        email::send(ctx, &user, EmailKind::Welcome, pin, true).await?;
    } else if let Some(pin) = &pin {
        outln!("initial PIN: {}", pin.as_str());
    }
    Ok(())
}

fn fields_of(fields: UserFields) -> users::UserFields {
    users::UserFields {
        pin_mode: fields.pin_mode,
        method: fields.method,
        phone: fields.phone,
        backup_phone: fields.backup_phone,
        given_name: fields.given_name,
        surname: fields.surname,
        email: fields.email,
    }
}

async fn set_enabled(ctx: &Ctx, name: &str, enabled: bool) -> anyhow::Result<()> {
    let user = ctx.users().set_enabled(name, enabled).await?;
    outln!(
        "{} user {}",
        if enabled { "enabled" } else { "disabled" },
        user.username
    );
    Ok(())
}

fn state(user: &User, now: i64) -> &'static str {
    UserState::of(user, now).as_str()
}

const HEADERS: [&str; 8] = [
    "username",
    "given_name",
    "surname",
    "email",
    "phone",
    "method",
    "pin_mode",
    "state",
];

fn row(user: &User, now: i64) -> Vec<String> {
    vec![
        user.username.clone(),
        user.given_name.clone(),
        user.surname.clone(),
        user.email.clone(),
        user.phone.clone(),
        user.method.to_string(),
        user.pin_mode.to_string(),
        state(user, now).into(),
    ]
}

async fn list(ctx: &Ctx, format: OutputFormat) -> anyhow::Result<()> {
    let users = ctx.users().list().await?;
    let rows = users.iter().map(|u| row(u, ctx.now())).collect();
    output::print(format, &users, &HEADERS, rows)
}

async fn show(ctx: &Ctx, name: &str, format: OutputFormat) -> anyhow::Result<()> {
    let (user, tokens) = ctx.users().show(name).await?;
    if format == OutputFormat::Json {
        let value =
            serde_json::json!({ "user": user, "state": state(&user, ctx.now()), "tokens": tokens });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let now = ctx.now();
    let fields = [
        ("username", user.username.clone()),
        ("given name", user.given_name.clone()),
        ("surname", user.surname.clone()),
        ("e-mail", user.email.clone()),
        ("phone", user.phone.clone()),
        ("mobile", user.mobile.clone()),
        ("extension", user.extension.clone()),
        ("language", user.language.clone()),
        (
            "directory ID",
            user.directory_id.clone().unwrap_or_default(),
        ),
        ("sync item", user.sync_item.clone().unwrap_or_default()),
        ("backup phone", user.backup_phone.clone()),
        ("state", state(&user, now).into()),
        ("method", user.method.to_string()),
        ("pin mode", user.pin_mode.to_string()),
        ("pin set", if user.has_pin() { "yes" } else { "no" }.into()),
        (
            "pin change required",
            if user.pin_change_required {
                "yes"
            } else {
                "no"
            }
            .into(),
        ),
        ("failures", user.failures.to_string()),
        (
            "locked until",
            output::time(user.locked_until.filter(|t| *t > now)),
        ),
        (
            "blocked until",
            output::time(user.blocked_until.filter(|t| *t > now)),
        ),
        (
            "block reason",
            user.block_reason.clone().unwrap_or_default(),
        ),
        (
            "bypass until",
            output::time(user.bypass_until.filter(|t| *t > now)),
        ),
        (
            "tokens",
            tokens
                .iter()
                .map(|t| format!("{} ({})", t.serial, t.kind))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    for (name, value) in fields {
        outln!("{name:<20} {}", output::for_terminal(&value));
    }
    Ok(())
}

pub async fn bypass(ctx: &Ctx, name: &str, seconds: i64) -> anyhow::Result<()> {
    let (user, until) = ctx.access().bypass(name, seconds).await?;
    outln!(
        "{} may log in once without a second factor until {}",
        user.username,
        output::time(Some(until))
    );
    Ok(())
}
