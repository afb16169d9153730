//! `mfad serve`: open the store, start the front-ends, purge old audit records and
//! expired pending logins, stop on a signal.

use crate::cmd::Ctx;
use crate::config::{Config, Layers};
use anyhow::Context;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

pub async fn run(layers: Layers) -> anyhow::Result<()> {
    // Installed before anything is logged: a supervisor (or test) that sends SIGTERM as
    // soon as it sees a log line must get a graceful stop, not the default kill.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    // Before any front-end records a metric; `/metrics` renders what it collects.
    let metrics = mfad_http::metrics::install_recorder();
    if let Some(handle) = &metrics {
        tokio::spawn(mfad_http::metrics::upkeep(handle.clone()));
    }
    // Listen addresses are read at start only, never from stored settings.
    let base = layers.unchecked()?;
    let listen = base.radius_listen()?;
    let Some(ctx) = open_context(layers, &base, server_ip(listen).to_string(), &mut term).await?
    else {
        tracing::info!("stopped before the database could be reached");
        return Ok(());
    };
    tracing::info!(node = %ctx.config.node_name(), store = %mfad_store::redact(&ctx.config.store.url), "mfad starting");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if ctx.config.radius.enabled {
        let delay = Duration::from_millis(ctx.config.radius.reject_delay_ms);
        let options = mfad_radius::RadiusOptions::default().with_reject_delay(delay);
        let targets = targets(&ctx.config.radius.targets).await?;
        let server = mfad_radius::RadiusServer::bind_with_targets(
            listen,
            ctx.engine.clone(),
            ctx.store.clone(),
            options,
            targets,
        )
        .await
        .with_context(|| {
            format!("cannot listen for RADIUS on {listen}; is another server using it?")
        })?;
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            server
                .run(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
    }
    if let Some(directory) = &ctx.directory {
        let every = ctx
            .config
            .directory
            .as_ref()
            .map(|d| d.sync_every())
            .transpose()?
            .flatten();
        if let Some(every) = every {
            let holder = format!("serve:{}:{}", ctx.config.node_name(), std::process::id());
            tracing::info!(
                every_seconds = every.as_secs(),
                "scheduled directory sync on"
            );
            tasks.spawn(scheduled_sync(
                directory.clone(),
                ctx.clone(),
                every,
                holder,
                stop_rx.clone(),
            ));
        }
    }
    let two_way = ctx.config.policy.sms.mode == mfad_core::policy::SmsMode::TwoWay;
    if two_way && ctx.sms.as_ref().is_some_and(|s| !s.receives_replies()) {
        tracing::error!(
            "policy.sms.mode is two-way but the SMS gateway cannot take replies, so SMS logins will time out: \
             for Twilio use the account's auth token (no api_key_sid), for the HTTP gateway set sms.http.inbound_secret_file"
        );
    }
    let app = mfad_http::App {
        engine: ctx.engine.clone(),
        store: ctx.store.clone(),
        voice: ctx.voice.clone(),
        sms: ctx.sms.clone().filter(|s| two_way && s.receives_replies()),
        metrics,
    };
    let data_dir = mfad_http::data_dir_of(&ctx.config.store.key_file);
    let http = mfad_http::HttpServer::bind(&ctx.config.http, &data_dir, app).await?;
    tasks.spawn(http.run(stop_rx.clone()));
    let mut mailer_slot = None;
    if ctx.config.smtp.enabled() {
        // Broken templates stop the start here, naming the template and line, instead of
        // failing the first mail.
        crate::cmd::templates(&ctx)?;
        let mailer = mfad_notify::Mailer::new(&ctx.config.smtp)?;
        let outbox = mfad_notify::Outbox::new(
            ctx.store.clone(),
            mailer,
            ctx.clock.clone(),
            ctx.config.email.retry.clone(),
        );
        let poll = Duration::from_secs(ctx.config.email.poll_seconds);
        mailer_slot = Some(outbox.mailer_slot());
        tasks.spawn(outbox.run(poll, stop_rx.clone()));
        tracing::info!(host = %ctx.config.smtp.host, "e-mail delivery on");
    }
    tasks.spawn(
        crate::live::Reloader {
            store: ctx.store.clone(),
            layers: ctx.layers.clone(),
            engine: ctx.engine.clone(),
            sms: ctx.sms.clone(),
            voice: ctx.voice.clone(),
            mailer: mailer_slot,
            applied: ctx.config.clone(),
            version: None,
        }
        .run(stop_rx.clone()),
    );
    tasks.spawn(purge(
        ctx.store.clone(),
        ctx.clock.clone(),
        ctx.config.audit.retention_days,
        stop_rx,
    ));

    shutdown_signal(&mut term).await;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    ctx.store.flush().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves and binds the `[[radius.targets]]`; `None` when there are none.
async fn targets(
    configs: &[crate::config::TargetConfig],
) -> anyhow::Result<Option<std::sync::Arc<mfad_radius::Targets>>> {
    if configs.is_empty() {
        return Ok(None);
    }
    let mut targets = Vec::with_capacity(configs.len());
    for config in configs {
        let secret = config.read_secret()?;
        if secret.len() < mfad_radius::MIN_SECRET_LEN {
            tracing::warn!(
                "radius target {} has a shared secret of {} bytes; use at least 16 (BlastRADIUS guidance)",
                config.name,
                secret.len()
            );
        }
        let address = tokio::net::lookup_host(&config.address)
            .await
            .ok()
            .and_then(|mut found| found.next())
            .with_context(|| {
                format!(
                    "cannot resolve the address '{}' of radius target '{}'; check the host name",
                    config.address, config.name
                )
            })?;
        targets.push(mfad_radius::TargetConfig {
            name: config.name.clone(),
            address,
            secret: zeroize::Zeroizing::new(secret.into_bytes()),
            timeout: Duration::from_millis(config.timeout_ms),
            retries: config.retries,
            require_message_authenticator: config.require_message_authenticator,
            hold_down: Duration::from_millis(config.hold_down_ms),
        });
    }
    let names: Vec<String> = targets
        .iter()
        .map(|t| format!("{} ({})", t.name, t.address))
        .collect();
    let bound = mfad_radius::Targets::bind(targets)
        .await
        .context("cannot open a UDP socket for the radius targets")?;
    tracing::info!("radius targets: {}", names.join(", "));
    Ok(Some(bound))
}

/// The address audit records name for this node: the listen address, or when that is a
/// wildcard, the address of the interface the default route uses.
fn server_ip(listen: SocketAddr) -> IpAddr {
    if !listen.ip().is_unspecified() {
        return listen.ip();
    }
    // Connecting a UDP socket sends nothing; it only picks the outgoing interface.
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map_or(listen.ip(), |a| a.ip())
}

/// Deletes audit records past the retention period, and ends the pending logins that
/// expired unfinished with their audit records (their node stopped, or lost the store,
/// while it waited), now and every hour.
async fn purge(
    store: std::sync::Arc<dyn mfad_core::store::Store>,
    clock: std::sync::Arc<dyn mfad_core::clock::Clock>,
    retention_days: u32,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let retention_ms = i64::from(retention_days) * 86_400_000;
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match store.purge_audit(clock.now_ms() - retention_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("purged {n} audit records older than {retention_days} days"),
            Err(err) => tracing::warn!("audit purge failed, will retry in an hour: {err}"),
        }
        match store.sweep_pending(clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "recorded {n} expired logins that no node finished (they waited for a call or SMS)"
            ),
            Err(err) => tracing::warn!(
                "cannot end expired logins waiting for a call or SMS, will retry in an hour: {err}"
            ),
        }
    }
}

