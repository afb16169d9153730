//! `mfad user ...` and `mfad bypass`.

use super::{email, Ctx};
use crate::cli::{OutputFormat, UserCommand, UserFields};
use crate::output;
use anyhow::{bail, Context};
use mfad_core::model::{Method, NewUser, PinMode, User};
use mfad_core::outbox::EmailKind;
use mfad_core::phone;
use mfad_core::store::{StoreError, UserUpdate};
use zeroize::Zeroizing;

pub async fn run(ctx: &Ctx, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            user,
            fields,
            generate_pin,
            language,
        } => add(ctx, &user, fields, generate_pin, language).await,
        UserCommand::List { format } => list(ctx, format.format).await,
        UserCommand::Show { user, format } => show(ctx, &user, format.format).await,
        UserCommand::Update { user, fields } => {
            let found = ctx.user(&user).await?;
            let update = update_of(ctx, fields)?;
            let updated = ctx.store.update_user(found.id, &update).await?;
            outln!("updated user {}", found.username);
            let changed = updated.phone != found.phone || updated.method != found.method;
            if changed && ctx.config.email.send_updates && !updated.email.is_empty() {
                email::send(ctx, &updated, EmailKind::Update, None, false).await?;
            }
            Ok(())
        }
        UserCommand::Disable { user } => set_enabled(ctx, &user, false).await,
        UserCommand::Enable { user } => set_enabled(ctx, &user, true).await,
        UserCommand::Delete { user } => {
            let found = ctx.user(&user).await?;
            ctx.store.delete_user(found.id).await?;
            outln!("deleted user {} and their tokens", found.username);
            Ok(())
        }
        UserCommand::Unlock { user } => {
            let found = ctx.user(&user).await?;
            ctx.store.clear_failures(found.id).await?;
            outln!("unlocked user {}", found.username);
            Ok(())
        }
        UserCommand::Block { user, reason, days } => {
            let found = ctx.user(&user).await?;
            let days = days.unwrap_or(ctx.config.policy.block_days);
            if days <= 0 {
                bail!("--days must be positive");
            }
            let until = ctx.now().saturating_add(days.saturating_mul(86_400));
            ctx.store
                .set_block(found.id, Some(until), Some(&reason))
                .await?;
            outln!(
                "blocked user {} until {}",
                found.username,
                output::time(Some(until))
            );
            Ok(())
        }
        UserCommand::Unblock { user } => {
            let found = ctx.user(&user).await?;
            ctx.store.set_block(found.id, None, None).await?;
            outln!("unblocked user {}", found.username);
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
            if found.pin_mode != PinMode::Pin {
                // Setting a PIN does not switch the mode: an operator who stops here
                // would believe logins now need it.
                eprintln!(
                    "warning: the PIN mode of {0} is {1} (code only), so logins do not ask for this PIN; run 'mfad user update {0} --pin-mode pin' to require it",
                    output::for_terminal(&found.username),
                    found.pin_mode
                );
            }
            if generate {
                // A PIN someone else chose is known to them: the user must replace it.
                let pin = Zeroizing::new(ctx.engine.generate_pin(&found, true).await?);
                if ctx.config.email.send_to_users && !found.email.is_empty() {
                    email::send(ctx, &found, EmailKind::Welcome, Some(&pin), false).await?;
                } else {
                    outln!("{}", *pin);
                }
            } else {
                let pin = super::secret::from_args("pin", pin, pin_file.as_deref())?
                    .context("give --pin-file FILE, --pin-file - (standard input) or --generate")?;
                ctx.engine.set_pin(&found, &pin, change_required).await?;
                outln!("set the PIN of {}", found.username);
            }
            Ok(())
        }
    }
}

