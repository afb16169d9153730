//! `mfad store copy`, `mfad backup` and `mfad restore`: whole-store snapshots.
//!
//! All three move the rows as they are stored: token and client secrets stay sealed
//! with the key file (the same key must be configured wherever the data goes), and ids
//! and counters are kept, so a used code stays used in the copy.

use super::{open_store, Ctx};
use crate::config::Config;
use anyhow::{bail, Context};
use mfad_core::snapshot::{RowCounts, Snapshot};
use mfad_core::store::{Store, StoreError};
use std::io::{BufReader, BufWriter};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

fn describe(c: &RowCounts) -> String {
    format!(
        "{} users, {} tokens, {} clients, {} challenges, {} cached authentications, {} audit records, {} e-mails, {} rate limits, {} stored settings",
        c.users, c.tokens, c.clients, c.challenges, c.cached_auth, c.audit, c.emails, c.rate_limits, c.settings
    )
}

/// Loads the snapshot into `target` and checks that it now holds exactly those rows.
async fn load(target: &dyn Store, snapshot: &Snapshot, target_name: &str) -> anyhow::Result<()> {
    match target.import_snapshot(snapshot).await {
        Ok(()) => {}
        Err(StoreError::Duplicate(what)) => bail!(
            "{target_name} already holds {what}; restore or copy only into a new, empty database"
        ),
        Err(e) => return Err(e).with_context(|| format!("while loading into {target_name}")),
    }
    let loaded = target
        .export_snapshot()
        .await
        .with_context(|| format!("while reading back {target_name}"))?
        .counts();
    let expected = snapshot.counts();
    if loaded != expected {
        bail!(
            "{target_name} holds {} after the load, but the source had {}; do not use it",
            describe(&loaded),
            describe(&expected)
        );
    }
    Ok(())
}

pub async fn copy(config: &Config, from: &str, to: &str) -> anyhow::Result<()> {
    let (from_name, to_name) = (mfad_store::redact(from), mfad_store::redact(to));
    if from.trim_end_matches('/') == to.trim_end_matches('/') {
        bail!("--from and --to name the same store ({from_name}); give an empty target");
    }
    let source = open_store(config, from).await?;
    let target = open_store(config, to).await?;
    let snapshot = source
        .export_snapshot()
        .await
        .with_context(|| format!("while reading {from_name}"))?;
    load(&*target, &snapshot, &to_name).await?;
    target.flush().await?;
    outln!(
        "copied {} from {from_name} to {to_name}",
        describe(&snapshot.counts())
    );
    Ok(())
}

pub async fn backup(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let snapshot = ctx
        .store
        .export_snapshot()
        .await
        .context("while reading the store")?;
    let shown = file.display();
    // Written beside the target and renamed into place, so a crash never leaves a
    // half-written file under the backup's name.
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let written = (|| -> anyhow::Result<()> {
        // PIN hashes and sealed secrets: private like the database.
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut out = BufWriter::new(out);
        mfad_store::snapshot_file::write(&snapshot, &mut out)?;
        let out = out.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
        if file.exists() {
            bail!("{shown} already exists; choose a new file name");
        }
        std::fs::rename(&partial, file)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e).with_context(|| format!("while writing the backup {shown}"));
    }
    outln!("backed up {} to {shown}", describe(&snapshot.counts()));
    Ok(())
}

pub async fn restore(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let shown = file.display();
    let input = std::fs::File::open(file).with_context(|| format!("cannot open {shown}"))?;
    let snapshot = mfad_store::snapshot_file::read(BufReader::new(input))
        .with_context(|| format!("{shown} cannot be restored"))?;
    let target = mfad_store::redact(&ctx.config.store.url);
    load(&*ctx.store, &snapshot, &target).await?;
    outln!(
        "restored {} from {shown} into {target}",
        describe(&snapshot.counts())
    );
    Ok(())
}
