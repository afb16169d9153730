//! `mfad setting ...` and `mfad template ...`: settings kept in the store, laid over
//! every node's config file and picked up by running servers within seconds.

use super::Ctx;
use crate::cli::{OutputFormat, SettingCommand, TemplateCommand};
use crate::output;
use crate::settings::{self, TEMPLATE_PREFIX};
use anyhow::{bail, Context};
use mfad_core::settings::Setting;
use mfad_core::store::StoreError;
use serde::Serialize;
use std::path::Path;
use zeroize::Zeroizing;

/// What `list` and `get` print.
#[derive(Serialize)]
struct Shown {
    key: String,
    /// `None` for a credential.
    value: Option<String>,
    secret: bool,
    /// Whether the value comes from the store (else from the config file or defaults).
    stored: bool,
    updated_at: Option<i64>,
}

const HIDDEN: &str = "(hidden)";

pub async fn run(ctx: &Ctx, cmd: SettingCommand) -> anyhow::Result<()> {
    match cmd {
        SettingCommand::List { format } => list(ctx, format.format).await,
        SettingCommand::Get { key, format } => get(ctx, &key, format.format).await,
        SettingCommand::Set {
            key,
            value,
            secret,
            value_file,
        } => set(ctx, &key, value, secret, value_file.as_deref()).await,
        SettingCommand::Unset { key } => unset(ctx, &key).await,
    }
}

async fn list(ctx: &Ctx, format: OutputFormat) -> anyhow::Result<()> {
    let shown: Vec<Shown> = ctx
        .store
        .list_settings()
        .await?
        .iter()
        .filter(|s| !s.key.starts_with(TEMPLATE_PREFIX))
        .map(|s| Shown {
            key: s.key.clone(),
            value: (!s.secret).then(|| s.value.clone()),
            secret: s.secret,
            stored: true,
            updated_at: Some(s.updated_at),
        })
        .collect();
    let rows = shown
        .iter()
        .map(|s| {
            vec![
                s.key.clone(),
                s.value.clone().unwrap_or_else(|| HIDDEN.into()),
                output::time(s.updated_at),
            ]
        })
        .collect();
    output::print(format, &shown, &["KEY", "VALUE", "UPDATED"], rows)
}

async fn get(ctx: &Ctx, key: &str, format: OutputFormat) -> anyhow::Result<()> {
    settings::check_key(key)?;
    let stored_settings = ctx.store.list_settings().await?;
    let stored = stored_settings.iter().find(|s| s.key == key);
    let secret = settings::is_secret(key) || stored.is_some_and(|s| s.secret);
    let value = if secret {
        None
    } else {
        match stored {
            Some(s) => Some(s.value.clone()),
            None => Some(
                settings::lookup(&ctx.config, key)
                    .with_context(|| format!("'{key}' has no value; check the key's spelling"))?,
            ),
        }
    };
    let shown = Shown {
        key: key.to_owned(),
        value,
        secret,
        stored: stored.is_some(),
        updated_at: stored.map(|s| s.updated_at),
    };
    let source = if shown.stored { "stored" } else { "config" };
    let rows = vec![vec![
        shown.key.clone(),
        shown.value.clone().unwrap_or_else(|| HIDDEN.into()),
        source.into(),
    ]];
    match format {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&shown)?),
        _ => output::print(format, &[&shown], &["KEY", "VALUE", "SOURCE"], rows)?,
    }
    Ok(())
}

/// The stored settings with `key` replaced by `value` (or removed with `None`).
fn replaced(current: &[Setting], key: &str, value: Option<Setting>) -> Vec<Setting> {
    let mut next: Vec<Setting> = current.iter().filter(|s| s.key != key).cloned().collect();
    next.extend(value);
    next
}

