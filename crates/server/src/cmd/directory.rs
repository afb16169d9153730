//! `mfad directory ...`: test the connection, import and sync users, approve held
//! disables, removals and phone changes.

use super::Ctx;
use crate::cli::{DirectoryCommand, OutputFormat};
use anyhow::{bail, Context};
use mfad_core::store::PendingPhone;
use mfad_directory::LdapDirectory;
use std::io::IsTerminal;
use std::sync::Arc;

/// How long a manual sync may hold the sync lock before another node may take it.
const LOCK_SECONDS: i64 = 3600;
/// Skipped entries listed after a sync; the rest are counted.
const SKIPPED_SHOWN: usize = 20;

pub async fn run(ctx: &Ctx, cmd: DirectoryCommand) -> anyhow::Result<()> {
    match cmd {
        DirectoryCommand::Test => test(ctx).await,
        DirectoryCommand::Import { dry_run } | DirectoryCommand::Sync { dry_run } => {
            sync(ctx, dry_run).await
        }
        DirectoryCommand::Approve => approve(ctx).await,
        DirectoryCommand::ApprovePhone { user, all } => {
            approve_phone(ctx, user.filter(|_| !all)).await
        }
        DirectoryCommand::Status { format } => status(ctx, format.format).await,
    }
}

fn directory(ctx: &Ctx) -> anyhow::Result<&Arc<LdapDirectory>> {
    ctx.directory.as_ref().context(
        "the config has no [directory] section; add one with servers, base_dn and bind_dn (see mfad.example.toml)",
    )
}

async fn test(ctx: &Ctx) -> anyhow::Result<()> {
    let dir = directory(ctx)?;
    let checks = dir.test().await;
    let mut servers_ok = 0;
    for server in &dir.config().servers {
        let mine: Vec<_> = checks.iter().filter(|c| &c.server == server).collect();
        for c in &mine {
            outln!(
                "{server}  {:<6} {}  {}",
                c.step,
                if c.ok { "ok    " } else { "FAILED" },
                c.detail
            );
        }
        if mine.len() == 4 && mine.iter().all(|c| c.ok) {
            servers_ok += 1;
        }
    }
    let total = dir.config().servers.len();
    if servers_ok == 0 {
        bail!("no directory server passed every check; fix what FAILED above");
    }
    if servers_ok < total {
        outln!(
            "{servers_ok} of {total} servers passed; mfad fails over to the next server in order"
        );
    } else {
        outln!("all {total} servers passed");
    }
    Ok(())
}

async fn sync(ctx: &Ctx, dry_run: bool) -> anyhow::Result<()> {
    let dir = directory(ctx)?;
    let holder = format!("cli:{}:{}", ctx.config.node_name(), std::process::id());
    let now = ctx.now();
    if !dry_run
        && !ctx
            .store
            .acquire_sync_lock(&holder, now, now + LOCK_SECONDS)
            .await?
    {
        bail!("another node is syncing with the directory right now; try again in a few minutes");
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {human_pos} entries read in {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let progress = |n: usize| {
        if let Some(bar) = &bar {
            if n % 100 == 0 {
                bar.set_position(n as u64);
            }
        }
    };
    let country = ctx.engine.policy().default_country_code.clone();
    let result =
        mfad_directory::run_sync(dir, &*ctx.store, now, &country, dry_run, &progress).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if !dry_run {
        ctx.store.release_sync_lock(&holder).await?;
    }
    let report = result.context("while syncing with the directory")?;
    for why in report.skipped.iter().take(SKIPPED_SHOWN) {
        eprintln!("skipped {why}");
    }
    if report.skipped.len() > SKIPPED_SHOWN {
        eprintln!(
            "... and {} more skipped",
            report.skipped.len() - SKIPPED_SHOWN
        );
    }
    outln!("{report}");
    if !dry_run {
        let welcomed = super::email::welcome_added(ctx, &report.added_ids).await?;
        if !welcomed.is_empty() {
            outln!("{welcomed}");
        }
        let notices = super::email::notify_phone_changes(ctx, &report.phones_held).await?;
        if notices > 0 {
            outln!("queued the notice of the held phone change for {notices} users");
        }
    }
    Ok(())
}

async fn approve(ctx: &Ctx) -> anyhow::Result<()> {
    let mut state = ctx.store.sync_state().await?;
    if state.pending_count == 0 {
        if !state.pending_phones.is_empty() {
            bail!(
                "no disables or removals are waiting for approval, but phone changes are; \
                 'mfad directory status' lists them, 'mfad directory approve-phone USER' applies one"
            );
        }
        bail!("nothing is waiting for approval; 'mfad directory status' shows the last sync");
    }
    state.approved_count = Some(state.pending_count);
    ctx.store.put_sync_state(&state).await?;
    outln!(
        "approved: the next sync may disable or remove up to {} users; run 'mfad directory sync' to apply it now",
        state.pending_count
    );
    Ok(())
}

async fn approve_phone(ctx: &Ctx, user: Option<String>) -> anyhow::Result<()> {
    let applied = mfad_directory::approve_phones(&*ctx.store, user.as_deref()).await?;
    if applied.is_empty() {
        outln!("no phone changes are waiting for approval");
    }
    for change in &applied {
        outln!(
            "approved: {} now uses {} (was {})",
            change.username,
            change.new_phone,
            if change.old_phone.is_empty() {
                "none"
            } else {
                &change.old_phone
            }
        );
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct Status {
    last_run: Option<i64>,
    last_summary: String,
    pending_count: u32,
    pending_reason: String,
    approved_count: Option<u32>,
    pending_phones: Vec<PendingPhone>,
}

async fn status(ctx: &Ctx, format: OutputFormat) -> anyhow::Result<()> {
    let s = ctx.store.sync_state().await?;
    let status = Status {
        last_run: s.last_run,
        last_summary: s.last_summary,
        pending_count: s.pending_count,
        pending_reason: s.pending_reason,
        approved_count: s.approved_count,
        pending_phones: s.pending_phones,
    };
    if format == OutputFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    match status.last_run {
        None => outln!("last sync: never"),
        Some(t) => outln!(
            "last sync: {} ({})",
            crate::output::time(Some(t)),
            status.last_summary
        ),
    }
    if status.pending_count > 0 {
        outln!("waiting for approval: {}", status.pending_reason);
    }
    if let Some(n) = status.approved_count {
        outln!("approved: the next sync may disable or remove up to {n} users");
    }
    if !status.pending_phones.is_empty() {
        outln!(
            "phone changes waiting for approval ('mfad directory approve-phone USER' applies one):"
        );
        for p in &status.pending_phones {
            outln!(
                "  {}: {} -> {} (held since {})",
                p.username,
                if p.old_phone.is_empty() {
                    "none"
                } else {
                    &p.old_phone
                },
                p.new_phone,
                crate::output::time(Some(p.since))
            );
        }
    }
    Ok(())
}