/// Most a scheduled sync may hold the lock before another node may take over.
const SYNC_LOCK_SECONDS: i64 = 3600;

/// Syncs with the directory now and every `every`. Of several nodes sharing the store,
/// the lock lets one run at a time, and a node skips its turn when another node synced
/// within the last half interval. Users it adds are welcomed as by `mfad directory sync`.
async fn scheduled_sync(
    directory: std::sync::Arc<mfad_directory::LdapDirectory>,
    ctx: Ctx,
    every: Duration,
    holder: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (store, clock) = (ctx.store.clone(), ctx.clock.clone());
    let half = i64::try_from(every.as_secs() / 2).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = clock.now();
        match store.sync_state().await {
            Ok(state) if state.last_run.is_some_and(|t| now - t < half) => {
                metrics::counter!("mfad_directory_sync_total", "result" => "skipped").increment(1);
                tracing::info!(
                    "directory sync skipped: another node synced within half an interval"
                );
                continue;
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!("directory sync skipped, the store failed: {err}");
                continue;
            }
        }
        match store
            .acquire_sync_lock(&holder, now, now + SYNC_LOCK_SECONDS)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("directory sync skipped: another node holds the sync lock");
                continue;
            }
            Err(err) => {
                tracing::warn!("directory sync skipped, the store failed: {err}");
                continue;
            }
        }
        // The policy in force now: stored settings may have changed it.
        let country = ctx.engine.policy().default_country_code.clone();
        let run = mfad_directory::run_sync(&directory, &*store, now, &country, false, &|_| {});
        let result = tokio::select! {
            result = run => Some(result),
            _ = stop.wait_for(|s| *s) => None,
        };
        match result {
            Some(Ok(report)) => {
                metrics::counter!("mfad_directory_sync_total", "result" => "ok").increment(1);
                for (change, n) in [
                    ("added", report.added),
                    ("updated", report.updated),
                    ("disabled", report.disabled),
                    ("removed", report.removed),
                    ("skipped", report.skipped.len()),
                ] {
                    metrics::counter!("mfad_directory_sync_users_total", "change" => change)
                        .increment(u64::try_from(n).unwrap_or(u64::MAX));
                }
                tracing::info!("directory sync: {report}");
                welcome(&ctx, &report.added_ids).await;
                notify_phone_changes(&ctx, &report.phones_held).await;
            }
            Some(Err(err)) => {
                metrics::counter!("mfad_directory_sync_total", "result" => "failed").increment(1);
                tracing::warn!("directory sync failed, will retry at the next interval: {err}")
            }
            None => {}
        }
        if let Err(err) = store.release_sync_lock(&holder).await {
            tracing::warn!("cannot release the directory sync lock (it expires by itself): {err}");
        }
    }
}