async fn set(
    ctx: &Ctx,
    key: &str,
    value: Option<String>,
    secret: bool,
    value_file: Option<&Path>,
) -> anyhow::Result<()> {
    settings::check_key(key)?;
    match (settings::is_secret(key), secret) {
        (true, false) => bail!(
            "'{key}' is a credential; set it with --secret, reading it from standard input or --value-file"
        ),
        (false, true) => bail!("'{key}' is not a credential; give the value without --secret"),
        _ => {}
    }
    let text = match value {
        Some(value) => Zeroizing::new(value),
        None if secret || value_file.is_some() => {
            super::secret::read_text(value_file, "--value-file")?
        }
        None => bail!("give a value: mfad setting set {key} VALUE"),
    };
    if secret && text.is_empty() {
        bail!("the value for '{key}' is empty; nothing was changed");
    }
    // Plain values are kept as TOML text, exactly as the overlay reads them back.
    let stored = if secret {
        text.clone()
    } else {
        Zeroizing::new(settings::parse_value(&text).to_string())
    };
    let now = ctx.now();
    let current = ctx.store.list_settings().await?;
    let candidate = Setting {
        key: key.to_owned(),
        value: stored.to_string(),
        secret,
        updated_at: now,
    };
    settings::effective(&ctx.layers, &replaced(&current, key, Some(candidate)))
        .with_context(|| format!("'{key}' was not set"))?;
    ctx.store.put_setting(key, &stored, secret, now).await?;
    if secret {
        outln!("stored {key} (encrypted); running servers use it within a few seconds");
    } else {
        outln!(
            "stored {key} = {}; running servers use it within a few seconds",
            *stored
        );
    }
    Ok(())
}

async fn unset(ctx: &Ctx, key: &str) -> anyhow::Result<()> {
    let current = ctx.store.list_settings().await?;
    if !current.iter().any(|s| s.key == key) {
        bail!("setting '{key}' is not stored; see 'mfad setting list'");
    }
    // Refused only when removing it would break a configuration that works now: a
    // setting that no longer fits (the config file changed) can always be removed.
    if settings::effective(&ctx.layers, &current).is_ok() {
        settings::effective(&ctx.layers, &replaced(&current, key, None)).with_context(|| {
            format!("'{key}' was not removed, the configuration would not work without it")
        })?;
    }
    remove(ctx, key, "setting", key).await?;
    outln!("removed {key}; the config file's value is in force again");
    Ok(())
}

async fn remove(ctx: &Ctx, key: &str, what: &str, name: &str) -> anyhow::Result<()> {
    match ctx.store.delete_setting(key).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound(_)) => bail!("{what} '{name}' is not stored"),
        Err(e) => Err(e.into()),
    }
}

pub async fn template(ctx: &Ctx, cmd: TemplateCommand) -> anyhow::Result<()> {
    let dir = super::email_templates_dir(&ctx.config);
    match cmd {
        TemplateCommand::List { format } => {
            let stored = settings::templates(&ctx.settings);
            let templates = super::templates(ctx)?;
            #[derive(Serialize)]
            struct Row {
                name: String,
                source: &'static str,
            }
            let shown: Vec<Row> = templates
                .names()
                .iter()
                .map(|name| Row {
                    name: name.clone(),
                    source: if stored.contains_key(name) {
                        "stored"
                    } else if dir.is_some_and(|d| d.join(name).is_file()) {
                        "directory"
                    } else {
                        "shipped"
                    },
                })
                .collect();
            let rows = shown
                .iter()
                .map(|r| vec![r.name.clone(), r.source.to_owned()])
                .collect();
            output::print(format.format, &shown, &["NAME", "SOURCE"], rows)
        }
        TemplateCommand::Show { name } => {
            let templates = super::templates(ctx)?;
            let text = templates.source(&name).with_context(|| {
                format!("there is no template '{name}'; see 'mfad template list'")
            })?;
            out!("{text}");
            Ok(())
        }
        TemplateCommand::Set { name, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read --file {}", file.display()))?;
            let mut stored = settings::templates(&ctx.settings);
            stored.insert(name.clone(), text.clone());
            mfad_notify::Templates::load_with(dir, &stored)
                .with_context(|| format!("template '{name}' was not stored"))?;
            let key = format!("{TEMPLATE_PREFIX}{name}");
            ctx.store.put_setting(&key, &text, false, ctx.now()).await?;
            outln!("stored template {name}; it is used for mails composed from now on");
            Ok(())
        }
        TemplateCommand::Unset { name } => {
            remove(ctx, &format!("{TEMPLATE_PREFIX}{name}"), "template", &name).await?;
            outln!("removed the stored template {name}");
            Ok(())
        }
    }
}