async fn add(
    ctx: &Ctx,
    name: &str,
    fields: UserFields,
    generate_pin: bool,
    language: String,
) -> anyhow::Result<()> {
    let username = name.trim().to_lowercase();
    if username.is_empty()
        || username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        bail!("'{name}' is not a valid username: it must be non-empty, without spaces");
    }
    let pin_mode = parse_pin_mode(fields.pin_mode.as_deref())?.unwrap_or_default();
    let method = parse_method(fields.method.as_deref())?.unwrap_or_default();
    let phone = normalise_phone(ctx, fields.phone.as_deref())?.unwrap_or_default();
    if matches!(method, Method::Sms | Method::Call) && phone.is_empty() {
        bail!("method {method} needs a phone number; add --phone NUMBER");
    }
    let new = NewUser {
        username,
        given_name: fields.given_name.unwrap_or_default(),
        surname: fields.surname.unwrap_or_default(),
        email: fields.email.unwrap_or_default(),
        phone,
        pin_mode,
        method,
        backup_phone: normalise_phone(ctx, fields.backup_phone.as_deref())?.unwrap_or_default(),
        language: language.trim().to_owned(),
        ..NewUser::default()
    };
    match ctx.store.create_user(&new, ctx.now()).await {
        Ok(user) => {
            outln!("created user {}", user.username);
            let pin = if generate_pin {
                Some(Zeroizing::new(ctx.engine.generate_pin(&user, true).await?))
            } else {
                None
            };
            let mailed = ctx.config.email.send_to_users && !user.email.is_empty();
            if mailed {
                let pin = pin.as_ref().map(|p| p.as_str());
                email::send(ctx, &user, EmailKind::Welcome, pin, true).await?;
            } else if let Some(pin) = &pin {
                outln!("initial PIN: {}", pin.as_str());
            }
            Ok(())
        }
        Err(StoreError::Duplicate(_)) => {
            bail!(
                "user '{}' already exists; use 'mfad user update' to change it",
                new.username
            )
        }
        Err(err) => Err(err.into()),
    }
}

fn parse_pin_mode(value: Option<&str>) -> anyhow::Result<Option<PinMode>> {
    value
        .map(|v| v.parse::<PinMode>().map_err(anyhow::Error::msg))
        .transpose()
}

fn parse_method(value: Option<&str>) -> anyhow::Result<Option<Method>> {
    value
        .map(|v| v.parse::<Method>().map_err(anyhow::Error::msg))
        .transpose()
}

/// E.164 with the configured default country code; an empty value clears the phone.
fn normalise_phone(ctx: &Ctx, value: Option<&str>) -> anyhow::Result<Option<String>> {
    match value.map(str::trim) {
        None => Ok(None),
        Some("") => Ok(Some(String::new())),
        Some(v) => {
            let phone = phone::normalise(v, &ctx.config.policy.default_country_code)?;
            Ok(Some(phone::stored(&phone)))
        }
    }
}

fn update_of(ctx: &Ctx, fields: UserFields) -> anyhow::Result<UserUpdate> {
    Ok(UserUpdate {
        pin_mode: parse_pin_mode(fields.pin_mode.as_deref())?,
        method: parse_method(fields.method.as_deref())?,
        phone: normalise_phone(ctx, fields.phone.as_deref())?,
        backup_phone: normalise_phone(ctx, fields.backup_phone.as_deref())?,
        given_name: fields.given_name,
        surname: fields.surname,
        email: fields.email,
        enabled: None,
    })
}

async fn set_enabled(ctx: &Ctx, name: &str, enabled: bool) -> anyhow::Result<()> {
    let found = ctx.user(name).await?;
    let update = UserUpdate {
        enabled: Some(enabled),
        ..UserUpdate::default()
    };
    ctx.store.update_user(found.id, &update).await?;
    outln!(
        "{} user {}",
        if enabled { "enabled" } else { "disabled" },
        found.username
    );
    Ok(())
}

fn state(user: &User, now: i64) -> &'static str {
    if !user.enabled {
        "disabled"
    } else if user.is_blocked(now) {
        "blocked"
    } else if user.is_locked(now) {
        "locked"
    } else {
        "active"
    }
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
    let users = ctx.store.list_users().await?;
    let rows = users.iter().map(|u| row(u, ctx.now())).collect();
    output::print(format, &users, &HEADERS, rows)
}

async fn show(ctx: &Ctx, name: &str, format: OutputFormat) -> anyhow::Result<()> {
    let user = ctx.user(name).await?;
    let tokens = ctx.store.tokens_for_user(user.id).await?;
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
    if !(1..=86_400).contains(&seconds) {
        bail!("--seconds must be between 1 and 86400");
    }
    let user = ctx.user(name).await?;
    let until = ctx.now().saturating_add(seconds);
    ctx.store.set_bypass(user.id, Some(until)).await?;
    outln!(
        "{} may log in once without a second factor until {}",
        user.username,
        output::time(Some(until))
    );
    Ok(())
}