/// Welcomes the users a scheduled sync added, with the settings in force now.
async fn welcome(ctx: &Ctx, added_ids: &[String]) {
    let welcomed = match ctx.refreshed().await {
        Ok(in_force) => crate::cmd::email::welcome_added(&in_force, added_ids).await,
        Err(err) => Err(err),
    };
    match welcomed {
        Ok(w) if !w.withheld.is_empty() => tracing::warn!("directory sync: {w}"),
        Ok(w) if !w.is_empty() => tracing::info!("directory sync: {w}"),
        Ok(_) => {}
        Err(err) => tracing::warn!(
            "directory sync: the welcome e-mails for the users it added failed ('mfad email send USER' sends one): {err:#}"
        ),
    }
}

/// Sends the notices of the phone changes a scheduled sync holds, with the settings in
/// force now.
async fn notify_phone_changes(ctx: &Ctx, held: &[mfad_core::store::PendingPhone]) {
    let notified = match ctx.refreshed().await {
        Ok(in_force) => crate::cmd::email::notify_phone_changes(&in_force, held).await,
        Err(err) => Err(err),
    };
    match notified {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            "directory sync: queued the notice of the held phone change for {n} users"
        ),
        Err(err) => tracing::warn!(
            "directory sync: the notices of the held phone changes failed (the next sync tries again): {err:#}"
        ),
    }
}

/// Longest wait between attempts to reach a database that is down at start.
const MAX_DATABASE_WAIT: Duration = Duration::from_secs(30);

/// Opens the store and everything built on it. A PostgreSQL database that cannot be
/// reached yet is waited for, with a log line per attempt: until it answers the node
/// listens on nothing, so RADIUS clients fail over to another node, and once it does
/// the node starts without a restart. Any other error stops the start. `None`: a
/// signal came while waiting.
async fn open_context(
    layers: Layers,
    base: &Config,
    server_ip: String,
    term: &mut Option<tokio::signal::unix::Signal>,
) -> anyhow::Result<Option<Ctx>> {
    let waits = mfad_store::names_postgres(&base.store.url);
    if waits {
        mfad_store::postgres::check_url(&base.store.url)?;
    }
    let mut delay = Duration::from_secs(1);
    loop {
        match Ctx::open(layers.clone(), server_ip.clone()).await {
            Ok(ctx) => return Ok(Some(ctx)),
            Err(err) if waits && database_unreachable(&err) => tracing::warn!(
                "waiting for the database: {err:#}; retrying in {} s",
                delay.as_secs()
            ),
            Err(err) => return Err(err),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown_signal(term) => return Ok(None),
        }
        delay = (delay * 2).min(MAX_DATABASE_WAIT);
    }
}

fn database_unreachable(err: &anyhow::Error) -> bool {
    use mfad_core::store::StoreError;
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<mfad_store::OpenError>(),
            Some(mfad_store::OpenError::Store(StoreError::Unavailable(_)))
        )
    })
}

async fn shutdown_signal(term: &mut Option<tokio::signal::unix::Signal>) {
    let ctrl_c = tokio::signal::ctrl_c();
    match term {
        Some(term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        None => {
            let _ = ctrl_c.await;
        }
    }
}
